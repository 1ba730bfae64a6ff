//! Base stack + provider overlay → the effective release, computed here once for the operator
//! and the command-line tool alike. The base is defined once (kubeadm settings, the CNI, the
//! standard applications, the application surface); a provider's release names it in `base`
//! and holds only its overlay: its own add-ons (cloud controller manager, CSI driver),
//! variables it adds or whose defaults it sets (the MTU), patches to base manifests, its node
//! images and Kubernetes versions.
//!
//! The effective release carries the base's files under `base/`, so a built artifact is
//! self-contained: loading it again needs nothing but itself.

use std::collections::BTreeMap;

use crate::error::Problem;
use crate::format::{BASE_PROVIDER, STACK_FILE, StackFile};
use crate::release::Release;

/// Folder of the base's files inside an effective release.
pub const BASE_DIR: &str = "base/";

/// The effective `stack.yaml` and files of `overlay` (with its own `files`, none under
/// `base/`) on top of `base`, or every problem of the combination.
pub fn compose(
    base: &Release,
    overlay: &StackFile,
    files: &BTreeMap<String, String>,
) -> Result<(StackFile, BTreeMap<String, String>), Vec<Problem>> {
    let mut problems = Vec::new();
    let b = &base.stack;
    if b.provider != BASE_PROVIDER {
        problems.push(Problem::new(
            STACK_FILE,
            "base",
            format!(
                "{}/{} {} is a {} stack, not a base (provider: {BASE_PROVIDER})",
                b.provider, b.name, b.version, b.provider
            ),
        ));
    }
    if overlay.provider == BASE_PROVIDER {
        problems.push(Problem::new(
            STACK_FILE,
            "provider",
            "a base cannot build on another base",
        ));
    }
    if overlay.surface.is_some() {
        problems.push(Problem::new(
            STACK_FILE,
            "surface",
            "only a base declares the application surface",
        ));
    }
    let mut stack = overlay.clone();
    stack.surface = b.surface.clone();

    if stack.kubernetes_versions.is_empty() {
        stack.kubernetes_versions = b.kubernetes_versions.clone();
    }
    for (i, v) in overlay.kubernetes_versions.iter().enumerate() {
        if !b.kubernetes_versions.contains(v) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("kubernetesVersions[{i}]"),
                format!(
                    "{v} is not supported by base {} {} ({})",
                    b.name,
                    b.version,
                    b.kubernetes_versions.join(", ")
                ),
            ));
        }
    }

    let k = &mut stack.kubeadm;
    let merge = |base: &BTreeMap<String, String>, over: &BTreeMap<String, String>| {
        let mut m = base.clone();
        m.extend(over.clone());
        m
    };
    k.api_server_extra_args = merge(
        &b.kubeadm.api_server_extra_args,
        &overlay.kubeadm.api_server_extra_args,
    );
    k.controller_manager_extra_args = merge(
        &b.kubeadm.controller_manager_extra_args,
        &overlay.kubeadm.controller_manager_extra_args,
    );
    k.scheduler_extra_args = merge(
        &b.kubeadm.scheduler_extra_args,
        &overlay.kubeadm.scheduler_extra_args,
    );
    k.kubelet_extra_args = merge(
        &b.kubeadm.kubelet_extra_args,
        &overlay.kubeadm.kubelet_extra_args,
    );
    k.pre_kubeadm_commands = [
        b.kubeadm.pre_kubeadm_commands.clone(),
        overlay.kubeadm.pre_kubeadm_commands.clone(),
    ]
    .concat();
    k.post_kubeadm_commands = [
        b.kubeadm.post_kubeadm_commands.clone(),
        overlay.kubeadm.post_kubeadm_commands.clone(),
    ]
    .concat();
    k.pod_security = match (&b.kubeadm.pod_security, &overlay.kubeadm.pod_security) {
        (None, over) => over.clone(),
        (Some(base), None) => Some(base.clone()),
        (Some(base), Some(over)) => {
            let mut exempt = base.exempt_namespaces.clone();
            exempt.extend(over.exempt_namespaces.iter().cloned());
            exempt.sort();
            exempt.dedup();
            Some(crate::format::PodSecurity {
                enforce: over.enforce.clone().or_else(|| base.enforce.clone()),
                audit: over.audit.clone().or_else(|| base.audit.clone()),
                warn: over.warn.clone().or_else(|| base.warn.clone()),
                exempt_namespaces: exempt,
            })
        }
    };
    k.certificates_expiry_days = overlay
        .kubeadm
        .certificates_expiry_days
        .or(b.kubeadm.certificates_expiry_days);
    k.registry_mirrors = api::v1beta1::RegistryMirror::merged(
        &b.kubeadm.registry_mirrors,
        &overlay.kubeadm.registry_mirrors,
    );
    stack.kubernetes_calendar = match (&b.kubernetes_calendar, &overlay.kubernetes_calendar) {
        (None, over) => over.clone(),
        (Some(base), None) => Some(base.clone()),
        (Some(base), Some(over)) => {
            let mut calendar = base.clone();
            calendar.released.extend(over.released.clone());
            calendar.end_of_life.extend(over.end_of_life.clone());
            Some(calendar)
        }
    };

    let mut variables = b.variables.clone();
    for (name, v) in &overlay.variables {
        if let Some(old) = b.variables.get(name)
            && old.type_ != v.type_
        {
            problems.push(Problem::new(
                STACK_FILE,
                format!("variables.{name}.type"),
                format!("the base declares {name} as {:?}", old.type_).to_lowercase(),
            ));
        }
        variables.insert(name.clone(), v.clone());
    }
    stack.variables = variables;

    for (i, name) in overlay.disable.iter().enumerate() {
        if !b.addons.iter().any(|a| &a.name == name) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("disable[{i}]"),
                format!("{name:?} is not an add-on of base {} {}", b.name, b.version),
            ));
        }
    }
    let mut addons: Vec<_> = b
        .addons
        .iter()
        .filter(|a| !overlay.disable.contains(&a.name))
        .cloned()
        .map(|mut a| {
            for m in &mut a.manifests {
                *m = format!("{BASE_DIR}{m}");
            }
            // A disabled dependency is gone: the dependant no longer waits for it.
            a.depends_on.retain(|d| !overlay.disable.contains(d));
            a
        })
        .collect();
    for (i, a) in overlay.addons.iter().enumerate() {
        if b.addons.iter().any(|x| x.name == a.name) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("addons[{i}].name"),
                format!(
                    "{:?} is an add-on of the base; an overlay changes it with patches",
                    a.name
                ),
            ));
        }
        let mut a = a.clone();
        a.depends_on.retain(|d| !overlay.disable.contains(d));
        addons.push(a);
    }
    stack.addons = addons;

    for (i, p) in overlay.patches.iter().enumerate() {
        if !b.addons.iter().any(|a| a.name == p.addon) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("patches[{i}].addon"),
                format!(
                    "{:?} is not an add-on of base {} {}",
                    p.addon, b.name, b.version
                ),
            ));
        }
        if !files.contains_key(&p.file) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("patches[{i}].file"),
                format!("file {:?} is not in the release", p.file),
            ));
        }
    }

    let mut all = files.clone();
    for (path, content) in &base.files {
        all.insert(format!("{BASE_DIR}{path}"), content.clone());
    }
    if problems.is_empty() {
        Ok((stack, all))
    } else {
        Err(problems)
    }
}

/// Applies the merge patch `patch` to `target` (RFC 7386: objects merge, `null` removes,
/// anything else replaces).
pub fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, Value::Object(_)) => {
            *t = Value::Object(serde_json::Map::new());
            merge(t, patch);
        }
        (t, p) => *t = p.clone(),
    }
}
