//! scs-0211 v1, a default StorageClass: the workload cluster has a StorageClass marked
//! default, so a PersistentVolumeClaim without a class gets a volume. The base stack's
//! application surface names one (`surface.storageClasses[].default`), which a provider's
//! overlay ships as an add-on; one deleted is put back by the add-on sync, and the sync that
//! found it missing reports the failure.

use kaas_stack::Release;

use super::{Evidence, Finding, Outcome};

/// The standard's id.
pub const ID: &str = "scs-0211-v1";

pub(super) fn check(e: &Evidence<'_>) -> Finding {
    let workload = match &e.workload {
        Ok(w) => w,
        Err(why) => return Finding::new(ID, Outcome::Unknown, why.clone()),
    };
    let defaults: Vec<&str> = workload
        .storage_classes
        .iter()
        .filter(|(_, default)| *default)
        .map(|(name, _)| name.as_str())
        .collect();
    if let Some(restored) = workload.restored_storage_classes.iter().find(|r| {
        defaults.contains(&r.as_str())
            || e.release
                .stack
                .surface
                .as_ref()
                .is_some_and(|s| s.storage_classes.iter().any(|c| c.default && &c.name == *r))
    }) {
        return Finding::new(
            ID,
            Outcome::Fail,
            format!(
                "the default StorageClass {restored:?} was missing from the workload cluster; put back"
            ),
        );
    }
    match defaults.as_slice() {
        [] => Finding::new(
            ID,
            Outcome::Fail,
            "no StorageClass is marked default (annotation storageclass.kubernetes.io/is-default-class: \"true\")",
        ),
        [one] => Finding::new(
            ID,
            Outcome::Pass,
            format!("StorageClass {one:?} is the default"),
        ),
        many => Finding::new(
            ID,
            Outcome::Pass,
            format!(
                "StorageClasses {} are marked default (Kubernetes picks the newest)",
                many.join(", ")
            ),
        ),
    }
}

/// The release's side: its application surface names a default StorageClass.
pub(super) fn check_static(release: &Release) -> Finding {
    match release
        .stack
        .surface
        .iter()
        .flat_map(|s| &s.storage_classes)
        .find(|c| c.default)
    {
        Some(c) => Finding::new(
            ID,
            Outcome::Pass,
            format!("the surface's default StorageClass is {:?}", c.name),
        ),
        None => Finding::new(
            ID,
            Outcome::Fail,
            "the application surface names no default StorageClass",
        ),
    }
}
