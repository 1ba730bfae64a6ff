//! `StackRollout` v1beta1: a stack release brought to many clusters wave by wave. Each wave
//! selects clusters of the rollout's namespace and class by labels, upgrades a few at a time,
//! and soaks before the next; every upgraded cluster must be Ready and Compliant on the
//! release before the rollout goes on, and the first that is not within its time halts it.
//! The operator of the rollout's class runs it (`operator_core::rollout`); kaas-webhooks
//! validates it ([`crate::validation::validate_stack_rollout_spec`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A stack release rolled out over the clusters of a namespace in ordered waves.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kaas.scs.community",
    version = "v1beta1",
    kind = "StackRollout",
    plural = "stackrollouts",
    namespaced,
    status = "StackRolloutStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ksr",
    category = "kaas",
    doc = "A cluster stack release rolled out over the namespace's clusters in ordered waves.",
    printcolumn(
        name = "Stack",
        type_ = "string",
        json_path = ".spec.clusterStack.name"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.clusterStack.version"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Wave", type_ = "integer", json_path = ".status.wave"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StackRolloutSpec {
    /// The class whose clusters are rolled (its operator runs the rollout); the default class
    /// when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = crate::schema::DNS_SUBDOMAIN))]
    pub provider_class_name: Option<String>,
    /// The release: clusters of this stack name move to this version.
    pub cluster_stack: RolloutTarget,
    /// The waves, in order; a cluster belongs to the first whose selector matches it, and one
    /// no wave selects is left alone. 1 to 16 waves.
    #[schemars(length(min = 1, max = crate::limits::MAX_WAVES))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(w, self.exists_one(o, o.name == w.name))",
        "message": "wave names must be unique",
    }]))]
    pub waves: Vec<Wave>,
    /// How long one cluster may take, from its start, to be Ready and Compliant on the
    /// release before the rollout halts on it (seconds, 10 to 86,400; 3,600 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86_400))]
    pub cluster_timeout_seconds: Option<i64>,
    /// How long an upgraded cluster must stay Ready and Compliant on the release before it
    /// counts as done (seconds, 0 to 3,600; 30 when left out), like a Deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub min_ready_seconds: Option<i64>,
    /// Start no further cluster (those upgrading go on) until set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// The stack release a rollout brings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTarget {
    /// The cluster stack's name, as clusters name it in `spec.clusterStack.name`.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub name: String,
    /// The release's version.
    #[schemars(length(max = 128), regex(pattern = crate::schema::SEMVER))]
    pub version: String,
}

/// One wave of a rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    /// A DNS label, unique in the rollout.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub name: String,
    /// The clusters of the wave, by their labels; an empty selector selects every cluster.
    #[serde(default)]
    pub selector: LabelSelector,
    /// How many of its clusters upgrade at once (1 to 100; 1 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = crate::limits::MAX_CONCURRENT))]
    pub max_concurrent: Option<i32>,
    /// How long to wait after the wave's last cluster is done before the next wave starts
    /// (seconds, 0 to 604,800; 0 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::limits::MAX_SOAK_SECONDS))]
    pub soak_seconds: Option<i64>,
}

/// Where a rollout stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackRolloutStatus {
    /// `Progressing`, `Soaking`, `Paused`, `Halted`, `Completed` or `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Index of the wave in progress (the number of waves once completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<i32>,
    /// When the next wave may start, while soaking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_until: Option<Time>,
    /// Each wave's progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveStatus>,
    /// Each selected cluster's progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<RolloutClusterStatus>,
    /// Why the rollout stopped, while halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<RolloutHalt>,
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One wave's progress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaveStatus {
    /// The wave's name.
    pub name: String,
    /// Clusters it selected.
    pub clusters: i32,
    /// Of them, those done (on the release, Ready and Compliant).
    pub done: i32,
    /// When its last cluster was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// One cluster's progress in a rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutClusterStatus {
    /// The cluster's name.
    pub name: String,
    /// Index of its wave.
    pub wave: i32,
    /// `Pending`, `Upgrading` or `Done`.
    pub state: String,
    /// When the rollout started it (or saw it start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Since when it has been Ready and Compliant on the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<Time>,
}

/// The cluster a rollout halted on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutHalt {
    /// The cluster.
    pub cluster: String,
    /// Its first failing condition (type), if it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What it says.
    pub message: String,
    /// When the rollout halted.
    pub at: Time,
}

/// Annotation whose value (an RFC 3339 time, `kaasctl rollout resume` sets it) resumes a
/// halted rollout: a halt older than it is lifted and the cluster it named gets its time
/// again.
pub const RESUMED_AT_ANNOTATION: &str = "kaas.scs.community/resumed-at";
