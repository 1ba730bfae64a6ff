//! What every reconcile shares: the provider, the caches of classes, stacks and owned
//! Cluster API objects, the writer, metrics and events, and the reads the pipeline makes of
//! them (the catalog, what Cluster API reports for a cluster).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::owned::Owned;
use api::Catalog;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use super::Written;
use crate::apply::{Applier, resource};
use crate::metrics::Metrics;
use crate::provider::Provider;
use crate::render;
use crate::status::Observed;

/// Stores of the Cluster API objects the operator writes and watches.
#[derive(Clone, Debug)]
pub struct OwnedStores {
    /// `Cluster`s.
    pub clusters: Store<Owned>,
    /// `KubeadmControlPlane`s.
    pub control_planes: Store<Owned>,
    /// `MachineDeployment`s.
    pub machine_deployments: Store<Owned>,
    /// When each cluster's control plane certificates expire.
    pub certificates: crate::runtime::certificates::CertificateExpiry,
}

/// What every reconcile shares.
pub struct Context<P: Provider> {
    /// The provider.
    pub provider: P,
    /// This operator's controller name (the IngressClass rule).
    pub controller_name: String,
    /// The finalizer this operator puts on its clusters.
    pub finalizer: String,
    /// Writes objects.
    pub applier: Applier,
    /// Every `ProviderClass`.
    pub classes: Store<ProviderClass>,
    /// Every `ClusterStack`.
    pub stacks: Store<ClusterStack>,
    /// Cluster API objects this operator wrote.
    pub owned: OwnedStores,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Kubernetes events.
    pub recorder: Recorder,
    /// The provider's stack releases.
    pub releases: Arc<crate::stacks::Releases>,
    /// Clients of the workload clusters.
    pub workloads: crate::addons::Workloads,
    /// How often a cluster with add-ons is checked for drift once everything is healthy.
    pub addon_resync: Duration,
    /// How long one reconcile may take in all.
    pub reconcile_timeout: Duration,
    /// Shared objects already labelled with a cluster using them (`kind/ns/name/cluster`).
    pub image_users: std::sync::Mutex<std::collections::HashSet<String>>,
    /// What this process last wrote to each cluster (by uid), so a reconcile that runs before
    /// the watch delivers the write does not write it again.
    pub written: std::sync::Mutex<HashMap<String, Written>>,
}

impl<P: Provider> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("provider", &self.provider.name())
            .field("controller_name", &self.controller_name)
            .finish()
    }
}

impl<P: Provider> Context<P> {
    pub(super) fn catalog(&self) -> Catalog {
        Catalog {
            classes: self.classes.state(),
            stacks: self.stacks.state(),
            clusters: Vec::new(),
            ..Default::default()
        }
    }

    pub(super) fn observed(&self, cluster: &KaasCluster) -> Observed {
        let ns = cluster.namespace().unwrap_or_default();
        let name = cluster.name_any();
        // An object this operator just applied exists even before its watch delivers it:
        // count it (without status) so the phase does not step back to Pending meanwhile.
        let get = |store: &Store<Owned>, ar: &kube::api::ApiResource, obj_name: &str| {
            store
                .get(&ObjectRef::new_with(obj_name, ar.clone()).within(&ns))
                .and_then(|o| serde_json::to_value(&*o).ok())
                .or_else(|| {
                    let api_version = format!("{}/{}", ar.group, ar.version);
                    self.applier
                        .has_applied(&api_version, &ar.kind, &ns, obj_name)
                        .then(|| json!({"metadata": {"name": obj_name}}))
                })
        };
        let mut mds = BTreeMap::new();
        for pool in &cluster.spec.workers {
            if let Some(md) = get(
                &self.owned.machine_deployments,
                &resource(render::CAPI_CORE, "MachineDeployment"),
                &render::machine_deployment_name(&name, &pool.name),
            ) {
                mds.insert(pool.name.clone(), md);
            }
        }
        Observed {
            cluster: get(
                &self.owned.clusters,
                &resource(render::CAPI_CORE, "Cluster"),
                &name,
            ),
            control_plane: get(
                &self.owned.control_planes,
                &resource(render::CAPI_CONTROL_PLANE, "KubeadmControlPlane"),
                &render::control_plane_name(&name),
            ),
            machine_deployments: mds,
            certificates_expiry: self.owned.certificates.earliest(&ns, &name),
        }
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
