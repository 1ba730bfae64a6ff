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
