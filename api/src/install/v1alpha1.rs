//! `KaasOperator` v1alpha1: one installed provider operator. The installer (`kaas-installer`)
//! renders the operator's ServiceAccount, RBAC, Deployment, disruption budget and network
//! policy from the bundle of `spec.version`, creates the classes asked for, and optionally the
//! Cluster API operator's provider objects; deleting the object removes what it installed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::v1beta1::{MachineType, ParametersReference};

/// One provider operator, installed and kept at a version.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "operator.kaas.scs.community",
    version = "v1alpha1",
    kind = "KaasOperator",
    plural = "kaasoperators",
    status = "KaasOperatorStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "kop",
    category = "kaas",
    doc = "One installed KaaS provider operator: its Deployment, RBAC and ProviderClasses, kept at a version.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Installed",
        type_ = "string",
        json_path = ".status.installedVersion"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KaasOperatorSpec {
    /// The provider whose operator to run: `docker`, `openstack` or `hetzner` (one object per
    /// provider). Immutable.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "is immutable"}]))]
    pub provider: String,
    /// The operator release to run, for example `0.2.0`: one the installer has a bundle for.
    /// Changing it upgrades (or, where the bundles allow, downgrades) the operator after a
    /// preflight.
    pub version: String,
    /// Replicas of the operator's Deployment (leader election keeps one active). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub replicas: Option<i32>,
    /// Where the operator's image comes from, for mirrors and pinning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// CPU and memory of the operator's container. Default: requests 100m/64Mi, limits 1/384Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Further operator flags, by name with its leading dashes (`--concurrency: "32"`). Only
    /// flags the operator of that version knows and the installer does not set itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_args: BTreeMap<String, String>,
    /// Public keys (PEM, ECDSA P-256: the `.pub` of `kaasctl stack keygen`) that stack
    /// releases from OCI registries must be signed with, each one key of a ConfigMap in the
    /// operators' namespace (`kaas-system`): mounted into the operator and given to it as
    /// `--stack-signing-key`, so it refuses unsigned and otherwise signed releases. At most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::install::MAX_SIGNING_KEYS))]
    pub stack_signing_keys: Vec<ConfigMapKey>,
    /// ProviderClasses to create for this operator. A class of that name that exists already
    /// and was not created by this object is left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_classes: Vec<ProviderClassTemplate>,
    /// Also ensure the Cluster API operator's provider objects (`CoreProvider`,
    /// `BootstrapProvider`, `ControlPlaneProvider`, `InfrastructureProvider`) at the versions
    /// this operator's stacks need. Needs the Cluster API operator installed.
    #[serde(
        default,
        rename = "installClusterAPI",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub install_cluster_api: bool,
}

/// Where the operator image comes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverride {
    /// Repository instead of the bundle's (`registry.example/mirror/kaas-operator-docker`);
    /// the tag stays the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Pin the image by digest (`sha256:` and 64 hex digits) instead of the version's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^sha256:[0-9a-f]{64}$"))]
    pub digest: Option<String>,
}

/// One key of a ConfigMap in the operators' namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKey {
    /// The ConfigMap's name.
    #[schemars(length(max = 253), regex(pattern = crate::schema::DNS_SUBDOMAIN))]
    pub name: String,
    /// The key holding the PEM public key.
    #[schemars(length(max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A ProviderClass the installer creates for the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderClassTemplate {
    /// The class's name, a DNS subdomain.
    pub name: String,
    /// Mark it the default class (at most one class in the management cluster may be).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// The class's `spec.parameters`, for example the Secret with the cloud credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<ParametersReference>,
    /// The class's `spec.machineTypes`: the provider's flavours with what each gives a node
    /// (what a `TenantPolicy` counts vCPUs, memory and GPUs by).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub machine_types: Vec<MachineType>,
}

states! {
    /// A condition type of a `KaasOperator`'s status.
    OperatorCondition {
        /// The version exists, fits what is installed, and the cluster serves what it needs.
        PreflightPassed = "PreflightPassed",
        /// The version's objects are applied.
        Installed = "Installed",
        /// The operator's Deployment is available at its current spec.
        Available = "Available",
        /// Cluster API and the provider's infrastructure provider are ready (when asked for).
        ClusterApiReady = "ClusterAPIReady",
        /// Every condition above holds.
        Ready = "Ready",
    }
}

/// What is installed and how it is doing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KaasOperatorStatus {
    /// The generation these conditions are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The version whose objects are applied (after a passed preflight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// Conditions: `PreflightPassed`, `Installed`, `Available`, `ClusterAPIReady` (when asked
    /// for) and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Every object this `KaasOperator` created: what its deletion removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InstalledObject>,
}

/// One object the installer created.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InstalledObject {
    /// `apps/v1`, `rbac.authorization.k8s.io/v1`, ...
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl KaasOperatorStatus {
    /// The condition of that type, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
