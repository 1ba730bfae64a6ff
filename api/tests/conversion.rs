//! Conversion between v1alpha1 and v1beta1 is lossless in both directions: property tests over
//! 10,000 generated objects each way, through JSON exactly as the conversion webhook sees them,
//! plus the cases a user would run into (reordered pools, a damaged annotation).

use std::collections::BTreeMap;

use api::conversion::{V1ALPHA1, V1BETA1, V1BETA1_FIELDS_ANNOTATION, convert_kaas_cluster};
use api::{v1alpha1, v1beta1};
use kube::api::ObjectMeta;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

const CASES: u32 = 10_000;

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

fn any_text() -> impl Strategy<Value = String> {
    // Any text, including what validation would refuse: conversion must not care.
    "\\PC{0,12}"
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        any_text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            btree_map(word(), inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = serde_json::Value> {
    btree_map(word(), json_value(), 0..4)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

fn metadata() -> impl Strategy<Value = ObjectMeta> {
    (
        word(),
        option::of(word()),
        option::of(btree_map("[a-z.]{1,10}/[a-z]{1,6}", any_text(), 1..3)),
        option::of(btree_map(word(), word(), 1..3)),
        option::of(1i64..1000),
    )
        .prop_map(
            |(name, namespace, annotations, labels, generation)| ObjectMeta {
                name: Some(name),
                namespace,
                annotations,
                labels,
                generation,
                ..Default::default()
            },
        )
}

fn status() -> impl Strategy<Value = Option<v1beta1::KaasClusterStatus>> {
    option::of(
        (
            option::of(0i64..100),
            option::of(word()),
            option::of("1\\.[0-9]{2}\\.[0-9]"),
            vec(word(), 0..3),
            option::of((word(), word())),
            vec((word(), 0i32..5), 0..3),
        )
            .prop_map(|(gen_, phase, k8s, upgrades, secret, pools)| {
                v1beta1::KaasClusterStatus {
                    observed_generation: gen_,
                    phase,
                    kubernetes_version: k8s,
                    available_upgrades: upgrades,
                    kubeconfig_secret_ref: secret
                        .map(|(name, key)| v1beta1::SecretKeyRef { name, key }),
                    workers: pools
                        .into_iter()
                        .map(|(name, n)| v1beta1::PoolStatus {
                            name,
                            desired: n,
                            replicas: n,
                            ready_replicas: n,
                            up_to_date_replicas: n,
                        })
                        .collect(),
                    ..Default::default()
                }
            }),
    )
}

fn taint() -> impl Strategy<Value = v1beta1::Taint> {
    (
        word(),
        option::of(word()),
        prop_oneof![
            Just(v1beta1::TaintEffect::NoSchedule),
            Just(v1beta1::TaintEffect::PreferNoSchedule),
            Just(v1beta1::TaintEffect::NoExecute),
        ],
    )
        .prop_map(|(key, value, effect)| v1beta1::Taint { key, value, effect })
}

fn int_or_percent() -> impl Strategy<Value = v1beta1::IntOrPercent> {
    prop_oneof![
        any::<i32>().prop_map(v1beta1::IntOrPercent::Int),
        any_text().prop_map(v1beta1::IntOrPercent::Percent),
    ]
}

fn rollout() -> impl Strategy<Value = v1beta1::PoolRollout> {
    (
        option::of(prop_oneof![
            Just(v1beta1::RolloutStrategy::RollingUpdate),
            Just(v1beta1::RolloutStrategy::OnDelete),
        ]),
        option::of(int_or_percent()),
        option::of(int_or_percent()),
        option::of(prop_oneof![
            Just(v1beta1::DeletionOrder::Random),
            Just(v1beta1::DeletionOrder::Newest),
            Just(v1beta1::DeletionOrder::Oldest),
        ]),
        option::of(any::<i32>()),
        option::of((0i64..4_000_000_000).prop_map(|s| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(s).unwrap_or_default(),
            )
        })),
    )
        .prop_map(
            |(strategy, max_surge, max_unavailable, deletion_order, drain, after)| {
                v1beta1::PoolRollout {
                    strategy,
                    max_surge,
                    max_unavailable,
                    deletion_order,
                    node_drain_timeout_seconds: drain,
                    after,
                }
            },
        )
}

fn worker() -> impl Strategy<Value = v1beta1::WorkerPool> {
    (
        (word(), any::<i32>(), any_text()),
        option::of(any::<i32>()),
        option::of(any::<i32>()),
        btree_map(word(), any_text(), 0..3),
        vec(taint(), 0..2),
        option::of(prop_oneof![
            Just(v1beta1::TaintPropagation::Always),
            Just(v1beta1::TaintPropagation::OnInitialization),
        ]),
        option::of(rollout()),
    )
        .prop_map(
            |(
                (name, replicas, machine_type),
                min_replicas,
                max_replicas,
                labels,
                taints,
                taint_propagation,
                rollout,
            )| {
                v1beta1::WorkerPool {
                    name,
                    replicas,
                    machine_type,
                    min_replicas,
                    max_replicas,
                    labels,
                    taints,
                    taint_propagation,
                    rollout,
                }
            },
        )
}

fn claim() -> impl Strategy<Value = v1beta1::ClaimMapping> {
    (word(), option::of(any_text()))
        .prop_map(|(claim, prefix)| v1beta1::ClaimMapping { claim, prefix })
}

fn authentication() -> impl Strategy<Value = v1beta1::Authentication> {
    vec(
        (
            any_text(),
            vec(word(), 0..3),
            option::of(any_text()),
            claim(),
            option::of(claim()),
        ),
        0..3,
    )
    .prop_map(|jwt| v1beta1::Authentication {
        jwt: jwt
            .into_iter()
            .map(
                |(url, audiences, ca, username, groups)| v1beta1::JwtAuthenticator {
                    issuer: v1beta1::JwtIssuer {
                        url,
                        audiences,
                        certificate_authority: ca,
                    },
                    claim_mappings: v1beta1::ClaimMappings { username, groups },
                },
            )
            .collect(),
    })
}

fn registry_mirrors() -> impl Strategy<Value = Vec<v1beta1::RegistryMirror>> {
    vec(
        (word(), vec(any_text(), 0..3), option::of(any_text())),
        0..3,
    )
    .prop_map(|mirrors| {
        mirrors
            .into_iter()
            .map(|(registry, endpoints, ca)| v1beta1::RegistryMirror {
                registry,
                endpoints,
                certificate_authority: ca,
            })
            .collect()
    })
}

fn maintenance() -> impl Strategy<Value = v1beta1::Maintenance> {
    (
        option::of(word()),
        vec(word(), 0..3),
        any_text(),
        any::<i32>(),
        option::of(any_text()),
    )
        .prop_map(|(auto_upgrade, days, start, duration_minutes, time_zone)| {
            v1beta1::Maintenance {
                auto_upgrade,
                window: v1beta1::MaintenanceWindow {
                    days,
                    start,
                    duration_minutes,
                    time_zone,
                },
            }
        })
}

fn beta_spec() -> impl Strategy<Value = v1beta1::KaasClusterSpec> {
    let head = (
        option::of(word()),
        word(),
        option::of(any_text()),
        option::of(any_text()),
        option::of(any::<i32>()),
        option::of(any_text()),
        vec(worker(), 0..4),
    );
    let tail = (
        vec(any_text(), 0..3),
        vec(any_text(), 0..3),
        option::of(any::<i32>()),
        option::of((
            any_text(),
            any_text(),
            option::of(word()),
            option::of(word()),
            option::of(any_text()),
            option::of(any_text()),
        )),
        vec(
            (word(), option::of(any::<bool>()), option::of(json_object())),
            0..3,
        ),
        option::of(json_object()),
        option::of(any::<bool>()),
    );
    let newer = (
        option::of(authentication()),
        option::of(any::<i32>()),
        registry_mirrors(),
        option::of(maintenance()),
    );
    (head, tail, newer).prop_map(
        |(
            (class, stack, stack_version, k8s, cp_replicas, cp_type, workers),
            (pods, services, mtu, oidc, addons, provider_config, paused),
            (authentication, certificates_expiry_days, registry_mirrors, maintenance),
        )| v1beta1::KaasClusterSpec {
            provider_class_name: class,
            cluster_stack: v1beta1::ClusterStackRef {
                name: stack,
                version: stack_version,
            },
            kubernetes_version: k8s,
            control_plane: v1beta1::ControlPlane {
                replicas: cp_replicas,
                machine_type: cp_type,
                certificates_expiry_days,
            },
            workers,
            network: v1beta1::Network {
                pod_cidrs: pods,
                service_cidrs: services,
                mtu,
            },
            oidc: oidc.map(|(issuer_url, client_id, uc, gc, up, gp)| v1beta1::Oidc {
                issuer_url,
                client_id,
                username_claim: uc,
                groups_claim: gc,
                username_prefix: up,
                groups_prefix: gp,
            }),
            addons: addons
                .into_iter()
                .map(|(name, enabled, values)| v1beta1::AddonOverride {
                    name,
                    enabled,
                    values,
                })
                .collect(),
            provider_config,
            paused,
            authentication,
            registry_mirrors,
            maintenance,
        },
    )
}

fn beta_cluster() -> impl Strategy<Value = v1beta1::KaasCluster> {
    (metadata(), beta_spec(), status()).prop_map(|(metadata, spec, status)| v1beta1::KaasCluster {
        metadata,
        spec,
        status,
    })
}

fn alpha_cluster() -> impl Strategy<Value = v1alpha1::KaasCluster> {
    let spec = (
        option::of(word()),
        word(),
        option::of(any_text()),
        option::of(any_text()),
        option::of(any::<i32>()),
        option::of(any_text()),
        vec(
            (word(), any::<i32>(), any_text()).prop_map(|(name, replicas, machine_type)| {
                v1alpha1::MachineDeployment {
                    name,
                    replicas,
                    machine_type,
                }
            }),
            0..4,
        ),
        option::of(any_text()),
        option::of(any_text()),
        option::of((
            any_text(),
            any_text(),
            option::of(word()),
            option::of(word()),
        )),
    )
        .prop_map(
            |(class, stack, stack_version, k8s, cp_replicas, cp_type, mds, pod, svc, oidc)| {
                v1alpha1::KaasClusterSpec {
                    provider_class: class,
                    cluster_stack_name: stack,
                    cluster_stack_version: stack_version,
                    kubernetes_version: k8s,
                    control_plane_replicas: cp_replicas,
                    control_plane_machine_type: cp_type,
                    machine_deployments: mds,
                    pod_cidr: pod,
                    service_cidr: svc,
                    oidc: oidc.map(|(issuer_url, client_id, uc, gc)| v1alpha1::Oidc {
                        issuer_url,
                        client_id,
                        username_claim: uc,
                        groups_claim: gc,
                    }),
                }
            },
        );
    (metadata(), spec, status()).prop_map(|(metadata, spec, status)| v1alpha1::KaasCluster {
        metadata,
        spec,
        status,
    })
}

/// Converts as the webhook does: JSON in, JSON out.
fn via_json<T: serde::Serialize, U: serde::de::DeserializeOwned>(obj: &T, to: &str) -> U {
    let json = serde_json::to_value(obj).expect("serializes");
    let converted = convert_kaas_cluster(json, to).expect("converts");
    assert_eq!(converted["apiVersion"], to);
    assert_eq!(converted["kind"], "KaasCluster");
    serde_json::from_value(converted).expect("deserializes")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn v1beta1_to_v1alpha1_and_back_is_lossless(beta in beta_cluster()) {
        let alpha: v1alpha1::KaasCluster = via_json(&beta, V1ALPHA1);
        let back: v1beta1::KaasCluster = via_json(&alpha, V1BETA1);
        prop_assert_eq!(&back, &beta);
        // And the typed path agrees with the JSON path.
        let typed = v1beta1::KaasCluster::try_from(v1alpha1::KaasCluster::from(beta.clone()))
            .expect("converts");
        prop_assert_eq!(typed, beta);
    }

    #[test]
    fn v1alpha1_to_v1beta1_and_back_is_lossless(alpha in alpha_cluster()) {
        let beta: v1beta1::KaasCluster = via_json(&alpha, V1BETA1);
        prop_assert!(beta.annotations_without_residue());
        let back: v1alpha1::KaasCluster = via_json(&beta, V1ALPHA1);
        prop_assert_eq!(back, alpha);
    }
}

trait NoResidue {
    fn annotations_without_residue(&self) -> bool;
}

impl NoResidue for v1beta1::KaasCluster {
    fn annotations_without_residue(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(V1BETA1_FIELDS_ANNOTATION))
    }
}

fn sample_beta() -> v1beta1::KaasCluster {
    v1beta1::KaasCluster {
        metadata: ObjectMeta {
            name: Some("demo".into()),
            ..Default::default()
        },
        spec: v1beta1::KaasClusterSpec {
            cluster_stack: v1beta1::ClusterStackRef {
                name: "scs".into(),
                version: Some("1.0.0".into()),
            },
            workers: vec![
                v1beta1::WorkerPool {
                    name: "a".into(),
                    replicas: 2,
                    machine_type: "m1".into(),
                    min_replicas: Some(1),
                    max_replicas: Some(5),
                    ..Default::default()
                },
                v1beta1::WorkerPool {
                    name: "b".into(),
                    replicas: 1,
                    machine_type: "m2".into(),
                    labels: BTreeMap::from([("role".into(), "db".into())]),
                    ..Default::default()
                },
            ],
            network: v1beta1::Network {
                pod_cidrs: vec!["192.168.0.0/16".into(), "fd00::/56".into()],
                service_cidrs: vec!["10.96.0.0/12".into()],
                mtu: Some(1450),
            },
            ..Default::default()
        },
        status: None,
    }
}

#[test]
fn v1alpha1_view_shows_what_it_can_and_keeps_the_rest_in_one_annotation() {
    let alpha = v1alpha1::KaasCluster::from(sample_beta());
    assert_eq!(alpha.spec.pod_cidr.as_deref(), Some("192.168.0.0/16"));
    assert_eq!(alpha.spec.machine_deployments.len(), 2);
    let residue =
        &alpha.metadata.annotations.as_ref().expect("annotated")[V1BETA1_FIELDS_ANNOTATION];
    let residue: serde_json::Value = serde_json::from_str(residue).expect("JSON");
    assert_eq!(residue["extraPodCidrs"], serde_json::json!(["fd00::/56"]));
    assert_eq!(residue["mtu"], 1450);

    // Nothing beyond v1alpha1's fields: no annotation at all.
    let mut plain = sample_beta();
    plain.spec.workers.iter_mut().for_each(|w| {
        w.min_replicas = None;
        w.max_replicas = None;
        w.labels.clear();
    });
    plain.spec.network.pod_cidrs.truncate(1);
    plain.spec.network.mtu = None;
    assert_eq!(
        v1alpha1::KaasCluster::from(plain).metadata.annotations,
        None
    );
}

#[test]
fn pools_reordered_in_v1alpha1_keep_their_v1beta1_fields() {
    let mut alpha = v1alpha1::KaasCluster::from(sample_beta());
    alpha.spec.machine_deployments.reverse();
    alpha.spec.machine_deployments[0].replicas = 4; // pool "b", edited in v1alpha1
    let beta = v1beta1::KaasCluster::try_from(alpha).expect("converts");
    assert_eq!(beta.spec.workers[0].name, "b");
    assert_eq!(beta.spec.workers[0].replicas, 4);
    assert_eq!(beta.spec.workers[0].labels["role"], "db");
    assert_eq!(beta.spec.workers[1].name, "a");
    assert_eq!(beta.spec.workers[1].max_replicas, Some(5));
}

#[test]
fn a_damaged_annotation_is_an_error_naming_it() {
    let mut alpha = v1alpha1::KaasCluster::from(sample_beta());
    alpha
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(V1BETA1_FIELDS_ANNOTATION.into(), "{not json".into());
    let err = v1beta1::KaasCluster::try_from(alpha).expect_err("must fail");
    assert!(err.to_string().contains(V1BETA1_FIELDS_ANNOTATION), "{err}");
}

#[test]
fn unknown_versions_are_refused() {
    let json = serde_json::to_value(sample_beta()).expect("serializes");
    let err = convert_kaas_cluster(json.clone(), "kaas.scs.community/v2").expect_err("refused");
    assert!(err.to_string().contains("kaas.scs.community/v2"), "{err}");
    let mut other = json;
    other["apiVersion"] = "example.com/v1".into();
    assert!(convert_kaas_cluster(other, V1ALPHA1).is_err());
}
