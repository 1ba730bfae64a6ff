//! Two replicas of one operator with leader election: only the Lease holder writes; when it is
//! killed the other takes over within 20 s, and what was already written is not written again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use api::v1beta1::KaasCluster;
use k8s_openapi::api::coordination::v1::Lease;
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::json;

const LEASE: &str = "kaas-scs-community-docker";

async fn setup(env: &TestEnv) -> Result<Client> {
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    Ok(client)
}

fn cluster(name: &str) -> Result<KaasCluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e"}, "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 1, "machineType": "none"}]}}))?)
}

/// `kind/name → resourceVersion` of every object of cluster `name`.
async fn versions(client: &Client, ns: &str, name: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (v, k) in kaas_e2e::capi_kinds() {
        let (g, ver) = v.split_once('/').unwrap_or(("", v));
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(g, ver, k),
            &format!("{}s", k.to_lowercase()),
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for o in api
            .list(&ListParams::default().labels(&format!("kaas.scs.community/cluster={name}")))
            .await?
        {
            out.insert(
                format!("{k}/{}", o.name_any()),
                o.resource_version().unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

async fn writes(metrics_addr: &str) -> Result<u64> {
    kaas_e2e::counter(metrics_addr, "kaas_operator_writes_total").await
}

#[tokio::test]
async fn only_the_lease_holder_writes_and_a_standby_takes_over() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = setup(env).await?;
    let ns = env.namespace(&client, "ha").await?;
    let mut replicas = Vec::new();
    for id in ["replica-a", "replica-b"] {
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let args = vec![
            "--leader-elect".to_string(),
            format!("--leader-election-namespace={ns}"),
            // Only this test's clusters: the other test's operators share the API server and
            // would otherwise serve them too (and write what this test expects of its own).
            format!("--namespace={ns}"),
            format!("--metrics-bind-address={metrics}"),
            "--metrics-insecure".to_string(),
            format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
        ];
        let proc =
            Process::start_with_env(env, "kaas-operator-docker", &args, &[("POD_NAME", id)], id)?;
        replicas.push((id, metrics, proc));
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = wait_for("a Lease holder", Duration::from_secs(30), || async {
        Ok(leases
            .get_opt(LEASE)
            .await?
            .and_then(|l| l.spec?.holder_identity))
    })
    .await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(&PostParams::default(), &cluster("first")?)
        .await?;
    let before = wait_for("first's objects", Duration::from_secs(60), || async {
        let v = versions(&client, &ns, "first").await?;
        Ok((v.len() >= 7).then_some(v))
    })
    .await?;
    // Once the holder has written first's status, compare write counters.
    wait_for("first's status", Duration::from_secs(30), || async {
        let c = clusters.get("first").await?;
        Ok(c.status
            .is_some_and(|s| s.observed_generation == c.metadata.generation)
            .then_some(()))
    })
    .await?;
    let (leader_idx, standby_idx) = if replicas[0].0 == holder {
        (0, 1)
    } else {
        (1, 0)
    };
    assert!(
        writes(&replicas[leader_idx].1).await? > 0,
        "the holder wrote"
    );
    assert_eq!(
        writes(&replicas[standby_idx].1).await?,
        0,
        "the standby wrote nothing"
    );

    // Kill the holder as a crash would; the standby takes over.
    let killed = Instant::now();
    replicas[leader_idx].2.kill();
    clusters
        .create(&PostParams::default(), &cluster("second")?)
        .await?;
    wait_for(
        "second's objects from the new leader",
        Duration::from_secs(20),
        || async { Ok((versions(&client, &ns, "second").await?.len() >= 7).then_some(())) },
    )
    .await?;
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(20), "took {takeover:?}");
    let new_holder = leases
        .get(LEASE)
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(new_holder.as_deref(), Some(replicas[standby_idx].0));
    // What the first leader wrote was not written again.
    assert_eq!(versions(&client, &ns, "first").await?, before);
    println!("takeover after {:.1} s", takeover.as_secs_f64());
    Ok(())
}

/// A TCP forwarder in front of the API server that the test can cut: every connection through
/// it is dropped, and new ones are accepted and left hanging (a network partition, the worst
/// case: requests neither succeed nor fail).
struct Partition {
    addr: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Partition {
    async fn start(upstream: String) -> Result<Partition> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, conns) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            let mut parked = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(std::sync::atomic::Ordering::SeqCst) {
                    parked.push(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task);
            }
        });
        Ok(Partition {
            addr,
            cut,
            connections,
        })
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_before_a_standby_leads() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = setup(env).await?;
    let ns = env.namespace(&client, "fence").await?;
    // Replica a reaches the API server through a connection the test can cut.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.kubeconfig_path())?)?;
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let upstream = server.trim_start_matches("https://").to_string();
    let partition = Partition::start(upstream.clone()).await?;
    let mut through = config.clone();
    through["clusters"][0]["cluster"]["server"] = format!("https://{}", partition.addr).into();
    let through_path = env.dir().join("kubeconfig-through-partition");
    std::fs::write(&through_path, through.to_string())?;

    let args = |metrics: &str| -> Result<Vec<String>> {
        Ok(vec![
            "--leader-elect".to_string(),
            format!("--leader-election-namespace={ns}"),
            // Only this test's clusters: the other test's operators share the API server and
            // would otherwise serve them too (and write what this test expects of its own).
            format!("--namespace={ns}"),
            format!("--metrics-bind-address={metrics}"),
            "--metrics-insecure".to_string(),
            format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
        ])
    };
    let metrics_a = format!("127.0.0.1:{}", free_port()?);
    let mut a = Process::start_with_env(
        env,
        "kaas-operator-docker",
        &args(&metrics_a)?,
        &[
            ("POD_NAME", "fenced-a"),
            ("KUBECONFIG", through_path.to_str().unwrap_or_default()),
        ],
        "fenced-a",
    )?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = |leases: Api<Lease>| async move {
        Ok::<_, anyhow::Error>(
            leases
                .get_opt(LEASE)
                .await?
                .and_then(|l| l.spec?.holder_identity),
        )
    };
    wait_for("replica a leads", Duration::from_secs(30), || async {
        Ok(holder(leases.clone())
            .await?
            .filter(|h| h == "fenced-a")
            .map(|_| ()))
    })
    .await?;
    let metrics_b = format!("127.0.0.1:{}", free_port()?);
    let _b = Process::start_with_env(
        env,
        "kaas-operator-docker",
        &args(&metrics_b)?,
        &[("POD_NAME", "fenced-b")],
        "fenced-b",
    )?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(&PostParams::default(), &cluster("before-cut")?)
        .await?;
    wait_for("a writes", Duration::from_secs(60), || async {
        Ok((versions(&client, &ns, "before-cut").await?.len() >= 7).then_some(()))
    })
    .await?;

    // Cut a off. It must stop before b may take the Lease over.
    partition.cut();
    let cut_at = Instant::now();
    let mut a_stopped = None;
    let mut b_leads = None;
    while cut_at.elapsed() < Duration::from_secs(40) && (a_stopped.is_none() || b_leads.is_none()) {
        if a_stopped.is_none() && !a.is_running() {
            a_stopped = Some(cut_at.elapsed());
        }
        if b_leads.is_none() && holder(leases.clone()).await?.as_deref() == Some("fenced-b") {
            b_leads = Some(cut_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_stopped =
        a_stopped.ok_or_else(|| anyhow::anyhow!("a never stopped: {}", a.log_tail()))?;
    let b_leads = b_leads.ok_or_else(|| anyhow::anyhow!("b never led"))?;
    println!("cut: a stopped after {a_stopped:?}, b leads after {b_leads:?}");
    let log = std::fs::read_to_string(&a.log)?;
    assert!(
        a_stopped < b_leads,
        "a stopped at {a_stopped:?}, after b led at {b_leads:?}"
    );
    assert!(
        log.contains("exiting before a standby may take the Lease over"),
        "{log}"
    );
    // The new leader serves.
    clusters
        .create(&PostParams::default(), &cluster("after-cut")?)
        .await?;
    wait_for("b writes", Duration::from_secs(30), || async {
        Ok((versions(&client, &ns, "after-cut").await?.len() >= 7).then_some(()))
    })
    .await?;
    Ok(())
}
