//! Whether a provider's release keeps its promise to users: every component of the base is
//! still there and still the same component. A provider may add add-ons, set variables and
//! patch base manifests (configuration), but a base add-on that is missing, at another
//! version, missing one of its objects or running another image, or a StorageClass of the
//! application surface that is not provided, makes the release non-compliant.
//! `kaasctl stack verify` runs this; the operator reports it in the `Compliant` condition.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::release::Release;
use crate::template::{ClusterValues, RenderedAddon, render_addons};

/// Every way `release` departs from `base`, one line each naming the component. Empty when
/// it is compliant.
pub fn verify(release: &Release, base: &Release) -> Vec<String> {
    let mut findings = Vec::new();
    let stack = &release.stack;
    for b in &base.stack.addons {
        match stack.addons.iter().find(|a| a.name == b.name) {
            None if stack.disable.contains(&b.name) => findings.push(format!(
                "base add-on {:?} is missing: the overlay disables it",
                b.name
            )),
            None => findings.push(format!("base add-on {:?} is missing", b.name)),
            Some(a) if a.version != b.version => findings.push(format!(
                "base add-on {:?} is altered: version {}, the base has {}",
                b.name, a.version, b.version
            )),
            Some(_) => {}
        }
    }
    // Render both for the same sample cluster and compare the base's objects.
    let version = stack
        .kubernetes_versions
        .iter()
        .find(|v| base.stack.kubernetes_versions.contains(v))
        .or(stack.kubernetes_versions.first());
    let Some(version) = version else {
        findings.push("the release supports no Kubernetes version of its base".into());
        return findings;
    };
    let mine = render_addons(
        release,
        &ClusterValues::sample(&stack.provider, version),
        &[],
    );
    let theirs = render_addons(base, &ClusterValues::sample(&stack.provider, version), &[]);
    let (mine, theirs) = match (mine, theirs) {
        (Ok(m), Ok(t)) => (m, t),
        (Err(e), _) => {
            findings.push(format!("the release does not render: {e}"));
            return findings;
        }
        (_, Err(e)) => {
            findings.push(format!("the base does not render: {e}"));
            return findings;
        }
    };
    for b in &theirs {
        let Some(m) = mine.iter().find(|m| m.name == b.name) else {
            continue; // reported above
        };
        for obj in &b.objects {
            let id = identity(obj);
            match m.objects.iter().find(|o| identity(o) == id) {
                None => findings.push(format!("base add-on {:?}: {id} is missing", b.name)),
                Some(o) if images(o) != images(obj) => findings.push(format!(
                    "base add-on {:?}: {id} is altered: runs {}, the base runs {}",
                    b.name,
                    list(&images(o)),
                    list(&images(obj))
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(surface) = &base.stack.surface {
        for sc in &surface.storage_classes {
            match storage_class(&mine, &sc.name) {
                None => findings.push(format!(
                    "StorageClass {:?} of the application surface is not provided by any add-on",
                    sc.name
                )),
                Some(o) if sc.default && !is_default(o) => findings.push(format!(
                    "StorageClass {:?} of the application surface is not marked the default class",
                    sc.name
                )),
                Some(_) => {}
            }
        }
    }
    findings
}

/// `Kind namespace/name` of an object.
pub fn identity(obj: &Value) -> String {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .map_or_else(String::new, |n| format!("{n}/"));
    format!(
        "{} {ns}{}",
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Whether a StorageClass object is annotated as the cluster's default.
pub fn is_default(sc: &Value) -> bool {
    sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
}

fn storage_class<'a>(addons: &'a [RenderedAddon], name: &str) -> Option<&'a Value> {
    addons
        .iter()
        .flat_map(|a| &a.objects)
        .find(|o| o["kind"] == "StorageClass" && o["metadata"]["name"] == name)
}

/// Every container image of a workload object (pod template containers and init containers).
fn images(obj: &Value) -> BTreeSet<String> {
    let spec = &obj["spec"]["template"]["spec"];
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec[k].as_array())
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

fn list(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}
