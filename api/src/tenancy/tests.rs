//! The tenancy rules, one behaviour per test.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::v1beta1::{
    Allowed, KaasCluster, Limits, MachineType, ProviderClass, ProviderClassSpec, TenantPolicySpec,
    TenantPolicyStatus, WorkerPool,
};
use crate::{Catalog, Previous};

fn class() -> ProviderClass {
    ProviderClass::new(
        "openstack",
        ProviderClassSpec {
            controller: "kaas.scs.community/openstack".into(),
            machine_types: vec![
                MachineType {
                    name: "SCS-4V-16".into(),
                    cpu: 4,
                    memory: "16Gi".into(),
                    gpus: None,
                    default: Some(true),
                },
                MachineType {
                    name: "SCS-8V-32-1G".into(),
                    cpu: 8,
                    memory: "32Gi".into(),
                    gpus: Some(1),
                    default: None,
                },
            ],
            ..Default::default()
        },
    )
}

fn spec(pools: &[(&str, i32)]) -> KaasClusterSpec {
    KaasClusterSpec {
        workers: pools
            .iter()
            .enumerate()
            .map(|(i, (t, n))| WorkerPool {
                name: format!("p{i}"),
                replicas: *n,
                machine_type: t.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn policy(limits: Limits, allowed: Allowed) -> TenantPolicy {
    TenantPolicy::new(
        "gold",
        TenantPolicySpec {
            limits,
            allowed,
            ..Default::default()
        },
    )
}

#[test]
fn quantities_read_and_print_in_mib() {
    assert_eq!(memory_mib("16Gi"), Some(16 * 1024));
    assert_eq!(memory_mib("1G"), Some(954));
    assert_eq!(memory_mib("1"), Some(1));
    assert_eq!(memory_mib("12x"), None);
    assert_eq!(memory_mib("Gi"), None);
    assert_eq!(memory_quantity(48 * 1024), "48Gi");
    assert_eq!(memory_quantity(1536), "1536Mi");
}

#[test]
fn a_footprint_counts_nodes_and_the_catalogue() {
    let c = class();
    let s = spec(&[("SCS-8V-32-1G", 2), ("SCS-4V-16", 1)]);
    let sized = footprint(&s.control_plane, &PoolSize::of(&s), Some(&c));
    assert!(sized.uncounted.is_empty());
    let f = sized.footprint;
    // 3 control plane nodes of the default type, 2 GPU nodes, 1 small one.
    assert_eq!(
        (f.clusters, f.control_plane_nodes, f.worker_nodes),
        (1, 3, 3)
    );
    assert_eq!(f.cpu, 3 * 4 + 2 * 8 + 4);
    assert_eq!(f.memory_mib, (3 * 16 + 2 * 32 + 16) * 1024);
    assert_eq!(f.gpus, 2);
    let mut autoscaled = s.clone();
    autoscaled.workers[1].max_replicas = Some(5);
    let f = footprint(
        &autoscaled.control_plane,
        &PoolSize::of(&autoscaled),
        Some(&c),
    )
    .footprint;
    assert_eq!(
        f.worker_nodes, 7,
        "an autoscaled pool counts at its maximum"
    );
    let unknown = spec(&[("huge", 1)]);
    let sized = footprint(&unknown.control_plane, &PoolSize::of(&unknown), Some(&c));
    assert_eq!(
        sized.uncounted,
        vec![("spec.workers[0].machineType".into(), "huge".into())]
    );
}

#[test]
fn a_limit_refuses_growth_past_it_with_the_numbers_and_allows_decreases() {
    let p = policy(
        Limits {
            cpu: Some(48),
            ..Default::default()
        },
        Allowed::default(),
    );
    let used = Footprint {
        cpu: 46,
        ..Default::default()
    };
    let ask = Footprint {
        cpu: 8,
        ..Default::default()
    };
    let err = check_limits(&p, "team-a", &used, &ask, &[]).unwrap_err();
    assert_eq!(
        err.0,
        "namespace team-a (TenantPolicy gold) uses 46 of 48 vCPUs; this change asks for 8 more"
    );
    let fits = Footprint {
        cpu: 2,
        ..Default::default()
    };
    assert!(check_limits(&p, "team-a", &used, &fits, &[]).is_ok());
    let over = Footprint {
        cpu: 60,
        ..Default::default()
    };
    let shrink = Footprint {
        cpu: -4,
        ..Default::default()
    };
    assert!(
        check_limits(&p, "team-a", &over, &shrink, &[]).is_ok(),
        "a decrease is allowed even above the limit"
    );
    let mem = policy(
        Limits {
            memory: Some("64Gi".into()),
            ..Default::default()
        },
        Allowed::default(),
    );
    let err = check_limits(
        &mem,
        "team-a",
        &Footprint {
            memory_mib: 60 * 1024,
            ..Default::default()
        },
        &Footprint {
            memory_mib: 16 * 1024,
            ..Default::default()
        },
        &[],
    )
    .unwrap_err();
    assert!(
        err.0
            .contains("uses 60Gi of 64Gi of memory; this change asks for 16Gi more")
    );
}

#[test]
fn what_is_not_allowed_is_named_by_field() {
    let p = policy(
        Limits {
            node_pools_per_cluster: Some(1),
            ..Default::default()
        },
        Allowed {
            provider_classes: vec!["openstack".into()],
            kubernetes_minors: vec!["1.34".into()],
            machine_types: [("openstack".to_string(), vec!["SCS-4V-16".to_string()])].into(),
            registry_mirrors: Some(false),
            ..Default::default()
        },
    );
    let mut s = spec(&[("SCS-4V-16", 1)]);
    s.kubernetes_version = Some("1.34".into());
    assert!(check_allowed(&p, "team-a", "openstack", &s, None).is_ok());
    let err = check_allowed(&p, "team-a", "gpu", &s, None).unwrap_err();
    assert!(err.0.starts_with("spec.providerClassName: class \"gpu\" is not allowed in namespace team-a by TenantPolicy gold (allowed: openstack)"), "{err}");
    let mut v = s.clone();
    v.kubernetes_version = Some("1.35.1".into());
    let err = check_allowed(&p, "team-a", "openstack", &v, None).unwrap_err();
    assert!(
        err.0.starts_with("spec.kubernetesVersion: Kubernetes 1.35"),
        "{err}"
    );
    let big = spec(&[("SCS-8V-32-1G", 1)]);
    let err = check_allowed(&p, "team-a", "openstack", &big, None).unwrap_err();
    assert!(
        err.0
            .starts_with("spec.workers[0].machineType: machine type \"SCS-8V-32-1G\""),
        "{err}"
    );
    let stored = Previous::from(&crate::v1beta1::KaasCluster::new("c", big.clone()));
    assert!(
        check_allowed(&p, "team-a", "openstack", &big, Some(&stored)).is_ok(),
        "what a stored cluster already uses stays"
    );
    let two = spec(&[("SCS-4V-16", 1), ("SCS-4V-16", 1)]);
    let err = check_allowed(&p, "team-a", "openstack", &two, None).unwrap_err();
    assert!(err.0.starts_with("spec.workers: 2 node pools"), "{err}");
    let mut m = s.clone();
    m.registry_mirrors = vec![Default::default()];
    let err = check_allowed(&p, "team-a", "openstack", &m, None).unwrap_err();
    assert!(
        err.0.starts_with("spec.registryMirrors: may not be set"),
        "{err}"
    );
}

#[test]
fn a_namespace_is_governed_by_the_selecting_policies_else_the_default() {
    let sel = |k: &str, v: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some([(k.to_string(), v.to_string())].into()),
        ..Default::default()
    };
    let mut gold = policy(Limits::default(), Allowed::default());
    gold.spec.namespace_selector = Some(sel("tier", "gold"));
    let mut trial = TenantPolicy::new("trial", TenantPolicySpec::default());
    trial.spec.default = Some(true);
    let all = [gold, trial];
    let gold_ns: BTreeMap<String, String> = [("tier".to_string(), "gold".to_string())].into();
    let names = |ps: Vec<&TenantPolicy>| -> Vec<String> {
        ps.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(names(governing(&all, &gold_ns)), ["gold"]);
    assert_eq!(names(governing(&all, &BTreeMap::new())), ["trial"]);
    assert!(
        governing(&all[..1], &BTreeMap::new()).is_empty(),
        "unlimited"
    );
}

#[test]
fn usage_counts_governed_clusters_and_pending_reservations_until_they_show() {
    let mut gold = policy(Limits::default(), Allowed::default());
    gold.spec.namespace_selector = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("tier".to_string(), "gold".to_string())].into()),
            ..Default::default()
        },
    );
    let catalog = Catalog {
        classes: vec![std::sync::Arc::new(class())],
        ..Default::default()
    };
    let cluster = |ns: &str, name: &str, pools: &[(&str, i32)]| {
        let mut spec = spec(pools);
        spec.provider_class_name = Some("openstack".into());
        let mut c = KaasCluster::new(name, spec);
        c.metadata.namespace = Some(ns.into());
        c
    };
    let a = cluster("team-a", "a", &[("SCS-4V-16", 2)]);
    let outside = cluster("team-x", "x", &[("SCS-4V-16", 9)]);
    let namespaces: BTreeMap<String, BTreeMap<String, String>> = [
        (
            "team-a".to_string(),
            [("tier".to_string(), "gold".to_string())].into(),
        ),
        ("team-x".to_string(), BTreeMap::new()),
    ]
    .into();
    let now = Time("2026-12-07T10:00:00Z".parse().unwrap());
    let b = cluster("team-a", "b", &[("SCS-4V-16", 1)]);
    let b_size = cluster_footprint(&b, &catalog).footprint;
    gold.status = Some(TenantPolicyStatus {
        reservations: vec![reservation("team-a", "b", &b_size, &b_size, 1, &now)],
        ..Default::default()
    });
    let a_size = cluster_footprint(&a, &catalog).footprint;
    let all = [&gold];
    // b reserved, not seen yet: a + b.
    let st = status(&gold, &all, [&a, &outside], &namespaces, &catalog, &now).status;
    assert_eq!(st.used, (a_size + b_size).usage());
    assert_eq!(st.reservations.len(), 1);
    assert_eq!(st.namespaces.len(), 1, "team-x is not governed");
    // b shows: counted once, the reservation is done.
    let st = status(&gold, &all, [&a, &b, &outside], &namespaces, &catalog, &now).status;
    assert_eq!(st.used, (a_size + b_size).usage());
    assert!(st.reservations.is_empty());
    // b never showed (refused later): after expiry only a counts.
    let later = Time("2026-12-07T10:00:31Z".parse().unwrap());
    let st = status(&gold, &all, [&a], &namespaces, &catalog, &later).status;
    assert_eq!(st.used, a_size.usage());
    assert!(st.reservations.is_empty());
}

#[test]
fn a_hold_takes_a_share_of_what_is_left_counts_against_limits_and_expires() {
    let gold = policy(
        Limits {
            cpu: Some(48),
            clusters: Some(10),
            ..Default::default()
        },
        Allowed::default(),
    );
    let used = Footprint {
        clusters: 2,
        cpu: 8,
        memory_mib: 4096,
        ..Default::default()
    };
    // A quarter of what is left of each limit; nothing of the unlimited memory.
    let spare = hold::spare(&gold, &used);
    assert_eq!((spare.clusters, spare.cpu, spare.memory_mib), (2, 10, 0));
    let limited = hold::limited(&gold);
    let one = Footprint {
        clusters: 1,
        cpu: 4,
        memory_mib: 1 << 20,
        ..Default::default()
    };
    assert!(
        hold::covers(&limited, &spare, &one),
        "memory is not limited"
    );
    let big = Footprint { cpu: 12, ..one };
    assert!(!hold::covers(&limited, &spare, &big));
    assert_eq!(hold::only(&limited, &one).memory_mib, 0);
    // Near the limit the share goes to nothing.
    let near = Footprint { cpu: 45, ..used };
    assert_eq!(hold::spare(&gold, &near).cpu, 0);

    // Holds count against the limits with the usage, each replica's once, until they expire.
    let now = Time("2026-12-07T10:00:00Z".parse().unwrap());
    let expires = hold::after(&now, hold::HOLD_SECONDS);
    let mut st = TenantPolicyStatus {
        used: used.usage(),
        ..Default::default()
    };
    hold::set_hold(&mut st.holds, "a", &spare, &expires, &now);
    hold::set_hold(&mut st.holds, "b", &one, &expires, &now);
    hold::set_hold(&mut st.holds, "a", &spare, &expires, &now);
    assert_eq!(st.holds.len(), 2);
    assert_eq!(hold::committed(&st, &now), used + spare + one);
    assert_eq!(hold::held_by_others(&st, "a", &now), one);
    hold::set_hold(&mut st.holds, "b", &Footprint::default(), &expires, &now);
    assert_eq!(st.holds.len(), 1, "a hold of nothing is removed");
    let later = hold::after(&now, hold::HOLD_SECONDS + 1);
    assert_eq!(
        hold::committed(&st, &later),
        used,
        "an expired hold counts no more"
    );

    // A recount keeps a live hold, wakes when it expires and then drops it.
    let mut held = gold.clone();
    held.status = Some(st);
    let catalog = Catalog::default();
    let r = status(&held, &[&held], [], &BTreeMap::new(), &catalog, &now);
    assert_eq!(r.status.holds.len(), 1);
    assert_eq!(r.next, Some(expires));
    let r = status(&held, &[&held], [], &BTreeMap::new(), &catalog, &later);
    assert!(r.status.holds.is_empty());
}

#[test]
fn a_policy_lowered_below_its_usage_says_so_and_keeps_the_time() {
    let mut p = policy(
        Limits {
            cpu: Some(4),
            clusters: Some(5),
            ..Default::default()
        },
        Allowed::default(),
    );
    p.spec.default = Some(true);
    let c = class();
    let catalog = Catalog {
        classes: vec![std::sync::Arc::new(c)],
        ..Default::default()
    };
    let mut s = spec(&[("SCS-4V-16", 1)]);
    s.provider_class_name = Some("openstack".into());
    let mut cluster = KaasCluster::new("a", s);
    cluster.metadata.namespace = Some("team-a".into());
    let t0 = Time("2026-12-07T10:00:00Z".parse().unwrap());
    let st = status(&p, &[&p], [&cluster], &BTreeMap::new(), &catalog, &t0).status;
    let cond = &st.conditions[0];
    assert_eq!(
        (
            cond.type_.as_str(),
            cond.status.as_str(),
            cond.reason.as_str()
        ),
        ("WithinLimits", "False", "OverLimit")
    );
    // 3 control plane nodes of 4 vCPUs and one worker of 4.
    assert_eq!(
        cond.message,
        "uses 16 of 4 vCPUs: growth is refused, nothing that exists is changed"
    );
    p.status = Some(st);
    let t1 = Time("2026-12-07T11:00:00Z".parse().unwrap());
    let again = status(&p, &[&p], [&cluster], &BTreeMap::new(), &catalog, &t1).status;
    assert_eq!(
        again.conditions[0].last_transition_time, t0,
        "unchanged: the same status"
    );
    p.spec.limits.cpu = Some(64);
    let fine = status(&p, &[&p], [&cluster], &BTreeMap::new(), &catalog, &t1).status;
    assert_eq!(
        (
            fine.conditions[0].status.as_str(),
            fine.conditions[0].last_transition_time.clone()
        ),
        ("True", t1)
    );
}

#[test]
fn a_lifetime_warns_first_and_deletes_only_what_it_warned() {
    let lifetime = crate::v1beta1::Lifetime {
        seconds: 3600,
        warn_seconds: Some(600),
    };
    let at = |s: &str| Time(s.parse().unwrap());
    let mut c = KaasCluster::new("trial", spec(&[("SCS-4V-16", 1)]));
    c.metadata.namespace = Some("team-t".into());
    c.metadata.uid = Some("u1".into());
    c.metadata.creation_timestamp = Some(at("2026-12-07T10:00:00Z"));
    // Before the warning time: nothing.
    let early = lifetimes(Some(&lifetime), [&c], &[], &at("2026-12-07T10:49:00Z"));
    assert!(early.warn.is_empty() && early.delete.is_empty() && early.expiring.is_empty());
    assert_eq!(
        early.next,
        Some(at("2026-12-07T10:50:00Z")),
        "next: the warning"
    );
    // Ten minutes before its end: warned, not deleted.
    let warned = lifetimes(Some(&lifetime), [&c], &[], &at("2026-12-07T10:50:00Z"));
    assert_eq!(warned.warn.len(), 1);
    assert!(warned.delete.is_empty());
    assert_eq!(warned.expiring[0].delete_at, at("2026-12-07T11:00:00Z"));
    assert_eq!(
        warned.next,
        Some(at("2026-12-07T11:00:00Z")),
        "next: the deletion"
    );
    // At its end, with the warning recorded: deleted.
    let end = lifetimes(
        Some(&lifetime),
        [&c],
        &warned.expiring,
        &at("2026-12-07T11:00:00Z"),
    );
    assert_eq!((end.warn.len(), end.delete.len()), (0, 1));
    // Past its end but never warned (the policy came later): warned, with the full notice.
    let late = lifetimes(Some(&lifetime), [&c], &[], &at("2026-12-08T09:00:00Z"));
    assert_eq!((late.warn.len(), late.delete.len()), (1, 0));
    assert_eq!(late.expiring[0].delete_at, at("2026-12-08T09:10:00Z"));
    // A cluster the policy no longer governs is not in `governed`: nothing, and its warning
    // is dropped. Without a lifetime, nothing either.
    let gone = lifetimes(
        Some(&lifetime),
        [],
        &warned.expiring,
        &at("2026-12-07T11:00:00Z"),
    );
    assert!(gone.delete.is_empty() && gone.expiring.is_empty());
    assert_eq!(
        lifetimes(None, [&c], &[], &at("2026-12-09T00:00:00Z")),
        Lifetimes::default()
    );
}

#[test]
fn a_failure_domain_not_allowed_is_named_and_a_stored_one_stays() {
    let p = policy(
        Limits::default(),
        Allowed {
            failure_domains: vec!["fsn1".into(), "nbg1".into()],
            ..Default::default()
        },
    );
    let mut s = spec(&[("cx22", 1)]);
    s.provider_config =
        Some(serde_json::json!({"region": "fsn1", "controlPlaneRegions": ["nbg1", "hel1"]}));
    let err = check_allowed(&p, "team-a", "hetzner", &s, None).unwrap_err();
    assert!(
        err.0.starts_with("spec.providerConfig.controlPlaneRegions[1]: failure domain \"hel1\" is not allowed in namespace team-a by TenantPolicy gold (allowed: fsn1, nbg1)"),
        "{err}"
    );
    let stored = Previous::from(&KaasCluster::new("c", s.clone()));
    assert!(check_allowed(&p, "team-a", "hetzner", &s, Some(&stored)).is_ok());
    s.provider_config = Some(serde_json::json!({"region": "nbg1"}));
    assert!(check_allowed(&p, "team-a", "hetzner", &s, None).is_ok());
}

#[test]
fn hostile_sizes_and_quantities_saturate_instead_of_panicking() {
    // A tenant's spec at the extremes the schema lets through, and quantities that are not.
    let c = class();
    let mut s = spec(&[("SCS-8V-32-1G", i32::MAX), ("SCS-8V-32-1G", i32::MAX)]);
    s.control_plane.replicas = Some(i32::MAX);
    s.workers[0].max_replicas = Some(i32::MAX);
    s.workers[1].replicas = -5;
    let f = footprint(&s.control_plane, &PoolSize::of(&s), Some(&c)).footprint;
    assert!(f.cpu > 0 && f.memory_mib > 0 && f.gpus > 0);
    let sum = f
        + f
        + Footprint {
            cpu: i64::MAX,
            ..Default::default()
        };
    assert_eq!(sum.cpu, i64::MAX, "saturates");
    assert_eq!(
        (Footprint {
            cpu: i64::MIN,
            ..Default::default()
        } - f)
            .cpu,
        i64::MIN
    );
    for q in [
        "",
        "Gi",
        "99999999999999999999Pi",
        "1\u{e9}",
        "1.5Gi",
        "-1Gi",
        "1GiB",
        "\u{0}",
    ] {
        let _ = memory_mib(q);
    }
    assert_eq!(
        memory_mib("999999999999999Pi"),
        None,
        "too large: refused, not wrapped"
    );
    assert_eq!(memory_mib("8191Pi"), Some(8191 << 30));
    let p = policy(
        Limits {
            memory: Some("not a quantity".into()),
            cpu: Some(1),
            ..Default::default()
        },
        Allowed::default(),
    );
    let err = check_limits(&p, "team-a", &f, &f, &[]).unwrap_err();
    assert!(err.0.contains("vCPUs"), "{err}");
    // A usage status holding what no webhook wrote reads as zero, never an error.
    let odd = crate::v1beta1::ResourceUsage {
        memory: "-".into(),
        ..Default::default()
    };
    assert_eq!(Footprint::of_usage(&odd).memory_mib, 0);
}
