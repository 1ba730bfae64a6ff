//! The operator's memory of its own writes to a `KaasCluster` (finalizer, status): a
//! reconcile that runs before the watch delivers a write must not make it again. Valid only
//! while the cache shows the version the writes were made from or produced.

use std::collections::HashMap;

use api::v1beta1::KaasCluster;

use super::Context;
use crate::provider::Provider;

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

impl<P: Provider> Context<P> {
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

    pub(super) fn lock_written(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }
}
