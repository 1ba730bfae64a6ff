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
    for (v, k) in kaas_testenv::capi::KINDS {
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
            format!("--metrics-bind-address={metrics}"),
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
    // Let the holder settle its status writes, then compare write counters.
    tokio::time::sleep(Duration::from_secs(2)).await;
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
