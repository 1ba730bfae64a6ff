//! `kaasctl quota` against the real API server shows what the `TenantPolicy` status says:
//! for a namespace, the policies that govern it (by its labels) with each limit, the usage,
//! what is left and the namespace's own share; a namespace no policy governs is unlimited.
//! (The status is written here as kaas-webhooks would; webhooks/tests/tenancy.rs checks that
//! kaas-webhooks writes it.) And where a policy stands shows on its clusters, through the
//! docker operator.

use std::time::Duration;

use anyhow::Result;
use api::tenancy::Footprint;
use api::v1beta1::{KaasCluster, NamespaceUsage, TenantPolicy, TenantPolicyStatus};
use kaas_testenv::TestEnv;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn quota_shows_limit_used_left_and_the_namespace_as_the_status_says() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    let ns = env.namespace(&client, "quota").await?;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "quota-gold"}}})),
        )
        .await?;
    let policies = Api::<TenantPolicy>::all(client.clone());
    let policy: TenantPolicy = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "TenantPolicy",
        "metadata": {"name": "quota-gold"},
        "spec": {"namespaceSelector": {"matchLabels": {"tier": "quota-gold"}},
                 "limits": {"clusters": 20, "cpu": 48, "memory": "128Gi"}}}))?;
    policies.create(&PostParams::default(), &policy).await?;
    let mut written = policies.get("quota-gold").await?;
    written.status = Some(TenantPolicyStatus {
        used: Footprint {
            clusters: 3,
            control_plane_nodes: 9,
            worker_nodes: 12,
            cpu: 46,
            memory_mib: 100 * 1024,
            gpus: 0,
        }
        .usage(),
        namespaces: vec![NamespaceUsage {
            namespace: ns.clone(),
            used: Footprint {
                clusters: 1,
                cpu: 16,
                memory_mib: 32 * 1024,
                ..Default::default()
            }
            .usage(),
        }],
        ..Default::default()
    });
    policies
        .replace_status("quota-gold", &PostParams::default(), &written)
        .await?;

    let (code, out) = kaas_e2e::kaasctl(&["quota", &ns], env.kubeconfig_path())?;
    assert_eq!(code, 0, "{out}");
    let row = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    assert!(out.starts_with("TenantPolicy quota-gold\n"), "{out}");
    assert_eq!(row("clusters"), ["clusters", "20", "3", "17", "1"], "{out}");
    assert_eq!(row("cpu"), ["cpu", "48", "46", "2", "16"], "{out}");
    assert_eq!(
        row("memory"),
        ["memory", "128Gi", "100Gi", "28Gi", "32Gi"],
        "{out}"
    );
    assert_eq!(
        row("workerNodes"),
        ["workerNodes", "-", "12", "-", "0"],
        "{out}"
    );

    let free = env.namespace(&client, "quota-free").await?;
    let (code, out) = kaas_e2e::kaasctl(&["quota", &free], env.kubeconfig_path())?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no TenantPolicy governs it: unlimited"),
        "{out}"
    );
    Ok(())
}

/// The `WithinTenantPolicy` condition of `name` in `clusters`: (status, message).
async fn standing(clusters: &Api<KaasCluster>, name: &str) -> Result<Option<(String, String)>> {
    Ok(clusters
        .get(name)
        .await?
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "WithinTenantPolicy")
        .map(|c| (c.status, c.message)))
}

/// The `spec.replicas` of every `KubeadmControlPlane` in `ns`: what the operator rendered.
async fn control_planes(client: &kube::Client, ns: &str) -> Result<Vec<(String, i64)>> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "controlplane.cluster.x-k8s.io",
        "v1beta2",
        "KubeadmControlPlane",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|o| {
            let replicas = o.data["spec"]["replicas"].as_i64().unwrap_or(-1);
            (o.name_any(), replicas)
        })
        .collect())
}

/// A policy lowered below what its namespaces use (its status as kaas-webhooks writes it:
/// `WithinLimits` False) changes nothing that exists: the docker operator gives each cluster
/// of the namespaces the policy lists `WithinTenantPolicy` False naming the policy and what is
/// over, True once the policy is within its limits again, none once the policy is gone; the
/// cluster's spec and what the operator rendered for it stay as they were.
#[tokio::test]
async fn a_policy_over_its_limits_shows_on_its_clusters_and_changes_nothing() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    let ns = env.namespace(&client, "over").await?;
    let args = vec![
        format!(
            "--metrics-bind-address=127.0.0.1:{}",
            kaas_e2e::free_port()?
        ),
        "--metrics-insecure".to_string(),
        format!(
            "--health-probe-bind-address=127.0.0.1:{}",
            kaas_e2e::free_port()?
        ),
    ];
    let operator = kaas_e2e::Process::start(env, "kaas-operator-docker", &args, "over-operator")?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "kept"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e", "version": "1.0.0"},
                 "controlPlane": {"replicas": 3}}}))?;
    clusters.create(&PostParams::default(), &cluster).await?;
    let rendered = kaas_e2e::wait_for("the cluster rendered", WAIT, || async {
        let cps = control_planes(&client, &ns).await?;
        Ok((!cps.is_empty()).then_some(cps))
    })
    .await;
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e:#}\noperator log:\n{}", operator.log_tail()),
    };
    assert_eq!(standing(&clusters, "kept").await?, None, "no policy yet");
    let before = clusters.get("kept").await?;

    let policies = Api::<TenantPolicy>::all(client.clone());
    let policy: TenantPolicy = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "TenantPolicy",
        "metadata": {"name": "over-gold"},
        "spec": {"namespaceSelector": {"matchLabels": {"tier": "over-gold"}},
                 "limits": {"controlPlaneNodes": 2}}}))?;
    policies.create(&PostParams::default(), &policy).await?;
    let write = |over: bool| {
        let policies = policies.clone();
        let ns = ns.clone();
        async move {
            let mut p = policies.get("over-gold").await?;
            let (status, reason, message) = if over {
                (
                    "False",
                    "OverLimit",
                    "uses 3 of 2 control plane nodes: growth is refused, nothing that exists is changed",
                )
            } else {
                ("True", "WithinLimits", "every limit holds")
            };
            p.status = Some(serde_json::from_value(json!({
                "used": {"clusters": 1, "controlPlaneNodes": 3},
                "namespaces": [{"namespace": ns, "used": {"clusters": 1, "controlPlaneNodes": 3}}],
                "conditions": [{"type": "WithinLimits", "status": status, "reason": reason,
                                "message": message, "lastTransitionTime": "2026-12-07T10:00:00Z"}]
            }))?);
            policies
                .replace_status("over-gold", &PostParams::default(), &p)
                .await?;
            anyhow::Ok(())
        }
    };
    write(true).await?;
    let (status, message) = kaas_e2e::wait_for("WithinTenantPolicy False", WAIT, || async {
        Ok(standing(&clusters, "kept")
            .await?
            .filter(|(s, _)| s == "False"))
    })
    .await?;
    assert_eq!(status, "False");
    assert!(
        message.contains("TenantPolicy over-gold: uses 3 of 2 control plane nodes"),
        "{message}"
    );
    // Nothing that exists changed for it.
    let after = clusters.get("kept").await?;
    assert_eq!(after.spec, before.spec);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(control_planes(&client, &ns).await?, rendered);

    write(false).await?;
    let (_, message) = kaas_e2e::wait_for("WithinTenantPolicy True", WAIT, || async {
        Ok(standing(&clusters, "kept")
            .await?
            .filter(|(s, _)| s == "True"))
    })
    .await?;
    assert!(message.contains("over-gold"), "{message}");
    policies.delete("over-gold", &Default::default()).await?;
    kaas_e2e::wait_for("no WithinTenantPolicy without a policy", WAIT, || async {
        Ok(standing(&clusters, "kept").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}
