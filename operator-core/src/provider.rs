//! The `Provider` trait: the narrow interface a provider operator implements. Everything that
//! is the same on every infrastructure (routing, validation of the generic spec, Cluster API
//! core objects, kubeadm settings, applying, status, deletion, metrics, leader election) is
//! the core's; a provider only says what is particular to its infrastructure.
//!
//! See `docs/writing-a-provider.md` for what each method must guarantee.

use std::collections::BTreeMap;
use std::future::Future;

use api::FieldError;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use serde_json::Value;

pub use crate::kinds::{InfrastructureKinds, Kind};

/// Why a provider could not do its part; the category becomes a metric label and an event
/// reason, so it is one of a fixed set.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The cluster asks for something the provider cannot render (a bad `providerConfig`,
    /// no node image for the version). Waits for a spec change; no retry.
    #[error("{0}")]
    Invalid(String),
    /// A node image or another prerequisite is not there yet. Retried with backoff.
    #[error("{0}")]
    NotReady(String),
    /// The cloud or the API server failed. Retried with backoff.
    #[error("{0}")]
    Transient(String),
}

impl ProviderError {
    /// A bounded label value.
    pub fn category(&self) -> &'static str {
        match self {
            ProviderError::Invalid(_) => "provider_invalid",
            ProviderError::NotReady(_) => "provider_not_ready",
            ProviderError::Transient(_) => "provider_transient",
        }
    }
}

/// Everything resolved about one cluster, as the provider sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClusterContext<'a> {
    /// The cluster, defaulted and validated.
    pub cluster: &'a KaasCluster,
    /// Its name (also the name of the Cluster API `Cluster`).
    pub name: &'a str,
    /// Its namespace (every object goes there).
    pub namespace: &'a str,
    /// The full Kubernetes version to run, such as `1.31.4`.
    pub kubernetes_version: &'a str,
    /// The stack release in use.
    pub stack: &'a ClusterStack,
    /// The cluster's class (its `parameters` name the provider's settings).
    pub class: &'a ProviderClass,
    /// The keys [`Provider::credential_keys`] asks for, read by the core from the Secret the
    /// class's `spec.parameters` names, in the cluster's namespace (where the Cluster API
    /// provider reads it too). `None` when building offline (golden tests, `kaasctl render`):
    /// a provider then takes what it would look up in the cloud as present.
    pub credentials: Option<&'a BTreeMap<String, String>>,
}

impl ClusterContext<'_> {
    /// The name of the Secret the class's `spec.parameters` names (credentials, typically in
    /// the cluster's namespace), or an error saying that the class must name one holding
    /// `what`.
    pub fn class_secret(&self, what: &str) -> Result<String, ProviderError> {
        self.class
            .spec
            .parameters
            .as_ref()
            .filter(|p| p.kind == "Secret")
            .map(|p| p.name.clone())
            .ok_or_else(|| {
                ProviderError::Invalid(format!(
                    "ProviderClass {:?} must name the Secret with {what} in spec.parameters (kind: Secret)",
                    self.class.metadata.name.as_deref().unwrap_or_default()
                ))
            })
    }
}

/// The node image a cluster's machines boot from, and objects that make it available.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeImages {
    /// What the machine templates reference (a kind node image, an ORC `Image` name, a
    /// snapshot name): the provider's own notion.
    pub reference: String,
    /// Objects the core applies in the cluster's namespace, shared by every cluster that uses
    /// the same image (not owned by one cluster), such as ORC `Image` objects.
    pub shared_objects: Vec<Value>,
}

/// A provider's infrastructure objects for one cluster (their kinds are [`Provider::KINDS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Infrastructure {
    /// `spec` of the infrastructure cluster.
    pub cluster_spec: Value,
    /// `spec.template.spec` of the control plane's machine template.
    pub control_plane_machine: Value,
    /// `spec.template.spec` of each worker pool's machine template, by pool name.
    pub worker_machines: BTreeMap<String, Value>,
    /// kubelet arguments the provider needs on every node (such as `cloud-provider=external`).
    pub kubelet_args: BTreeMap<String, String>,
    /// The provider's own objects, of its [`Provider::EXTRA_KINDS`]; the core names, labels
    /// and owns them as their kind says.
    pub extra: Vec<Extra>,
}

/// One object of a provider's own kind ([`Provider::EXTRA_KINDS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Extra {
    /// Its kind, one of [`Provider::EXTRA_KINDS`].
    pub kind: &'static str,
    /// The worker pool it belongs to, for a kind with one object per pool.
    pub pool: Option<String>,
    /// Its `spec`.
    pub spec: Value,
}

/// What a provider implements. All methods must be idempotent: the core calls them on every
/// reconcile of every cluster of the provider's classes.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name, the last segment of its controller name (`docker` for
    /// `kaas.scs.community/docker`) and the `spec.provider` of its stacks.
    fn name(&self) -> &'static str;

    /// The kinds of the provider's infrastructure objects.
    const KINDS: InfrastructureKinds;

    /// `(apiVersion, kind)` of the objects [`NodeImages::shared_objects`] may hold, such as ORC
    /// `Image`s: the core tracks which clusters use each and deletes one when the last of
    /// them is deleted. None by default.
    const SHARED_KINDS: &'static [(&'static str, &'static str)] = &[];

    /// Kinds the provider writes for each cluster besides [`Provider::KINDS`] (such as a
    /// `MachineHealthCheck` per pool), one [`crate::kinds::Kind`] each: the core waits for
    /// their CRDs, applies the objects of [`Infrastructure::extra`] in their wave, watches
    /// and observes them when `watched`, removes a dropped pool's and deletes them with the
    /// cluster. None by default.
    const EXTRA_KINDS: &'static [Kind] = &[];

    /// Keys of the class's credentials Secret that [`Provider::find_node_images`] needs (such as
    /// `hcloud` for a Hetzner API token). When not empty, the core reads that Secret before
    /// every build and reports a missing Secret or key in `NodeImagesReady`; the values reach
    /// the provider in [`ClusterContext::credentials`]. None by default: the provider then
    /// never sees a secret.
    fn credential_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// What is still missing about one of the [`NodeImages::shared_objects`] as its own
    /// controller reports it on the live object (such as an ORC `Image` not yet imported), or
    /// `None` when machines can use it. The core reads each shared object after applying it
    /// and shows the first problem in `NodeImagesReady`. Pure. Always usable by default.
    fn shared_object_problem(&self, _live: &Value) -> Option<String> {
        None
    }

    /// Checks `spec.providerConfig`; every problem with its field path
    /// (`spec.providerConfig.externalNetwork`). Pure.
    fn validate_config(&self, config: Option<&Value>) -> Vec<FieldError>;

    /// Which node image the machines of the cluster's Kubernetes version boot from, and the
    /// shared objects that make it available (such as an ORC `Image` that imports it). Pure:
    /// read from the stack release (`ctx.stack`), never from the cloud; a version the release
    /// has no image for is [`ProviderError::Invalid`].
    fn node_images(&self, ctx: &ClusterContext<'_>) -> Result<NodeImages, ProviderError>;

    /// Looks up `images` where the machines will need them (the cloud), before anything is
    /// built: an image missing there is named in `NodeImagesReady` before any machine is
    /// created. May call the cloud with `ctx.credentials`; the core calls it only when it read
    /// credentials (never offline), once per step the reconcile renders. Nothing by default.
    fn find_node_images(
        &self,
        _ctx: &ClusterContext<'_>,
        _images: &NodeImages,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send {
        std::future::ready(Ok(()))
    }

    /// Renders the infrastructure objects. Pure: the same input gives the same output, byte
    /// for byte, so machine templates keep their content-hash names.
    fn render(
        &self,
        ctx: &ClusterContext<'_>,
        images: &NodeImages,
    ) -> Result<Infrastructure, ProviderError>;
}

/// Every kind the core writes for a cluster of provider `P` ([`crate::kinds::table`]).
pub fn kinds<P: Provider>() -> Vec<Kind> {
    crate::kinds::table(&P::KINDS, P::EXTRA_KINDS)
}
