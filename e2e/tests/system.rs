//! The whole system, as users run it, in one story: a management API server with the CRDs
//! converting through `kaas-webhooks` (registered by URL with its CA, running as its deployed
//! service account), the three provider operators as processes, a workload API server per
//! example cluster, the CAPI and Hetzner API stand-ins, and a real Prometheus scraping every
//! component (`kaas_e2e::system`, the same start as the demo). In order:
//!
//! 1. one cluster per provider (`examples/`) reaches Ready with its add-ons in its own
//!    workload API server, and is compliant with the base stack;
//! 2. an invalid object is refused by the API server, naming every bad field;
//! 3. a `v1alpha1` object works end to end and reads back as `v1beta1`;
//! 4. scaling a pool;
//! 5. a stack upgrade with a Kubernetes minor, the operator killed in the middle of it;
//! 6. Prometheus has `kaas_*` series of every component (kaas-installer too), has loaded the
//!    alert rules of `deploy/monitoring` and evaluates each, and every query of every dashboard
//!    in `deploy/monitoring/dashboards` returns data;
//! 7. deletion leaves nothing behind.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use api::v1beta1::KaasCluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::storage::v1::StorageClass;
use kaas_e2e::system::{Options, System};
use kaas_e2e::wait_for;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

const NS: &str = "team-a";
const WAIT: Duration = Duration::from_secs(120);
/// `(provider, example cluster)` of every registered provider.
fn examples() -> impl Iterator<Item = (&'static str, &'static str)> {
    kaas_providers::ALL
        .iter()
        .map(|p| (p.name, p.example_cluster))
}

fn ar(api_version: &str, kind: &str) -> ApiResource {
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, kind))
}

fn phase(c: &KaasCluster) -> Option<&str> {
    c.status.as_ref()?.phase.as_deref()
}

fn kubectl_apply(
    system: &System,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<std::process::Output> {
    use std::io::Write;
    let mut cmd = system.management.kubectl();
    cmd.arg("apply").args(args);
    if stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(text.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

async fn wait_ready(
    clusters: &Api<KaasCluster>,
    name: &str,
    system: &System,
) -> Result<KaasCluster> {
    wait_for(&format!("{name} Ready"), WAIT, || async {
        Ok(clusters
            .get_opt(name)
            .await?
            .filter(|c| phase(c) == Some("Ready")))
    })
    .await
    .map_err(|e| {
        let logs: Vec<String> = system
            .operators
            .iter()
            .map(|(p, o)| format!("--- {p}:\n{}", o.process.log_tail()))
            .collect();
        anyhow::anyhow!("{e}\n{}", logs.join("\n"))
    })
}

/// Every Cluster API object in the namespace labelled for `cluster`.
async fn capi_objects(client: &Client, cluster: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (v, k) in kaas_e2e::capi_kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar(v, k));
        for o in api
            .list(&ListParams::default().labels(&format!("kaas.scs.community/cluster={cluster}")))
            .await?
        {
            out.push(format!("{k} {}", o.name_any()));
        }
    }
    Ok(out)
}

#[tokio::test]
async fn the_whole_system() -> Result<()> {
    let options = Options {
        workload_clusters: examples().map(|(_, c)| c.to_string()).collect(),
        prometheus: true,
        installer: true,
        operator_args: vec!["--addon-resync=3".into()],
        ..Default::default()
    };
    let mut system = System::start(&options, &|n, text| eprintln!("[{n}/4] {text}")).await?;
    let client = system.management.client().await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&Default::default(), &serde_json::from_value(ns)?)
        .await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), NS);

    // 1. One cluster per provider, Ready, add-ons in its workload cluster, compliant.
    for (provider, _) in examples() {
        let dir = root.join("examples").join(provider);
        let out = wait_for(&format!("examples/{provider} applied"), WAIT, || async {
            let out = kubectl_apply(
                &system,
                &["-n", NS, "-f", dir.to_str().unwrap_or_default()],
                None,
            )?;
            // The shipped stacks appear once the operators started; retry until then.
            Ok(out.status.success().then_some(out))
        })
        .await?;
        assert!(out.status.success());
    }
    for (provider, name) in examples() {
        let cluster = wait_ready(&clusters, name, &system).await?;
        let status = cluster.status.unwrap_or_default();
        assert!(
            status.addons.iter().all(|a| a.ready),
            "{name}: {:?}",
            status.addons
        );
        let workload = system.workload(name).client().await?;
        let cilium = Api::<DaemonSet>::namespaced(workload.clone(), "kube-system")
            .get_opt("cilium")
            .await?;
        assert!(cilium.is_some(), "{name}: Cilium in its workload cluster");
        let standard = Api::<StorageClass>::all(workload.clone())
            .get_opt("standard")
            .await?;
        assert!(standard.is_some(), "{name}: the standard StorageClass");
        if provider != "docker" {
            let ccm = Api::<Deployment>::namespaced(workload.clone(), "kube-system")
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .any(|d| d.name_any().contains("cloud-controller-manager"));
            assert!(ccm, "{name}: the {provider} cloud controller manager");
        }
        let compliant = wait_for(&format!("{name} Compliant"), WAIT, || async {
            Ok(clusters.get(name).await?.status.and_then(|s| {
                s.conditions
                    .into_iter()
                    .find(|c| c.type_ == "Compliant" && c.status == "True")
            }))
        })
        .await?;
        assert!(
            compliant.message.contains("base/scs 1.0.0"),
            "{}",
            compliant.message
        );
        // Every SCS standard that can be checked here passes (scs-0210 while Kubernetes
        // 1.35, the examples' minor, is supported upstream: until 2027-02-28).
        let supported = operator_core::conformance::today() <= "2027-02-28".parse()?;
        let standards = wait_for(&format!("{name}'s standards checked"), WAIT, || async {
            let s = clusters
                .get(name)
                .await?
                .status
                .unwrap_or_default()
                .standards;
            Ok((s.len() == 5 && s.iter().all(|r| r.result != "Unknown")).then_some(s))
        })
        .await?;
        for s in &standards {
            let expected = if s.id == "scs-0210-v2" && !supported {
                "Fail"
            } else {
                "Pass"
            };
            assert_eq!(s.result, expected, "{name}: {s:?}");
        }
    }

    // 2. An invalid object is refused by the API server, every bad field named.
    let invalid = format!(
        "apiVersion: kaas.scs.community/v1beta1\nkind: KaasCluster\nmetadata: {{name: broken, namespace: {NS}}}\nspec:\n  providerClassName: docker\n  clusterStack: {{name: scs, version: 1.0.0}}\n  controlPlane: {{replicas: 2}}\n  workers: [{{name: Pool_1, replicas: 1, machineType: x}}]\n  network: {{podCIDRs: [10.96.0.0/16], serviceCIDRs: [10.96.0.0/12]}}\n"
    );
    let out = kubectl_apply(&system, &["-f", "-"], Some(&invalid))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the invalid object was admitted");
    for field in [
        "spec.controlPlane.replicas",
        "spec.workers[0].name",
        "spec.network",
    ] {
        assert!(stderr.contains(field), "{field} not named in: {stderr}");
    }
    assert!(clusters.get_opt("broken").await?.is_none());

    // 3. A v1alpha1 object, end to end.
    let legacy = format!(
        "apiVersion: kaas.scs.community/v1alpha1\nkind: KaasCluster\nmetadata: {{name: legacy, namespace: {NS}}}\nspec:\n  providerClass: docker\n  clusterStackName: scs\n  kubernetesVersion: \"1.34\"\n  controlPlaneReplicas: 1\n  machineDeployments: [{{name: md-0, replicas: 1, machineType: x}}]\n"
    );
    let out = kubectl_apply(&system, &["-f", "-"], Some(&legacy))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let legacy = wait_ready(&clusters, "legacy", &system).await?;
    assert_eq!(legacy.spec.workers[0].name, "md-0", "read back as v1beta1");
    assert_eq!(
        legacy.spec.cluster_stack.version.as_deref(),
        Some("1.0.0"),
        "defaulted"
    );
    let old = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kaas.scs.community", "v1alpha1", "KaasCluster"),
            "kaasclusters",
        ),
    )
    .get("legacy")
    .await?;
    assert_eq!(old.data["spec"]["machineDeployments"][0]["name"], "md-0");

    // 4. Scale a pool.
    clusters
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"workers": [{"name": "md-0", "replicas": 3, "machineType": "default"}]}})),
        )
        .await?;
    wait_for("dev scaled to 3", WAIT, || async {
        let c = clusters.get("dev").await?;
        let ready = c
            .status
            .as_ref()
            .and_then(|s| s.workers.iter().find(|w| w.name == "md-0"))
            .map(|w| w.ready_replicas);
        Ok((ready == Some(3) && phase(&c) == Some("Ready")).then_some(()))
    })
    .await?;
    let md = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        NS,
        &ar("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
    )
    .get("dev-md-0")
    .await?;
    assert_eq!(md.data["spec"]["replicas"], 3);

    // 5. A stack upgrade (scs 1.0.0 → 1.1.0, on Kubernetes 1.35), the operator killed in the
    //    middle of it.
    let release = tempfile::tempdir()?;
    let overlay = std::fs::read_to_string(root.join("stacks/docker/stack.yaml"))?.replace(
        "\nversion: 1.0.0\n",
        "\nversion: 1.1.0\nupgradeFrom: [\"1.0.0\"]\n",
    ) + "  - name: stack-info\n    version: 1.1.0\n    health: applied\n    manifests: [addons/stack-info.yaml]\n";
    std::fs::create_dir_all(release.path().join("addons"))?;
    std::fs::write(release.path().join("stack.yaml"), overlay)?;
    std::fs::copy(
        root.join("stacks/docker/addons/local-path-provisioner.yaml"),
        release.path().join("addons/local-path-provisioner.yaml"),
    )?;
    std::fs::write(
        release.path().join("addons/stack-info.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stack-info, namespace: kube-system}\ndata: {release: \"{{ addon.version }}\", kubernetes: \"{{ cluster.kubernetesVersion }}\"}\n",
    )?;
    kaas_e2e::install_local_release(&client, release.path()).await?;
    wait_for("docker scs 1.1.0 ready", WAIT, || async {
        Ok(Api::<api::v1beta1::ClusterStack>::all(client.clone())
            .get_opt("docker-scs-1-1-0")
            .await?
            .filter(|s| s.is_ready()))
    })
    .await?;
    // The new release is offered to the cluster once its operator has seen it.
    wait_for("1.1.0 offered in dev's availableUpgrades", WAIT, || async {
        let offered = clusters
            .get("dev")
            .await?
            .status
            .is_some_and(|s| s.available_upgrades.contains(&"1.1.0".to_string()));
        Ok(offered.then_some(()))
    })
    .await?;
    let mut events = watcher(
        clusters.clone(),
        watcher::Config::default().fields("metadata.name=dev"),
    )
    .applied_objects()
    .boxed();
    clusters
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusterStack": {"version": "1.1.0"}, "kubernetesVersion": "1.35"}})),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let killed_at = loop {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await else {
            bail!("the upgrade never showed in status.upgrade");
        };
        if let Some(u) = event?.status.and_then(|s| s.upgrade) {
            system.kill_operator("docker");
            break u.stage;
        }
    };
    eprintln!("killed kaas-operator-docker in upgrade stage {killed_at}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    system.restart_operator("docker")?;
    let upgraded = wait_for("dev upgraded", WAIT, || async {
        let c = clusters.get("dev").await?;
        let s = c.status.clone().unwrap_or_default();
        Ok((s.kubernetes_version.as_deref() == Some("1.35.0")
            && s.cluster_stack_version.as_deref() == Some("1.1.0")
            && s.upgrade.is_none()
            && phase(&c) == Some("Ready"))
        .then_some(c))
    })
    .await
    .with_context(|| {
        format!(
            "killed at stage {killed_at}; log:\n{}",
            system.operators["docker"].process.log_tail()
        )
    })?;
    assert!(
        upgraded
            .status
            .unwrap_or_default()
            .addons
            .iter()
            .any(|a| a.name == "stack-info")
    );
    let info = Api::<ConfigMap>::namespaced(system.workload("dev").client().await?, "kube-system")
        .get("stack-info")
        .await?;
    assert_eq!(info.data.unwrap_or_default()["kubernetes"], "1.35.0");
    let kcp = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        NS,
        &ar(
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
        ),
    )
    .get("dev-control-plane")
    .await?;
    assert_eq!(kcp.data["spec"]["version"], "v1.35.0");

    // 6. Prometheus scrapes every component; kaas_* series read back through its API.
    let prometheus = system.prometheus.clone().context("prometheus")?;
    let mut queries = vec![
        (r#"up{job="kaas-webhooks"} == 1"#.to_string(), "the webhook server scraped"),
        (
            r#"sum(kaas_webhook_requests_total{job="kaas-webhooks",kind="KaasCluster"}) > 0"#.to_string(),
            "admission requests counted",
        ),
        (
            r#"kaas_cluster_info{job="kaas-operator-docker",name="dev",kubernetes_version="1.35.0"}"#.to_string(),
            "dev's info series at its new version",
        ),
    ];
    for (provider, _) in examples() {
        queries.push((
            format!(r#"up{{job="kaas-operator-{provider}"}} == 1"#),
            "an operator scraped",
        ));
        queries.push((
            format!(
                r#"kaas_reconcile_total{{job="kaas-operator-{provider}",result="success"}} > 0"#
            ),
            "an operator's reconciles",
        ));
    }
    for (promql, what) in &queries {
        wait_for(&format!("{what}: {promql}"), WAIT, || async {
            let r = kaas_e2e::system::query(&prometheus, promql).await?;
            Ok((!r.is_empty()).then_some(()))
        })
        .await?;
    }
    monitoring(&system, &client, &prometheus).await?;

    // 7. Deletion leaves nothing behind (shared node images included).
    for name in ["dev", "shop", "web", "legacy"] {
        clusters.delete(name, &Default::default()).await?;
    }
    wait_for("every cluster deleted", WAIT, || async {
        Ok(clusters
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    let mut left = BTreeSet::new();
    for name in ["dev", "shop", "web", "legacy"] {
        left.extend(capi_objects(&client, name).await?);
    }
    let images = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        NS,
        &ar("openstack.k-orc.cloud/v1alpha1", "Image"),
    )
    .list(&ListParams::default())
    .await?;
    left.extend(
        images
            .items
            .iter()
            .map(|i| format!("Image {}", i.name_any())),
    );
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

/// Metrics with series only while something is in progress or wrong (the dashboards show 0 for
/// them through `or vector(0)`): an upgrade stage, a reconcile error, an unusable release, a
/// tenant policy, a certificate reload, a certificate expiry Cluster API reports (the stand-in
/// does not).
const CONDITIONAL: &[&str] = &[
    "kaas_cluster_upgrade_stage",
    "kaas_reconcile_errors_total",
    "kaas_stack_releases_unusable",
    "kaas_tenant_usage",
    "kaas_tenant_limit",
    "kaas_webhook_certificate_reloads_total",
    "kaas_cluster_certificates_expiry_timestamp_seconds",
];

/// The dashboards' queries as the system runs them: (dashboard, panel, PromQL with the
/// dashboard variables set to the cluster dev of the docker operator).
fn dashboard_queries() -> Result<Vec<(String, String, String)>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        for panel in model["panels"].as_array().context("panels")? {
            for target in panel["targets"].as_array().context("targets")? {
                let expr = target["expr"].as_str().context("expr")?;
                out.push((
                    model["uid"].as_str().unwrap_or_default().to_string(),
                    panel["title"].as_str().unwrap_or_default().to_string(),
                    expr.replace("$namespace", NS)
                        .replace("$name", "dev")
                        .replace("$job", "kaas-operator-docker")
                        .replace("$__rate_interval", "1m"),
                ));
            }
        }
    }
    Ok(out)
}

/// The queries of `queries` that return nothing, and the metrics they name that have no
/// series at all in Prometheus (but the [`CONDITIONAL`] ones).
async fn dashboard_gaps(
    prometheus: &str,
    queries: &[(String, String, String)],
) -> Result<Vec<String>> {
    let mut gaps = Vec::new();
    for (dashboard, panel, promql) in queries {
        if kaas_e2e::system::query(prometheus, promql)
            .await?
            .is_empty()
        {
            gaps.push(format!("{dashboard} / {panel}: no data from {promql}"));
        }
        let names = promql
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("kaas_") || w.starts_with("process_"));
        for name in names {
            let name = name.trim_end_matches("_bucket");
            let family = if promql.contains(&format!("{name}_bucket")) {
                format!("{name}_bucket")
            } else {
                name.to_string()
            };
            if CONDITIONAL.contains(&name) {
                continue;
            }
            let any = kaas_e2e::system::query(prometheus, &format!("count({family})")).await?;
            if any.is_empty() {
                gaps.push(format!("{dashboard} / {panel}: no series of {family}"));
            }
        }
    }
    Ok(gaps)
}

/// Step 6, continued: the installer at work, the alert rules loaded and evaluated, every
/// dashboard query answered.
async fn monitoring(system: &System, client: &Client, prometheus: &str) -> Result<()> {
    // Work for the installer: a KaasOperator it reconciles.
    let operator: api::install::v1alpha1::KaasOperator = serde_json::from_value(json!({
        "apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": "docker"},
        "spec": {"provider": "docker", "version": api::install::bundles::CURRENT}}))?;
    Api::<api::install::v1alpha1::KaasOperator>::all(client.clone())
        .create(&Default::default(), &operator)
        .await?;
    assert!(system.installer.is_some());
    // And a refusal by kaas-webhooks (the schema cannot know which classes exist).
    let unknown: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "of-no-class"},
        "spec": {"providerClassName": "missing", "clusterStack": {"name": "scs", "version": "1.0.0"}}}))?;
    let refused = Api::<KaasCluster>::namespaced(client.clone(), NS)
        .create(&Default::default(), &unknown)
        .await
        .expect_err("a cluster of a class that does not exist");
    assert!(refused.to_string().contains("not found"), "{refused}");
    wait_for("the installer's reconciles scraped", WAIT, || async {
        let r = kaas_e2e::system::query(
            prometheus,
            r#"kaas_installer_reconcile_total{job="kaas-installer"} > 0"#,
        )
        .await?;
        Ok((!r.is_empty()).then_some(()))
    })
    .await?;

    // The alert rules: every one loaded and evaluated without an error.
    let alerts: BTreeSet<String> = {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/monitoring/alerts.rules.yaml"),
        )?;
        let file: serde_json::Value = serde_saphyr::from_str(&text)?;
        file["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r["alert"].as_str().map(str::to_string))
            .collect()
    };
    let loaded = wait_for("the alert rules evaluated", WAIT, || async {
        let r = kaas_testenv::http::get(prometheus, "/api/v1/rules?type=alert").await?;
        let json: serde_json::Value = serde_json::from_str(&r.body)?;
        let rules: Vec<serde_json::Value> = json["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules.iter().all(|r| {
            r["health"] == "ok"
                && !r["lastEvaluation"]
                    .as_str()
                    .unwrap_or("0001")
                    .starts_with("0001")
        });
        Ok((evaluated && !rules.is_empty()).then_some(rules))
    })
    .await?;
    let names: BTreeSet<String> = loaded
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, alerts, "the rules Prometheus loaded");
    assert!(loaded.len() >= 16, "{}", loaded.len());

    // Every dashboard query returns data from the running system.
    let queries = dashboard_queries()?;
    assert!(queries.len() >= 30, "{} queries", queries.len());
    let mut gaps = Vec::new();
    for _ in 0..30 {
        gaps = dashboard_gaps(prometheus, &queries).await?;
        if gaps.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(gaps.is_empty(), "{gaps:#?}");
    // A query of a metric no binary exports is caught.
    let wrong = vec![(
        "test".to_string(),
        "misspelled".to_string(),
        "sum(rate(kaas_reconcile_totl[1m]))".to_string(),
    )];
    assert_eq!(dashboard_gaps(prometheus, &wrong).await?.len(), 2);
    Ok(())
}
