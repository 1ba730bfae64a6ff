//! Validation and defaulting over the YAML fixtures in `tests/fixtures/`: every admission case
//! names exactly the fields it should, and defaulting gives the expected spec and is
//! idempotent (also over generated specs).

use api::Catalog;
use api::defaulting::{default_cluster_stack, default_kaas_cluster};
use api::v1beta1::{ClusterStack, KaasCluster, KaasClusterSpec, ProviderClass};
use api::validation::{
    ValidationErrors, validate_cluster_stack, validate_cluster_stack_delete, validate_kaas_cluster,
    validate_provider_class, validate_provider_class_delete,
};
use proptest::prelude::*;
use serde::Deserialize;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn catalog() -> Catalog {
    let text = std::fs::read_to_string(format!("{FIXTURES}/catalog.yaml")).expect("catalog");
    Catalog::from_yaml(&text).expect("catalog parses")
}

#[derive(Deserialize)]
struct Case {
    name: String,
    kind: String,
    operation: String,
    errors: Vec<String>,
    #[serde(default)]
    object: Option<serde_json::Value>,
    #[serde(default)]
    old: Option<serde_json::Value>,
}

fn typed<T: serde::de::DeserializeOwned>(v: &Option<serde_json::Value>) -> Option<T> {
    v.clone()
        .map(|v| serde_json::from_value(v).expect("fixture object has its kind's shape"))
}

fn judge(case: &Case, catalog: &Catalog) -> Result<(), ValidationErrors> {
    match (case.kind.as_str(), case.operation.as_str()) {
        ("KaasCluster", "CREATE" | "UPDATE") => {
            let obj: KaasCluster = typed(&case.object).expect("object");
            validate_kaas_cluster(&obj, typed::<api::Previous>(&case.old).as_ref(), catalog)
        }
        ("ProviderClass", "CREATE" | "UPDATE") => {
            let obj: ProviderClass = typed(&case.object).expect("object");
            validate_provider_class(&obj, typed::<ProviderClass>(&case.old).as_ref(), catalog)
        }
        ("ProviderClass", "DELETE") => {
            validate_provider_class_delete(&typed(&case.old).expect("old"), catalog)
        }
        ("ClusterStack", "CREATE" | "UPDATE") => {
            let obj: ClusterStack = typed(&case.object).expect("object");
            validate_cluster_stack(&obj, typed::<ClusterStack>(&case.old).as_ref(), catalog)
        }
        ("ClusterStack", "DELETE") => {
            validate_cluster_stack_delete(&typed(&case.old).expect("old"), catalog)
        }
        ("StackRollout", "CREATE" | "UPDATE") => {
            let obj: api::v1beta1::StackRollout = typed(&case.object).expect("object");
            api::validation::validate_stack_rollout_spec(&obj.spec).into_result()
        }
        (kind, op) => panic!("case {:?}: no rule for {kind} {op}", case.name),
    }
}

#[test]
fn admission_cases_name_exactly_the_bad_fields() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/admission-cases.yaml")).expect("cases");
    let cases: Vec<Case> = serde_saphyr::from_str(&text).expect("cases parse");
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let catalog = catalog();
    let mut failures = Vec::new();
    for case in &cases {
        let got = match judge(case, &catalog) {
            Ok(()) => Vec::new(),
            Err(errs) => {
                // Every message names its field and says something.
                for e in &errs.0 {
                    assert!(!e.message.is_empty(), "{}: empty message", case.name);
                }
                errs.0.iter().map(|e| e.field.clone()).collect()
            }
        };
        let mut want = case.errors.clone();
        let mut got_sorted = got.clone();
        want.sort();
        got_sorted.sort();
        got_sorted.dedup();
        if want != got_sorted {
            failures.push(format!("{}:\n  want {want:?}\n  got  {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn messages_read_well() {
    let catalog = catalog();
    let mut cluster: KaasCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "c", "namespace": "n"},
        "spec": {"providerClassName": "openstack", "clusterStack": {"name": "scs", "version": "1.1.0"},
                 "kubernetesVersion": "1.32", "controlPlane": {"replicas": 3},
                 "workers": [{"name": "a", "replicas": 1, "machineType": "m"},
                             {"name": "b", "replicas": -2, "machineType": "m"}],
                 "network": {"podCIDRs": ["10.0.0.0/8"], "serviceCIDRs": ["10.96.0.0/12"]}}
    }))
    .expect("shape");
    let err = validate_kaas_cluster(&cluster, None, &catalog).expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.contains("spec.workers[1].replicas: must be >= 0"),
        "{text}"
    );
    assert!(
        text.contains("spec.network.serviceCIDRs[0]: 10.96.0.0/12 overlaps spec.network.podCIDRs[0] (10.0.0.0/8)"),
        "{text}"
    );
    cluster.spec.kubernetes_version = Some("1.30".into());
    let text = validate_kaas_cluster(&cluster, None, &catalog)
        .expect_err("invalid")
        .to_string();
    assert!(
        text.contains("spec.kubernetesVersion: 1.30 is not supported by stack \"scs\" 1.1.0 (supports 1.31.4, 1.32.1)"),
        "{text}"
    );
}

#[derive(Deserialize)]
struct DefaultingCase {
    name: String,
    input: KaasClusterSpec,
    expected: KaasClusterSpec,
}

#[test]
fn defaulting_cases() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/defaulting-cases.yaml")).expect("cases");
    let cases: Vec<DefaultingCase> = serde_saphyr::from_str(&text).expect("cases parse");
    let catalog = catalog();
    for case in cases {
        let mut spec = case.input.clone();
        default_kaas_cluster(&mut spec, &catalog);
        assert_eq!(spec, case.expected, "{}", case.name);
        default_kaas_cluster(&mut spec, &catalog);
        assert_eq!(spec, case.expected, "{}: not idempotent", case.name);
    }
}

#[test]
fn a_defaulted_minimal_cluster_is_valid() {
    let catalog = catalog();
    let mut cluster = KaasCluster::new(
        "minimal",
        serde_json::from_value(serde_json::json!({"clusterStack": {"name": "scs"}})).expect("spec"),
    );
    default_kaas_cluster(&mut cluster.spec, &catalog);
    validate_kaas_cluster(&cluster, None, &catalog).expect("valid after defaulting");
}

#[test]
fn two_default_classes_mean_no_default() {
    let mut catalog = catalog();
    let mut second = (*catalog.classes[1]).clone();
    second
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(api::DEFAULT_CLASS_ANNOTATION.into(), "true".into());
    catalog.classes[1] = std::sync::Arc::new(second);
    let mut spec: KaasClusterSpec =
        serde_json::from_value(serde_json::json!({"clusterStack": {"name": "scs"}})).expect("spec");
    default_kaas_cluster(&mut spec, &catalog);
    assert_eq!(spec.provider_class_name, None);
}

#[test]
fn stack_defaulting_sorts_and_dedups() {
    let mut spec: api::v1beta1::ClusterStackSpec = serde_json::from_value(serde_json::json!({
        "provider": "docker", "name": "scs", "version": "1.0.0",
        "kubernetesVersions": ["1.32.1", "1.31.10", "1.31.9", "1.32.1"],
        "upgradeFrom": ["0.10.0", "0.9.0"]
    }))
    .expect("spec");
    default_cluster_stack(&mut spec);
    assert_eq!(spec.kubernetes_versions, ["1.31.9", "1.31.10", "1.32.1"]);
    assert_eq!(spec.upgrade_from, ["0.9.0", "0.10.0"]);
    let once = spec.clone();
    default_cluster_stack(&mut spec);
    assert_eq!(spec, once);
}

fn generated_spec() -> impl Strategy<Value = KaasClusterSpec> {
    (
        proptest::option::of(prop_oneof![
            Just("openstack".to_string()),
            Just("hetzner".to_string()),
            Just("docker".to_string()),
            Just("vsphere".to_string()),
        ]),
        proptest::option::of(prop_oneof![
            Just("1.0.0".to_string()),
            Just("9.9.9".to_string())
        ]),
        proptest::option::of("1\\.3[0-3](\\.[0-9])?"),
        proptest::option::of(0i32..6),
        proptest::collection::vec("(10|172|192)\\.[0-9]{1,3}\\.0\\.0/(8|12|16)", 0..3),
        proptest::collection::vec("(10|172|192)\\.[0-9]{1,3}\\.0\\.0/(8|12|16)", 0..3),
    )
        .prop_map(
            |(class, version, k8s, cp, pods, services)| KaasClusterSpec {
                provider_class_name: class,
                cluster_stack: api::v1beta1::ClusterStackRef {
                    name: "scs".into(),
                    version,
                },
                kubernetes_version: k8s,
                control_plane: api::v1beta1::ControlPlane {
                    replicas: cp,
                    ..Default::default()
                },
                network: api::v1beta1::Network {
                    pod_cidrs: pods,
                    service_cidrs: services,
                    mtu: None,
                },
                ..Default::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn defaulting_is_idempotent_and_validation_total(spec in generated_spec()) {
        let catalog = catalog();
        let mut once = spec;
        default_kaas_cluster(&mut once, &catalog);
        let mut twice = once.clone();
        default_kaas_cluster(&mut twice, &catalog);
        prop_assert_eq!(&once, &twice);
        // Validation answers for every input, and every error names a spec field.
        let cluster = KaasCluster::new("c", once);
        if let Err(errs) = validate_kaas_cluster(&cluster, None, &catalog) {
            prop_assert!(errs.0.iter().all(|e| e.field.starts_with("spec.")));
        }
    }
}

#[test]
fn a_stack_rollout_names_each_bad_field() {
    let spec: api::v1beta1::StackRolloutSpec = serde_saphyr::from_str(
        r#"
clusterStack: {name: scs, version: "1.0"}
clusterTimeoutSeconds: 5
waves:
  - {name: canary, maxConcurrent: 0, soakSeconds: -1,
     selector: {matchLabels: {"bad key!": x}, matchExpressions: [{key: ring, operator: In}, {key: ring, operator: Near, values: [a]}]}}
  - {name: canary}
"#,
    )
    .unwrap();
    let errs = api::validation::validate_stack_rollout_spec(&spec);
    assert_eq!(
        errs.fields(),
        [
            "spec.clusterStack.version",
            "spec.waves[0].maxConcurrent",
            "spec.waves[0].soakSeconds",
            "spec.waves[0].selector.matchLabels",
            "spec.waves[0].selector.matchExpressions[0].values",
            "spec.waves[0].selector.matchExpressions[1].operator",
            "spec.waves[1].name",
            "spec.clusterTimeoutSeconds",
        ]
    );
    let good: api::v1beta1::StackRolloutSpec = serde_saphyr::from_str(
        "clusterStack: {name: scs, version: 1.0.1}\nwaves: [{name: all, selector: {}}]\n",
    )
    .unwrap();
    assert!(
        api::validation::validate_stack_rollout_spec(&good)
            .fields()
            .is_empty()
    );
}
