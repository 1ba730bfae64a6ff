//! `KaasCluster` v1beta1, the storage version: the user's whole cluster in one small,
//! provider-neutral object. Every field's doc comment becomes `kubectl explain` output.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Control plane replicas used when `spec.controlPlane.replicas` is left out: highly available.
pub const DEFAULT_CONTROL_PLANE_REPLICAS: i32 = 3;
/// Pod network used when `spec.network.podCIDRs` is left out (the Cluster API default).
pub const DEFAULT_POD_CIDR: &str = "192.168.0.0/16";
/// Service network used when `spec.network.serviceCIDRs` is left out (the kubeadm default).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// A Kubernetes cluster as a service: which provider class, which cluster stack, which
/// Kubernetes version, how many control plane nodes, which worker pools. The operator of the
/// class's provider creates the cluster and keeps it converged.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kaas.scs.community",
    version = "v1beta1",
    kind = "KaasCluster",
    plural = "kaasclusters",
    namespaced,
    status = "KaasClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "kc",
    category = "kaas",
    doc = "A Kubernetes cluster as a service, built from a cluster stack by the operator of its provider class.",
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.providerClassName",
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
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(oldSelf.providerClassName) || (has(self.providerClassName) && self.providerClassName == oldSelf.providerClassName)",
        "message": "is immutable",
        "fieldPath": ".providerClassName",
    },
    {
        "rule": "self.clusterStack.name == oldSelf.clusterStack.name",
        "message": "is immutable",
        "fieldPath": ".clusterStack.name",
    },
    {
        "rule": "self.network == oldSelf.network",
        "message": "is immutable",
        "fieldPath": ".network",
    },
    {
        "rule": "!has(self.authentication) || !has(self.kubernetesVersion) || !self.kubernetesVersion.matches('^1[.][0-9]+') || int(self.kubernetesVersion.split('.')[1]) >= 30",
        "message": "needs Kubernetes 1.30 or newer; use spec.oidc",
        "fieldPath": ".authentication",
    },
    {
        "rule": "!has(self.oidc) || !has(self.authentication) || !has(self.authentication.jwt) || self.authentication.jwt.all(j, j.issuer.url != self.oidc.issuerURL)",
        "message": "an issuer URL is trusted twice (here and in spec.oidc)",
        "fieldPath": ".authentication.jwt",
    },
]))]
pub struct KaasClusterSpec {
    /// Name of the ProviderClass whose operator serves this cluster. Defaulted to the class
    /// annotated `providerclass.kaas.scs.community/is-default-class: "true"`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = crate::schema::DNS_SUBDOMAIN))]
    pub provider_class_name: Option<String>,

    /// The cluster stack (the released bundle of node images, kubeadm settings and add-ons)
    /// this cluster is built from.
    pub cluster_stack: ClusterStackRef,

    /// Kubernetes version, either `"1.31"` (follow the stack's newest patch of that minor) or
    /// `"1.31.4"` (exactly that patch). Defaulted to the newest version the stack supports. It
    /// never goes down and moves at most one minor version per change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = crate::schema::KUBE_VERSION))]
    pub kubernetes_version: Option<String>,

    /// The control plane nodes.
    #[serde(default)]
    pub control_plane: ControlPlane,

    /// Worker node pools; each becomes one MachineDeployment. Names are unique DNS labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::MAX_POOLS))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(w, self.exists_one(o, o.name == w.name))",
        "message": "pool names must be unique",
    }]))]
    pub workers: Vec<WorkerPool>,

    /// Pod and Service networks. Immutable once the cluster exists.
    #[serde(default)]
    pub network: Network,

    /// OpenID Connect authentication for the cluster's API server (the API server's
    /// `--oidc-*` flags). With `authentication` set as well, it becomes one more issuer there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,

    /// Structured authentication (Kubernetes 1.30 and newer): several JWT issuers with their
    /// claim mappings, given to the API server as an `AuthenticationConfiguration` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,

    /// Automatic upgrades to new stack releases inside a maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,

    /// Mirrors containerd pulls images from on every node, per registry; an entry replaces
    /// the stack's (`kubeadm.registryMirrors`) for the same registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::MAX_REGISTRY_MIRRORS))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(m, self.exists_one(o, o.registry == m.registry))",
        "message": "each registry may be listed once",
    }]))]
    pub registry_mirrors: Vec<RegistryMirror>,

    /// Per-cluster overrides of the stack's add-ons (enable, disable, set values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::MAX_ADDON_OVERRIDES))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(a, self.exists_one(o, o.name == a.name))",
        "message": "each add-on may be listed once",
    }]))]
    pub addons: Vec<AddonOverride>,

    /// Settings only the class's provider understands (for example the external network on
    /// OpenStack or the location on Hetzner). Validated by that provider's operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub provider_config: Option<serde_json::Value>,

    /// When true, the operator stops changing this cluster until it is set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A reference to a cluster stack by name and optional version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStackRef {
    /// Name of the cluster stack, for example `scs`; the provider comes from the class.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub name: String,
    /// Semantic version of the stack release, for example `1.2.0`. Defaulted to the newest
    /// ready release of that name for the class's provider. Changes only along the upgrade
    /// edges the new release declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), regex(pattern = crate::schema::SEMVER))]
    pub version: Option<String>,
}

/// The control plane nodes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    /// Number of control plane nodes: 1, 3 or 5 (etcd needs an odd quorum). Defaulted to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self in [1, 3, 5]",
        "message": "must be 1, 3 or 5 (an odd etcd quorum)",
    }]))]
    pub replicas: Option<i32>,
    /// Provider machine type (OpenStack flavor, Hetzner server type, ...). When left out, the
    /// stack's default for the provider is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::limits::MAX_MACHINE_TYPE))]
    pub machine_type: Option<String>,
    /// Renew the control plane (a rollout of its machines) when its certificates expire within
    /// this many days, 7 to 300; the stack's `kubeadm.certificatesExpiryDays` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(
        min = crate::limits::MIN_CERTIFICATES_EXPIRY_DAYS,
        max = crate::limits::MAX_CERTIFICATES_EXPIRY_DAYS
    ))]
    pub certificates_expiry_days: Option<i32>,
}

/// One pool of identical worker nodes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.minReplicas) || self.minReplicas < 0 || self.replicas >= self.minReplicas",
        "message": "must be >= minReplicas",
        "fieldPath": ".replicas",
    },
    {
        "rule": "!has(self.maxReplicas) || self.maxReplicas < 1 || self.replicas <= self.maxReplicas",
        "message": "must be <= maxReplicas",
        "fieldPath": ".replicas",
    },
    {
        "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
        "message": "must be >= minReplicas",
        "fieldPath": ".maxReplicas",
    },
]))]
pub struct WorkerPool {
    /// Pool name, a DNS label unique within the cluster (for example `default`).
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub name: String,
    /// Number of nodes. With `minReplicas`/`maxReplicas` set, the starting size for the
    /// autoscaler; must lie between them.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Provider machine type (OpenStack flavor, Hetzner server type, ...). Changing it rolls
    /// the pool onto new machines.
    #[schemars(length(min = 1, max = crate::limits::MAX_MACHINE_TYPE))]
    pub machine_type: String,
    /// Lower bound for the cluster autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replicas: Option<i32>,
    /// Upper bound for the cluster autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
    /// Labels put on every node of the pool: keys are qualified names such as
    /// `example.com/role`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::labels")]
    pub labels: BTreeMap<String, String>,
    /// Taints put on every node of the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::limits::MAX_TAINTS))]
    pub taints: Vec<Taint>,
    /// How the taints reach the nodes: left out, kubeadm sets them when a node joins (and a
    /// taint removed later stays removed); `Always`, Cluster API keeps them on the nodes (one
    /// removed is put back, one dropped from the pool is removed); `OnInitialization`, Cluster
    /// API sets them once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint_propagation: Option<TaintPropagation>,
    /// How the pool's machines are replaced and removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<PoolRollout>,
}

/// How Cluster API propagates a pool's taints to its nodes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaintPropagation {
    /// Kept on the nodes: put back when removed, removed when dropped from the pool.
    Always,
    /// Set when a node starts, then left alone.
    OnInitialization,
}

/// How a pool's machines are replaced (rollout) and removed (scale down, drain).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.maxSurge) || !has(self.strategy) || self.strategy != 'OnDelete'",
        "message": "applies only to the RollingUpdate strategy",
        "fieldPath": ".maxSurge",
    },
    {
        "rule": "!has(self.maxUnavailable) || !has(self.strategy) || self.strategy != 'OnDelete'",
        "message": "applies only to the RollingUpdate strategy",
        "fieldPath": ".maxUnavailable",
    },
    {
        "rule": "!has(self.maxSurge) || !has(self.maxUnavailable) || !((type(self.maxSurge) == int ? self.maxSurge == 0 : self.maxSurge == '0%') && (type(self.maxUnavailable) == int ? self.maxUnavailable == 0 : self.maxUnavailable == '0%'))",
        "message": "maxSurge and maxUnavailable cannot both be 0: the rollout could never replace a machine",
        "fieldPath": ".maxUnavailable",
    },
]))]
pub struct PoolRollout {
    /// `RollingUpdate` (the default): machines are replaced as the pool's template changes;
    /// `OnDelete`: a machine is replaced only when someone deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RolloutStrategy>,
    /// Machines above the pool's size during a rolling update: a number or a percentage
    /// (`"25%"`). Cluster API's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::int_or_percent")]
    pub max_surge: Option<IntOrPercent>,
    /// Machines that may be unavailable during a rolling update: a number or a percentage.
    /// Cluster API's default is 0; it cannot be 0 together with `maxSurge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::int_or_percent")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Which machines go first when the pool shrinks: `Random` (the default), `Newest`,
    /// `Oldest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_order: Option<DeletionOrder>,
    /// How long a node may take to drain before its machine is deleted anyway, in seconds;
    /// left out, draining waits without limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub node_drain_timeout_seconds: Option<i32>,
    /// Replace every machine of the pool created before this time (RFC 3339), even if
    /// nothing changed: set it to now to force a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// How a pool's machines are replaced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutStrategy {
    /// New machines replace old ones within `maxSurge` and `maxUnavailable`.
    RollingUpdate,
    /// A machine is replaced only when it is deleted.
    OnDelete,
}

/// Which machines are removed first when a pool shrinks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionOrder {
    /// Any (Cluster API's default).
    Random,
    /// The newest first.
    Newest,
    /// The oldest first.
    Oldest,
}

/// A number of machines or a percentage of the pool (`3` or `"25%"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// A number of machines.
    Int(i32),
    /// A percentage such as `"25%"`.
    Percent(String),
}

impl IntOrPercent {
    /// Whether it is zero (`0` or `"0%"`).
    pub fn is_zero(&self) -> bool {
        match self {
            IntOrPercent::Int(n) => *n == 0,
            IntOrPercent::Percent(p) => p.trim_end_matches('%').parse::<u32>() == Ok(0),
        }
    }

    /// What is wrong with it: negative, or a string that is not `N%` with N up to 100.
    pub fn problem(&self) -> Option<String> {
        match self {
            IntOrPercent::Int(n) if *n < 0 => Some("must be >= 0".into()),
            IntOrPercent::Int(_) => None,
            IntOrPercent::Percent(p) => match p.strip_suffix('%').map(str::parse::<u32>) {
                Some(Ok(n)) if n <= 100 => None,
                _ => Some(format!(
                    "{p:?} must be a number or a percentage from 0% to 100%"
                )),
            },
        }
    }
}

/// A node taint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Taint key, a qualified name such as `example.com/dedicated`.
    #[schemars(length(max = 317), regex(pattern = crate::schema::QUALIFIED_NAME))]
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = crate::schema::LABEL_VALUE))]
    pub value: Option<String>,
    /// What the taint does to pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// The effect of a taint on pods that do not tolerate it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TaintEffect {
    /// New pods are not scheduled on the node.
    #[default]
    NoSchedule,
    /// The scheduler avoids the node when it can.
    PreferNoSchedule,
    /// Running pods are evicted too.
    NoExecute,
}

/// Pod and Service networks of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.podCIDRs) || !has(self.serviceCIDRs) || self.podCIDRs.all(p, self.serviceCIDRs.all(s, !isCIDR(p) || !isCIDR(s) || !(cidr(p).containsIP(cidr(s).ip()) || cidr(s).containsIP(cidr(p).ip()))))",
    "message": "the pod networks must not overlap the Service networks",
    "fieldPath": ".podCIDRs",
}]))]
pub struct Network {
    /// Pod networks in CIDR form, at most one IPv4 and one IPv6 (dual stack). Defaulted to
    /// `192.168.0.0/16`. Must not overlap the Service networks.
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 2), inner(length(max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = crate::schema::cidr_list_rules()))]
    pub pod_cidrs: Vec<String>,
    /// Service networks in CIDR form, at most one IPv4 and one IPv6. Defaulted to
    /// `10.96.0.0/12`.
    #[serde(
        default,
        rename = "serviceCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(min = 1, max = 2), inner(length(max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = crate::schema::cidr_list_rules()))]
    pub service_cidrs: Vec<String>,
    /// MTU of the pod network, 1280 to 9000. When left out, the stack's value for the
    /// provider is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1280, max = 9000))]
    pub mtu: Option<i32>,
}

/// OpenID Connect settings of the cluster's API server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Oidc {
    /// Issuer URL; must be `https://`.
    #[serde(rename = "issuerURL")]
    #[schemars(length(max = crate::limits::MAX_CLAIM_TEXT), regex(pattern = crate::schema::ISSUER_URL))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self != 'https://kubernetes.default.svc.cluster.local'",
        "message": "is the cluster's own service account issuer",
    }]))]
    pub issuer_url: String,
    /// Client ID that tokens must be issued for.
    #[serde(rename = "clientID")]
    #[schemars(length(min = 1, max = crate::limits::MAX_CLAIM_TEXT))]
    pub client_id: String,
    /// JWT claim used as the user name (the API server's default is `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::limits::MAX_CLAIM_TEXT))]
    pub username_claim: Option<String>,
    /// JWT claim holding the user's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::limits::MAX_CLAIM_TEXT))]
    pub groups_claim: Option<String>,
    /// Prefix put before user names, for example `oidc:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_CLAIM_TEXT))]
    pub username_prefix: Option<String>,
    /// Prefix put before group names, for example `oidc:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_CLAIM_TEXT))]
    pub groups_prefix: Option<String>,
}

/// Structured authentication of the cluster's API server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// JWT issuers whose tokens the API server accepts, at most 16, each issuer URL once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = crate::limits::MAX_JWT_ISSUERS))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(j, self.exists_one(o, o.issuer.url == j.issuer.url))",
        "message": "each issuer URL may be trusted once",
    }]))]
    pub jwt: Vec<JwtAuthenticator>,
}

/// One trusted JWT issuer and how its tokens' claims become a user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuthenticator {
    /// Who issues the tokens.
    pub issuer: JwtIssuer,
    /// Which claims name the user and the groups.
    pub claim_mappings: ClaimMappings,
}

/// A JWT issuer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtIssuer {
    /// Issuer URL, `https://`; the tokens' `iss` claim.
    #[schemars(length(max = crate::limits::MAX_CLAIM_TEXT), regex(pattern = crate::schema::ISSUER_URL))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self != 'https://kubernetes.default.svc.cluster.local'",
        "message": "is the cluster's own service account issuer",
    }]))]
    pub url: String,
    /// Audiences a token must be issued for (its `aud` claim holds one of them), 1 to 16,
    /// each once.
    #[schemars(
        length(min = 1, max = crate::limits::MAX_AUDIENCES),
        inner(length(min = 1, max = crate::limits::MAX_CLAIM_TEXT))
    )]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(a, self.exists_one(o, o == a))",
        "message": "each audience may be listed once",
    }]))]
    pub audiences: Vec<String>,
    /// PEM CA certificates the issuer's discovery endpoint is verified with; the system's
    /// trust store when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
}

/// How a token's claims map to the Kubernetes user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMappings {
    /// The claim holding the user name, and a prefix put before it.
    pub username: ClaimMapping,
    /// The claim holding the groups, and a prefix put before each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<ClaimMapping>,
}

/// One claim and the prefix put before its values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMapping {
    /// The claim, such as `email` or `groups`.
    #[schemars(length(min = 1, max = crate::limits::MAX_CLAIM_TEXT))]
    pub claim: String,
    /// Put before every value (such as `oidc:`); none when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::limits::MAX_CLAIM_TEXT))]
    pub prefix: Option<String>,
}

/// When the operator may upgrade the cluster by itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// `patch`: move to the newest offered release of the same major and minor version;
    /// `minor`: of the same major version. No automatic upgrade when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self in ['patch', 'minor']",
        "message": "must be patch or minor",
    }]))]
    pub auto_upgrade: Option<String>,
    /// When upgrades may start.
    pub window: MaintenanceWindow,
}

/// A weekly maintenance window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days it opens (`Mon` .. `Sun`); every day when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7), inner(length(max = 3)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(d, d in ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] && self.exists_one(o, o == d))",
        "message": "must be among Mon, Tue, Wed, Thu, Fri, Sat, Sun, each once",
    }]))]
    pub days: Vec<String>,
    /// When it opens, `HH:MM` in its time zone.
    #[schemars(length(max = 5), regex(pattern = crate::schema::TIME_OF_DAY))]
    pub start: String,
    /// How long it stays open, in minutes (30 to 1,440).
    #[schemars(range(min = 30, max = 1440))]
    pub duration_minutes: i32,
    /// An IANA time zone such as `Europe/Berlin`; UTC when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
}

/// Where containerd pulls one registry's images from first.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryMirror {
    /// The registry as image references name it (`docker.io`, `registry.k8s.io`,
    /// `harbor.example.com:8443`), or `_default` for every registry without an entry.
    #[schemars(length(max = 259), regex(pattern = crate::schema::REGISTRY_HOST))]
    pub registry: String,
    /// Mirror URLs (`https://` or `http://`), tried in order before the registry itself.
    #[schemars(
        length(min = 1, max = crate::limits::MAX_MIRROR_ENDPOINTS),
        inner(length(max = 512), regex(pattern = crate::schema::MIRROR_URL))
    )]
    pub endpoints: Vec<String>,
    /// PEM CA certificates the mirrors' TLS certificates are verified with; the node's trust
    /// store when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
}

impl RegistryMirror {
    /// `base`'s mirrors with `over`'s in place of those for the same registry, then `over`'s
    /// others, in order (a stack's and a cluster's, or a base's and an overlay's).
    pub fn merged(base: &[Self], over: &[Self]) -> Vec<Self> {
        let mut all: Vec<Self> = base
            .iter()
            .map(|b| {
                over.iter()
                    .find(|o| o.registry == b.registry)
                    .unwrap_or(b)
                    .clone()
            })
            .collect();
        all.extend(
            over.iter()
                .filter(|o| !base.iter().any(|b| b.registry == o.registry))
                .cloned(),
        );
        all
    }
}

/// A per-cluster override of one of the stack's add-ons.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonOverride {
    /// Name of the add-on in the stack, for example `cilium`.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub name: String,
    /// Turns an optional add-on on or off. Mandatory add-ons cannot be turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Values for the add-on's templates, validated against the add-on's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub values: Option<serde_json::Value>,
}

/// What the operator observed and did. The same shape in every API version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KaasClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase: Pending, Provisioning, Ready, Upgrading, Deleting or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions: Ready, StackResolved, NodeImagesReady, InfrastructureReady,
    /// ControlPlaneReady, WorkersReady, AddonsReady, Upgrading, Compliant, StandardsCompliant,
    /// and WithinTenantPolicy where a `TenantPolicy` governs the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Full Kubernetes version the whole cluster runs (during an upgrade: the version it
    /// moves from, until every step finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Cluster stack version in use (during an upgrade: the one it moves from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_stack_version: Option<String>,
    /// Stack versions this cluster can move to from here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_upgrades: Vec<String>,
    /// The Secret (in this namespace) holding the admin kubeconfig of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,
    /// Replica counts of the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ReplicaStatus>,
    /// Replica counts per worker pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<PoolStatus>,
    /// State of each add-on in the workload cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<AddonStatus>,
    /// The upgrade in progress, if any: its plan and where it stands. Kept here so that a
    /// restarted operator resumes it where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,
    /// The SCS container-layer standards this cluster was checked against, one entry each
    /// (docs/standards.md); the condition `StandardsCompliant` names the first failing one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standards: Vec<StandardResult>,
}

/// One SCS standard's result for a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandardResult {
    /// The standard and its version, such as `scs-0210-v2`.
    pub id: String,
    /// `Pass`, `Fail`, or `Unknown` when what it needs could not be observed.
    pub result: String,
    /// What was found: why it fails (and what to do), or what could not be observed and why.
    pub message: String,
    /// When this result was found. A result and message unchanged since are not written again
    /// (it is refreshed once a day), so a steady cluster costs no status writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// An orchestrated upgrade: pre-upgrade add-ons, then for each Kubernetes minor the control
/// plane and then the workers, then the post-upgrade add-ons.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    /// Full Kubernetes version the cluster moves from.
    pub from_kubernetes_version: String,
    /// Stack version the cluster moves from.
    pub from_stack_version: String,
    /// Stack version the cluster moves to.
    pub to_stack_version: String,
    /// The planned chain of full Kubernetes versions, one minor at a time, ending at the
    /// target (a single entry for a patch or one-minor move, or a stack-only change).
    pub steps: Vec<String>,
    /// Index into `steps` of the step in progress.
    pub step: i32,
    /// Stage in progress: `PreUpgrade`, `ControlPlane`, `Workers` or `PostUpgrade`.
    pub stage: String,
    /// Failed or waiting checks of the current stage so far (drives the retry backoff).
    #[serde(default)]
    pub attempts: i32,
    /// What the stage waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A key in a Secret of the cluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// Replica counts as Cluster API reports them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Replicas asked for.
    #[serde(default)]
    pub desired: i32,
    /// Replicas that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Replicas on the current version and machine template.
    #[serde(default)]
    pub up_to_date_replicas: i32,
    /// When the first of the control plane's certificates expires, as Cluster API reports it
    /// on the control plane machines (the control plane is renewed before, see
    /// `spec.controlPlane.certificatesExpiryDays`). Control plane only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_expiry_date: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Replica counts of one worker pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Replicas asked for.
    #[serde(default)]
    pub desired: i32,
    /// Replicas that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Replicas on the current version and machine template.
    #[serde(default)]
    pub up_to_date_replicas: i32,
}

/// State of one add-on in the workload cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonStatus {
    /// Add-on name.
    pub name: String,
    /// Add-on version applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether its health checks pass.
    #[serde(default)]
    pub ready: bool,
    /// Why it is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
