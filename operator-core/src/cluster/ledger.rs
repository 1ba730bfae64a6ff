//! Everything the operator remembers about a cluster between reconciles, with one
//! [`Ledger::forget`] when the cluster is gone: its own writes to the `KaasCluster` the watch
//! has not delivered yet ([`Written`]: a reconcile that runs before the watch delivers a write
//! must not make it again), the shared node images it is recorded as a user of, the workload
//! cluster's client, and (kept by the applier, forgotten with the rest) what was applied to
//! each of its objects.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use api::v1beta1::KaasCluster;

use crate::addons::Workloads;
use crate::apply::Applier;

/// What the operator remembers between reconciles.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Own writes not yet delivered by the watch, by cluster uid.
    written: Mutex<HashMap<String, Written>>,
    /// Shared objects already labelled with a cluster using them: (namespace, cluster,
    /// `kind/name` of the object).
    image_users: Mutex<HashSet<(String, String, String)>>,
    /// Clients of the workload clusters.
    pub workloads: Workloads,
}

/// The finalizer and status this process last wrote to one cluster, valid while the cache
/// shows the version of the object the writes were made from, or one these writes produced
/// (nobody else changed the object since).
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// `metadata.resourceVersion` of the cached object the writes were made from, then of
    /// each write's result.
    pub versions: Vec<Option<String>>,
    /// The finalizer was added.
    pub finalizer: bool,
    /// The status last applied.
    pub status: Option<api::v1beta1::KaasClusterStatus>,
}

impl Ledger {
    /// What this process wrote from the cached version of `cluster` that the cache does not
    /// show yet; nothing once the cache moved on (it then holds the writes, or newer news).
    ///
    /// A record is dropped once the cache shows the result of its last write, or has moved
    /// past it: the map holds only clusters with writes the watch has not delivered yet, not
    /// a copy of every converged cluster's status (tens of MiB at 10,000 clusters).
    pub(super) fn written(&self, cluster: &KaasCluster) -> Written {
        let Some(uid) = cluster.metadata.uid.as_ref() else {
            return Written::default();
        };
        let rv = &cluster.metadata.resource_version;
        let mut all = self.lock_written();
        match all.get(uid) {
            Some(w) if w.versions.last() != Some(rv) && w.versions.contains(rv) => w.clone(),
            Some(_) => {
                all.remove(uid);
                Written::default()
            }
            None => Written::default(),
        }
    }

    /// Records a write made from the cached `cluster` that produced version `now`.
    pub(super) fn remember(
        &self,
        cluster: &KaasCluster,
        now: Option<String>,
        update: impl FnOnce(&mut Written),
    ) {
        if let Some(uid) = &cluster.metadata.uid {
            let mut all = self.lock_written();
            let w = all.entry(uid.clone()).or_default();
            if !w.versions.contains(&cluster.metadata.resource_version) {
                *w = Written {
                    versions: vec![cluster.metadata.resource_version.clone()],
                    ..Written::default()
                };
            }
            w.versions.push(now);
            update(w);
        }
    }

    fn lock_written(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_users(&self) -> MutexGuard<'_, HashSet<(String, String, String)>> {
        self.image_users.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn use_key(namespace: &str, user: &str, object: &str) -> (String, String, String) {
        (namespace.into(), user.into(), object.into())
    }

    /// Whether cluster `user` of `namespace` is recorded as a user of the shared object
    /// `object` (`kind/name`, in the same namespace).
    pub(super) fn uses(&self, namespace: &str, user: &str, object: &str) -> bool {
        self.lock_users()
            .contains(&Self::use_key(namespace, user, object))
    }

    /// Records cluster `user` of `namespace` as a user of the shared object `object`.
    pub(super) fn record_use(&self, namespace: &str, user: &str, object: &str) {
        self.lock_users()
            .insert(Self::use_key(namespace, user, object));
    }

    /// Forgets everything about `cluster` (deleted): its writes, its uses of shared objects,
    /// its workload client, and what `applier` applied of its objects.
    pub(super) fn forget(&self, cluster: &KaasCluster, applier: &Applier) {
        let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
        let name = cluster.metadata.name.as_deref().unwrap_or_default();
        if let Some(uid) = &cluster.metadata.uid {
            self.lock_written().remove(uid);
        }
        self.lock_users()
            .retain(|(ns, user, _)| !(ns == namespace && user == name));
        self.workloads.forget(namespace, name);
        applier.forget_cluster(namespace, name);
    }
}
