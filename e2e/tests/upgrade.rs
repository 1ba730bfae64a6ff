//! An orchestrated upgrade across two Kubernetes minors and a new stack release, with the
//! operator killed (SIGKILL) at every stage it is seen in and started again: the plan and the
//! stage survive in `status.upgrade`, the upgrade resumes where it stopped, never goes back,
//! and finishes; the recorded writes show each control plane move before the workers' move.
//! The CAPI stand-in is ticked by the test, so each machine stage waits for it. In the middle
//! of the control plane stage, `kaasctl render` of the live cluster prints exactly what the
//! operator wrote.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use futures::StreamExt;
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn release(version: &str, kubernetes: &[&str], upgrade_from: &[&str]) -> String {
    format!(
        r#"provider: docker
name: upgrade-test
version: {version}
kubernetesVersions: {kubernetes:?}
upgradeFrom: {upgrade_from:?}
addons:
  - name: crds
    version: {version}
    stage: preUpgrade
    health: applied
    manifests: [crds.yaml]
  - name: app
    version: {version}
    dependsOn: [crds]
    manifests: [app.yaml]
"#
    )
}

const CRDS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: crds, namespace: kube-system}\ndata: {release: \"{{ addon.version }}\"}\n";
const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: kube-system}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: app}}\n  template:\n    metadata: {labels: {app: app}}\n    spec:\n      containers: [{name: app, image: \"example.com/app:{{ cluster.kubernetesVersion }}\"}]\n";

async fn install_release(
    client: &kube::Client,
    root: &std::path::Path,
    version: &str,
    kubernetes: &[&str],
    from: &[&str],
) -> Result<()> {
    let dir = root.join(version);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("stack.yaml"), release(version, kubernetes, from))?;
    std::fs::write(dir.join("crds.yaml"), CRDS)?;
    std::fs::write(dir.join("app.yaml"), APP)?;
    kaas_e2e::install_local_release(client, &dir).await
}

fn stage_rank(stage: &str) -> i32 {
    ["PreUpgrade", "ControlPlane", "Workers", "PostUpgrade"]
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(0) as i32
}

/// Records, in order, each new `spec.version` the control plane and the pool are given.
fn record_versions(client: &kube::Client, ns: &str, log: Arc<Mutex<Vec<String>>>) {
    for (api_version, kind, path) in [
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
            "/spec/version",
        ),
        (
            "cluster.x-k8s.io/v1beta2",
            "MachineDeployment",
            "/spec/template/spec/version",
        ),
    ] {
        let (group, version) = api_version.split_once('/').unwrap();
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let log = log.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(obj)) = stream.next().await {
                let v = obj
                    .data
                    .pointer(path)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?");
                let entry = format!("{kind} {v}");
                let mut log = log.lock().unwrap();
                if !log.contains(&entry) {
                    log.push(entry);
                }
            }
        });
    }
}

#[tokio::test]
async fn an_upgrade_survives_a_kill_at_every_stage_and_moves_control_plane_first() -> Result<()> {
    let env = TestEnv::shared().await?;
    let workload_env = TestEnv::start().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.33.4"]).await?;
    let releases = tempfile::tempdir()?;
    install_release(
        &client,
        releases.path(),
        "1.0.0",
        &["1.33.4", "1.34.1"],
        &[],
    )
    .await?;
    install_release(
        &client,
        releases.path(),
        "1.1.0",
        &["1.33.4", "1.34.1", "1.35.0"],
        &["1.0.0"],
    )
    .await?;

    let cache = tempfile::tempdir()?;
    let start = || {
        kaas_e2e::docker_operator(
            env,
            cache.path(),
            &["--addon-resync=2".into()],
            "upgrade-operator",
        )
    };
    let mut operator = start()?;
    let stand_in = kaas_e2e::stand_in::StandIn {
        management: client.clone(),
        workload_kubeconfig: std::fs::read_to_string(workload_env.kubeconfig_path())?,
        kubelets: Some(workload_env.client().await?),
        per_cluster: Default::default(),
    };

    let ns = env.namespace(&client, "upgrade").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "moving"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "upgrade-test", "version": "1.0.0"},
                 "kubernetesVersion": "1.33", "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 2, "machineType": "x"}]}}))?;
    clusters.create(&PostParams::default(), &cluster).await?;
    wait_for("the cluster Ready on 1.33.4", WAIT, || async {
        stand_in.tick().await?;
        let s = clusters.get("moving").await?.status.unwrap_or_default();
        Ok((s.phase.as_deref() == Some("Ready")).then_some(()))
    })
    .await?;
    let status = clusters.get("moving").await?.status.unwrap_or_default();
    assert_eq!(status.kubernetes_version.as_deref(), Some("1.33.4"));
    assert_eq!(status.available_upgrades, vec!["1.1.0".to_string()]);

    let writes = Arc::new(Mutex::new(Vec::new()));
    record_versions(&client, &ns, writes.clone());
    wait_for("the recorder saw both objects", WAIT, || async {
        Ok((writes.lock().unwrap().len() >= 2).then_some(()))
    })
    .await?;
    // The two watches list the objects as they stand in either order; the order that matters
    // is that of the writes from here on.
    writes.lock().unwrap().sort();
    clusters
        .patch(
            "moving",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"kubernetesVersion": "1.35", "clusterStack": {"version": "1.1.0"}}})),
        )
        .await?;

    // Kill the operator at every (step, stage) it is seen in; it must resume, never go back.
    let mut killed_at: Vec<(i32, String)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "upgrade did not finish; killed at {killed_at:?}; operator log:\n{}",
            operator.log_tail()
        );
        let status = clusters.get("moving").await?.status.unwrap_or_default();
        let Some(upgrade) = status.upgrade.clone() else {
            if status.kubernetes_version.as_deref() == Some("1.35.0") && !killed_at.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        assert_eq!(
            upgrade.steps,
            vec!["1.34.1", "1.35.0"],
            "two minors, two steps"
        );
        let at = (upgrade.step, upgrade.stage.clone());
        if at == (0, "ControlPlane".to_string()) && !killed_at.contains(&at) {
            render_matches_writes(&client, &ns, releases.path()).await?;
        }
        if !killed_at.contains(&at) {
            operator.kill();
            killed_at.push(at.clone());
            operator = start()?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = clusters.get("moving").await?.status.unwrap_or_default();
            if let Some(u) = after.upgrade {
                assert!(
                    (u.step, stage_rank(&u.stage)) >= (at.0, stage_rank(&at.1)),
                    "resumed at {:?} after a kill at {at:?}",
                    (u.step, u.stage)
                );
            }
        }
        // Let the stand-in finish only the stage in progress, so every stage is seen.
        stand_in.tick_clusters().await?;
        stand_in.tick_kubelets().await?;
        match at.1.as_str() {
            "ControlPlane" => stand_in.tick_control_planes().await?,
            "Workers" => stand_in.tick_machine_deployments().await?,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for stage in [
        (0, "ControlPlane"),
        (0, "Workers"),
        (1, "ControlPlane"),
        (1, "Workers"),
    ] {
        assert!(
            killed_at.contains(&(stage.0, stage.1.to_string())),
            "the operator was killed at {stage:?}: {killed_at:?}"
        );
    }
    let writes = writes.lock().unwrap().clone();
    assert_eq!(
        writes,
        vec![
            "KubeadmControlPlane v1.33.4",
            "MachineDeployment v1.33.4",
            "KubeadmControlPlane v1.34.1",
            "MachineDeployment v1.34.1",
            "KubeadmControlPlane v1.35.0",
            "MachineDeployment v1.35.0",
        ],
        "control plane first, one minor at a time"
    );
    let done = wait_for("Ready on 1.35.0 with stack 1.1.0", WAIT, || async {
        stand_in.tick().await?;
        let s = clusters.get("moving").await?.status.unwrap_or_default();
        Ok((s.phase.as_deref() == Some("Ready")).then_some(s))
    })
    .await?;
    assert_eq!(done.cluster_stack_version.as_deref(), Some("1.1.0"));
    let crds = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        workload_env.client().await?,
        "kube-system",
    )
    .get("crds")
    .await?;
    assert_eq!(crds.data.unwrap_or_default()["release"], "1.1.0");
    Ok(())
}

/// `kaasctl render` of the live cluster, status included, with both releases: the stage the
/// status records is what it prints, and each object it prints is what the operator wrote
/// (every rendered field equal in the live object; Cluster API adds its own).
async fn render_matches_writes(
    client: &kube::Client,
    ns: &str,
    releases: &std::path::Path,
) -> Result<()> {
    let mut cluster = serde_json::to_value(
        Api::<KaasCluster>::namespaced(client.clone(), ns)
            .get("moving")
            .await?,
    )?;
    let mut class = serde_json::to_value(
        Api::<api::v1beta1::ProviderClass>::all(client.clone())
            .get("docker")
            .await?,
    )?;
    for object in [&mut cluster, &mut class] {
        object["metadata"]
            .as_object_mut()
            .map(|m| m.remove("managedFields"));
    }
    let file = releases.join("moving.yaml");
    std::fs::write(
        &file,
        format!(
            "---\n{}---\n{}",
            serde_saphyr::to_string(&class)?,
            serde_saphyr::to_string(&cluster)?
        ),
    )?;
    let out = std::process::Command::new(kaas_e2e::binary("kaasctl")?)
        .arg("render")
        .arg("-f")
        .arg(&file)
        .arg("--no-addons")
        .arg("--stack")
        .arg(releases.join("1.0.0"))
        .arg("--stack")
        .arg(releases.join("1.1.0"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "kaasctl render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        stdout.contains(
            "# upgrade in progress, stage ControlPlane: control plane at 1.34.1, pools at 1.33.4 (stack 1.0.0)"
        ),
        "{stdout}"
    );
    let rendered: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout)?;
    let mut compared = 0;
    for object in rendered.iter().filter(|o| o["kind"].is_string()) {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let live = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .get(name)
            .await?;
        let live = serde_json::to_value(&live)?;
        anyhow::ensure!(
            operator_core::addons::contains(&live, object),
            "{kind} {name}: rendered\n{object:#}\nlive\n{live:#}"
        );
        compared += 1;
    }
    // The infrastructure cluster, the control plane and its template, the pool's two
    // templates and MachineDeployment, the Cluster.
    assert_eq!(compared, 7, "{stdout}");
    Ok(())
}
