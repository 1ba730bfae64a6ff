//! Live compliance: a cluster of the shipped Docker stack (the scs base plus the Docker
//! overlay) is checked against its effective stack in a real workload API server. Deleting a
//! base add-on's Deployment there turns `Compliant` false, naming it; the operator puts it
//! back and `Compliant` turns true again. Every status write is watched, so a short-lived
//! false is not missed.

use std::time::Duration;

use anyhow::{Result, bail};
use api::v1beta1::KaasCluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

fn compliant(c: &KaasCluster) -> Option<(String, String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Compliant")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn compliance_turns_false_when_a_base_addon_is_deleted_and_true_when_put_back() -> Result<()>
{
    let env = TestEnv::shared().await?;
    let workload_env = TestEnv::start().await?;
    let client = env.client().await?;
    let workload = workload_env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.34.1"]).await?;
    let cache = tempfile::tempdir()?;
    let _operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &["--install-shipped-stacks".into(), "--addon-resync=2".into()],
        "compliance-operator",
    )?;
    let _stand_in = kaas_e2e::stand_in::StandIn {
        management: client.clone(),
        workload_kubeconfig: std::fs::read_to_string(workload_env.kubeconfig_path())?,
        kubelets: Some(workload.clone()),
        per_cluster: Default::default(),
    }
    .spawn();

    let ns = env.namespace(&client, "compliance").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    wait_for(
        "the shipped docker stack installed and ready",
        WAIT,
        || async {
            let stack = Api::<api::v1beta1::ClusterStack>::all(client.clone())
                .get_opt("docker-scs-1-0-0")
                .await?;
            Ok(stack.filter(|s| s.is_ready()).map(|_| ()))
        },
    )
    .await?;
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "steady"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "scs", "version": "1.0.0"},
                 "kubernetesVersion": "1.34", "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 1, "machineType": "x"}]}}))?;
    clusters.create(&PostParams::default(), &cluster).await?;

    let (_, reason, message) = wait_for("Compliant=True", WAIT, || async {
        Ok(clusters
            .get_opt("steady")
            .await?
            .as_ref()
            .and_then(compliant)
            .filter(|c| c.0 == "True"))
    })
    .await?;
    assert_eq!(reason, "Compliant");
    assert_eq!(
        message,
        "every component of base base/scs 1.0.0 is present and healthy, with the standard StorageClasses"
    );

    // Watch every status write from here on.
    let mut events = watcher(
        clusters.clone(),
        watcher::Config::default().fields("metadata.name=steady"),
    )
    .applied_objects()
    .boxed();
    let deployments = Api::<Deployment>::namespaced(workload.clone(), "kube-system");
    deployments
        .delete("metrics-server", &DeleteParams::default())
        .await?;

    let mut saw_false = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(event)) = next else {
            bail!("no Compliant=False then True within {WAIT:?}; saw false: {saw_false:?}");
        };
        let Some((status, reason, message)) = compliant(&event?) else {
            continue;
        };
        match (status.as_str(), &saw_false) {
            ("False", None) => saw_false = Some((reason, message)),
            ("True", Some(_)) => break,
            _ => {}
        }
    }
    let (reason, message) = saw_false.expect("seen");
    assert_eq!(reason, "ComponentMissing");
    assert_eq!(
        message,
        "Deployment kube-system/metrics-server of add-on metrics-server was missing from the workload cluster; put back"
    );
    assert!(
        deployments.get_opt("metrics-server").await?.is_some(),
        "the operator put it back"
    );
    Ok(())
}
