//! What changed between two effective releases, for people: add-on versions, Kubernetes
//! versions, node images, variables and the base. The release bot (`kaasctl stack update`)
//! writes it as the changelog entry and the pull request's body, so a reviewer sees what a new
//! release brings without diffing manifests.

use std::collections::BTreeMap;

use crate::release::Release;

/// One line per change from `old` to `new`, in a stable order (base, Kubernetes versions,
/// node images, add-ons, variables). Empty when the two releases offer the same.
pub fn changes(old: &Release, new: &Release) -> Vec<String> {
    let mut out = Vec::new();
    let (o, n) = (&old.stack, &new.stack);
    if let (Some(ob), Some(nb)) = (&o.base, &n.base)
        && ob != nb
    {
        out.push(format!(
            "base {} {} -> {} {}",
            ob.name, ob.version, nb.name, nb.version
        ));
    }
    out.extend(set_changes(
        "Kubernetes",
        &o.kubernetes_versions,
        &n.kubernetes_versions,
    ));
    let images = |r: &Release| -> Vec<String> {
        r.stack
            .node_images
            .iter()
            .map(|i| format!("{} ({})", i.name, i.kubernetes_version))
            .collect()
    };
    out.extend(set_changes("node image", &images(old), &images(new)));
    let addons = |r: &Release| -> BTreeMap<String, String> {
        r.stack
            .addons
            .iter()
            .map(|a| (a.name.clone(), a.version.clone()))
            .collect()
    };
    let (oa, na) = (addons(old), addons(new));
    for (name, version) in &na {
        match oa.get(name) {
            None => out.push(format!("add-on {name} {version} added")),
            Some(before) if before != version => {
                out.push(format!("add-on {name} {before} -> {version}"))
            }
            Some(_) => {}
        }
    }
    for (name, version) in &oa {
        if !na.contains_key(name) {
            out.push(format!("add-on {name} {version} removed"));
        }
    }
    let shown = |v: &crate::format::Variable| {
        v.default
            .as_ref()
            .map_or_else(|| "none".to_string(), |d| d.to_string())
    };
    for (name, v) in &n.variables {
        match o.variables.get(name) {
            None => out.push(format!("variable {name} added (default {})", shown(v))),
            Some(before) if before.default != v.default => out.push(format!(
                "variable {name}: default {} -> {}",
                shown(before),
                shown(v)
            )),
            Some(before) if before != v => {
                out.push(format!("variable {name}: type or bounds changed"))
            }
            Some(_) => {}
        }
    }
    for name in o.variables.keys() {
        if !n.variables.contains_key(name) {
            out.push(format!("variable {name} removed"));
        }
    }
    out
}

/// `what X added` and `what X removed` for the items of `new` not in `old` and back.
fn set_changes(what: &str, old: &[String], new: &[String]) -> Vec<String> {
    let added = new
        .iter()
        .filter(|v| !old.contains(v))
        .map(|v| format!("{what} {v} added"));
    let removed = old
        .iter()
        .filter(|v| !new.contains(v))
        .map(|v| format!("{what} {v} removed"));
    added.chain(removed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(stack: &str) -> Release {
        let files = BTreeMap::from([
            ("stack.yaml".to_string(), stack.as_bytes().to_vec()),
            (
                "addons/a.yaml".to_string(),
                b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: kube-system}\n"
                    .to_vec(),
            ),
        ]);
        Release::from_files(files).unwrap()
    }

    #[test]
    fn every_kind_of_change_is_one_line() {
        let old = release(
            "provider: base\nname: scs\nversion: 1.0.0\nkubernetesVersions: [\"1.33.4\", \"1.34.1\"]\n\
             variables: {mtu: {type: integer, default: 1500}, gone: {type: string}}\n\
             addons:\n- {name: cilium, version: 1.18.3, manifests: [addons/a.yaml]}\n\
             - {name: old, version: 0.1.0, manifests: [addons/a.yaml]}\n",
        );
        let new = release(
            "provider: base\nname: scs\nversion: 1.0.1\nkubernetesVersions: [\"1.34.1\", \"1.34.2\"]\n\
             variables: {mtu: {type: integer, default: 1450}, fresh: {type: boolean, default: true}}\n\
             addons:\n- {name: cilium, version: 1.18.4, manifests: [addons/a.yaml]}\n\
             - {name: csi, version: 2.0.0, manifests: [addons/a.yaml]}\n",
        );
        assert_eq!(
            changes(&old, &new),
            [
                "Kubernetes 1.34.2 added",
                "Kubernetes 1.33.4 removed",
                "add-on cilium 1.18.3 -> 1.18.4",
                "add-on csi 2.0.0 added",
                "add-on old 0.1.0 removed",
                "variable fresh added (default true)",
                "variable mtu: default 1500 -> 1450",
                "variable gone removed",
            ]
        );
        assert!(changes(&new, &new).is_empty());
    }
}
