//! `kaasctl quota` against the real API server shows what the `TenantPolicy` status says:
//! for a namespace, the policies that govern it (by its labels) with each limit, the usage,
//! what is left and the namespace's own share; a namespace no policy governs is unlimited.
//! (The status is written here as kaas-webhooks would; webhooks/tests/tenancy.rs checks that
//! kaas-webhooks writes it.)

use anyhow::Result;
use api::tenancy::Footprint;
use api::v1beta1::{NamespaceUsage, TenantPolicy, TenantPolicyStatus};
use kaas_testenv::TestEnv;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

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
