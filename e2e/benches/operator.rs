//! 10,000 Docker `KaasCluster`s on a real API server: how long the operator takes until every
//! one has its Cluster API objects and `observedGeneration == generation`, side by side with
//! a plain client that server-side-applies the very same rendered objects with the same
//! concurrency (the API server's own limit, the ceiling). Then the operator's RSS with 10,000
//! clusters, 60 s without changes counting the operator's writes, 100 spec changes one at a
//! time (patch to the MachineDeployment showing it), and a restart over the converged
//! clusters (ready after, writes). For reading the ratio:
//! the API server's requests during the operator's run (from its own metrics), the CPU the API
//! server and etcd spent in each run, and a second reference, a plain client that makes
//! exactly the operator's writes (the objects plus each cluster's finalizer and status).
//!
//! Run: `make bench-operator` (builds the release operator first). Figures go to
//! `bench-results/operator.txt`. The machines here are noisy: read the ratio. For a quick look,
//! `KAAS_BENCH_CLUSTERS` sets the number of clusters, `KAAS_BENCH_ONLY_OPERATOR` skips both
//! references (the operator's own figures only, to `bench-results/operator-only.txt`), `KAAS_BENCH_OPERATOR_CONCURRENCY` the
//! operator's `--concurrency` (both sides use 32 by default) and `KAAS_BENCH_LOG` a file to
//! copy the operator's log to (the restarted operator's to the same name with `.restarted`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use futures::StreamExt;
use kaas_e2e::{Process, free_port};
use kaas_testenv::TestEnv;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::json;

/// Clusters per run; `KAAS_BENCH_CLUSTERS` overrides it for a quick look.
fn wanted_clusters() -> usize {
    std::env::var("KAAS_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
/// Spec changes timed one at a time under the steady state.
const SPEC_CHANGES: usize = 100;

/// The sum of the `kaas_reconcile_total` series with `result="success"` at `addr`.
async fn reconciled(addr: &str) -> Result<u64> {
    let body = kaas_testenv::http::get(addr, "/metrics").await?.body;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("kaas_reconcile_total{") && l.contains("result=\"success\""))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum())
}

/// The operator's flags for the benchmark: metrics and probes on the given ports.
fn operator_args(metrics: &str, health: &str, ns: &str) -> Vec<String> {
    vec![
        format!("--metrics-bind-address={metrics}"),
        "--metrics-insecure".to_string(),
        format!("--health-probe-bind-address={health}"),
        format!(
            "--concurrency={}",
            std::env::var("KAAS_BENCH_OPERATOR_CONCURRENCY")
                .unwrap_or_else(|_| CONCURRENCY.to_string())
        ),
        format!("--namespace={ns}"),
    ]
}
const CONCURRENCY: usize = 32;
const IDLE_SECONDS: u64 = 60;

fn cluster(name: &str) -> Result<KaasCluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e", "version": "1.0.0"},
                 "kubernetesVersion": "1.31", "controlPlane": {"replicas": 1},
                 "network": {"podCIDRs": ["192.168.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"]},
                 "workers": [{"name": "md-0", "replicas": 2, "machineType": "none"}]}}))?)
}

async fn setup(client: &Client) -> Result<(ProviderClass, ClusterStack)> {
    kaas_e2e::install_crds(client).await?;
    kaas_e2e::docker_class_and_stack(client, &["1.31.4"]).await?;
    Ok((
        Api::<ProviderClass>::all(client.clone())
            .get("docker")
            .await?,
        Api::<ClusterStack>::all(client.clone())
            .get("docker-e2e-1-0-0")
            .await?,
    ))
}

async fn namespace(env: &TestEnv, client: &Client, name: &str) -> Result<String> {
    env.namespace(client, name).await
}

/// One request of a plain client.
enum Write {
    /// Server-side apply of a rendered object.
    Apply(serde_json::Value),
    /// Server-side apply of the operator's finalizer on a `KaasCluster`.
    Finalizer(String),
    /// Server-side apply of a status on a `KaasCluster`.
    Status(String, serde_json::Value),
}

/// The objects the operator renders for each of the benchmark's clusters in `ns`.
fn rendered(
    ns: &str,
    class: &ProviderClass,
    stack: &ClusterStack,
) -> Result<Vec<Vec<serde_json::Value>>> {
    let provider = kaas_provider_docker::Provider;
    let catalog = api::Catalog {
        classes: vec![Arc::new(class.clone())],
        stacks: vec![Arc::new(stack.clone())],
        clusters: Vec::new(),
        ..Default::default()
    };
    let manager = operator_core::build::manager_name(&provider);
    let mut all = Vec::new();
    for i in 0..wanted_clusters() {
        let mut c = cluster(&format!("c{i:04}"))?;
        c.metadata.namespace = Some(ns.to_string());
        c.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
        let resolved = operator_core::resolve::resolve(&c, "docker", &catalog)
            .map_err(|(_, m)| anyhow::anyhow!(m))?;
        let step = operator_core::gather::Step {
            cluster: &c,
            class,
            kubernetes_version: &resolved.kubernetes_version,
            stack: &resolved.stack,
        };
        let images = operator_core::gather::node_images(&provider, &step, None)?;
        let objects = operator_core::build::render_step(
            &provider,
            &step,
            &images,
            &kaas_stack::format::Kubeadm::default(),
            &manager,
            None,
        )?;
        all.push(objects.all().into_iter().cloned().collect::<Vec<_>>());
    }
    Ok(all)
}

/// Sends `writes` to namespace `ns`, `CONCURRENCY` at a time; the time they took.
async fn plain_writes(client: &Client, ns: &str, writes: Vec<Write>) -> Result<Duration> {
    let params = PatchParams::apply("bench-baseline").force();
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(writes)
        .map(|write| {
            let params = params.clone();
            let clusters = clusters.clone();
            async move {
                match write {
                    Write::Apply(obj) => {
                        let ar = operator_core::apply::resource_of(&obj);
                        let api: Api<DynamicObject> =
                            Api::namespaced_with(clusters.into_client(), ns, &ar);
                        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                        api.patch(name, &params, &Patch::Apply(&obj)).await?;
                    }
                    Write::Finalizer(name) => {
                        let patch = json!({
                            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
                            "metadata": {"name": name, "finalizers": ["kaas.scs.community/docker"]},
                        });
                        clusters
                            .patch(&name, &params, &Patch::Apply(&patch))
                            .await?;
                    }
                    Write::Status(name, status) => {
                        let patch = json!({
                            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
                            "status": status,
                        });
                        clusters
                            .patch_status(&name, &params, &Patch::Apply(&patch))
                            .await?;
                    }
                }
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = start.elapsed();
    for r in results {
        r?;
    }
    Ok(elapsed)
}

/// Creates the benchmark's clusters in `ns` (untimed: the clusters exist before anything is
/// measured, for the operator as for the plain client).
async fn create_clusters(api: &Api<KaasCluster>) -> Result<()> {
    let created: Vec<Result<()>> = futures::stream::iter(0..wanted_clusters())
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cluster(&format!("c{i:04}"))?)
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    created.into_iter().collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is 14th, stime 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn operator_writes(metrics_addr: &str) -> Result<u64> {
    kaas_e2e::counter(metrics_addr, "kaas_operator_writes_total").await
}

fn main() -> Result<()> {
    kaas_testenv::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let clusters = wanted_clusters();
    let env = TestEnv::start().await?;
    let client = env.client().await?;
    let (class, stack) = setup(&client).await?;
    let mut out = String::new();
    let mut line = |s: String| {
        println!("{s}");
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "kaas-operator-docker benchmark: {clusters} KaasClusters, concurrency {CONCURRENCY}, real kube-apiserver + etcd on loopback"
    ));

    // Baseline: the ceiling the API server allows for the same objects.
    let ns_base = namespace(&env, &client, "baseline").await?;
    let (apiserver, etcd) = env.server_pids();
    let cpu = || (cpu_seconds(apiserver), cpu_seconds(etcd));
    let cpu_before = cpu();
    let applies: Vec<Write> = rendered(&ns_base, &class, &stack)?
        .into_iter()
        .flatten()
        .map(Write::Apply)
        .collect();
    let objects = applies.len();
    // A quick look at the operator alone (its memory, a restart) skips both references.
    let only_operator = std::env::var_os("KAAS_BENCH_ONLY_OPERATOR").is_some();
    let base_time = if only_operator {
        Duration::from_secs(1)
    } else {
        plain_writes(&client, &ns_base, applies).await?
    };
    let cpu_base = cpu();
    let base_rate = clusters as f64 / base_time.as_secs_f64();
    line(if only_operator {
        "baseline: not run (KAAS_BENCH_ONLY_OPERATOR)".to_string()
    } else {
        format!(
            "baseline (plain server-side apply of the {objects} rendered objects): {:.1} s, {base_rate:.1} clusters/s, {:.0} applies/s",
            base_time.as_secs_f64(),
            objects as f64 / base_time.as_secs_f64()
        )
    });

    // The operator: create the clusters while it is stopped, then time it from its start
    // (connect, wait for CRDs, list and cache, reconcile everything).
    let ns = namespace(&env, &client, "operator").await?;
    let api: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    create_clusters(&api).await?;
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let health_addr = format!("127.0.0.1:{}", free_port()?);
    let args = operator_args(&metrics_addr, &health_addr, &ns);
    let requests_before = kaas_e2e::server_requests(&client).await?;
    let cpu_op_start = cpu();
    let start = Instant::now();
    let operator = Process::start(&env, "kaas-operator-docker", &args, "bench-operator")?;
    let mut peak_rss = 0;
    let mut first_done = None;
    // Watch rather than list: listing 1,000 objects every moment would load the API server
    // the operator is measured against.
    let mut converged = std::collections::HashSet::new();
    let events = kube::runtime::watcher(api.clone(), kube::runtime::watcher::Config::default())
        .applied_objects();
    futures::pin_mut!(events);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
    while converged.len() < clusters {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(event)) = next else {
            anyhow::bail!(
                "only {} of {clusters} converged; operator log:\n{}",
                converged.len(),
                operator.log_tail()
            );
        };
        let Ok(c) = event else { continue };
        let name = c.name_any();
        let done = c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
            && c.status.is_some();
        if done {
            converged.insert(name);
            if first_done.is_none() {
                first_done = Some(start.elapsed());
            }
        } else {
            converged.remove(&name);
        }
        if converged.len() % 100 == 0 {
            peak_rss = peak_rss.max(rss_kib(operator.id()));
        }
    }
    let op_time = start.elapsed();
    if let Ok(path) = std::env::var("KAAS_BENCH_LOG") {
        std::fs::copy(&operator.log, path)?;
    }
    let op_rate = clusters as f64 / op_time.as_secs_f64();
    // Every cluster has its objects.
    let docker = kaas_providers::find("docker").context("docker is registered")?;
    let kinds = [
        (docker.kinds.api_version, docker.kinds.cluster),
        (docker.kinds.api_version, docker.kinds.machine_template),
    ];
    for (v, k) in kaas_testenv::capi::KINDS.iter().chain(&kinds) {
        let ar = operator_core::apply::resource(v, k);
        let n = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar)
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        anyhow::ensure!(n >= clusters, "only {n} {k} objects");
    }
    let cpu_op_end = cpu();
    let requests_after = kaas_e2e::server_requests(&client).await?;
    let mut mix: Vec<String> = requests_after
        .iter()
        .map(|(k, v)| (k, v - requests_before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d >= 1.0)
        .map(|(k, d)| format!("{k} {d:.0}"))
        .collect();
    mix.sort();
    line(format!(
        "API server requests during the operator run: {}",
        mix.join(", ")
    ));
    let writes_after_converge = operator_writes(&metrics_addr).await?;
    let first_done = first_done.unwrap_or(op_time);
    let metrics_text = kaas_testenv::http::get(&metrics_addr, "/metrics")
        .await?
        .body;
    let errors: Vec<&str> = metrics_text
        .lines()
        .filter(|l| {
            l.starts_with("kaas_reconcile_errors_total{") || l.starts_with("kaas_reconcile_total{")
        })
        .collect();
    line(format!(
        "operator (from process start until all {clusters} have their objects and observedGeneration == generation): {:.1} s, {op_rate:.1} clusters/s, {writes_after_converge} write requests",
        op_time.as_secs_f64()
    ));
    line(format!(
        "operator reconciles: {}; operator CPU {:.1} s; first cluster converged {:.1} s after the start, the other {} in {:.1} s",
        errors.join(", "),
        cpu_seconds(operator.id()),
        first_done.as_secs_f64(),
        clusters - 1,
        (op_time - first_done).as_secs_f64()
    ));
    line(format!(
        "CPU of kube-apiserver / etcd: baseline {:.1} / {:.1} s, operator run {:.1} / {:.1} s",
        cpu_base.0 - cpu_before.0,
        cpu_base.1 - cpu_before.1,
        cpu_op_end.0 - cpu_op_start.0,
        cpu_op_end.1 - cpu_op_start.1,
    ));
    line(format!(
        "rate operator / baseline: {:.2} (for reading; the target is against the operator's exact writes, below)",
        op_rate / base_rate
    ));
    // The baseline writes only the objects; the operator must also write each cluster's
    // finalizer and status. Were every write as cheap as an object's, and the operator free,
    // the ratio could reach at most objects / writes.
    line(format!(
        "ceiling from the write counts alone: {objects} / {writes_after_converge} = {:.2}",
        objects as f64 / writes_after_converge.max(1) as f64
    ));
    let rss = rss_kib(operator.id());
    peak_rss = peak_rss.max(rss);
    // The targets: 64 MiB for 1,000 clusters, 160 MiB for 10,000.
    let rss_target: u64 = if clusters > 1_000 { 160 } else { 64 };
    line(format!(
        "operator RSS with {clusters} clusters: {:.1} MiB (peak seen {:.1} MiB; target < {rss_target} MiB: {})",
        rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        if rss < rss_target * 1024 {
            "met"
        } else {
            "NOT met"
        }
    ));

    // Steady state: nothing changes, nothing should be written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = operator_writes(&metrics_addr).await?;
    tokio::time::sleep(Duration::from_secs(IDLE_SECONDS)).await;
    let after = operator_writes(&metrics_addr).await?;
    line(format!(
        "writes during {IDLE_SECONDS} s without changes: {} (target 0: {})",
        after - before,
        if after == before { "met" } else { "NOT met" }
    ));
    // One spec change at a time under that steady state: the patch, then the moment the
    // MachineDeployment shows it.
    let mds = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &operator_core::apply::resource("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
    );
    let mut latencies = Vec::new();
    for i in 0..SPEC_CHANGES.min(clusters) {
        let name = format!("c{:04}", (i * 97) % clusters);
        let changed = Instant::now();
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"workers": [{"name": "md-0", "replicas": 3, "machineType": "none"}]}})),
        )
        .await?;
        let md = format!("{name}-md-0");
        loop {
            let replicas = mds.get(&md).await?.data["spec"]["replicas"].as_i64();
            if replicas == Some(3) {
                break;
            }
            anyhow::ensure!(
                changed.elapsed() < Duration::from_secs(60),
                "{md} never showed the change"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(changed.elapsed());
    }
    latencies.sort();
    // The changed clusters settle (their status written) before the restart below.
    let settle = Instant::now();
    loop {
        let pending = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| {
                c.status.as_ref().and_then(|s| s.observed_generation) != c.metadata.generation
            })
            .count();
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            settle.elapsed() < Duration::from_secs(120),
            "{pending} clusters never settled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    line(format!(
        "{} spec changes, patch to MachineDeployment: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 < 1 s: {})",
        latencies.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        at(1.0).as_secs_f64() * 1000.0,
        if at(0.99) < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    ));

    // A restart over the converged clusters: ready when its caches are, and nothing written.
    drop(operator);
    // Its reference: a plain client listing what the operator caches before it is ready (its
    // three owned kinds by its label, from the API server's watch cache, at once), decoded
    // into generic objects; the floor any restart on this machine pays.
    let plain_list = {
        let started = Instant::now();
        let label = format!(
            "{}=kaas-operator-docker",
            operator_core::render::MANAGED_BY_LABEL
        );
        let lists = [
            (operator_core::kinds::CAPI_CORE, "Cluster"),
            (
                operator_core::kinds::CAPI_CONTROL_PLANE,
                "KubeadmControlPlane",
            ),
            (operator_core::kinds::CAPI_CORE, "MachineDeployment"),
        ]
        .map(|(v, k)| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &ns, &operator_core::apply::resource(v, k));
            let params = ListParams::default().labels(&label).match_any();
            async move { api.list(&params).await.map(|l| l.items.len()) }
        });
        let listed: usize = futures::future::try_join_all(lists)
            .await?
            .into_iter()
            .sum();
        anyhow::ensure!(listed == 3 * clusters, "listed {listed}");
        started.elapsed()
    };
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let health_addr = format!("127.0.0.1:{}", free_port()?);
    let restarted = Instant::now();
    let operator = Process::start(
        &env,
        "kaas-operator-docker",
        &operator_args(&metrics_addr, &health_addr, &ns),
        "bench-operator-restarted",
    )?;
    let ready_after = loop {
        if kaas_testenv::http::get(&health_addr, "/readyz")
            .await
            .is_ok_and(|r| r.status == 200)
        {
            break restarted.elapsed();
        }
        anyhow::ensure!(
            restarted.elapsed() < Duration::from_secs(300),
            "never ready: {}",
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let all_after = loop {
        if reconciled(&metrics_addr).await.unwrap_or(0) >= clusters as u64 {
            break restarted.elapsed();
        }
        anyhow::ensure!(
            restarted.elapsed() < Duration::from_secs(900),
            "not every cluster reconciled after the restart: {}",
            operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_writes = operator_writes(&metrics_addr).await?;
    if let Ok(path) = std::env::var("KAAS_BENCH_LOG") {
        std::fs::copy(&operator.log, format!("{path}.restarted"))?;
    }
    line(format!(
        "restart over {clusters} converged clusters: ready after {:.2} s (target <= 5 s: {}; a plain client's list of the same caches: {:.2} s, ratio {:.2}), every cluster reconciled once after {:.1} s, writes {restart_writes} (target 0: {}); RSS then {:.1} MiB",
        ready_after.as_secs_f64(),
        if ready_after <= Duration::from_secs(5) {
            "met"
        } else {
            "NOT met"
        },
        plain_list.as_secs_f64(),
        ready_after.as_secs_f64() / plain_list.as_secs_f64(),
        all_after.as_secs_f64(),
        if restart_writes == 0 {
            "met"
        } else {
            "NOT met"
        },
        rss_kib(operator.id()) as f64 / 1024.0
    ));

    let first = api.get("c0000").await?;
    line(format!(
        "sample: c0000 phase {:?}, finalizers {:?}",
        first.status.clone().and_then(|s| s.phase),
        first.finalizers()
    ));

    // A second reference: a plain client making exactly the operator's writes (the same
    // objects, then the finalizer and the very status the operator wrote), so the ratio to it
    // shows what the operator costs beyond the writes the API asks of it.
    let statuses: std::collections::HashMap<String, serde_json::Value> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|c| {
            (
                c.name_any(),
                serde_json::to_value(c.status).unwrap_or_default(),
            )
        })
        .collect();
    if only_operator {
        line("KAAS_BENCH_ONLY_OPERATOR: the baseline and the reference were not run; the ratios above are void".into());
        let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
        std::fs::create_dir_all(&results).context("bench-results")?;
        std::fs::write(results.join("operator-only.txt"), out)?;
        return Ok(());
    }
    let ns_writes = namespace(&env, &client, "writes").await?;
    create_clusters(&Api::namespaced(client.clone(), &ns_writes)).await?;
    let mut writes = Vec::new();
    for (i, objects) in rendered(&ns_writes, &class, &stack)?
        .into_iter()
        .enumerate()
    {
        let name = format!("c{i:04}");
        writes.push(Write::Finalizer(name.clone()));
        writes.extend(objects.into_iter().map(Write::Apply));
        let status = statuses.get(&name).cloned().unwrap_or_default();
        writes.push(Write::Status(name, status));
    }
    let count = writes.len();
    let cpu_writes_start = cpu();
    let writes_time = plain_writes(&client, &ns_writes, writes).await?;
    let cpu_writes = cpu();
    let writes_rate = clusters as f64 / writes_time.as_secs_f64();
    line(format!(
        "reference: a plain client making the operator's {count} writes (the objects, the finalizer, the operator's status): {:.1} s, {writes_rate:.1} clusters/s; kube-apiserver / etcd CPU {:.1} / {:.1} s",
        writes_time.as_secs_f64(),
        cpu_writes.0 - cpu_writes_start.0,
        cpu_writes.1 - cpu_writes_start.1,
    ));
    let time_ratio = writes_rate / op_rate;
    line(format!(
        "time operator / the same writes by a plain client: {time_ratio:.2} (target <= 1.10: {})",
        if time_ratio <= 1.10 { "met" } else { "NOT met" }
    ));

    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&results).context("bench-results")?;
    std::fs::write(results.join("operator.txt"), out)?;
    println!("written to bench-results/operator.txt");
    drop(operator);
    Ok(())
}
