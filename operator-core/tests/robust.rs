//! Whoever may patch a `KaasCluster`'s status subresource can write anything there, and the
//! operator reads it back every reconcile. Arbitrary status values (an upgrade step out of
//! range, unknown stages, huge attempt counts, steps that are not versions) are driven
//! through the upgrade decision and the status computation: nothing panics, and an upgrade
//! that is not consistent is planned anew instead of acted on.

use api::v1beta1::{KaasCluster, KaasClusterStatus, UpgradeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use operator_core::status::{self, AddonsProgress, Observed, Progress};
use operator_core::upgrade::{self, Inputs};
use proptest::prelude::*;
use serde_json::json;

const VERSIONS: [&str; 6] = ["1.33.4", "1.34.1", "1.35.0", "", "x", "1.99.0"];
const STAGES: [&str; 6] = [
    "PreUpgrade",
    "ControlPlane",
    "Workers",
    "PostUpgrade",
    "",
    "Boom",
];

fn version() -> impl Strategy<Value = String> {
    prop::sample::select(&VERSIONS[..]).prop_map(str::to_string)
}

fn upgrade_status() -> impl Strategy<Value = UpgradeStatus> {
    (
        version(),
        prop::sample::select(&["1.0.0", "1.1.0", ""][..]).prop_map(str::to_string),
        prop::sample::select(&["1.1.0", "1.1.0", "9"][..]).prop_map(str::to_string),
        // Mostly chains that end at the target, so the stored upgrade is read back.
        (prop::collection::vec(version(), 0..4), any::<bool>()).prop_map(|(mut steps, end)| {
            if end || steps.is_empty() {
                steps.push("1.35.0".into());
            }
            steps
        }),
        prop_oneof![any::<i32>(), -2i32..6],
        prop::sample::select(&STAGES[..]),
        prop_oneof![any::<i32>(), Just(i32::MAX)],
    )
        .prop_map(
            |(from, from_stack, to_stack, steps, step, stage, attempts)| UpgradeStatus {
                from_kubernetes_version: from,
                from_stack_version: from_stack,
                to_stack_version: to_stack,
                steps,
                step,
                stage: stage.to_string(),
                attempts,
                message: None,
            },
        )
}

fn observed(version: &str, replicas: i64, generation: i64, seen: i64) -> Observed {
    let owned = |v| serde_json::from_value(v).unwrap();
    Observed {
        cluster: Some(owned(
            json!({"status": {"initialization": {"controlPlaneInitialized": true}}}),
        )),
        control_plane: Some(owned(json!({"status": {"version": format!("v{version}"),
            "replicas": replicas, "upToDateReplicas": replicas, "readyReplicas": replicas}}))),
        machine_deployments: [(
            "md-0".to_string(),
            owned(json!({"metadata": {"generation": generation},
                   "status": {"observedGeneration": seen, "replicas": replicas, "upToDateReplicas": replicas}})),
        )]
        .into(),
        ..Observed::default()
    }
}

fn cluster(status: KaasClusterStatus) -> KaasCluster {
    let mut cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "c", "namespace": "n", "generation": 3},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "scs", "version": "1.1.0"},
                 "kubernetesVersion": "1.35.0", "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 2, "machineType": "x"}]}}))
    .unwrap();
    cluster.status = Some(status);
    cluster
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_status_drives_the_decision_and_the_status_without_panicking(
        upgrade in prop::option::of(upgrade_status()),
        from in prop::option::of(version()),
        from_stack in prop::option::of(version()),
        cp_version in version(),
        replicas in -3i64..5,
        generation in -2i64..4,
        seen in -2i64..4,
        addons_ready in any::<bool>(),
        skip in prop::option::of(prop::sample::select(&STAGES[..])),
        observed_generation in any::<Option<i64>>(),
    ) {
        let supported: Vec<String> = ["1.33.4", "1.34.1", "1.35.0"].map(String::from).into();
        let previous = KaasClusterStatus {
            kubernetes_version: from,
            cluster_stack_version: from_stack,
            upgrade,
            observed_generation,
            ..Default::default()
        };
        let observed = observed(&cp_version, replicas, generation, seen);
        let pools = vec![("md-0".to_string(), 2)];
        let decision = upgrade::decide(&Inputs {
            previous: &previous,
            target_version: "1.35.0",
            target_stack: "1.1.0",
            supported: &supported,
            observed: &observed,
            control_plane_replicas: 1,
            pools: &pools,
            skip,
        });
        let mut progress = Progress {
            kubernetes_version: Some("1.35.0".into()),
            addons: AddonsProgress::Synced(Vec::new()),
            ..Default::default()
        };
        if let Ok(mut decision) = decision {
            upgrade::after_addons(&mut decision, addons_ready, skip);
            if let Some(u) = &decision.upgrade {
                // What is acted on is consistent: its step names a version of its chain,
                // one the stack supports.
                let step = usize::try_from(u.step).expect("step >= 0");
                prop_assert!(step < u.steps.len(), "{u:?}");
                prop_assert!(supported.contains(&u.steps[step]), "{u:?}");
                let _ = upgrade::backoff(u.attempts);
            }
            progress.upgrade = decision.upgrade.clone();
            progress.running = Some(operator_core::status::Running {
                kubernetes_version: decision.running_version.clone(),
                stack_version: decision.running_stack.clone(),
            });
        }
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let status = status::compute(&cluster(previous), &progress, &observed, &now);
        prop_assert!(status.conditions.iter().any(|c| c.type_ == "Ready"));
    }
}
