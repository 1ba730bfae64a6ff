//! Test support for operator-core's own tests: a stand-in provider's infrastructure and the
//! objects a cluster is built from, without any real provider crate.

#![allow(dead_code)]

use std::collections::BTreeMap;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use operator_core::{ClusterContext, Infrastructure, InfrastructureKinds};
use serde_json::json;

/// The stand-in provider's kinds.
pub const KINDS: InfrastructureKinds = InfrastructureKinds {
    api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
    cluster: "FakeCluster",
    machine_template: "FakeMachineTemplate",
};

/// A `KaasCluster` from its spec (YAML), named `c1` in `team-a`, with a uid.
pub fn cluster(spec: &str) -> KaasCluster {
    let spec: serde_json::Value = serde_saphyr::from_str(spec).expect("spec YAML");
    serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "c1", "namespace": "team-a", "uid": "u-1", "generation": 4},
        "spec": spec,
    }))
    .expect("a KaasCluster")
}

/// The class `fake` of the stand-in provider.
pub fn class() -> ProviderClass {
    serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "fake"}, "spec": {"controller": "kaas.scs.community/fake"}}))
    .expect("a ProviderClass")
}

/// The stack `fake-scs-1-0-0`.
pub fn stack() -> ClusterStack {
    serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "fake-scs-1-0-0"},
        "spec": {"provider": "fake", "name": "scs", "version": "1.0.0",
                 "kubernetesVersions": ["1.33.4", "1.34.1"]}}))
    .expect("a ClusterStack")
}

/// The stand-in provider's infrastructure: one machine spec for every pool, and the
/// kubelet flags given.
pub fn infrastructure(cluster: &KaasCluster, kubelet_args: &[(&str, &str)]) -> Infrastructure {
    Infrastructure {
        extra: Vec::new(),
        cluster_spec: json!({"region": "here"}),
        control_plane_machine: json!({"flavor": "cp"}),
        worker_machines: cluster
            .spec
            .workers
            .iter()
            .map(|w| (w.name.clone(), json!({"flavor": w.machine_type})))
            .collect(),
        kubelet_args: kubelet_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The context a provider sees for `cluster` at Kubernetes `version`.
pub fn context<'a>(
    cluster: &'a KaasCluster,
    stack: &'a ClusterStack,
    class: &'a ProviderClass,
    version: &'a str,
) -> ClusterContext<'a> {
    ClusterContext {
        cluster,
        name: "c1",
        namespace: "team-a",
        kubernetes_version: version,
        stack,
        class,
        credentials: None,
    }
}

/// A stand-in provider for the core's own tests: no cloud, one setting (`region`).
#[derive(Debug, Default, Clone, Copy)]
pub struct FakeProvider;

impl operator_core::Provider for FakeProvider {
    const KINDS: InfrastructureKinds = KINDS;

    fn name(&self) -> &'static str {
        "fake"
    }

    fn validate_config(&self, config: Option<&serde_json::Value>) -> Vec<api::FieldError> {
        operator_core::settings::validate(
            config,
            &[("region", operator_core::settings::Setting::Text)],
        )
    }

    fn node_images(
        &self,
        ctx: &ClusterContext<'_>,
    ) -> Result<operator_core::NodeImages, operator_core::ProviderError> {
        Ok(operator_core::NodeImages {
            reference: format!("fake-image-{}", ctx.kubernetes_version),
            shared_objects: Vec::new(),
        })
    }

    fn render(
        &self,
        ctx: &ClusterContext<'_>,
        images: &operator_core::NodeImages,
    ) -> Result<Infrastructure, operator_core::ProviderError> {
        let mut infra = infrastructure(ctx.cluster, &[]);
        infra.control_plane_machine = json!({"image": images.reference});
        for machine in infra.worker_machines.values_mut() {
            machine["image"] = images.reference.clone().into();
        }
        Ok(infra)
    }
}

/// A ready release `version` of stack `scs` for the fake provider.
pub fn release(version: &str, kubernetes: &[&str], upgrade_from: &[&str]) -> ClusterStack {
    serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": format!("fake-scs-{}", version.replace('.', "-"))},
        "spec": {"provider": "fake", "name": "scs", "version": version,
                 "kubernetesVersions": kubernetes, "upgradeFrom": upgrade_from},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Verified",
                   "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
    .expect("a ClusterStack")
}

/// The catalog of the fake class and `stacks`.
pub fn catalog(stacks: Vec<ClusterStack>) -> api::Catalog {
    api::Catalog {
        classes: vec![std::sync::Arc::new(class())],
        stacks: stacks.into_iter().map(std::sync::Arc::new).collect(),
        clusters: Vec::new(),
        ..Default::default()
    }
}

/// An upgrade from Kubernetes 1.33.4 and stack 1.0.0 to `steps` on stack 1.1.0, at `stage` of
/// its first step.
pub fn upgrade(steps: &[&str], stage: &str) -> api::v1beta1::UpgradeStatus {
    api::v1beta1::UpgradeStatus {
        from_kubernetes_version: "1.33.4".into(),
        from_stack_version: "1.0.0".into(),
        to_stack_version: "1.1.0".into(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        step: 0,
        stage: stage.into(),
        attempts: 0,
        message: None,
    }
}
