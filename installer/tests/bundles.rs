//! The bundles and what is generated from them: `deploy/operators/` is what the installer
//! renders (a stale file fails here), the flags a `KaasOperator` may set are flags the
//! operator takes, and the installer's own objects differ from `deploy/` only by its
//! ownership labels.

use std::path::Path;

use api::install::bundles;
use clap::CommandFactory;
use installer::render::{self, Mode};

#[test]
fn committed_operator_manifests_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/operators");
    let mut stale = Vec::new();
    for provider in bundles::providers() {
        for (file, expected) in installer::deploy::files(provider).expect("renders") {
            let path = root.join(provider).join(&file);
            if std::fs::read_to_string(&path).unwrap_or_default() != expected {
                stale.push(format!("{provider}/{file}"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/operators is stale ({}): run `make manifests` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn the_committed_rbac_policy_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/installer/rbac-policy.yaml");
    assert!(
        std::fs::read_to_string(path).unwrap_or_default() == installer::deploy::rbac_policy(),
        "deploy/installer/rbac-policy.yaml is stale: run `make manifests` and commit the result"
    );
}

#[test]
fn every_flag_a_kaas_operator_may_set_is_one_the_operator_takes() {
    let command = operator_core::cli::Args::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    for bundle in bundles::ALL
        .iter()
        .filter(|b| b.version == bundles::CURRENT)
    {
        for flag in bundle.flags.iter().chain(bundles::SET_BY_INSTALLER) {
            assert!(
                known.iter().any(|k| k == flag),
                "{} {}: {flag} is not a flag of the operator ({known:?})",
                bundle.provider,
                bundle.version
            );
        }
    }
}

#[test]
fn installed_objects_are_the_deployed_ones_plus_the_ownership_labels() {
    for provider in bundles::providers() {
        let bundle = bundles::find(provider, bundles::CURRENT).unwrap();
        let op = render::default_operator(bundle);
        let deployed = render::render(&op, bundle, Mode::Deploy);
        let mut installed = render::render(&op, bundle, Mode::Installed("mine"));
        for o in &mut installed {
            let labels = o["metadata"]["labels"].as_object_mut().unwrap();
            assert_eq!(labels.remove(render::OWNER_LABEL).unwrap(), "mine");
            assert_eq!(
                labels.remove("app.kubernetes.io/managed-by").unwrap(),
                render::MANAGER
            );
        }
        assert_eq!(installed, deployed, "{provider}");
    }
}

#[test]
fn overrides_reach_the_deployment() {
    let bundle = bundles::find("docker", bundles::CURRENT).unwrap();
    let mut op = render::default_operator(bundle);
    op.spec.replicas = Some(3);
    op.spec.additional_args = [("--concurrency".to_string(), "32".to_string())].into();
    op.spec.image = Some(api::install::v1alpha1::ImageOverride {
        repository: Some("mirror.example/kaas/op".into()),
        digest: Some(format!("sha256:{}", "0".repeat(64))),
    });
    let objects = render::render(&op, bundle, Mode::Deploy);
    let d = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        format!("mirror.example/kaas/op@sha256:{}", "0".repeat(64))
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--concurrency=32"), "{args:?}");
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    // Without overrides: the bundle's repository at the version's tag.
    let plain = render::render(&render::default_operator(bundle), bundle, Mode::Deploy);
    let d = plain.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/scs-kaas/kaas-operator-docker:{}", bundles::CURRENT)
    );
}
