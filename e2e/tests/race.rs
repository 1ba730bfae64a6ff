//! A class and its cluster applied together, against an operator that is just starting, are
//! always served. The reconcile reads classes from a cache; when the class trigger came from a
//! second watch, a cluster reconciled before its class reached the cache waited for a change
//! that had already been delivered, and was never served (no status, no objects).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use api::v1beta1::{KaasCluster, ProviderClass};
use kaas_e2e::{Process, wait_for};
use kaas_testenv::TestEnv;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const ROUNDS: u64 = 20;

#[tokio::test]
async fn a_class_and_its_cluster_applied_together_are_always_served() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    let ns = env.namespace(&client, "race").await?;
    let classes = Api::<ProviderClass>::all(client.clone());
    let clusters = Api::<KaasCluster>::namespaced(client.clone(), &ns);
    let apply = PatchParams::apply("e2e-race").force();
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let operator = Process::start(
            env,
            "kaas-operator-docker",
            &kaas_e2e::operator_args(&[])?,
            &format!("race-operator-{round}"),
        )?;
        // Each round lands at another moment of the operator's start-up: before its caches
        // listed, while they list, after its controller runs.
        tokio::time::sleep(Duration::from_millis(round * 90)).await;
        let class_name = format!("race-{round}");
        let cluster_name = format!("together-{round}");
        let class: ProviderClass = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
            "metadata": {"name": class_name},
            "spec": {"controller": "kaas.scs.community/docker"}}))?;
        let cluster: KaasCluster = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": cluster_name},
            "spec": {"providerClassName": class_name,
                     "clusterStack": {"name": "e2e", "version": "1.0.0"},
                     "controlPlane": {"replicas": 1}}}))?;
        let applied = Instant::now();
        let (class_patch, cluster_patch) = (Patch::Apply(&class), Patch::Apply(&cluster));
        let (a, b) = tokio::join!(
            classes.patch(&class_name, &apply, &class_patch),
            clusters.patch(&cluster_name, &apply, &cluster_patch),
        );
        a?;
        b?;
        let served = wait_for(
            &format!("cluster {cluster_name} served"),
            Duration::from_secs(30),
            || async {
                Ok(clusters
                    .get(&cluster_name)
                    .await?
                    .status
                    .filter(|s| s.kubernetes_version.is_some()))
            },
        )
        .await;
        if let Err(e) = served {
            bail!(
                "round {round}: {e:#}\noperator log:\n{}",
                operator.log_tail()
            );
        }
        slowest = slowest.max(applied.elapsed());
        drop(operator);
    }
    eprintln!("{ROUNDS} rounds served; slowest {slowest:?}");
    Ok(())
}
