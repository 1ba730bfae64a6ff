//! `ClusterStack` v1beta1: one release of a cluster stack for one provider. What a release holds
//! (node images, kubeadm settings, add-ons) is the stack format's; this object says which
//! release exists, what it supports, where it comes from and whether it is ready to use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One release of a cluster stack for one provider.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kaas.scs.community",
    version = "v1beta1",
    kind = "ClusterStack",
    plural = "clusterstacks",
    status = "ClusterStackStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "kcs",
    category = "kaas",
    doc = "One release of a cluster stack: node images, kubeadm settings and add-ons for one provider.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Stack", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
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
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self == oldSelf",
    "message": "is immutable once created: publish a new release with a new version instead",
}]))]
pub struct ClusterStackSpec {
    /// Provider the release is built for, for example `openstack`, `hetzner` or `docker`.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub provider: String,
    /// Stack name, a DNS label such as `scs`. `KaasCluster.spec.clusterStack.name` refers to it.
    #[schemars(length(max = 63), regex(pattern = crate::schema::DNS_LABEL))]
    pub name: String,
    /// Semantic version of the release, for example `1.2.0`.
    #[schemars(length(max = 128), regex(pattern = crate::schema::SEMVER))]
    pub version: String,
    /// Full Kubernetes versions the release supports, for example `["1.31.4", "1.32.1"]`: one
    /// release serves several minor versions.
    #[schemars(length(min = 1), inner(length(max = 32), regex(pattern = crate::schema::FULL_KUBE_VERSION)))]
    pub kubernetes_versions: Vec<String>,
    /// Stack versions a cluster may move from to this release (its upgrade edges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(max = 128), regex(pattern = crate::schema::SEMVER)))]
    pub upgrade_from: Vec<String>,
    /// Node images of the release, one per Kubernetes version, for providers that boot
    /// machines from an image (OpenStack imports it, Hetzner finds the snapshot by name;
    /// Docker uses kind's node image for the version when none is listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_images: Vec<NodeImage>,
    /// Where the release's content comes from. Exactly one of the fields is set; when none
    /// is, the stack is one built into the provider's operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<StackSource>,
}

/// A node image for one Kubernetes version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeImage {
    /// The full Kubernetes version the image carries, one of `spec.kubernetesVersions`.
    pub kubernetes_version: String,
    /// Image name in the cloud (or image reference for Docker).
    pub name: String,
    /// Where the image can be downloaded for import; absent when it is already in the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `sha256:` and 64 hex digits, checked on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Disk format, such as `qcow2` or `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl ClusterStackSpec {
    /// The release this object stands for.
    pub fn id(&self) -> crate::ReleaseId {
        crate::ReleaseId::new(&self.provider, &self.name, &self.version)
    }

    /// The node image listed for the full Kubernetes version `version`.
    pub fn node_image(&self, version: &str) -> Option<&NodeImage> {
        self.node_images
            .iter()
            .find(|i| i.kubernetes_version == version)
    }
}

/// Where a stack release is fetched from; exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.local), has(self.http), has(self.oci)].filter(x, x).size() == 1",
    "message": "exactly one of local, http and oci must be set",
}]))]
pub struct StackSource {
    /// A folder on the operator's file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSource>,
    /// An HTTP(S) tarball pinned by its sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
    /// An OCI artifact pinned by its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciSource>,
}

/// A stack release in a local folder.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSource {
    /// Absolute path of the folder.
    #[schemars(length(max = 4096), regex(pattern = "^/"))]
    pub path: String,
}

/// A stack release as an HTTP(S) tarball.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// URL of the `.tar.gz`.
    #[schemars(length(max = 2048), regex(pattern = "^https?://"))]
    pub url: String,
    /// Expected sha256 of the tarball, 64 hex digits.
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
}

/// A stack release as an OCI artifact.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciSource {
    /// Repository, for example `registry.example.com/stacks/openstack-scs`.
    pub repository: String,
    /// Manifest digest, for example `sha256:...`.
    #[schemars(regex(pattern = "^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
    /// A PEM ECDSA P-256 public key (`-----BEGIN PUBLIC KEY-----`) the release must be signed
    /// with: a cosign-style signature over the digest, stored in the repository under the tag
    /// `sha256-<hex>.sig`. Absent: only what the operator's `--stack-signing-key` requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// What the provider's operator found out about the release.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStackStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions; `Ready` is true once the content was fetched, verified and its node images
    /// are available. Only ready releases are picked when a version is defaulted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Content hash of the fetched release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
}

impl ClusterStack {
    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }
}
