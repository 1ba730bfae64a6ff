//! What Cluster API reports about a cluster: the objects of the watched kinds as the cache
//! decoded them ([`Observed`], [`crate::owned::Owned`]; a missing or mistyped field reads as
//! zero or false), gathered once per reconcile, and the flags the pipeline reads of them.

use api::v1beta1::KaasCluster;

use crate::owned::Owned;

/// The only Cluster API condition types read ([`control_plane_initialized`],
/// [`infrastructure_provisioned`]); the owned caches keep no others.
pub const READ_CONDITIONS: [&str; 2] = ["ControlPlaneInitialized", "InfrastructureReady"];

/// Whether Cluster API reports the control plane initialized (the workload API answers).
pub fn control_plane_initialized(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        c.initialized(|i| i.control_plane_initialized) || c.condition_true(READ_CONDITIONS[0])
    })
}

/// Whether Cluster API reports the infrastructure provisioned.
pub(super) fn infrastructure_provisioned(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        c.initialized(|i| i.infrastructure_provisioned) || c.condition_true(READ_CONDITIONS[1])
    })
}

/// The Cluster API objects of the cluster as last observed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The `Cluster`.
    pub cluster: Option<Owned>,
    /// The `KubeadmControlPlane`.
    pub control_plane: Option<Owned>,
    /// The `MachineDeployment`s, by pool name.
    pub machine_deployments: std::collections::BTreeMap<String, Owned>,
    /// The objects of the provider's own watched kinds ([`crate::Provider::EXTRA_KINDS`]), by
    /// kind and name.
    pub extra: std::collections::BTreeMap<(String, String), Owned>,
    /// When the first control plane certificate expires (the earliest control plane
    /// `Machine`'s `status.certificatesExpiryDate`).
    pub certificates_expiry: Option<k8s_openapi::jiff::Timestamp>,
    /// Where each `TenantPolicy` whose status lists the cluster's namespace stands.
    pub policies: Vec<api::tenancy::Standing>,
}

impl Observed {
    /// What is observed of `cluster`: for each of the `watched` kinds, the object the kind
    /// names for the cluster (one per pool for a kind per pool), as `find` has it by kind and
    /// name.
    pub fn of(
        watched: &[crate::kinds::Kind],
        cluster: &KaasCluster,
        find: impl Fn(&crate::kinds::Kind, &str) -> Option<Owned>,
    ) -> Observed {
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        let pools: Vec<Option<&str>> = cluster
            .spec
            .workers
            .iter()
            .map(|p| Some(p.name.as_str()))
            .collect();
        let mut observed = Observed::default();
        for kind in watched {
            let of_kind = if kind.per_pool() {
                pools.as_slice()
            } else {
                &[None]
            };
            for pool in of_kind {
                if let Some(found) = kind.name(name, *pool).and_then(|n| find(kind, &n)) {
                    observed.place(kind, *pool, found);
                }
            }
        }
        observed
    }

    /// Puts `found`, an object of `kind` (of `pool`, for a kind per pool), where the status
    /// reads it.
    pub fn place(&mut self, kind: &crate::kinds::Kind, pool: Option<&str>, found: Owned) {
        use crate::kinds::{CLUSTER, CONTROL_PLANE, MACHINE_DEPLOYMENT};
        match (*kind, pool) {
            (CLUSTER, _) => self.cluster = Some(found),
            (CONTROL_PLANE, _) => self.control_plane = Some(found),
            (MACHINE_DEPLOYMENT, Some(pool)) => {
                self.machine_deployments.insert(pool.to_string(), found);
            }
            _ => {
                let name = found.metadata.name.clone().unwrap_or_default();
                self.extra.insert((kind.kind.to_string(), name), found);
            }
        }
    }
}
