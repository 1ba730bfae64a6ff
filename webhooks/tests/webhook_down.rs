//! The registrations' match conditions, evaluated by a real kube-apiserver with kaas-webhooks
//! down (registered at a loopback address nothing listens on, `failurePolicy: Fail`): an update
//! that changes the spec, and any create, is refused because the webhook cannot be called; an
//! update that leaves the spec as it was (a finalizer taken off, a label) is not sent to the
//! webhook and goes through, so an operator can finish deleting a cluster while kaas-webhooks
//! is unavailable.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use api::v1beta1::KaasCluster;
use kaas_testenv::TestEnv;
use kaas_testenv::certs::TestCa;
use kaas_webhooks::registration::{self, Target};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn is_webhook_failure(e: &kube::Error) -> bool {
    e.to_string().contains("failed calling webhook")
}

#[tokio::test]
async fn with_the_webhook_down_only_spec_changes_and_creates_are_refused() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    kaas_testenv::install_crds(&client, &crds).await?;
    let ns = env.namespace(&client, "down").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster = |name: &str| -> Result<KaasCluster> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": name, "finalizers": ["kaas.scs.community/docker"]},
            "spec": {"providerClassName": "docker", "clusterStack": {"name": "scs", "version": "1.0.0"},
                     "kubernetesVersion": "1.35", "controlPlane": {"replicas": 1},
                     "network": {"podCIDRs": ["192.168.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"]},
                     "workers": [{"name": "md-0", "replicas": 1, "machineType": "m"}]}
        }))?)
    };
    // Created before the webhooks are registered.
    clusters
        .create(&PostParams::default(), &cluster("kept")?)
        .await?;
    clusters
        .create(&PostParams::default(), &cluster("gone")?)
        .await?;

    // kaas-webhooks "down": registered where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let target = Target::Url(format!("https://{dead}"));
    let ca = TestCa::new()?.pem().into_bytes();
    registration::apply(&client, &target, Some(&ca), "webhook-down-test").await?;

    // A spec change is refused: the API server cannot call the webhook. (Its informer sees the
    // new registrations a moment after they were written.)
    let scale = |n: i32| {
        Patch::Merge(
            json!({"spec": {"workers": [{"name": "md-0", "replicas": n, "machineType": "m"}]}}),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 2;
    loop {
        match clusters
            .patch("kept", &PatchParams::default(), &scale(n))
            .await
        {
            Err(e) if is_webhook_failure(&e) => break,
            Err(e) => bail!("a spec change failed otherwise: {e}"),
            Ok(_) if Instant::now() > deadline => {
                bail!("a spec change still went through 30 s after the webhooks were registered")
            }
            Ok(_) => n += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replicas = |c: &KaasCluster| c.spec.workers[0].replicas;
    let before = replicas(&clusters.get("kept").await?);
    // It stays refused, and so does a create.
    let err = clusters
        .patch("kept", &PatchParams::default(), &scale(before + 10))
        .await
        .expect_err("a spec change with the webhook down");
    assert!(is_webhook_failure(&err), "{err}");
    assert_eq!(replicas(&clusters.get("kept").await?), before);
    let err = clusters
        .create(&PostParams::default(), &cluster("new")?)
        .await
        .expect_err("a create with the webhook down");
    assert!(is_webhook_failure(&err), "{err}");

    // A label and a finalizer leave the spec as it was: not sent to the webhook.
    clusters
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await?;
    // Deleting a cluster is never sent; its operator takes the finalizer off and it is gone.
    clusters.delete("gone", &DeleteParams::default()).await?;
    clusters
        .patch(
            "gone",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while clusters.get_opt("gone").await?.is_some() {
        if Instant::now() > deadline {
            bail!("the cluster whose finalizer came off is still there");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        clusters
            .get("kept")
            .await?
            .metadata
            .labels
            .unwrap_or_default()
            .get("team"),
        Some(&"a".to_string())
    );
    Ok(())
}
