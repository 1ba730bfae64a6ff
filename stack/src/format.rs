//! The stack format: what `stack.yaml` at the root of a release says. A release is one folder
//! (or a tarball or OCI artifact of one): `stack.yaml` plus the add-on manifest templates it
//! names. The types here are only the shape; [`crate::check`] says what makes one valid.
//!
//! `docs/stack-format.md` is the user-facing description of every field.

use std::collections::BTreeMap;

use api::v1beta1::NodeImage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The file at the root of every release.
pub const STACK_FILE: &str = "stack.yaml";

/// `stack.yaml`: one release of a cluster stack for one provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackFile {
    /// Provider the release is built for (`openstack`, `hetzner`, `docker`).
    pub provider: String,
    /// Stack name, a DNS label such as `scs`.
    pub name: String,
    /// Semantic version of the release.
    pub version: String,
    /// The base stack this release is an overlay of: the effective release is the base with
    /// this file's additions ([`crate::compose`]). Absent for a base and for a standalone stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
    /// Full Kubernetes versions the release supports, several minors (an overlay may leave
    /// them out to take the base's, or name a subset).
    #[serde(default)]
    pub kubernetes_versions: Vec<String>,
    /// When each Kubernetes version was released upstream and when each minor reaches its
    /// end of life: what the SCS version policy (scs-0210) is judged against. An overlay's
    /// entries add to its base's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_calendar: Option<KubernetesCalendar>,
    /// Stack versions a cluster may upgrade from to this release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade_from: Vec<String>,
    /// Node images, one per Kubernetes version, for providers that boot from an image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_images: Vec<NodeImage>,
    /// How the node images are built, when the release carries the recipe (a Packer template
    /// whose output is referenced by name in `nodeImages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image_build: Option<NodeImageBuild>,
    /// kubeadm settings applied to every node of every cluster of the release.
    #[serde(default)]
    pub kubeadm: Kubeadm,
    /// Stack-wide variables the templates read as `vars.<name>` (the MTU, for example).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, Variable>,
    /// The add-ons applied into every workload cluster, in dependency order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<Addon>,
    /// Overlay only: changes to the base's rendered manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<ManifestPatch>,
    /// Overlay only: base add-ons turned off. Such a release loads and runs, but it is not
    /// compliant with its base (`kaasctl stack verify` and the `Compliant` condition say so).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable: Vec<String>,
    /// Base only: what workloads may rely on in every cluster of every provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<Surface>,
}

impl StackFile {
    /// The release this file describes.
    pub fn id(&self) -> api::ReleaseId {
        api::ReleaseId::new(&self.provider, &self.name, &self.version)
    }
}

/// Upstream Kubernetes dates a release knows (`YYYY-MM-DD`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesCalendar {
    /// Release date of each full version (`"1.35.0": "2025-12-17"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub released: BTreeMap<String, String>,
    /// End of upstream support of each minor (`"1.33": "2026-06-28"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub end_of_life: BTreeMap<String, String>,
}

/// The recipe for a release's node images.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeImageBuild {
    /// A Packer template in the release, built once per Kubernetes version with the variables
    /// `kubernetes_version` and `image_name` (the `nodeImages[].name` it must produce).
    pub packer: String,
}

/// The provider name a base stack carries: it serves no provider on its own.
pub const BASE_PROVIDER: &str = "base";

/// Which base an overlay builds on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseRef {
    /// The base's name.
    pub name: String,
    /// Its exact version.
    pub version: String,
}

/// A change an overlay makes to objects a base add-on renders, like a kustomize patch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestPatch {
    /// The base add-on whose objects are patched.
    pub addon: String,
    /// A template rendering to documents with `kind`, `metadata.name` (and
    /// `metadata.namespace`) naming one object of the add-on each; the rest of the document is
    /// merged into that object (JSON merge patch, RFC 7386).
    pub file: String,
}

/// The provider-independent application surface: the contract workloads program against.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Surface {
    /// StorageClasses every cluster has, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<StandardStorageClass>,
    /// What a `LoadBalancer` Service gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
    /// Node labels a workload may select on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_labels: Vec<String>,
    /// Taints a workload may have to tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_taints: Vec<String>,
}

/// A StorageClass of the surface.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StandardStorageClass {
    /// Its name.
    pub name: String,
    /// Whether it is the cluster's default class.
    #[serde(default)]
    pub default: bool,
    /// What it offers (access modes, binding, expansion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// kubeadm settings of a release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kubeadm {
    /// Extra flags of the API server (besides the OIDC flags of the cluster).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_server_extra_args: BTreeMap<String, String>,
    /// Extra flags of the controller manager.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub controller_manager_extra_args: BTreeMap<String, String>,
    /// Extra flags of the scheduler.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scheduler_extra_args: BTreeMap<String, String>,
    /// Extra flags of every kubelet (besides those the provider needs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kubelet_extra_args: BTreeMap<String, String>,
    /// Commands run on every node before `kubeadm init`/`join` (a stock image prepared at boot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_kubeadm_commands: Vec<String>,
    /// Commands run on every node after `kubeadm init`/`join`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_kubeadm_commands: Vec<String>,
    /// Pod Security Admission enforced cluster-wide by the API server (an admission
    /// configuration file on every control plane node); an overlay may change the levels and
    /// add exempt namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurity>,
    /// Renew the control plane (a rollout of its machines) when its certificates expire within
    /// this many days (7 to 300); a cluster may set its own
    /// (`spec.controlPlane.certificatesExpiryDays`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_expiry_days: Option<i32>,
    /// Registry mirrors containerd uses on every node (`/etc/containerd/certs.d`); a
    /// cluster's `spec.registryMirrors` replaces an entry for the same registry, an overlay's
    /// the base's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_mirrors: Vec<api::v1beta1::RegistryMirror>,
}

/// Cluster-wide Pod Security Admission defaults: the level applied to every namespace that
/// does not set its own `pod-security.kubernetes.io/*` labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurity {
    /// Pods violating this level are refused: `privileged`, `baseline` or `restricted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<String>,
    /// Violations of this level are recorded in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<String>,
    /// Violations of this level are returned to the client as warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<String>,
    /// Namespaces exempt from it (the stack's own system components that need host access).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt_namespaces: Vec<String>,
}

/// A variable of the stack or of an add-on: a type, a default, bounds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variable {
    /// `string`, `integer`, `number` or `boolean`.
    #[serde(rename = "type")]
    pub type_: VarType,
    /// Value when nobody sets one; a variable without a default must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Smallest allowed value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Largest allowed value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// The allowed values, when only some are.
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
    /// What the variable does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type of a variable.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    /// Text.
    #[default]
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// One add-on of a release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addon {
    /// Name, a DNS label unique in the release (`cilium`).
    pub name: String,
    /// The upstream version it ships (`1.16.5`).
    pub version: String,
    /// When it is applied during an upgrade.
    #[serde(default)]
    pub stage: Stage,
    /// Add-ons that must be healthy before this one is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Template files, relative to the release root; each renders to one or more YAML
    /// documents.
    pub manifests: Vec<String>,
    /// The add-on's own values, read by its templates as `values.<name>`; clusters override
    /// them in `spec.addons[].values`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, Variable>,
    /// How its health is judged.
    #[serde(default)]
    pub health: Health,
    /// Whether a cluster may turn it off (`spec.addons[].enabled: false`). Add-ons are
    /// mandatory unless they say so.
    #[serde(default)]
    pub optional: bool,
    /// Capabilities the add-on gives the cluster, which standards checks read: only
    /// `NetworkPolicy` (the CNI enforces NetworkPolicies, scs-0219) so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
}

/// The capability of a CNI that enforces NetworkPolicies.
pub const NETWORK_POLICY: &str = "NetworkPolicy";

/// The Pod Security Admission levels, from the most open.
pub const POD_SECURITY_LEVELS: [&str; 3] = ["privileged", "baseline", "restricted"];

/// The stage of an upgrade in which an add-on is applied. On a new cluster every add-on is
/// applied once the control plane answers, `preUpgrade` ones first.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Before the control plane moves (CRDs and controllers the new version needs).
    PreUpgrade,
    /// After every worker pool moved (the default).
    #[default]
    PostUpgrade,
}

/// How an add-on's health is judged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Its Deployments, DaemonSets and StatefulSets report all replicas ready (the default).
    #[default]
    Ready,
    /// Its objects exist.
    Applied,
}
