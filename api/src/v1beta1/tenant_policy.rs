//! `TenantPolicy` v1beta1: what the tenants of some namespaces may use and how much. A provider
//! writes it (it is cluster-scoped; tenants may only read it); kaas-webhooks refuses a
//! `KaasCluster` change that would use something not allowed or pass a limit, reserving the
//! usage in the policy's status so that concurrent requests never pass a limit together. The
//! rules are [`crate::tenancy`]'s; docs/tenancy.md has the model.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the tenants of the selected namespaces may use and how much.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kaas.scs.community",
    version = "v1beta1",
    kind = "TenantPolicy",
    plural = "tenantpolicies",
    status = "TenantPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ktp",
    category = "kaas",
    doc = "What the tenants of some namespaces may use (classes, stacks, versions, machine types) and how much (clusters, nodes, vCPUs, memory, GPUs).",
    printcolumn(
        name = "Clusters",
        type_ = "integer",
        json_path = ".status.used.clusters"
    ),
    printcolumn(
        name = "Max-Clusters",
        type_ = "integer",
        json_path = ".spec.limits.clusters"
    ),
    printcolumn(name = "vCPUs", type_ = "integer", json_path = ".status.used.cpu"),
    printcolumn(name = "Max-vCPUs", type_ = "integer", json_path = ".spec.limits.cpu"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".status.used.memory"),
    printcolumn(
        name = "Max-Memory",
        type_ = "string",
        json_path = ".spec.limits.memory"
    ),
    printcolumn(
        name = "Within-Limits",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"WithinLimits\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicySpec {
    /// The namespaces this policy governs, by their labels. A namespace several policies
    /// select is governed by each of them (every one's rules hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Governs every namespace no other policy selects. Without a default policy such a
    /// namespace is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// What clusters in the governed namespaces may use; anything when left out.
    #[serde(default)]
    pub allowed: Allowed,
    /// How much the governed namespaces may use together; unlimited when left out.
    #[serde(default)]
    pub limits: Limits,
    /// How long clusters of the governed namespaces live (trial tenants): each is warned
    /// (an Event, and an entry in `status.expiring`) ahead of its end, then deleted. Off when
    /// left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
}

/// A cluster lifetime.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifetime {
    /// Seconds a cluster lives from its creation (10 to 31,536,000, a year).
    #[schemars(range(min = 10, max = 31_536_000))]
    pub seconds: i64,
    /// Seconds before its end a cluster is warned (0 to 2,592,000, 30 days; 86,400 when left
    /// out). A cluster is never deleted sooner than this after its warning, even one older
    /// than the lifetime when the policy came to govern it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2_592_000))]
    pub warn_seconds: Option<i64>,
}

/// What clusters may use. An empty list allows anything of its kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allowed {
    /// `ProviderClass` names a cluster may use (`spec.providerClassName`, or the default class).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub provider_classes: Vec<String>,
    /// Cluster stack names a cluster may use (`spec.clusterStack.name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub cluster_stacks: Vec<String>,
    /// Kubernetes minor versions a cluster may ask for (`1.34`), compared with
    /// `spec.kubernetesVersion`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(regex(pattern = r"^[0-9]+\.[0-9]+$")))]
    pub kubernetes_minors: Vec<String>,
    /// Machine types per class: for a class listed here, the machine types its clusters' control
    /// plane and pools may name; a class not listed allows any of its catalogue.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 64))]
    pub machine_types: BTreeMap<String, Vec<String>>,
    /// Regions and availability zones a cluster may name in its `spec.providerConfig`
    /// (the fields listed in [`crate::tenancy::FAILURE_DOMAIN_FIELDS`]: Hetzner's `region` and
    /// `controlPlaneRegions`, OpenStack's `controlPlaneAvailabilityZones`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub failure_domains: Vec<String>,
    /// Whether `spec.registryMirrors` may be set (true when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_mirrors: Option<bool>,
    /// Whether `spec.authentication` may be set (true when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<bool>,
    /// Whether `spec.maintenance.autoUpgrade` may be set (true when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_upgrades: Option<bool>,
}

/// How much the governed namespaces may use together. A limit left out is no limit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub clusters: Option<i64>,
    /// Control plane nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub control_plane_nodes: Option<i64>,
    /// Worker nodes (an autoscaled pool counts at its `maxReplicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub worker_nodes: Option<i64>,
    /// vCPUs of all nodes, by the machine types of the class's catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cpu: Option<i64>,
    /// Memory of all nodes, a quantity such as `512Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = crate::schema::QUANTITY))]
    pub memory: Option<String>,
    /// GPUs of all nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub gpus: Option<i64>,
    /// Worker pools of one cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub node_pools_per_cluster: Option<i64>,
    /// `StackRollout`s one namespace may hold (kaas-webhooks' own bound applies too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub stack_rollouts_per_namespace: Option<i64>,
}

/// What the governed namespaces use, and the reservations of admitted changes not seen yet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicyStatus {
    /// What the governed namespaces use together, reservations included.
    #[serde(default)]
    pub used: ResourceUsage,
    /// What each governed namespace with a cluster uses (reservations not included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceUsage>,
    /// Changes admitted against this policy that the usage does not show yet; each is
    /// dropped when the change shows or, refused later in the API server's chain, when it
    /// expires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Reservation>,
    /// Capacity each kaas-webhooks replica has set aside to admit growth from without a
    /// write per request; counted against the limits with `used`, returned when the replica
    /// is idle, dropped when it expires (the replica stopped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// Clusters warned that their lifetime ends, with when they are deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiring: Vec<Expiring>,
    /// `WithinLimits`: false when what is used passes a limit (the policy was lowered below
    /// it): nothing that exists is changed, growth is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Amounts of each limited resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    /// Clusters.
    #[serde(default)]
    pub clusters: i64,
    /// Control plane nodes.
    #[serde(default)]
    pub control_plane_nodes: i64,
    /// Worker nodes.
    #[serde(default)]
    pub worker_nodes: i64,
    /// vCPUs.
    #[serde(default)]
    pub cpu: i64,
    /// Memory, a quantity such as `46Gi`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory: String,
    /// GPUs.
    #[serde(default)]
    pub gpus: i64,
}

/// What one namespace uses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceUsage {
    /// The namespace.
    pub namespace: String,
    /// What its clusters use.
    pub used: ResourceUsage,
}

/// An admitted change the usage does not show yet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// What the change adds (negative parts are decreases).
    pub delta: ResourceUsage,
    /// What the cluster uses once the change shows.
    pub target: ResourceUsage,
    /// The cluster's `metadata.generation` once the change shows (a create gives 1, an update
    /// of the spec one more than before).
    pub generation: i64,
    /// When the reservation is dropped if the change never showed.
    pub expires: Time,
}

/// Capacity one kaas-webhooks replica holds for the admissions it answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// The replica (its Pod's name and when its process started).
    pub holder: String,
    /// What it holds, of the resources the policy limits.
    pub held: ResourceUsage,
    /// When the hold is dropped unless the replica renews it.
    pub expires: Time,
}

/// A cluster warned that its lifetime ends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expiring {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// The cluster's uid (a cluster created again under the name is another cluster).
    pub uid: String,
    /// When it was warned.
    pub warned: Time,
    /// When it is deleted.
    pub delete_at: Time,
}
