//! One malformed `KaasCluster` (stored before a schema change) does not wedge the operator:
//! the other clusters are served and the bad one gets a Warning event saying why.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn a_malformed_cluster_does_not_block_the_others() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let mut crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    for crd in &mut crds {
        crd.spec.conversion = None;
    }
    // First a looser schema, as an older release might have had, to store a bad object.
    let mut loose = crds.clone();
    for crd in &mut loose {
        if crd.spec.names.kind == "KaasCluster" {
            for version in &mut crd.spec.versions {
                let schema = version
                    .schema
                    .as_mut()
                    .and_then(|s| s.open_api_v3_schema.as_mut());
                if let Some(props) = schema.and_then(|s| s.properties.as_mut()) {
                    props.insert(
                        "spec".into(),
                        JSONSchemaProps {
                            type_: Some("object".into()),
                            x_kubernetes_preserve_unknown_fields: Some(true),
                            ..Default::default()
                        },
                    );
                }
            }
        }
    }
    loose.extend(kaas_e2e::stand_in_crds());
    kaas_testenv::install_crds(&client, &loose).await?;
    let ns = env.namespace(&client, "guard").await?;
    let dynamic: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<KaasCluster>(&()));
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "from-the-past"},
        "spec": {"clusterStack": "scs", "workers": 5}
    }))?;
    dynamic.create(&PostParams::default(), &bad).await?;
    // Then the real schema.
    kaas_testenv::install_crds(&client, &crds).await?;

    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;

    let args = vec![
        format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
        "--metrics-insecure".to_string(),
        format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
    ];
    let operator = Process::start(env, "kaas-operator-docker", &args, "guard-operator")?;
    let good: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "today"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e", "version": "1.0.0"},
                 "controlPlane": {"replicas": 1}}}))?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    clusters.create(&PostParams::default(), &good).await?;
    let served = wait_for(
        "the good cluster served",
        Duration::from_secs(60),
        || async {
            Ok(clusters
                .get("today")
                .await?
                .status
                .filter(|s| s.kubernetes_version.is_some()))
        },
    )
    .await;
    if let Err(e) = served {
        anyhow::bail!("{e:#}\noperator log:\n{}", operator.log_tail());
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warning = wait_for(
        "a Warning event on the bad cluster",
        Duration::from_secs(30),
        || async {
            Ok(events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("InvalidObject")))
        },
    )
    .await?;
    assert_eq!(
        warning.involved_object.name.as_deref(),
        Some("from-the-past")
    );
    assert!(warning.message.unwrap_or_default().contains("cannot read"));
    Ok(())
}
