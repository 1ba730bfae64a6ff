//! Tenant policies through the real API server with `kaas-webhooks` registered: each kind of
//! rule refuses the create or update that passes it, naming the limit, the usage and the
//! request, and allows the one that fits; concurrent creates never pass a limit together,
//! not even across a restart of the webhook server, and the policy's usage then equals what
//! the clusters that exist use; an automatic upgrade is refused where the policy no longer
//! allows them.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::tenancy::{self, Footprint};
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass, StackRollout, TenantPolicy};
use kaas_testenv::TestEnv;
use kaas_webhooks::registration::{self, Target};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The tests take turns: each registers its own webhook server with the one API server.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The API server with the CRDs, the webhook server's RBAC, a class with a machine type
/// catalogue and a ready stack.
async fn setup() -> Result<(&'static TestEnv, Client)> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    kaas_testenv::install_crds(&client, &crds).await?;
    support::apply_webhook_rbac(env)?;
    Ok((env, client))
}

/// Starts `kaas-webhooks` as its service account and registers it.
async fn start_webhook(env: &TestEnv, client: &Client, name: &str) -> Result<support::Server> {
    let kubeconfig = env.kubeconfig_as("system:serviceaccount:kaas-system:kaas-webhooks")?;
    let server = support::start(env, &kubeconfig, name, &["--metrics-insecure"]).await?;
    let target = Target::Url(format!("https://{}", server.addr));
    registration::apply(
        client,
        &target,
        Some(server.ca.pem().as_bytes()),
        "tenancy-test",
    )
    .await?;
    Ok(server)
}

/// Retries `f` while the API server cannot reach the webhook (a just-registered or just
/// restarted server); any other answer is returned.
async fn admitted<T, F, Fut>(mut f: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Err(kube::Error::Api(e))
                if Instant::now() < deadline
                    && (e.code == 500 || e.code >= 502)
                    && (e.message.contains("failed calling webhook")
                        || e.message.contains("context deadline")) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn create<K>(api: &Api<K>, obj: &K) -> kube::Result<K>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    admitted(|| {
        let (api, obj) = (api.clone(), obj.clone());
        async move { api.create(&PostParams::default(), &obj).await }
    })
    .await
}

async fn patch(
    api: &Api<KaasCluster>,
    name: &str,
    body: serde_json::Value,
) -> kube::Result<KaasCluster> {
    admitted(|| {
        let (api, body) = (api.clone(), body.clone());
        let name = name.to_string();
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
        }
    })
    .await
}

/// The class (with its catalogue) and a ready stack, once.
async fn catalogue(client: &Client) -> Result<()> {
    let class: ProviderClass = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "openstack",
                     "annotations": {"providerclass.kaas.scs.community/is-default-class": "true"}},
        "spec": {"controller": "kaas.scs.community/openstack", "machineTypes": [
            {"name": "SCS-2V-4", "cpu": 2, "memory": "4Gi", "default": true},
            {"name": "SCS-4V-16", "cpu": 4, "memory": "16Gi"},
            {"name": "SCS-8V-32-1G", "cpu": 8, "memory": "32Gi", "gpus": 1},
            {"name": "SCS-16V-64", "cpu": 16, "memory": "64Gi"},
            {"name": "SCS-2V-64", "cpu": 2, "memory": "64Gi"}
        ]}
    }))?;
    let other: ProviderClass = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "premium"},
        "spec": {"controller": "kaas.scs.community/openstack"}
    }))?;
    for c in [class, other] {
        match create(&Api::<ProviderClass>::all(client.clone()), &c).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (name, stack, version, from) in [
        ("openstack-scs-1-0-0", "scs", "1.0.0", None),
        ("openstack-scs-1-0-1", "scs", "1.0.1", Some("1.0.0")),
        ("openstack-edge-1-0-0", "edge", "1.0.0", None),
    ] {
        let s: ClusterStack = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
            "metadata": {"name": name},
            "spec": {"provider": "openstack", "name": stack, "version": version,
                     "kubernetesVersions": ["1.33.4", "1.34.1"],
                     "upgradeFrom": from.into_iter().collect::<Vec<_>>()}
        }))?;
        let api = Api::<ClusterStack>::all(client.clone());
        match create(&api, &s).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
        let status = json!({"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Verified", "message": "test",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    Ok(())
}

/// A namespace labelled `tier=<tier>`.
async fn tenant(env: &TestEnv, client: &Client, tier: &str) -> Result<String> {
    let ns = env.namespace(client, tier).await?;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}})),
        )
        .await?;
    Ok(ns)
}

/// A policy for the namespaces labelled `tier=<tier>`.
async fn policy(client: &Client, tier: &str, spec: serde_json::Value) -> Result<()> {
    let mut spec = spec;
    spec["namespaceSelector"] = json!({"matchLabels": {"tier": tier}});
    let p: TenantPolicy = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "TenantPolicy",
        "metadata": {"name": tier}, "spec": spec
    }))?;
    create(&Api::<TenantPolicy>::all(client.clone()), &p).await?;
    Ok(())
}

fn cluster(name: &str, spec: serde_json::Value) -> Result<KaasCluster> {
    let mut full = json!({"clusterStack": {"name": "scs"}, "controlPlane": {"replicas": 1},
                          "workers": [{"name": "p", "replicas": 1, "machineType": "SCS-2V-4"}]});
    for (k, v) in spec.as_object().context("spec")? {
        full[k] = v.clone();
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name}, "spec": full
    }))?)
}

/// The message of a refused create of `name` with `spec` in `ns`, or an error when admitted.
async fn refused(client: &Client, ns: &str, name: &str, spec: serde_json::Value) -> Result<String> {
    let api = Api::<KaasCluster>::namespaced(client.clone(), ns);
    match create(&api, &cluster(name, spec)?).await {
        Ok(_) => bail!("{ns}/{name} was admitted"),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(e.message),
        Err(e) => bail!("{ns}/{name}: {e}"),
    }
}

async fn admits(client: &Client, ns: &str, name: &str, spec: serde_json::Value) -> Result<()> {
    let api = Api::<KaasCluster>::namespaced(client.clone(), ns);
    create(&api, &cluster(name, spec)?)
        .await
        .with_context(|| format!("{ns}/{name}"))?;
    Ok(())
}

/// Waits until `tier`'s usage has no reservation left and equals `want`, and no webhook
/// replica holds anything in it (a stopped one's hold expires, a live one's is given back).
async fn usage_settles(client: &Client, tier: &str, want: Footprint) -> Result<TenantPolicy> {
    let api = Api::<TenantPolicy>::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = api.get(tier).await?;
        let status = p.status.clone().unwrap_or_default();
        if status.reservations.is_empty() && status.holds.is_empty() && status.used == want.usage()
        {
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!(
                "{tier}: usage {:?} with {} reservations and {} holds, want {:?}",
                status.used,
                status.reservations.len(),
                status.holds.len(),
                want.usage()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the clusters of `namespaces` use, read back from the API server.
async fn sum(client: &Client, namespaces: &[&str]) -> Result<(usize, Footprint)> {
    let catalog = api::Catalog {
        classes: Api::<ProviderClass>::all(client.clone())
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .map(std::sync::Arc::new)
            .collect(),
        ..Default::default()
    };
    let mut total = Footprint::default();
    let mut n = 0;
    for ns in namespaces {
        for c in Api::<KaasCluster>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await?
        {
            total = total + tenancy::cluster_footprint(&c, &catalog).footprint;
            n += 1;
        }
    }
    Ok((n, total))
}

#[tokio::test]
async fn each_rule_refuses_what_passes_it_naming_it_and_allows_what_fits() -> Result<()> {
    let _turn = SERIAL.lock().await;
    let (env, client) = setup().await?;
    let server = start_webhook(env, &client, "kaas-webhooks-rules").await?;
    let result = rules(env, &client, &server).await;
    if result.is_err() {
        eprintln!("kaas-webhooks:\n{}", server.log_text());
    }
    result
}

async fn rules(env: &'static TestEnv, client: &Client, server: &support::Server) -> Result<()> {
    let client = client.clone();
    catalogue(&client).await?;

    // Limits: one tier per limit, checked against what its namespaces use.
    policy(
        &client,
        "limits",
        json!({"limits": {
        "clusters": 2, "controlPlaneNodes": 4, "workerNodes": 6, "cpu": 40, "memory": "96Gi",
        "gpus": 1, "nodePoolsPerCluster": 2, "stackRolloutsPerNamespace": 1}}),
    )
    .await?;
    let a = tenant(env, &client, "limits").await?;
    let b = tenant(env, &client, "limits").await?;
    // 3 control plane nodes (default type, 2 vCPUs, 4Gi) and 2 small workers: 10 vCPUs.
    admits(
        &client,
        &a,
        "one",
        json!({"controlPlane": {"replicas": 3},
        "workers": [{"name": "p", "replicas": 2, "machineType": "SCS-2V-4"}]}),
    )
    .await?;
    let msg = refused(&client, &b, "cp", json!({"controlPlane": {"replicas": 3}})).await?;
    assert!(
        msg.contains(&format!("namespace {b} (TenantPolicy limits) uses 3 of 4 control plane nodes; this change asks for 3 more")),
        "{msg}"
    );
    let msg = refused(
        &client,
        &b,
        "workers",
        json!({
        "workers": [{"name": "p", "replicas": 5, "machineType": "SCS-2V-4"}]}),
    )
    .await?;
    assert!(
        msg.contains("uses 2 of 6 worker nodes; this change asks for 5 more"),
        "{msg}"
    );
    let msg = refused(
        &client,
        &b,
        "cpu",
        json!({
        "workers": [{"name": "p", "replicas": 2, "machineType": "SCS-16V-64"}]}),
    )
    .await?;
    assert!(
        msg.contains("uses 10 of 40 vCPUs; this change asks for 34 more"),
        "{msg}"
    );
    let msg = refused(
        &client,
        &b,
        "mem",
        json!({
        "workers": [{"name": "p", "replicas": 2, "machineType": "SCS-2V-64"}]}),
    )
    .await?;
    assert!(
        msg.contains("uses 20Gi of 96Gi of memory; this change asks for 132Gi more"),
        "{msg}"
    );
    let msg = refused(
        &client,
        &b,
        "gpu",
        json!({
        "workers": [{"name": "p", "replicas": 2, "machineType": "SCS-8V-32-1G"}]}),
    )
    .await?;
    assert!(
        msg.contains("uses 0 of 1 GPUs; this change asks for 2 more"),
        "{msg}"
    );
    let msg = refused(
        &client,
        &b,
        "pools",
        json!({"workers": [
        {"name": "p", "replicas": 1, "machineType": "SCS-2V-4"},
        {"name": "q", "replicas": 1, "machineType": "SCS-2V-4"},
        {"name": "r", "replicas": 1, "machineType": "SCS-2V-4"}]}),
    )
    .await?;
    assert!(msg.contains("spec.workers: 3 node pools"), "{msg}");
    // A server-side dry run is checked but reserves nothing: it takes the second cluster
    // slot only on paper, and the real create after it still fits.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let probe = cluster(
        "dry",
        json!({"workers": [
        {"name": "p", "replicas": 1, "machineType": "SCS-8V-32-1G"}]}),
    )?;
    let api_b = Api::<KaasCluster>::namespaced(client.clone(), &b);
    admitted(|| {
        let (api_b, probe, dry) = (api_b.clone(), probe.clone(), dry.clone());
        async move { api_b.create(&dry, &probe).await }
    })
    .await
    .context("a dry run that fits")?;
    let pending = Api::<TenantPolicy>::all(client.clone())
        .get("limits")
        .await?
        .status
        .unwrap_or_default()
        .reservations;
    assert!(
        pending.iter().all(|r| r.name != "dry"),
        "a dry run reserved: {pending:?}"
    );
    // What fits, in the other namespace of the tier: one GPU node.
    admits(
        &client,
        &b,
        "two",
        json!({"workers": [
        {"name": "p", "replicas": 1, "machineType": "SCS-8V-32-1G"}]}),
    )
    .await?;
    let msg = refused(&client, &a, "three", json!({})).await?;
    assert!(
        msg.contains("uses 2 of 2 clusters; this change asks for 1 more"),
        "{msg}"
    );
    // An update that grows is checked too; one that shrinks is always allowed.
    let api = Api::<KaasCluster>::namespaced(client.clone(), &a);
    let grow =
        json!({"spec": {"workers": [{"name": "p", "replicas": 9, "machineType": "SCS-2V-4"}]}});
    match patch(&api, "one", grow).await {
        Err(kube::Error::Api(e)) if e.code == 403 => {
            assert!(
                e.message
                    .contains("worker nodes; this change asks for 7 more"),
                "{}",
                e.message
            )
        }
        other => bail!("growing past the limit: {other:?}"),
    }
    let shrink =
        json!({"spec": {"workers": [{"name": "p", "replicas": 1, "machineType": "SCS-2V-4"}]}});
    patch(&api, "one", shrink).await?;
    // 3 control plane + 1 worker of 2 vCPUs and 4Gi; 1 control plane of the same and a GPU node.
    let (n, used) = sum(&client, &[&a, &b]).await?;
    assert_eq!(n, 2);
    let settled = usage_settles(&client, "limits", used).await?;
    let status = settled.status.unwrap_or_default();
    assert_eq!(status.used.cpu, 4 * 2 + 2 + 8);
    assert_eq!(status.namespaces.len(), 2, "usage per namespace");
    // StackRollouts per namespace: the policy's bound (1), below the webhook's own.
    let rollouts = Api::<StackRollout>::namespaced(client.clone(), &a);
    let rollout = |name: &str| -> Result<StackRollout> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "StackRollout",
            "metadata": {"name": name},
            "spec": {"clusterStack": {"name": "scs", "version": "1.0.0"},
                     "waves": [{"name": "all", "selector": {}}]}}))?)
    };
    create(&rollouts, &rollout("r1")?).await?;
    let mut refusal = None;
    for _ in 0..50 {
        // The webhook counts from its cache: r1 must have reached it.
        match create(&rollouts, &rollout("r2")?).await {
            Err(kube::Error::Api(e)) if e.code == 403 => {
                refusal = Some(e.message);
                break;
            }
            Ok(_) => {
                rollouts.delete("r2", &DeleteParams::default()).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let refusal = refusal.context("a second StackRollout was admitted")?;
    assert!(
        refusal.contains(&format!(
            "namespace {a} holds 1 StackRollouts, TenantPolicy limits allows 1"
        )),
        "{refusal}"
    );

    // The printer columns and the metrics show the same numbers as the status.
    let out = env
        .kubectl()
        .args(["get", "tenantpolicies", "limits", "--no-headers"])
        .output()?;
    let columns: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        columns[..7],
        ["limits", "2", "2", "18", "40", "52Gi", "96Gi"],
        "{columns:?}"
    );
    let want = [
        ("kaas_tenant_usage", "cpu", 18i64),
        ("kaas_tenant_limit", "cpu", 40),
        ("kaas_tenant_usage", "clusters", 2),
        ("kaas_tenant_usage", "memory", 52 << 30),
        ("kaas_tenant_limit", "memory", 96 << 30),
        ("kaas_tenant_usage", "gpus", 1),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = kaas_testenv::http::get(&server.metrics_addr, "/metrics")
            .await?
            .body;
        let missing: Vec<String> = want
            .iter()
            .map(|(m, r, v)| format!("{m}{{policy=\"limits\",resource=\"{r}\"}} {v}"))
            .filter(|line| !text.lines().any(|l| l == line))
            .collect();
        if missing.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "metrics lack {missing:?}:\n{}",
            text.lines()
                .filter(|l| l.contains("tenant"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The policy lowered below what is used: nothing that exists changes, the condition says
    // so, growth is refused and a decrease still passes.
    Api::<TenantPolicy>::all(client.clone())
        .patch(
            "limits",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"limits": {"cpu": 10}}})),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let condition = loop {
        let p = Api::<TenantPolicy>::all(client.clone())
            .get("limits")
            .await?;
        let c = p
            .status
            .unwrap_or_default()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "WithinLimits" && c.status == "False");
        if let Some(c) = c {
            break c;
        }
        anyhow::ensure!(Instant::now() < deadline, "no OverLimit condition");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        condition.message,
        "uses 18 of 10 vCPUs: growth is refused, nothing that exists is changed"
    );
    let (n_after, used_after) = sum(&client, &[&a, &b]).await?;
    assert_eq!(
        (n_after, used_after),
        (2, used),
        "nothing that exists changed"
    );
    let grow =
        json!({"spec": {"workers": [{"name": "p", "replicas": 2, "machineType": "SCS-2V-4"}]}});
    match patch(&api, "one", grow).await {
        Err(kube::Error::Api(e)) if e.code == 403 => {
            assert!(
                e.message
                    .contains("uses 18 of 10 vCPUs; this change asks for 2 more"),
                "{}",
                e.message
            )
        }
        other => bail!("growing above a lowered limit: {other:?}"),
    }
    let shrink =
        json!({"spec": {"workers": [{"name": "p", "replicas": 0, "machineType": "SCS-2V-4"}]}});
    patch(&api, "one", shrink).await?;

    // What may be used: one tier per kind of rule.
    policy(
        &client,
        "allowed",
        json!({"allowed": {
        "providerClasses": ["openstack"], "clusterStacks": ["scs"], "kubernetesMinors": ["1.33"],
        "machineTypes": {"openstack": ["SCS-2V-4", "SCS-4V-16"]}, "failureDomains": ["az1"],
        "registryMirrors": false, "authentication": false, "automaticUpgrades": false}}),
    )
    .await?;
    let t = tenant(env, &client, "allowed").await?;
    for (name, spec, field) in [
        (
            "class",
            json!({"providerClassName": "premium"}),
            "spec.providerClassName: class \"premium\" is not allowed",
        ),
        (
            "stack",
            json!({"clusterStack": {"name": "edge"}}),
            "spec.clusterStack.name: cluster stack \"edge\" is not allowed",
        ),
        (
            "minor",
            json!({"kubernetesVersion": "1.34"}),
            "spec.kubernetesVersion: Kubernetes 1.34 is not allowed",
        ),
        (
            "type",
            json!({"workers": [{"name": "p", "replicas": 1, "machineType": "SCS-16V-64"}]}),
            "spec.workers[0].machineType: machine type \"SCS-16V-64\" is not allowed",
        ),
        (
            "zone",
            json!({"providerConfig": {"controlPlaneAvailabilityZones": ["az1", "az9"]}}),
            "spec.providerConfig.controlPlaneAvailabilityZones[1]: failure domain \"az9\" is not allowed",
        ),
        (
            "mirrors",
            json!({"registryMirrors": [{"registry": "docker.io", "endpoints": ["https://mirror.example.com"]}]}),
            "spec.registryMirrors: may not be set",
        ),
        (
            "auth",
            json!({"authentication": {"jwt": [{"issuer": {"url": "https://id.example.com", "audiences": ["k"]},
            "claimMappings": {"username": {"claim": "sub"}}}]}}),
            "spec.authentication: may not be set",
        ),
        (
            "auto",
            json!({"maintenance": {"autoUpgrade": "patch",
            "window": {"start": "02:00", "durationMinutes": 60, "timeZone": "UTC"}}}),
            "spec.maintenance.autoUpgrade: may not be set",
        ),
    ] {
        // Each breaks one rule only: left out, the version defaults to the newest (1.34).
        let mut spec = spec;
        if name != "minor" {
            spec["kubernetesVersion"] = json!("1.33");
        }
        let msg = refused(&client, &t, name, spec).await?;
        assert!(msg.contains(field), "{name}: {msg}");
        assert!(msg.contains(&format!("namespace {t}")), "{name}: {msg}");
    }
    admits(
        &client,
        &t,
        "fits",
        json!({"kubernetesVersion": "1.33",
        "workers": [{"name": "p", "replicas": 1, "machineType": "SCS-4V-16"}]}),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_creates_never_pass_a_limit_together_across_a_restart() -> Result<()> {
    let _turn = SERIAL.lock().await;
    let (env, client) = setup().await?;
    let first = start_webhook(env, &client, "kaas-webhooks-race-1").await?;
    catalogue(&client).await?;
    // Each cluster: 1 control plane node and 1 worker of 2 vCPUs: 4 vCPUs. 7 fit in 28.
    policy(&client, "race", json!({"limits": {"cpu": 28}})).await?;
    let namespaces = [
        tenant(env, &client, "race").await?,
        tenant(env, &client, "race").await?,
    ];
    let attempt = |i: usize| {
        let client = client.clone();
        let ns = namespaces[i % 2].clone();
        async move {
            let api = Api::<KaasCluster>::namespaced(client, &ns);
            let c = cluster(&format!("c{i:02}"), json!({}))?;
            match create(&api, &c).await {
                Ok(_) => Ok::<bool, anyhow::Error>(true),
                Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("vCPUs") => {
                    Ok(false)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(true),
                Err(e) => bail!("c{i:02}: {e}"),
            }
        }
    };
    // Ten at once; the server is replaced while they run; ten more at once.
    let batch = futures::future::join_all((0..10).map(attempt));
    let restart = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut first = first;
        let _ = first.child.kill();
        let _ = first.child.wait();
        start_webhook(env, &client, "kaas-webhooks-race-2").await
    };
    let (results, second) = tokio::join!(batch, restart);
    let _second = second?;
    let mut admitted_count = 0;
    for r in results {
        admitted_count += usize::from(r?);
    }
    let results = futures::future::join_all((10..20).map(attempt)).await;
    for r in results {
        admitted_count += usize::from(r?);
    }
    let ns: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let (n, used) = sum(&client, &ns).await?;
    assert!(n <= 7, "{n} clusters exist: 7 fit in the limit");
    assert!(admitted_count >= n, "{admitted_count} admitted, {n} exist");
    assert!(used.cpu <= 28, "{} vCPUs", used.cpu);
    let settled = usage_settles(&client, "race", used).await?;
    assert_eq!(settled.status.unwrap_or_default().used.clusters, n as i64);
    // Once settled, what is left of the limit can be used, and no more: exactly 7 then.
    let mut i = 30;
    while attempt(i).await? {
        i += 1;
        anyhow::ensure!(i < 40, "more than 7 clusters fit");
    }
    let (n, used) = sum(&client, &ns).await?;
    assert_eq!((n, used.cpu), (7, 28));

    // Deleting releases what the clusters used.
    let api = Api::<KaasCluster>::namespaced(client.clone(), &namespaces[0]);
    for c in api.list(&Default::default()).await? {
        api.delete(&c.name_any(), &DeleteParams::default()).await?;
    }
    let (_, left) = sum(&client, &ns).await?;
    usage_settles(&client, "race", left).await?;
    // What was freed can be used again.
    assert!(attempt(20).await?, "a cluster that fits again was refused");
    Ok(())
}

#[tokio::test]
async fn a_lifetime_deletes_a_cluster_only_after_its_warning_and_only_under_the_policy()
-> Result<()> {
    let _turn = SERIAL.lock().await;
    let (env, client) = setup().await?;
    let _server = start_webhook(env, &client, "kaas-webhooks-lifetime").await?;
    catalogue(&client).await?;
    // Clusters of the trial tier live 12 s and are warned 6 s ahead.
    policy(
        &client,
        "trial",
        json!({"lifetime": {"seconds": 12, "warnSeconds": 6}}),
    )
    .await?;
    let trial = tenant(env, &client, "trial").await?;
    let other = tenant(env, &client, "paying").await?;
    admits(&client, &trial, "short", json!({})).await?;
    admits(&client, &other, "kept", json!({})).await?;
    let created = Instant::now();
    let clusters = Api::<KaasCluster>::namespaced(client.clone(), &trial);
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &trial);
    let mut warned_at = None;
    let deadline = created + Duration::from_secs(40);
    loop {
        let exists = clusters.get_opt("short").await?.is_some();
        let warning = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("LifetimeEnding"));
        if let Some(w) = &warning
            && warned_at.is_none()
        {
            assert!(exists, "warned after it was deleted");
            let note = w.note.clone().unwrap_or_default();
            assert!(
                note.contains("TenantPolicy trial limits the lifetime"),
                "{note}"
            );
            warned_at = Some(created.elapsed());
        }
        if !exists {
            let warned = warned_at.context("deleted without a warning")?;
            let deleted = created.elapsed();
            // Warned about 6 s in, deleted about 12 s in: never sooner than 6 s after.
            assert!(
                deleted >= warned + Duration::from_secs(5),
                "warned at {warned:?}, deleted at {deleted:?}"
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not deleted after 40 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The cluster outside the policy, as old, is still there.
    Api::<KaasCluster>::namespaced(client.clone(), &other)
        .get("kept")
        .await
        .context("a cluster outside the policy was deleted")?;
    Ok(())
}

/// A cluster that set `spec.maintenance.autoUpgrade` while its policy allowed it keeps the
/// setting when the policy stops allowing automatic upgrades, but the operators' automatic
/// move (field manager `kaas-maintenance`) is refused naming the policy; its owner can still
/// move it.
#[tokio::test]
async fn an_automatic_upgrade_is_refused_once_the_policy_no_longer_allows_them() -> Result<()> {
    let _turn = SERIAL.lock().await;
    let (env, client) = setup().await?;
    let _server = start_webhook(env, &client, "kaas-webhooks-auto").await?;
    catalogue(&client).await?;
    policy(
        &client,
        "auto",
        json!({"allowed": {"automaticUpgrades": true}}),
    )
    .await?;
    let ns = tenant(env, &client, "auto").await?;
    admits(
        &client,
        &ns,
        "moved",
        json!({"clusterStack": {"name": "scs", "version": "1.0.0"}, "kubernetesVersion": "1.33",
               "maintenance": {"autoUpgrade": "patch",
                               "window": {"days": ["Sat"], "start": "22:00", "durationMinutes": 120}}}),
    )
    .await?;
    Api::<TenantPolicy>::all(client.clone())
        .patch(
            "auto",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowed": {"automaticUpgrades": false}}})),
        )
        .await?;
    let api = Api::<KaasCluster>::namespaced(client.clone(), &ns);
    let move_to = json!({"spec": {"clusterStack": {"version": "1.0.1"}}});
    let as_maintenance = |dry_run: bool| PatchParams {
        field_manager: Some(tenancy::AUTOMATIC_UPGRADE_MANAGER.into()),
        dry_run,
        ..Default::default()
    };
    // Dry runs until the webhook's cache has the policy's change.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api
            .patch("moved", &as_maintenance(true), &Patch::Merge(&move_to))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 403 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            other => bail!("the policy's change never reached the webhook: {other:?}"),
        }
    }
    match api
        .patch("moved", &as_maintenance(false), &Patch::Merge(&move_to))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 => assert!(
            e.message.contains(&format!(
                "spec.clusterStack.version: automatic upgrades are not allowed in namespace {ns} (TenantPolicy auto); the move from 1.0.0 to 1.0.1 is left to the cluster's owner"
            )),
            "{}",
            e.message
        ),
        other => bail!("the automatic upgrade was not refused: {other:?}"),
    }
    let kept = api.get("moved").await?;
    assert_eq!(kept.spec.cluster_stack.version.as_deref(), Some("1.0.0"));
    assert!(
        kept.spec
            .maintenance
            .as_ref()
            .is_some_and(|m| m.auto_upgrade.is_some()),
        "the setting stays"
    );
    // Its owner moves it.
    let moved = patch(&api, "moved", move_to).await?;
    assert_eq!(moved.spec.cluster_stack.version.as_deref(), Some("1.0.1"));
    Ok(())
}
