//! A stored object the webhook's types cannot read (written under an older, looser schema)
//! must not take admission down: kaas-webhooks, started against an API server holding a
//! corrupt `ClusterStack` and a good one, becomes ready and serves the good one (a minimal
//! cluster naming it is defaulted to its version through the real API server).

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use api::v1beta1::{ClusterStack, KaasCluster};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kaas_testenv::TestEnv;
use kaas_webhooks::registration::{self, Target};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn a_corrupt_stored_stack_leaves_the_webhook_ready_and_the_others_served() -> Result<()> {
    kaas_testenv::install_crypto_provider();
    let env = TestEnv::start().await?;
    let client = env.client().await?;
    let crds: Vec<CustomResourceDefinition> =
        api::crds::all()?.into_iter().map(|(_, c)| c).collect();

    // An older, looser ClusterStack schema lets a spec in that today's types cannot read.
    let mut loose = crds
        .iter()
        .find(|c| c.spec.names.kind == "ClusterStack")
        .context("ClusterStack CRD")?
        .clone();
    for version in &mut loose.spec.versions {
        version.schema = Some(serde_json::from_value(json!({"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": true}}))?);
    }
    kaas_testenv::install_crds(&client, &[loose]).await?;
    let stacks = Api::<DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<ClusterStack>(&()),
    );
    let corrupt: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "corrupt"},
        "spec": {"provider": 7, "name": ["scs"], "version": {"major": 1}}}))?;
    stacks.create(&PostParams::default(), &corrupt).await?;
    kaas_testenv::install_crds(&client, &crds).await?;
    let good: ClusterStack = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "openstack-good-2-0-0"},
        "spec": {"provider": "openstack", "name": "good", "version": "2.0.0",
                 "kubernetesVersions": ["1.32.1"]}}))?;
    let typed = Api::<ClusterStack>::all(client.clone());
    typed.create(&PostParams::default(), &good).await?;
    typed
        .patch_status(
            "openstack-good-2-0-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Verified", "message": "test",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
        )
        .await?;
    let class = json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "openstack",
                     "annotations": {"providerclass.kaas.scs.community/is-default-class": "true"}},
        "spec": {"controller": "kaas.scs.community/openstack"}});
    Api::<DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<api::v1beta1::ProviderClass>(&()),
    )
    .create(&PostParams::default(), &serde_json::from_value(class)?)
    .await?;

    // kaas-webhooks starts against that: ready, with the corrupt object named in its log.
    let server = support::start(&env, env.kubeconfig_path(), "kaas-webhooks", &[]).await?;
    let logged = server.log_text();
    assert!(
        logged.contains("does not deserialize") && logged.contains("corrupt"),
        "{logged}"
    );

    // The good stack is served: a cluster naming it is defaulted to its version.
    let target = Target::Url(format!("https://{}", server.addr));
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            registration::CONFIGURATION_NAME,
            &PatchParams::apply("corrupt-test").force(),
            &Patch::Apply(registration::mutating(
                &target,
                Some(server.ca.pem().as_bytes()),
            )),
        )
        .await?;
    let ns = env.namespace(&client, "corrupt").await?;
    let clusters = Api::<KaasCluster>::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "served"}, "spec": {"clusterStack": {"name": "good"}}}))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let stored = loop {
        match clusters.create(&PostParams::default(), &cluster).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(stored.spec.cluster_stack.version.as_deref(), Some("2.0.0"));
    Ok(())
}
