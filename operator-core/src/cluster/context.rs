//! What every reconcile shares: the provider, the caches of classes, stacks and owned
//! Cluster API objects, the writer, metrics and events, and the reads the pipeline makes of
//! them (the catalog, what Cluster API reports for a cluster).

use std::sync::Arc;
use std::time::Duration;

use crate::owned::Owned;
use api::Catalog;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass, TenantPolicy};
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::apply::Applier;
use crate::cluster::status::Observed;
use crate::kinds::Kind;
use crate::metrics::Metrics;
use crate::provider::Provider;

/// The caches a reconcile reads: the classes, the stacks, one cache per watched kind of the
/// table ([`crate::kinds`]) and the control plane certificates' expiry.
#[derive(Clone, Debug)]
pub struct Caches {
    /// Every `ProviderClass`.
    pub classes: Store<ProviderClass>,
    /// Every `ClusterStack`.
    pub stacks: Store<ClusterStack>,
    /// Each watched kind and its cache, in table order.
    pub by_kind: Vec<(Kind, Store<Owned>)>,
    /// When each cluster's control plane certificates expire.
    pub certificates: crate::certificates::CertificateExpiry,
    /// Every `TenantPolicy` (for `WithinTenantPolicy`).
    pub policies: Store<TenantPolicy>,
}

/// The operator's settings a reconcile reads.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This operator's controller name (the IngressClass rule), also the finalizer it puts
    /// on its clusters.
    pub controller_name: String,
    /// How often a cluster with add-ons is checked for drift once everything is healthy.
    pub addon_resync: Duration,
    /// How long one reconcile may take in all.
    pub reconcile_timeout: Duration,
}

impl Caches {
    /// The cache of `kind`, when it is watched.
    pub fn of(&self, kind: &Kind) -> Option<&Store<Owned>> {
        self.by_kind
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, store)| store)
    }

    /// The cached object of `kind` named `name` in `namespace`.
    pub fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Option<Arc<Owned>> {
        let store = self.of(kind)?;
        store.get(&ObjectRef::new_with(name, kind.resource()).within(namespace))
    }
}

/// What every reconcile shares: the provider, the clients, the caches, the ledger and the
/// settings.
pub struct Context<P: Provider> {
    /// The provider.
    pub provider: P,
    /// Writes objects (and remembers what it applied).
    pub applier: Applier,
    /// Kubernetes events.
    pub recorder: Recorder,
    /// The provider's stack releases.
    pub releases: Arc<crate::stacks::Releases>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// What reconciles read instead of asking the API server.
    pub caches: Caches,
    /// What the operator remembers about each cluster between reconciles.
    pub ledger: super::Ledger,
    /// The settings.
    pub settings: Settings,
}

impl<P: Provider> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("provider", &self.provider.name())
            .field("controller_name", &self.settings.controller_name)
            .finish()
    }
}

impl<P: Provider> Context<P> {
    pub(super) fn catalog(&self) -> Catalog {
        Catalog {
            classes: self.caches.classes.state(),
            stacks: self.caches.stacks.state(),
            clusters: Vec::new(),
            ..Default::default()
        }
    }

    /// What Cluster API reports of `cluster`: the object of each watched kind the table names
    /// for it, typed as the cache holds it.
    pub(super) fn observed(&self, cluster: &KaasCluster) -> Observed {
        let ns = cluster.namespace().unwrap_or_default();
        let name = cluster.name_any();
        let watched: Vec<Kind> = self.caches.by_kind.iter().map(|(k, _)| *k).collect();
        let mut observed = Observed::of(&watched, cluster, |kind, obj_name| {
            // An object this operator just applied exists even before its watch delivers
            // it: count it (without status) so the phase does not step back to Pending.
            self.caches
                .get(kind, &ns, obj_name)
                .map(|o| (*o).clone())
                .or_else(|| {
                    self.applier
                        .has_applied(kind.api_version, kind.kind, &ns, obj_name)
                        .then(|| Owned::named(obj_name))
                })
        });
        observed.certificates_expiry = self.caches.certificates.earliest(&ns, &name);
        observed.policies =
            api::tenancy::standing(self.caches.policies.state().iter().map(|p| &**p), &ns);
        observed
    }

    /// The objects of kind `ar` in `namespace` matching the label `selector`, metadata only;
    /// none when the kind is not installed (a provider's optional kinds, say).
    pub(super) async fn list_labelled(
        &self,
        ar: &kube::api::ApiResource,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<kube::core::PartialObjectMeta<DynamicObject>>, crate::error::Error> {
        let api: kube::Api<DynamicObject> =
            kube::Api::namespaced_with(self.applier.client().clone(), namespace, ar);
        match api
            .list_metadata(&kube::api::ListParams::default().labels(selector))
            .await
        {
            Ok(list) => Ok(list.items),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}
