//! The Cluster API objects as the real v1.14 schemas accept them: no empty
//! `clusterConfiguration`, `nodeRegistration` or argument list (the CRDs require at least one
//! property or item), and a cluster's OIDC settings in place of a stack's `oidc-*` flags (the
//! CRDs refuse two flags of one name).

mod support;

use std::collections::BTreeMap;

use kaas_stack::format::Kubeadm;
use operator_core::render;
use serde_json::Value;

const SPEC: &str = r#"
providerClassName: fake
clusterStack: {name: scs, version: 1.0.0}
kubernetesVersion: 1.34.1
controlPlane: {replicas: 1, machineType: m1}
workers: [{name: md-0, replicas: 2, machineType: m2}]
network: {podCIDRs: [192.168.0.0/16], serviceCIDRs: [10.96.0.0/12]}
"#;

/// Every path under `value` that holds an empty object or list.
fn empties(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(m) if m.is_empty() => out.push(path.to_string()),
        Value::Array(a) if a.is_empty() => out.push(path.to_string()),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| empties(v, &format!("{path}.{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| empties(v, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

fn args(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap().to_string(),
                        x["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_stack_and_provider_without_flags_render_no_empty_kubeadm_settings() {
    let cluster = support::cluster(SPEC);
    let (stack, class) = (support::stack(), support::class());
    let ctx = support::context(&cluster, &stack, &class, "1.34.1");
    let infra = support::infrastructure(&cluster, &[]);
    let objects = render::render(
        &ctx,
        &support::KINDS,
        &[],
        &infra,
        &Kubeadm::default(),
        "kaas-operator-fake",
    )
    .unwrap();

    let mut found = Vec::new();
    for o in objects.all() {
        empties(&o["spec"], &format!("{}.spec", o["kind"]), &mut found);
    }
    assert!(found.is_empty(), "empty objects or lists: {found:?}");
    let kcp = &objects.control_plane;
    assert!(kcp["spec"].get("kubeadmConfigSpec").is_none(), "{kcp}");
    // A bootstrap template with nothing to configure still has a property: the pool's labels.
    let bootstrap = &objects.pools[0].bootstrap_template;
    assert_eq!(
        bootstrap["spec"]["template"]["metadata"]["labels"][render::POOL_LABEL],
        "md-0"
    );
    assert!(bootstrap["spec"]["template"].get("spec").is_none());
}

#[test]
fn provider_flags_alone_fill_node_registration_but_no_cluster_configuration() {
    let cluster = support::cluster(SPEC);
    let (stack, class) = (support::stack(), support::class());
    let ctx = support::context(&cluster, &stack, &class, "1.34.1");
    let infra = support::infrastructure(&cluster, &[("cloud-provider", "external")]);
    let objects = render::render(
        &ctx,
        &support::KINDS,
        &[],
        &infra,
        &Kubeadm::default(),
        "kaas-operator-fake",
    )
    .unwrap();
    let spec = &objects.control_plane["spec"]["kubeadmConfigSpec"];
    assert!(spec.get("clusterConfiguration").is_none(), "{spec}");
    for phase in ["initConfiguration", "joinConfiguration"] {
        assert_eq!(
            args(&spec[phase]["nodeRegistration"]["kubeletExtraArgs"]),
            [("cloud-provider".into(), "external".into())]
        );
    }
    let bootstrap = &objects.pools[0].bootstrap_template["spec"]["template"]["spec"];
    assert_eq!(
        args(&bootstrap["joinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]),
        [("cloud-provider".into(), "external".into())]
    );
}

#[test]
fn a_clusters_oidc_replaces_the_stacks_oidc_flags_and_keeps_the_others_in_order() {
    let kubeadm = Kubeadm {
        api_server_extra_args: BTreeMap::from([
            ("audit-log-maxage".to_string(), "30".to_string()),
            (
                "oidc-issuer-url".to_string(),
                "https://stack.example".to_string(),
            ),
            ("oidc-client-id".to_string(), "stack".to_string()),
            ("profiling".to_string(), "false".to_string()),
        ]),
        ..Default::default()
    };
    let (stack, class) = (support::stack(), support::class());
    let plain = support::cluster(SPEC);
    let with_oidc = support::cluster(&format!(
        "{SPEC}oidc: {{issuerURL: 'https://idp.example', clientID: kubernetes, groupsClaim: groups}}\n"
    ));
    let api_server_args = |cluster| {
        let ctx = support::context(cluster, &stack, &class, "1.34.1");
        let infra = support::infrastructure(cluster, &[]);
        let objects = render::render(
            &ctx,
            &support::KINDS,
            &[],
            &infra,
            &kubeadm,
            "kaas-operator-fake",
        )
        .unwrap();
        args(
            &objects.control_plane["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]
                ["extraArgs"],
        )
    };

    // Without spec.oidc the stack's flags stand.
    let stack_only = api_server_args(&plain);
    assert!(stack_only.contains(&("oidc-client-id".into(), "stack".into())));

    let with = api_server_args(&with_oidc);
    let names: Vec<&str> = with.iter().map(|(n, _)| n.as_str()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a flag twice: {names:?}");
    assert_eq!(
        names,
        [
            "audit-log-maxage",
            "profiling",
            "oidc-issuer-url",
            "oidc-client-id",
            "oidc-groups-claim"
        ]
    );
    assert!(with.contains(&("oidc-issuer-url".into(), "https://idp.example".into())));
    assert!(with.contains(&("oidc-client-id".into(), "kubernetes".into())));
}
