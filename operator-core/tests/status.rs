//! The status a user reads, condition by condition: what Cluster API reports and where the
//! pipeline stands go in, conditions (type, status, reason), messages, counts and the phase
//! come out. Table-style: each case names what a user would see.

mod support;

use api::v1beta1::{AddonStatus, KaasClusterStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use operator_core::owned::Owned;
use operator_core::status::{self, AddonsProgress, Observed, Problem, Progress, Running};
use serde_json::{Value, json};

const SPEC: &str = r#"
providerClassName: fake
clusterStack: {name: scs, version: 1.0.0}
controlPlane: {replicas: 3}
workers:
  - {name: md-0, replicas: 2, machineType: m2}
  - {name: auto, replicas: 1, minReplicas: 1, maxReplicas: 5, machineType: m2}
network: {podCIDRs: [192.168.0.0/16], serviceCIDRs: [10.96.0.0/12]}
"#;

fn time(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

fn resolved() -> Progress {
    Progress {
        kubernetes_version: Some("1.34.1".into()),
        running: Some(Running {
            kubernetes_version: "1.34.1".into(),
            stack_version: "1.0.0".into(),
        }),
        addons: AddonsProgress::Synced(vec![addon("cilium", true)]),
        ..Default::default()
    }
}

fn addon(name: &str, ready: bool) -> AddonStatus {
    AddonStatus {
        name: name.into(),
        version: Some("1.0.0".into()),
        ready,
        message: (!ready).then(|| "2 of 3 pods ready".into()),
    }
}

fn cluster_obj(status: Value) -> Owned {
    serde_json::from_value(json!({"status": status})).unwrap()
}

fn replicas(replicas: i64, ready: i64) -> Owned {
    serde_json::from_value(
        json!({"status": {"replicas": replicas, "readyReplicas": ready, "upToDateReplicas": ready}}),
    )
    .unwrap()
}

/// Cluster API with everything up: infrastructure provisioned, control plane initialized, 3
/// of 3 control plane machines, both pools ready (the autoscaled one at 4 machines).
fn all_up() -> Observed {
    Observed {
        cluster: Some(cluster_obj(json!({"initialization": {
            "infrastructureProvisioned": true, "controlPlaneInitialized": true}}))),
        control_plane: Some(replicas(3, 3)),
        machine_deployments: [
            ("md-0".to_string(), replicas(2, 2)),
            ("auto".to_string(), replicas(4, 4)),
        ]
        .into(),
        certificates_expiry: Some("2027-11-30T08:00:00Z".parse().unwrap()),
        ..Observed::default()
    }
}

#[test]
fn the_control_planes_certificate_expiry_is_reported_where_cluster_api_tells_it() {
    let status = compute(&resolved(), &all_up());
    let cp = status.control_plane.expect("control plane status");
    assert_eq!(
        cp.certificates_expiry_date.map(|t| t.0.to_string()),
        Some("2027-11-30T08:00:00Z".to_string())
    );
    let unknown = compute(
        &resolved(),
        &Observed {
            certificates_expiry: None,
            ..all_up()
        },
    );
    assert_eq!(
        unknown
            .control_plane
            .and_then(|c| c.certificates_expiry_date),
        None,
        "no machine reports it yet: nothing is made up"
    );
}

fn compute(progress: &Progress, observed: &Observed) -> KaasClusterStatus {
    status::compute(&support::cluster(SPEC), progress, observed, &time(1_000))
}

fn condition(status: &KaasClusterStatus, type_: &str) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:?}", status.conditions));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

struct Case {
    what: &'static str,
    progress: Progress,
    observed: Observed,
    /// (condition type, status, reason) that must hold.
    expect: &'static [(&'static str, &'static str, &'static str)],
    phase: &'static str,
}

#[test]
fn each_condition_says_what_holds_and_why() {
    let cases = vec![
        Case {
            what: "an invalid spec fails the cluster and blocks the rest",
            progress: Progress {
                invalid: Some("spec.workers[0].replicas: must be >= 0".into()),
                ..Default::default()
            },
            observed: Observed::default(),
            expect: &[
                ("StackResolved", "False", "InvalidSpec"),
                ("NodeImagesReady", "False", "Waiting"),
                ("Ready", "False", "StackNotReady"),
            ],
            phase: "Failed",
        },
        Case {
            what: "an unknown stack is named in StackResolved and Ready",
            progress: Progress {
                stack_problem: Some(Problem::new("StackNotFound", "no stack scs 9.9.9")),
                ..Default::default()
            },
            observed: Observed::default(),
            expect: &[
                ("StackResolved", "False", "StackNotFound"),
                ("Ready", "False", "StackNotReady"),
                ("InfrastructureReady", "False", "NotCreated"),
            ],
            phase: "Pending",
        },
        Case {
            what: "resolved, nothing created yet: the infrastructure is first to wait for",
            progress: Progress {
                addons: AddonsProgress::Pending,
                ..resolved()
            },
            observed: Observed::default(),
            expect: &[
                ("StackResolved", "True", "Resolved"),
                ("NodeImagesReady", "True", "Available"),
                ("InfrastructureReady", "False", "NotCreated"),
                ("ControlPlaneReady", "False", "NotCreated"),
                ("WorkersReady", "False", "ScalingUp"),
                ("AddonsReady", "False", "Waiting"),
                ("Upgrading", "False", "NoUpgrade"),
                ("Ready", "False", "InfrastructureNotReady"),
            ],
            phase: "Pending",
        },
        Case {
            what: "a node image not ready yet",
            progress: Progress {
                image_problem: Some(Problem::new("ImageNotReady", "image importing")),
                ..resolved()
            },
            observed: Observed::default(),
            expect: &[
                ("NodeImagesReady", "False", "ImageNotReady"),
                ("Ready", "False", "NodeImagesNotReady"),
            ],
            phase: "Pending",
        },
        Case {
            what: "infrastructure provisioning, as Cluster API v1beta2 reports it",
            progress: resolved(),
            observed: Observed {
                cluster: Some(cluster_obj(json!({"initialization": {}}))),
                ..all_up()
            },
            expect: &[
                ("InfrastructureReady", "False", "Provisioning"),
                ("Ready", "False", "InfrastructureNotReady"),
            ],
            phase: "Provisioning",
        },
        Case {
            what: "infrastructure ready as a v1beta1 condition says it",
            progress: resolved(),
            observed: Observed {
                cluster: Some(cluster_obj(
                    json!({"conditions": [{"type": "InfrastructureReady", "status": "True"}]}),
                )),
                ..all_up()
            },
            expect: &[
                ("InfrastructureReady", "True", "Provisioned"),
                ("Ready", "True", "Ready"),
            ],
            phase: "Ready",
        },
        Case {
            what: "control plane scaling up",
            progress: resolved(),
            observed: Observed {
                control_plane: Some(replicas(2, 1)),
                ..all_up()
            },
            expect: &[
                ("ControlPlaneReady", "False", "ScalingUp"),
                ("Ready", "False", "ControlPlaneNotReady"),
            ],
            phase: "Provisioning",
        },
        Case {
            what: "control plane scaling down (4 machines for 3) is not ready yet",
            progress: resolved(),
            observed: Observed {
                control_plane: Some(replicas(4, 4)),
                ..all_up()
            },
            expect: &[("ControlPlaneReady", "False", "ScalingUp")],
            phase: "Provisioning",
        },
        Case {
            what: "an autoscaled pool below the machines it has",
            progress: resolved(),
            observed: Observed {
                machine_deployments: [
                    ("md-0".to_string(), replicas(2, 2)),
                    ("auto".to_string(), replicas(4, 3)),
                ]
                .into(),
                ..all_up()
            },
            expect: &[
                ("WorkersReady", "False", "ScalingUp"),
                ("Ready", "False", "WorkersNotReady"),
            ],
            phase: "Provisioning",
        },
        Case {
            what: "a pool whose MachineDeployment is missing",
            progress: resolved(),
            observed: Observed {
                machine_deployments: [("md-0".to_string(), replicas(2, 2))].into(),
                ..all_up()
            },
            expect: &[("WorkersReady", "False", "ScalingUp")],
            phase: "Provisioning",
        },
        Case {
            what: "an add-on not healthy",
            progress: Progress {
                addons: AddonsProgress::Synced(vec![addon("cilium", true), addon("csi", false)]),
                ..resolved()
            },
            observed: all_up(),
            expect: &[
                ("AddonsReady", "False", "Progressing"),
                ("Ready", "False", "AddonsNotReady"),
            ],
            phase: "Provisioning",
        },
        Case {
            what: "a refused kubeconfig",
            progress: Progress {
                addons: AddonsProgress::Refused("users[0].user.exec: refused".into()),
                ..resolved()
            },
            observed: all_up(),
            expect: &[("AddonsReady", "False", "KubeconfigRefused")],
            phase: "Provisioning",
        },
        Case {
            what: "everything up",
            progress: resolved(),
            observed: all_up(),
            expect: &[
                ("Ready", "True", "Ready"),
                ("ControlPlaneReady", "True", "Ready"),
                ("WorkersReady", "True", "Ready"),
                ("AddonsReady", "True", "Healthy"),
            ],
            phase: "Ready",
        },
        Case {
            what: "an upgrade rolling over a ready cluster keeps it ready",
            progress: Progress {
                upgrade: Some(support::upgrade(&["1.34.1"], "ControlPlane")),
                ..resolved()
            },
            observed: all_up(),
            expect: &[
                ("Upgrading", "True", "ControlPlane"),
                ("Ready", "True", "Ready"),
            ],
            phase: "Upgrading",
        },
        Case {
            what: "a stack source down leaves a built cluster ready",
            progress: Progress {
                stack_problem: Some(Problem::new("FetchFailed", "registry unreachable")),
                ..resolved()
            },
            observed: all_up(),
            expect: &[
                ("StackResolved", "False", "FetchFailed"),
                ("Ready", "True", "Ready"),
            ],
            phase: "Ready",
        },
        Case {
            what: "a reported failure wins over everything",
            progress: Progress {
                failure: Some(Problem::new("ApplyFailed", "conflict")),
                ..resolved()
            },
            observed: all_up(),
            expect: &[("Ready", "False", "ApplyFailed")],
            phase: "Provisioning",
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let status = compute(&case.progress, &case.observed);
        for (type_, want_status, want_reason) in case.expect {
            let (got_status, got_reason, message) = condition(&status, type_);
            if (got_status.as_str(), got_reason.as_str()) != (*want_status, *want_reason) {
                failures.push(format!(
                    "{}: {type_} is {got_status}/{got_reason} ({message}), want {want_status}/{want_reason}",
                    case.what
                ));
            }
        }
        if status.phase.as_deref() != Some(case.phase) {
            failures.push(format!(
                "{}: phase {:?}, want {}",
                case.what, status.phase, case.phase
            ));
        }
        // Every condition type of the contract is there, once.
        for type_ in [
            "Ready",
            "StackResolved",
            "NodeImagesReady",
            "InfrastructureReady",
            "ControlPlaneReady",
            "WorkersReady",
            "AddonsReady",
            "Upgrading",
        ] {
            let n = status
                .conditions
                .iter()
                .filter(|c| c.type_ == type_)
                .count();
            if n != 1 {
                failures.push(format!("{}: {type_} {n} times", case.what));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn messages_and_counts_name_what_is_missing() {
    let observed = Observed {
        control_plane: Some(replicas(3, 1)),
        machine_deployments: [
            ("md-0".to_string(), replicas(2, 1)),
            ("auto".to_string(), replicas(4, 4)),
        ]
        .into(),
        ..all_up()
    };
    let status = compute(&resolved(), &observed);
    assert_eq!(
        condition(&status, "ControlPlaneReady").2,
        "1 of 3 control plane machines ready (c1-control-plane)"
    );
    assert_eq!(
        condition(&status, "WorkersReady").2,
        "waiting for pools: md-0 (1 of 2 ready)"
    );
    assert_eq!(
        condition(&status, "Ready").2,
        "ControlPlaneReady: 1 of 3 control plane machines ready (c1-control-plane)"
    );
    let cp = status.control_plane.unwrap();
    assert_eq!((cp.desired, cp.replicas, cp.ready_replicas), (3, 3, 1));
    let pools: Vec<_> = status
        .workers
        .iter()
        .map(|p| (p.name.as_str(), p.desired, p.ready_replicas))
        .collect();
    assert_eq!(pools, [("md-0", 2, 1), ("auto", 1, 4)]);
    assert_eq!(status.kubernetes_version.as_deref(), Some("1.34.1"));
    assert_eq!(status.observed_generation, Some(4));
    // The kubeconfig is offered once Cluster API says the control plane is initialized.
    assert_eq!(
        status.kubeconfig_secret_ref.map(|r| r.name).as_deref(),
        Some("c1-kubeconfig")
    );
    let not_initialized = Observed {
        cluster: Some(cluster_obj(
            json!({"initialization": {"infrastructureProvisioned": true}}),
        )),
        ..observed
    };
    assert!(
        compute(&resolved(), &not_initialized)
            .kubeconfig_secret_ref
            .is_none()
    );
}

#[test]
fn an_unchanged_world_computes_the_same_status_and_keeps_transition_times() {
    let mut cluster = support::cluster(SPEC);
    let first = status::compute(&cluster, &resolved(), &all_up(), &time(1_000));
    cluster.status = Some(first.clone());
    let again = status::compute(&cluster, &resolved(), &all_up(), &time(2_000));
    assert_eq!(first, again);
    // A change moves only the conditions that changed.
    let scaling = Observed {
        control_plane: Some(replicas(3, 2)),
        ..all_up()
    };
    let changed = status::compute(&cluster, &resolved(), &scaling, &time(3_000));
    let at = |s: &KaasClusterStatus, t: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
            .last_transition_time
            .clone()
    };
    assert_eq!(at(&changed, "ControlPlaneReady"), time(3_000));
    assert_eq!(at(&changed, "Ready"), time(3_000));
    assert_eq!(at(&changed, "WorkersReady"), time(1_000));
}

#[test]
fn compliance_is_kept_until_checked_again() {
    let mut cluster = support::cluster(SPEC);
    let checked = Progress {
        compliance: Some(operator_core::conformance::Verdict::fails(
            "MissingComponents",
            "no metrics-server",
        )),
        ..resolved()
    };
    let first = status::compute(&cluster, &checked, &all_up(), &time(1_000));
    assert_eq!(
        condition(&first, "Compliant"),
        (
            "False".into(),
            "MissingComponents".into(),
            "no metrics-server".into()
        )
    );
    // Compliance is informational: the cluster is still ready.
    assert_eq!(condition(&first, "Ready").0, "True");
    cluster.status = Some(first);
    let later = status::compute(&cluster, &resolved(), &all_up(), &time(2_000));
    assert_eq!(condition(&later, "Compliant").1, "MissingComponents");
    // A stack without a base never reports it.
    let plain = compute(&resolved(), &all_up());
    assert!(plain.conditions.iter().all(|c| c.type_ != "Compliant"));
}

/// A provider's own watched kind (one entry in its `EXTRA_KINDS`) is observed beside the core's
/// kinds: one object per pool, by the name the kind gives it, and nothing for a pool without.
#[test]
fn a_providers_watched_kind_is_observed_by_the_name_its_entry_gives() {
    use operator_core::{InfrastructureKinds, Kind, Naming, Wave, kinds};
    let check = Kind {
        api_version: "test.kaas.scs.community/v1",
        kind: "PoolCheck",
        naming: Naming::Pool,
        wave: Wave::Referrer,
        watched: true,
    };
    let infra = InfrastructureKinds {
        api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
        cluster: "DevCluster",
        machine_template: "DevMachineTemplate",
    };
    let watched: Vec<Kind> = kinds::table(&infra, &[check])
        .into_iter()
        .filter(|k| k.watched)
        .collect();
    let cluster = support::cluster(SPEC);
    let name = cluster.metadata.name.clone().unwrap();
    let present = [
        ("Cluster", name.clone()),
        ("KubeadmControlPlane", format!("{name}-control-plane")),
        ("MachineDeployment", format!("{name}-md-0")),
        ("MachineDeployment", format!("{name}-auto")),
        ("PoolCheck", format!("{name}-md-0")),
    ];
    let observed = Observed::of(&watched, &cluster, |kind, obj_name| {
        present
            .iter()
            .any(|(k, n)| *k == kind.kind && n == obj_name)
            .then(|| Owned::named(obj_name))
    });
    assert!(observed.cluster.is_some() && observed.control_plane.is_some());
    assert_eq!(
        observed.machine_deployments.keys().collect::<Vec<_>>(),
        ["auto", "md-0"]
    );
    assert_eq!(
        observed.extra.keys().collect::<Vec<_>>(),
        [&("PoolCheck".to_string(), format!("{name}-md-0"))],
        "the provider's kind is observed where it exists, and only there"
    );
}

#[test]
fn a_tenant_policy_over_its_limits_shows_on_the_cluster_and_leaves_it_ready() {
    let standing = |over: Option<&str>| api::tenancy::Standing {
        policy: "gold".into(),
        over: over.map(str::to_string),
    };
    let none = compute(&resolved(), &all_up());
    assert!(
        none.conditions
            .iter()
            .all(|c| c.type_ != "WithinTenantPolicy"),
        "no policy governs the namespace: no condition"
    );
    let within = compute(
        &resolved(),
        &Observed {
            policies: vec![standing(None)],
            ..all_up()
        },
    );
    assert_eq!(
        condition(&within, "WithinTenantPolicy"),
        (
            "True".into(),
            "WithinLimits".into(),
            "within the limits of TenantPolicy gold".into()
        )
    );
    let over = compute(
        &resolved(),
        &Observed {
            policies: vec![standing(Some(
                "uses 18 of 10 vCPUs: growth is refused, nothing that exists is changed",
            ))],
            ..all_up()
        },
    );
    assert_eq!(
        condition(&over, "WithinTenantPolicy"),
        (
            "False".into(),
            "OverTenantPolicy".into(),
            "TenantPolicy gold: uses 18 of 10 vCPUs: growth is refused, nothing that exists is changed".into()
        )
    );
    assert_eq!(condition(&over, "Ready").0, "True", "it runs on as it is");
    assert_eq!(over.phase, within.phase);
}
