//! `KaasCluster` creates and updates per second through a real kube-apiserver with etcd, in
//! four settings: kaas-webhooks registered for mutation and validation (the real binary, a
//! process of its own), the same in a namespace a `TenantPolicy` with limits governs (every
//! create and growing update is counted in the policy's status, from the replica's hold:
//! `webhooks/src/reserve.rs`), a constant-allow
//! webhook registered the very same way (a process of its own, on the same listener stack,
//! that reads only the review's uid and allows), and no webhook. 16 clients; settings
//! interleaved over rounds, medians reported; the targets are kaas-webhooks at 0.95 of the
//! constant-allow figure or better, and a request under a policy costing at most 1.2 times one
//! without (throughput at least 1/1.2 = 0.83 of it). Clusters are fully specified, so every
//! setting stores the same objects.
//!
//! Run: `make bench-webhooks` (or `cargo bench -p kaas-webhooks --bench apiserver`). Figures
//! go to `bench-results/webhooks-apiserver.txt`. The API server, etcd, both webhooks and the
//! load generator share two cores here: read the medians and the spread, not one round.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use axum::routing::post;
use bytes::Bytes;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kaas_testenv::TestEnv;
use kaas_webhooks::registration::{self, Target};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

// Shared with the other benches; this one reads only the uid.
#[allow(dead_code)]
#[path = "support/requests.rs"]
mod requests;

// The same allocator as the kaas-webhooks binary, so the constant-allow webhook (a copy of this
// binary) differs from it only in what it does per request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set in the environment of the copy of this binary that serves the constant-allow webhook:
/// the folder with its certificate and key, where it writes its port.
const CONSTANT_SERVER_ENV: &str = "KAAS_BENCH_CONSTANT_SERVER";
const CLIENTS: usize = 16;
const ROUNDS: usize = 7;
const PHASE: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Setting {
    KaasWebhooks,
    ConstantAllow,
    NoWebhook,
    UnderPolicy,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::KaasWebhooks => "kaas-webhooks",
            Setting::ConstantAllow => "constant-allow",
            Setting::NoWebhook => "no webhook",
            Setting::UnderPolicy => "kaas-webhooks, policy",
        }
    }
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(dir) = std::env::var(CONSTANT_SERVER_ENV) {
        return serve_constant(std::path::Path::new(&dir));
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

/// The constant-allow webhook: kaas-webhooks' own listener and TLS, answering every review
/// allowed with its uid echoed (the least a webhook the API server accepts can do).
fn serve_constant(dir: &std::path::Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let resolver =
            kaas_webhooks::tls::ReloadingCert::new(&dir.join("tls.crt"), &dir.join("tls.key"))?;
        let allow = || {
            post(|body: Bytes| async move {
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    requests::echo_uid_allowed(&body),
                )
            })
        };
        let app = axum::Router::new()
            .route("/mutate", allow())
            .route("/validate", allow());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        std::fs::write(dir.join("port"), listener.local_addr()?.port().to_string())?;
        kaas_listener::serve(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(
                kaas_webhooks::tls::server_config(resolver),
            )),
            app,
            kaas_listener::Limits::WEBHOOK,
            std::future::pending(),
            Duration::ZERO,
        )
        .await;
        Ok(())
    })
}

/// Waits until `addr` answers TLS with the test CA (any status).
async fn wait_listening(addr: &str, ca: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while kaas_testenv::http::get_tls(addr, "/healthz", ca)
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("{addr} never answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Registers both webhooks at `target`, or none.
async fn register(client: &Client, target: Option<(&Target, &[u8])>) -> Result<()> {
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let name = registration::CONFIGURATION_NAME;
    match target {
        Some((target, ca)) => {
            let apply = PatchParams::apply("bench").force();
            mutating
                .patch(
                    name,
                    &apply,
                    &Patch::Apply(registration::mutating(target, Some(ca))),
                )
                .await?;
            validating
                .patch(
                    name,
                    &apply,
                    &Patch::Apply(registration::validating(target, Some(ca))),
                )
                .await?;
        }
        None => {
            for r in [
                mutating
                    .delete(name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
                validating
                    .delete(name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            ] {
                match r {
                    Ok(()) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    // The API server picks configurations up from its own watch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

fn cluster(name: &str, replicas: i32) -> Result<KaasCluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
        "spec": {"providerClassName": "docker",
                 "clusterStack": {"name": "e2e", "version": "1.0.0"},
                 "kubernetesVersion": "1.31.4", "controlPlane": {"replicas": 1},
                 "network": {"podCIDRs": ["192.168.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"]},
                 "workers": [{"name": "md-0", "replicas": replicas, "machineType": "none"}]}}))?)
}

/// Creates (`update` false) or updates clusters from `CLIENTS` tasks for `PHASE`; the number
/// done per second, and how many names from `<prefix>-0` on all exist (after creates).
/// Updates touch the first `created` of them: clients create at their own pace, so the names
/// created are not simply `0..count` (updates of names never created failed as 404s).
async fn phase(
    api: &Api<KaasCluster>,
    prefix: &str,
    created: u64,
    update: bool,
) -> Result<(f64, u64)> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    // The first failure, said when too many fail.
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (api, done, stop, failed) = (api.clone(), done.clone(), stop.clone(), failed.clone());
            let first_error = first_error.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let mut i = client as u64;
                // This client's successes before its first failure: its names 0..contiguous
                // (client + k * CLIENTS) exist.
                let mut contiguous = 0u64;
                let mut clean = true;
                while !stop.load(Ordering::Relaxed) {
                    let result = if update {
                        let name = format!("{prefix}-{}", i % created.max(1));
                        let patch = json!({"spec": {"workers": [
                            {"name": "md-0", "replicas": (i % 7) as i32 + 1, "machineType": "none"}]}});
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                            .await
                            .map(|_| ())
                    } else {
                        match cluster(&format!("{prefix}-{i}"), 2) {
                            Ok(c) => api.create(&PostParams::default(), &c).await.map(|_| ()),
                            Err(_) => Ok(()),
                        }
                    };
                    match result {
                        Ok(()) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            if clean {
                                contiguous += 1;
                            }
                        }
                        Err(e) => {
                            clean = false;
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                    i += CLIENTS as u64;
                }
                contiguous
            })
        })
        .collect();
    tokio::time::sleep(PHASE).await;
    stop.store(true, Ordering::Relaxed);
    // Every name below this exists: what the updates of the next phase may touch.
    let mut existing = u64::MAX;
    for t in tasks {
        existing = existing.min(t.await? * CLIENTS as u64);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    if failed.load(Ordering::Relaxed) > n / 100 {
        bail!(
            "{} of {} requests failed in {prefix}, the first: {}",
            failed.load(Ordering::Relaxed),
            n + failed.load(Ordering::Relaxed),
            first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default()
        );
    }
    Ok((n as f64 / elapsed, existing))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn run() -> Result<()> {
    let env = TestEnv::start().await?;
    let client = env.client().await?;
    let mut crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    for crd in &mut crds {
        // Admission only: objects are written and read in the storage version.
        crd.spec.conversion = None;
    }
    kaas_testenv::install_crds(&client, &crds).await?;
    let apply = PatchParams::apply("bench").force();
    let class: ProviderClass = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "docker"}, "spec": {"controller": "kaas.scs.community/docker"}}))?;
    Api::<ProviderClass>::all(client.clone())
        .patch("docker", &apply, &Patch::Apply(&class))
        .await?;
    let stack: ClusterStack = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-e2e-1-0-0"},
        "spec": {"provider": "docker", "name": "e2e", "version": "1.0.0", "kubernetesVersions": ["1.31.4"]}}))?;
    Api::<ClusterStack>::all(client.clone())
        .patch("docker-e2e-1-0-0", &apply, &Patch::Apply(&stack))
        .await?;

    let ca = kaas_testenv::certs::TestCa::new()?;
    let ca_pem = ca.pem();
    // kaas-webhooks, as it runs in a cluster.
    let certs = env.dir().join("kaas-webhooks-certs");
    std::fs::create_dir_all(&certs)?;
    let (cert, key) = ca.issue_files(&certs, "kaas-webhooks")?;
    let port = kaas_testenv_port()?;
    let webhooks_addr = format!("127.0.0.1:{port}");
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|d| d.parent())
        .context("target folder")?
        .join("kaas-webhooks");
    let mut webhooks = std::process::Command::new(&bin)
        .args([
            format!("--bind-address={webhooks_addr}"),
            format!("--metrics-bind-address=127.0.0.1:{}", kaas_testenv_port()?),
            "--metrics-insecure".to_string(),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-key-file={}", key.display()),
        ])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("{} (cargo build --release -p kaas-webhooks)", bin.display()))?;
    env.adopt(&webhooks)?;
    // The constant-allow webhook: a copy of this binary.
    let constant_dir = env.dir().join("constant-allow");
    std::fs::create_dir_all(&constant_dir)?;
    let (c, k) = ca.issue_files(&constant_dir, "constant-allow")?;
    std::fs::rename(c, constant_dir.join("tls.crt"))?;
    std::fs::rename(k, constant_dir.join("tls.key"))?;
    let mut constant = std::process::Command::new(std::env::current_exe()?)
        .env(CONSTANT_SERVER_ENV, &constant_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    env.adopt(&constant)?;
    let port_file = constant_dir.join("port");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_file.exists() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the constant-allow webhook never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let constant_addr = format!("127.0.0.1:{}", std::fs::read_to_string(&port_file)?.trim());
    wait_listening(&webhooks_addr, &ca_pem).await?;
    wait_listening(&constant_addr, &ca_pem).await?;
    let kaas_target = Target::Url(format!("https://{webhooks_addr}"));
    let constant_target = Target::Url(format!("https://{constant_addr}"));
    // kaas-webhooks' cache must hold the class and the stack before it admits anything.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ns = env.namespace(&client, "bench").await?;
    let api: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    // A namespace under a policy whose limits every request must be checked against (node
    // counts: the class lists no machine types), high enough that none is reached.
    let governed = env.namespace(&client, "bench-policy").await?;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(
            &governed,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "bench"}}})),
        )
        .await?;
    let policy: api::v1beta1::TenantPolicy = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "TenantPolicy",
        "metadata": {"name": "bench"},
        "spec": {"namespaceSelector": {"matchLabels": {"tier": "bench"}},
                 "limits": {"clusters": 1_000_000_000i64, "controlPlaneNodes": 1_000_000_000i64,
                            "workerNodes": 1_000_000_000i64}}}))?;
    Api::<api::v1beta1::TenantPolicy>::all(client.clone())
        .patch("bench", &apply, &Patch::Apply(&policy))
        .await?;
    let under_policy: Api<KaasCluster> = Api::namespaced(client.clone(), &governed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settings = [
        Setting::KaasWebhooks,
        Setting::ConstantAllow,
        Setting::NoWebhook,
        Setting::UnderPolicy,
    ];
    let mut creates: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    let mut updates: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    let mut ratios_create = Vec::new();
    let mut ratios_update = Vec::new();
    let mut policy_create = Vec::new();
    let mut policy_update = Vec::new();
    for round in 0..ROUNDS {
        // A different order each round, so no setting always runs first or last.
        let mut order: Vec<usize> = (0..settings.len()).collect();
        order.rotate_left(round % settings.len());
        let mut this_round = [(0.0, 0.0); 4];
        for &i in &order {
            let setting = settings[i];
            let target = match setting {
                Setting::KaasWebhooks | Setting::UnderPolicy => {
                    Some((&kaas_target, ca_pem.as_bytes()))
                }
                Setting::ConstantAllow => Some((&constant_target, ca_pem.as_bytes())),
                Setting::NoWebhook => None,
            };
            register(&client, target).await?;
            let prefix = format!("r{round}-s{i}");
            let api = if setting == Setting::UnderPolicy {
                &under_policy
            } else {
                &api
            };
            let (c, created) = phase(api, &prefix, 0, false).await?;
            let (u, _) = phase(api, &prefix, created, true).await?;
            creates[i].push(c);
            updates[i].push(u);
            this_round[i] = (c, u);
            println!(
                "round {round} {:<15} creates/s {c:7.1}  updates/s {u:7.1}",
                setting.name()
            );
        }
        ratios_create.push(this_round[0].0 / this_round[1].0);
        ratios_update.push(this_round[0].1 / this_round[1].1);
        policy_create.push(this_round[3].0 / this_round[0].0);
        policy_update.push(this_round[3].1 / this_round[0].1);
    }
    if let Ok(Some(status)) = webhooks.try_wait() {
        bail!("kaas-webhooks exited during the run: {status}");
    }
    let _ = webhooks.kill();
    let _ = constant.kill();

    let mut out = format!(
        "KaasCluster creates and updates through kube-apiserver + etcd: {CLIENTS} clients, {ROUNDS} rounds of {} s per setting and operation, settings interleaved; medians\n",
        PHASE.as_secs()
    );
    out.push_str(&format!(
        "{:<16} {:>10} {:>10}\n",
        "setting", "creates/s", "updates/s"
    ));
    for (i, s) in settings.iter().enumerate() {
        out.push_str(&format!(
            "{:<16} {:>10.1} {:>10.1}\n",
            s.name(),
            median(creates[i].clone()),
            median(updates[i].clone())
        ));
    }
    let spread = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        format!("{min:.2}-{max:.2}")
    };
    let create_ratio = median(creates[0].clone()) / median(creates[1].clone());
    let update_ratio = median(updates[0].clone()) / median(updates[1].clone());
    out.push_str(&format!(
        "kaas-webhooks / constant-allow: creates {create_ratio:.2}, updates {update_ratio:.2} (target >= 0.95: {}); per-round ratios: creates {}, updates {}; median of per-round ratios: creates {:.2}, updates {:.2}\n",
        if create_ratio >= 0.95 && update_ratio >= 0.95 { "met" } else { "NOT met" },
        spread(&ratios_create),
        spread(&ratios_update),
        median(ratios_create.clone()),
        median(ratios_update.clone()),
    ));
    let (pc, pu) = (
        median(creates[3].clone()) / median(creates[0].clone()),
        median(updates[3].clone()) / median(updates[0].clone()),
    );
    out.push_str(&format!(
        "under a TenantPolicy / without: creates {pc:.2}, updates {pu:.2} (target >= 0.83, a request costing at most 1.2x: {}); per-round ratios: creates {}, updates {}\n",
        if pc >= 1.0 / 1.2 && pu >= 1.0 / 1.2 { "met" } else { "NOT met" },
        spread(&policy_create),
        spread(&policy_update),
    ));
    out.push_str(&format!(
        "for reading: no webhook / constant-allow: creates {:.2}, updates {:.2} (what any webhook registration costs here)\n",
        median(creates[2].clone()) / median(creates[1].clone()),
        median(updates[2].clone()) / median(updates[1].clone()),
    ));
    print!("{out}");
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("webhooks-apiserver.txt"), out)?;
    println!("written to bench-results/webhooks-apiserver.txt");
    Ok(())
}

/// A free loopback port.
fn kaas_testenv_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
