//! The committed CRDs in `deploy/crds/` are what the Rust types generate, and generating
//! every kind's CRD works (a schema problem panics here, not in a deployment).

use std::path::Path;

use kube::CustomResourceExt;

#[test]
fn committed_crds_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let mut stale = Vec::new();
    for (file, expected) in api::crds::render_all().expect("CRDs render") {
        let path = dir.join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/crds is stale ({}): run `make manifests` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn every_kind_has_a_crd_with_documented_fields() {
    let crds = [
        api::v1alpha1::KaasCluster::crd(),
        api::v1beta1::KaasCluster::crd(),
        api::v1beta1::ProviderClass::crd(),
        api::v1beta1::ClusterStack::crd(),
        api::install::v1alpha1::KaasOperator::crd(),
    ];
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
                || name.starts_with("providerclasses"),
            "{name} needs the status subresource"
        );
        let schema = serde_json::to_value(&version.schema).expect("schema serializes");
        let mut undocumented = Vec::new();
        find_undocumented(&schema["openAPIV3Schema"], "", &mut undocumented);
        // metav1.Condition comes from k8s-openapi, documented upstream.
        undocumented.retain(|p| !p.contains(".conditions[]"));
        assert!(
            undocumented.is_empty(),
            "{name} {}: fields without a doc comment: {undocumented:?}",
            version.name
        );
    }
}

fn find_undocumented(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (key, sub) in props {
            let p = format!("{path}.{key}");
            let skip =
                path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&key.as_str());
            if !skip && sub.get("description").is_none() {
                out.push(p.clone());
            }
            find_undocumented(sub, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        find_undocumented(items, &format!("{path}[]"), out);
    }
}
