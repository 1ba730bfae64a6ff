//! Every registered provider has what a release of it needs, and nothing of a provider exists
//! unregistered: its crate with the operator binary, a stack overlay for it, ready-to-apply
//! examples whose cluster builds into its registered kinds, a deploy overlay that runs its
//! image and grants its kinds, and a container file that builds its binary.

use std::path::{Path, PathBuf};

use api::v1beta1::{KaasCluster, ProviderClass};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(root().join(path)).map_err(|e| format!("{path}: {e}"))
}

/// The folders under `dir`, without `except`.
fn folders(dir: &str, except: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !except.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

/// Every object of kind `kind` in the YAML files of `examples/<provider>/`.
fn examples<T: serde::de::DeserializeOwned>(provider: &str, kind: &str) -> Vec<T> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("examples").join(provider)).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs.into_iter().filter(|d| d["kind"] == kind) {
            found.push(serde_json::from_value(doc).unwrap());
        }
    }
    found
}

fn problems_of(p: &kaas_providers::Registered) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{}: {what}", p.name));
        }
    };
    let name = p.name;
    // The crate and its binary.
    match read(&format!("providers/{name}/Cargo.toml")) {
        Ok(manifest) => check(
            manifest.contains(&format!("name = \"{}\"", p.binary)),
            format!("providers/{name}/Cargo.toml has no [[bin]] {}", p.binary),
        ),
        Err(e) => check(false, e),
    }
    // The container file builds that binary.
    match read(&format!("providers/{name}/Containerfile")) {
        Ok(file) => check(
            file.contains(&format!("--bin {}", p.binary))
                && file.contains(&format!("ENTRYPOINT [\"/{}\"]", p.binary)),
            format!(
                "providers/{name}/Containerfile must build --bin {} and run it",
                p.binary
            ),
        ),
        Err(e) => check(false, e),
    }
    // The stack overlay.
    match read(&format!("stacks/{name}/stack.yaml")) {
        Ok(stack) => check(
            stack.contains(&format!("provider: {name}\n")),
            format!("stacks/{name}/stack.yaml is not for provider {name}"),
        ),
        Err(e) => check(false, e),
    }
    // The install bundle of this release: the provider's image, its kinds granted; and
    // deploy/operators/<name>, rendered from it, running that image.
    let bundle = api::install::bundles::find(name, api::install::bundles::CURRENT);
    check(
        bundle.is_some(),
        format!("api/src/install/bundles.rs has no bundle of {name} for this release"),
    );
    match read(&format!("deploy/operators/{name}/operator.yaml")) {
        Ok(k) => check(
            k.contains(&format!("image: ghcr.io/scs-kaas/{}:", p.binary)),
            format!(
                "deploy/operators/{name} does not run the image of {}",
                p.binary
            ),
        ),
        Err(e) => check(false, e),
    }
    let granted: Vec<&str> = bundle
        .iter()
        .flat_map(|b| b.infrastructure_rules)
        .flat_map(|r| r.resources.iter().copied())
        .collect();
    for kind in [p.kinds.cluster, p.kinds.machine_template]
        .into_iter()
        .chain(p.shared_kinds.iter().map(|(_, k)| *k))
    {
        let plural = format!("{}s", kind.to_lowercase());
        check(
            granted.contains(&plural.as_str()),
            format!("the bundle of {name} does not grant {plural}"),
        );
    }
    // The examples: the class the registry carries, and a cluster of the registered name.
    let classes: Vec<ProviderClass> = examples(name, "ProviderClass");
    let registered: ProviderClass = serde_saphyr::from_str(p.example_class).unwrap();
    check(
        classes.len() == 1 && classes[0] == registered,
        format!("examples/{name} must hold exactly the registered class"),
    );
    check(
        registered.spec.controller == format!("kaas.scs.community/{name}"),
        format!(
            "the example class names controller {}",
            registered.spec.controller
        ),
    );
    let clusters: Vec<KaasCluster> = examples(name, "KaasCluster");
    check(
        clusters.len() == 1 && clusters[0].metadata.name.as_deref() == Some(p.example_cluster),
        format!(
            "examples/{name} must hold the one cluster {}",
            p.example_cluster
        ),
    );
    problems
}

#[test]
fn every_registered_provider_is_packaged() {
    let problems: Vec<String> = kaas_providers::ALL.iter().flat_map(problems_of).collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn nothing_of_a_provider_exists_unregistered() {
    let mut registered: Vec<String> = kaas_providers::ALL
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    registered.sort();
    for (dir, except) in [
        ("providers", &["registry"][..]),
        ("stacks", &["base"][..]),
        ("examples", &[][..]),
        ("deploy/operators", &[][..]),
    ] {
        assert_eq!(folders(dir, except), registered, "folders under {dir}/");
    }
}

#[test]
fn each_example_builds_into_its_registered_kinds() {
    for p in &kaas_providers::ALL {
        let class: ProviderClass = serde_saphyr::from_str(p.example_class).unwrap();
        let cluster = examples::<KaasCluster>(p.name, "KaasCluster").remove(0);
        let mut cluster = cluster;
        cluster.metadata.namespace = Some("packaging".into());
        let stacks = examples(p.name, "ClusterStack")
            .into_iter()
            .map(|s| operator_core::offline::verified(s, &[]))
            .collect::<Vec<_>>();
        let built = kaas_providers::build(&class, &stacks, cluster, &[])
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let objects = &built.objects;
        assert_eq!(
            objects.infrastructure_cluster["kind"], p.kinds.cluster,
            "{}",
            p.name
        );
        assert_eq!(
            objects.control_plane_template["kind"], p.kinds.machine_template,
            "{}",
            p.name
        );
        assert_eq!(
            objects.infrastructure_cluster["apiVersion"], p.kinds.api_version,
            "{}",
            p.name
        );
        for shared in &built.node_images {
            let kind = (
                shared["apiVersion"].as_str().unwrap_or_default(),
                shared["kind"].as_str().unwrap_or_default(),
            );
            assert!(
                p.shared_kinds.contains(&kind),
                "{}: {kind:?} not registered",
                p.name
            );
        }
    }
}

#[test]
fn a_provider_nobody_registered_is_refused_by_name() {
    let class: ProviderClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "vs"}, "spec": {"controller": "kaas.scs.community/vsphere"}}))
    .unwrap();
    let cluster: KaasCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {"providerClassName": "vs", "clusterStack": {"name": "scs"}}}))
    .unwrap();
    let e = kaas_providers::build(&class, &[], cluster, &[]).unwrap_err();
    assert!(
        e.contains("provider \"vsphere\" is not one this build knows (docker, openstack, hetzner)"),
        "{e}"
    );
}
