//! The live compliance check: a running workload cluster against its effective stack. A
//! cluster of a stack built on a base is compliant when the release itself is (every base
//! component there, see `kaas_stack::compliance`), every add-on's objects were found in the
//! workload cluster and are healthy, and every StorageClass of the application surface
//! exists. An object deleted behind the operator's back makes the cluster non-compliant for
//! the sync that finds (and puts back) it, so the condition shows what happened.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::storage::v1::StorageClass;
use kaas_stack::Release;
use kube::{Api, Client};

use crate::addons::Synced;
use crate::cluster::conformance::Verdict;

/// The static check of a release, once per release content (it renders the release and its
/// base).
fn static_findings(release: &Release, base: &Release) -> Vec<String> {
    static DONE: std::sync::LazyLock<Mutex<HashMap<String, Vec<String>>>> =
        std::sync::LazyLock::new(Mutex::default);
    let mut done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.entry(release.digest.clone())
        .or_insert_with(|| kaas_stack::compliance::verify(release, base))
        .clone()
}

/// The verdict for the `Compliant` condition, or `None` for a release without a base.
pub async fn live(release: &Release, synced: &Synced, client: &Client) -> Option<Verdict> {
    let base = release.base.as_deref()?;
    let findings = static_findings(release, base);
    if let Some(first) = findings.first() {
        return Some(Verdict::fails(
            "StackNotCompliant",
            format!("the stack {}: {first}", release.id()),
        ));
    }
    if !synced.missing.is_empty() {
        let list: Vec<String> = synced
            .missing
            .iter()
            .map(|(addon, id)| format!("{id} of add-on {addon}"))
            .collect();
        return Some(Verdict::fails(
            "ComponentMissing",
            format!(
                "{} was missing from the workload cluster; put back",
                list.join(", ")
            ),
        ));
    }
    if let Some(s) = synced.statuses.iter().find(|s| !s.ready) {
        return Some(Verdict::fails(
            "ComponentUnhealthy",
            format!(
                "add-on {}: {}",
                s.name,
                s.message.as_deref().unwrap_or("not ready")
            ),
        ));
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    for sc in base.stack.surface.iter().flat_map(|s| &s.storage_classes) {
        match classes.get_opt(&sc.name).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Some(Verdict::fails(
                    "StorageClassMissing",
                    format!(
                        "StorageClass {:?} of the application surface does not exist",
                        sc.name
                    ),
                ));
            }
            Err(e) => {
                return Some(Verdict::fails(
                    "WorkloadClusterFailed",
                    format!("reading StorageClass {}: {e}", sc.name),
                ));
            }
        }
    }
    Some(Verdict {
        ok: true,
        reason: "Compliant".into(),
        message: format!(
            "every component of base {} is present and healthy, with the standard StorageClasses",
            base.id()
        ),
    })
}
