//! `KaasCluster` v1alpha1: one flat spec, one pool shape, one CIDR per network. The status has
//! the same shape as in `v1beta1`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::v1beta1::KaasClusterStatus;

/// A Kubernetes cluster as a service (older API version; prefer `v1beta1`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kaas.scs.community",
    version = "v1alpha1",
    kind = "KaasCluster",
    plural = "kaasclusters",
    namespaced,
    status = "KaasClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "kc",
    category = "kaas",
    doc = "A Kubernetes cluster as a service (older API version; prefer v1beta1).",
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.providerClass",
        description = "ProviderClass serving this cluster"
    ),
    printcolumn(
        name = "Stack",
        type_ = "string",
        json_path = ".status.clusterStackVersion",
        description = "Cluster stack version in use"
    ),
    printcolumn(
        name = "Kubernetes",
        type_ = "string",
        json_path = ".status.kubernetesVersion",
        description = "Kubernetes version running"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the cluster is ready"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KaasClusterSpec {
    /// Name of the ProviderClass whose operator serves this cluster (v1beta1:
    /// `providerClassName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_class: Option<String>,
    /// Name of the cluster stack (v1beta1: `clusterStack.name`).
    pub cluster_stack_name: String,
    /// Version of the cluster stack (v1beta1: `clusterStack.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_stack_version: Option<String>,
    /// Kubernetes version, `"1.31"` or `"1.31.4"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Number of control plane nodes: 1, 3 or 5 (v1beta1: `controlPlane.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_replicas: Option<i32>,
    /// Machine type of the control plane nodes (v1beta1: `controlPlane.machineType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_machine_type: Option<String>,
    /// Worker pools (v1beta1: `workers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_deployments: Vec<MachineDeployment>,
    /// Pod network in CIDR form (v1beta1: `network.podCIDRs`).
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// Service network in CIDR form (v1beta1: `network.serviceCIDRs`).
    #[serde(
        default,
        rename = "serviceCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cidr: Option<String>,
    /// OpenID Connect settings of the cluster's API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
}

/// A pool of identical worker nodes (v1beta1: an entry of `workers`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeployment {
    /// Pool name, a DNS label unique within the cluster.
    pub name: String,
    /// Number of nodes.
    pub replicas: i32,
    /// Provider machine type.
    pub machine_type: String,
}

/// OpenID Connect settings (v1beta1 adds the user and group prefixes).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Oidc {
    /// Issuer URL; must be `https://`.
    #[serde(rename = "issuerURL")]
    pub issuer_url: String,
    /// Client ID that tokens must be issued for.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// JWT claim used as the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    /// JWT claim holding the user's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
}
