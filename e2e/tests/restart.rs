//! A restarted operator over clusters it already converged writes nothing: every object it
//! applied carries the hash of its content, and a starting operator remembers those objects
//! as applied. Before, a restart re-sent every object of every cluster (seven per cluster
//! here; 70,000 requests at 10,000 clusters). A content hash a tenant wrote (not a hash, or
//! 64 KiB of text) is never taken as applied: that object is applied again.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

const CLUSTERS: usize = 5;

/// The sum of the `kaas_reconcile_total` series with `result="success"`.
async fn reconciled(metrics: &str) -> Result<u64> {
    let body = kaas_testenv::http::get(metrics, "/metrics").await?.body;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("kaas_reconcile_total{") && l.contains("result=\"success\""))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum())
}

/// Objects of the cluster kinds in `ns` that carry the operator's content hash.
async fn hashed_objects(client: &kube::Client, ns: &str) -> Result<usize> {
    let mut n = 0;
    for (v, k) in kaas_e2e::capi_kinds() {
        let ar = operator_core::apply::resource(v, k);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        n +=
            api.list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|o| {
                    o.metadata.annotations.as_ref().is_some_and(|a| {
                        a.contains_key(operator_core::apply::CONTENT_HASH_ANNOTATION)
                    })
                })
                .count();
    }
    Ok(n)
}

/// `text` without terminal colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn a_restart_over_converged_clusters_writes_nothing() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    let ns = env.namespace(&client, "restart").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cache = tempfile::tempdir()?;
    let metrics = format!("127.0.0.1:{}", kaas_e2e::free_port()?);
    let start = |metrics: &str, log: &str| -> Result<kaas_e2e::Process> {
        let args = vec![
            format!("--metrics-bind-address={metrics}"),
            "--metrics-insecure".to_string(),
            format!(
                "--health-probe-bind-address=127.0.0.1:{}",
                kaas_e2e::free_port()?
            ),
            format!("--stack-cache-dir={}", cache.path().display()),
        ];
        kaas_e2e::Process::start(env, "kaas-operator-docker", &args, log)
    };
    let first = start(&metrics, "restart-first")?;
    for i in 0..CLUSTERS {
        let cluster: KaasCluster = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": format!("c{i}")},
            "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e", "version": "1.0.0"},
                     "controlPlane": {"replicas": 1},
                     "workers": [{"name": "md-0", "replicas": 1, "machineType": "none"}]}}))?;
        clusters.create(&PostParams::default(), &cluster).await?;
    }
    // Converged: every cluster's seven objects written and its status observed.
    wait_for(
        "every cluster converged",
        Duration::from_secs(60),
        || async {
            let served = clusters
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .is_some_and(|s| s.observed_generation == c.metadata.generation)
                })
                .count();
            let objects = hashed_objects(&client, &ns).await?;
            Ok((served == CLUSTERS && objects == 7 * CLUSTERS).then_some(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", first.log_tail()))?;
    drop(first);

    let metrics = format!("127.0.0.1:{}", kaas_e2e::free_port()?);
    let second = start(&metrics, "restart-second")?;
    // Every cluster reconciled by the new process, then a moment for any write to land.
    wait_for(
        "every cluster reconciled again",
        Duration::from_secs(60),
        || async { Ok((reconciled(&metrics).await? >= CLUSTERS as u64).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", second.log_tail()))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = kaas_e2e::counter(&metrics, "kaas_operator_writes_total").await?;
    assert_eq!(
        writes,
        0,
        "writes after the restart:\n{}",
        second.log_tail()
    );
    let log = without_colours(&std::fs::read_to_string(&second.log)?);
    // It found each object the first process applied.
    assert!(
        log.contains(&format!(
            "objects applied before are remembered objects={}",
            7 * CLUSTERS
        )),
        "{log}"
    );
    drop(second);

    // A tenant edits two MachineDeployments while no operator runs and writes what it likes
    // into their content-hash annotation: not a hash, and 64 KiB of text. Neither is taken
    // as applied: the next operator applies both again (the edit undone), the others not.
    let mds = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &operator_core::apply::resource("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
    );
    for (md, value) in [
        ("c0-md-0", "not-a-hash".to_string()),
        ("c1-md-0", "f".repeat(64 * 1024)),
    ] {
        mds.patch(
            md,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({
                "metadata": {"annotations": {operator_core::apply::CONTENT_HASH_ANNOTATION: value}},
                "spec": {"replicas": 9}})),
        )
        .await?;
    }
    let metrics = format!("127.0.0.1:{}", kaas_e2e::free_port()?);
    let mut third = start(&metrics, "restart-third")?;
    wait_for("both edits undone", Duration::from_secs(60), || async {
        let mut undone = 0;
        for md in ["c0-md-0", "c1-md-0"] {
            if mds.get(md).await?.data["spec"]["replicas"] == 1 {
                undone += 1;
            }
        }
        Ok((undone == 2).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", third.log_tail()))?;
    wait_for(
        "every cluster reconciled again",
        Duration::from_secs(60),
        || async { Ok((reconciled(&metrics).await? >= CLUSTERS as u64).then_some(())) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = kaas_e2e::counter(&metrics, "kaas_operator_writes_total").await?;
    assert_eq!(
        writes,
        2,
        "only the two edited objects are written:\n{}",
        third.log_tail()
    );
    assert!(third.is_running(), "{}", third.log_tail());
    Ok(())
}
