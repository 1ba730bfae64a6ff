//! The planning step: a cluster, the catalog and what Cluster API shows in; a plan of what
//! this reconcile renders, or the reason it stops, out. No client, no provider call.

mod support;

use api::v1beta1::KaasClusterStatus;
use operator_core::plan::{self, Stop};
use operator_core::status::Observed;
use support::FakeProvider;

const SPEC: &str = r#"
providerClassName: fake
clusterStack: {name: scs, version: 1.1.0}
kubernetesVersion: "1.34"
controlPlane: {replicas: 1, machineType: m1}
workers: [{name: md-0, replicas: 2, machineType: m2}]
"#;

fn releases() -> Vec<api::v1beta1::ClusterStack> {
    vec![
        support::release("1.0.0", &["1.33.4", "1.34.1"], &[]),
        support::release("1.1.0", &["1.33.4", "1.34.1", "1.35.0"], &["1.0.0"]),
        support::release("1.2.0", &["1.34.1", "1.35.0"], &["1.1.0"]),
    ]
}

#[test]
fn a_new_cluster_is_planned_at_its_target_with_defaults_applied() {
    let catalog = support::catalog(releases());
    let p = plan::plan(
        &FakeProvider,
        &support::cluster(SPEC),
        &catalog,
        &Observed::default(),
    )
    .expect("a plan");
    assert_eq!(
        p.target.kubernetes_version, "1.34.1",
        "1.34 follows the newest patch"
    );
    assert_eq!(p.target.stack.spec.version, "1.1.0");
    assert_eq!(p.decision.control_plane_version, "1.34.1");
    assert_eq!(p.decision.workers_version, "1.34.1");
    assert!(p.decision.upgrade.is_none());
    assert!(!p.pools_apart());
    assert!(p.workers_stack.is_none());
    assert_eq!(p.available_upgrades, ["1.2.0"]);
    // Defaulting happened once, in the plan: the networks are filled in.
    assert!(!p.cluster.spec.network.pod_cidrs.is_empty());
    assert_eq!(p.class.metadata.name.as_deref(), Some("fake"));
}

#[test]
fn every_problem_of_the_spec_and_the_provider_config_stops_with_its_field() {
    let catalog = support::catalog(releases());
    let bad = support::cluster(&format!("{SPEC}providerConfig: {{regoin: here}}\n"));
    let mut bad = bad;
    bad.spec.workers[0].replicas = -1;
    match plan::plan(&FakeProvider, &bad, &catalog, &Observed::default()) {
        Err(Stop::Invalid(problems)) => {
            assert!(problems.contains("spec.workers[0].replicas"), "{problems}");
            assert!(
                problems.contains("spec.providerConfig.regoin"),
                "{problems}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_release_or_an_unsupported_version_stops_naming_the_field() {
    let catalog = support::catalog(releases());
    // The shared validation (the webhook's too) knows the catalog: it names the field.
    let unknown = support::cluster(&SPEC.replace("1.1.0", "9.9.9"));
    match plan::plan(&FakeProvider, &unknown, &catalog, &Observed::default()) {
        Err(Stop::Invalid(problems)) => assert!(
            problems.contains("spec.clusterStack.version")
                && problems.contains("\"scs\" 9.9.9 for provider \"fake\" not found"),
            "{problems}"
        ),
        other => panic!("{other:?}"),
    }
    let old_minor = support::cluster(
        &SPEC
            .replace("1.1.0", "1.2.0")
            .replace("\"1.34\"", "\"1.33\""),
    );
    match plan::plan(&FakeProvider, &old_minor, &catalog, &Observed::default()) {
        Err(Stop::Invalid(problems)) => assert!(
            problems.contains("spec.kubernetesVersion: 1.33 is not supported by stack"),
            "{problems}"
        ),
        other => panic!("{other:?}"),
    }
}

fn running(version: &str, stack: &str) -> KaasClusterStatus {
    KaasClusterStatus {
        kubernetes_version: Some(version.into()),
        cluster_stack_version: Some(stack.into()),
        ..Default::default()
    }
}

#[test]
fn a_downgrade_cannot_be_planned() {
    let catalog = support::catalog(releases());
    let mut cluster = support::cluster(SPEC);
    cluster.status = Some(running("1.35.0", "1.1.0"));
    match plan::plan(&FakeProvider, &cluster, &catalog, &Observed::default()) {
        Err(Stop::UpgradeNotPossible {
            kubernetes_version,
            message,
        }) => {
            assert_eq!(kubernetes_version, "1.34.1");
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mid_upgrade_the_pools_stay_on_the_release_and_version_they_run() {
    let catalog = support::catalog(releases());
    let mut cluster = support::cluster(SPEC);
    let mut status = running("1.33.4", "1.0.0");
    status.upgrade = Some(support::upgrade(&["1.34.1"], "ControlPlane"));
    cluster.status = Some(status);
    // Nothing of Cluster API is observed: the control plane stage is not finished.
    let p = plan::plan(&FakeProvider, &cluster, &catalog, &Observed::default()).expect("a plan");
    assert_eq!(p.decision.control_plane_version, "1.34.1");
    assert_eq!(p.decision.workers_version, "1.33.4");
    assert_eq!(p.decision.workers_stack_version, "1.0.0");
    assert!(p.pools_apart());
    assert_eq!(
        p.workers_stack.as_ref().map(|s| s.spec.version.as_str()),
        Some("1.0.0")
    );
    assert_eq!(p.decision.running_version, "1.33.4");
    assert_eq!(
        p.decision.upgrade.as_ref().map(|u| u.stage.as_str()),
        Some("ControlPlane")
    );
}

#[test]
fn a_version_change_starts_an_upgrade_at_its_pre_upgrade_stage() {
    let catalog = support::catalog(releases());
    let mut cluster = support::cluster(SPEC);
    cluster.status = Some(running("1.33.4", "1.0.0"));
    let p = plan::plan(&FakeProvider, &cluster, &catalog, &Observed::default()).expect("a plan");
    let upgrade = p.decision.upgrade.expect("an upgrade");
    assert_eq!(upgrade.stage, "PreUpgrade");
    assert_eq!(upgrade.steps, ["1.34.1"]);
    // Nothing moves before the pre-upgrade add-ons are healthy.
    assert_eq!(p.decision.control_plane_version, "1.33.4");
    assert_eq!(p.decision.workers_version, "1.33.4");
}
