//! `ProviderClass` v1beta1: names the operator that serves a class of clusters, exactly like an
//! IngressClass names its ingress controller.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A class of clusters and the operator that serves it. A `KaasCluster` names its class; only
/// the operator whose controller name equals `spec.controller` acts on it.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "kaas.scs.community",
    version = "v1beta1",
    kind = "ProviderClass",
    plural = "providerclasses",
    derive = "PartialEq",
    derive = "Default",
    shortname = "kpc",
    category = "kaas",
    doc = "A class of KaaS clusters and the provider operator that serves it (like an IngressClass).",
    printcolumn(
        name = "Controller",
        type_ = "string",
        json_path = ".spec.controller",
        description = "Operator serving this class"
    ),
    printcolumn(
        name = "Default",
        type_ = "string",
        json_path = ".metadata.annotations.providerclass\\.kaas\\.scs\\.community/is-default-class",
        description = "Whether this is the default class"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderClassSpec {
    /// Name of the operator that serves this class, a domain-prefixed path such as
    /// `kaas.scs.community/openstack`. Its last path segment names the provider whose cluster
    /// stacks the class uses. Immutable.
    #[schemars(length(max = 253), regex(pattern = crate::schema::CONTROLLER_NAME))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "is immutable"}]))]
    pub controller: String,
    /// The provider's settings for this class, for example the Secret with its credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<ParametersReference>,
    /// The machine types of this class's provider (OpenStack flavors, Hetzner server types)
    /// with what each gives a node: what a `TenantPolicy` counts against its vCPU, memory and
    /// GPU limits. Left out, nodes of this class count as nodes only, and a policy that
    /// limits vCPUs, memory or GPUs refuses its clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub machine_types: Vec<MachineType>,
}

/// A machine type of the provider and what it gives a node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineType {
    /// The provider's name for it, as a cluster's `machineType` names it (`SCS-4V-16`,
    /// `cpx31`).
    #[schemars(length(min = 1, max = crate::limits::MAX_MACHINE_TYPE))]
    pub name: String,
    /// vCPUs.
    #[schemars(range(min = 0))]
    pub cpu: i64,
    /// Memory, a quantity such as `16Gi`.
    #[schemars(length(max = 32), regex(pattern = crate::schema::QUANTITY))]
    pub memory: String,
    /// GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub gpus: Option<i64>,
    /// What a control plane that names no machine type runs on (the stack's default for the
    /// provider), counted as this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

/// A reference to the object holding a provider's settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParametersReference {
    /// API group of the referenced object; empty for the core group (for example a Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = crate::schema::API_GROUP))]
    pub api_group: Option<String>,
    /// Kind of the referenced object, for example `Secret`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the referenced object.
    #[schemars(length(max = 253), regex(pattern = crate::schema::DNS_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the referenced object, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub namespace: Option<String>,
}

impl ProviderClassSpec {
    /// The provider this class's operator serves: the last path segment of the controller name
    /// (`kaas.scs.community/openstack` serves `openstack`).
    pub fn provider(&self) -> &str {
        self.controller.rsplit('/').next().unwrap_or_default()
    }
}

impl ProviderClass {
    /// Whether the class carries the default-class annotation set to `"true"`.
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}
