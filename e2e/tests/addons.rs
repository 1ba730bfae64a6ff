//! Add-ons in a workload cluster: a second real API server stands in for it, reached through
//! the `<cluster>-kubeconfig` Secret the CAPI stand-in writes. The Docker operator runs as a
//! process with a stack release from a local folder. Install, health, per-cluster overrides
//! (valid and refused), drift put back, and a new release that drops an object (pruned).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use api::v1beta1::{KaasCluster, KaasClusterStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

const STACK: &str = r#"
provider: docker
name: addons-test
version: VERSION
kubernetesVersions: ["1.34.1"]
UPGRADE
variables:
  mtu: {type: integer, default: 1500, minimum: 1280, maximum: 9000}
addons:
  - name: net
    version: 1.0.0
    stage: preUpgrade
    manifests: [net.yaml]
  - name: greeter
    version: VERSION
    dependsOn: [net]
    optional: true
    manifests: [greeter.yaml]
    values:
      greeting: {type: string, default: hello}
"#;

const NET: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: net-config, namespace: kube-system}
data:
  mtu: "{{ vars.mtu }}"
  pods: "{{ cluster.podCIDR }}"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: net-agent, namespace: kube-system}
spec:
  replicas: 1
  selector: {matchLabels: {app: net-agent}}
  template:
    metadata: {labels: {app: net-agent}}
    spec:
      containers: [{name: agent, image: "example.com/net:v{{ addon.version }}"}]
"#;

const GREETER_V1: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: greeting, namespace: default}
data: {text: "{{ values.greeting }} from {{ cluster.name }}"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: greeter-legacy, namespace: default}
data: {dropped: "in 1.1.0"}
"#;

const GREETER_V2: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: greeting, namespace: default}
data: {text: "{{ values.greeting }} from {{ cluster.name }}, v{{ addon.version }}"}
"#;

fn write_release(dir: &Path, version: &str, greeter: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let upgrade = if version == "1.0.0" {
        String::new()
    } else {
        "upgradeFrom: [\"1.0.0\"]".into()
    };
    let stack = STACK
        .replace("VERSION", version)
        .replace("UPGRADE", &upgrade);
    std::fs::write(dir.join("stack.yaml"), stack)?;
    std::fs::write(dir.join("net.yaml"), NET)?;
    std::fs::write(dir.join("greeter.yaml"), greeter)?;
    Ok(())
}

fn addons_condition(status: &KaasClusterStatus) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "AddonsReady")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn addons_install_heal_take_overrides_and_prune_on_a_new_release() -> Result<()> {
    let env = TestEnv::shared().await?;
    let workload_env = TestEnv::start().await?;
    let client = env.client().await?;
    let workload = workload_env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.34.1"]).await?;

    let releases = tempfile::tempdir()?;
    let v1 = releases.path().join("1.0.0");
    let v2 = releases.path().join("1.1.0");
    write_release(&v1, "1.0.0", GREETER_V1)?;
    write_release(&v2, "1.1.0", GREETER_V2)?;
    kaas_e2e::install_local_release(&client, &v1).await?;
    kaas_e2e::install_local_release(&client, &v2).await?;

    let cache = tempfile::tempdir()?;
    let _operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &["--addon-resync=2".into()],
        "addons-operator",
    )?;
    let stand_in = kaas_e2e::stand_in::StandIn {
        management: client.clone(),
        workload_kubeconfig: std::fs::read_to_string(workload_env.kubeconfig_path())?,
        kubelets: None,
        per_cluster: Default::default(),
    }
    .spawn();

    let ns = env.namespace(&client, "addons").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "withaddons"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "addons-test", "version": "1.0.0"},
                 "kubernetesVersion": "1.34", "controlPlane": {"replicas": 1},
                 "network": {"mtu": 1400},
                 "workers": [{"name": "md-0", "replicas": 1, "machineType": "x"}]}}))?;
    clusters.create(&PostParams::default(), &cluster).await?;

    // Installed in the workload cluster, with the cluster's values.
    let config_maps = |ns: &str| Api::<ConfigMap>::namespaced(workload.clone(), ns);
    let net = wait_for("net-config in the workload cluster", WAIT, || async {
        Ok(config_maps("kube-system").get_opt("net-config").await?)
    })
    .await?;
    let data = net.data.unwrap_or_default();
    assert_eq!(data.get("mtu").map(String::as_str), Some("1400"));
    assert_eq!(data.get("pods").map(String::as_str), Some("192.168.0.0/16"));

    // Health: the agent has no ready pod, so `net` is not healthy and `greeter` waits for it.
    let status = wait_for("add-on health reported", WAIT, || async {
        let s = clusters.get("withaddons").await?.status.unwrap_or_default();
        Ok((s.addons.len() == 2).then_some(s))
    })
    .await?;
    let (state, reason, message) = addons_condition(&status).expect("AddonsReady");
    assert_eq!((state.as_str(), reason.as_str()), ("False", "Progressing"));
    assert!(
        message.contains("net: Deployment kube-system/net-agent: 0 of 1 ready"),
        "{message}"
    );
    assert_eq!(status.addons[1].message.as_deref(), Some("waiting for net"));
    assert!(
        config_maps("default").get_opt("greeting").await?.is_none(),
        "greeter waits for net"
    );

    // The pod becomes ready (as a kubelet would report): both add-ons become healthy.
    Api::<Deployment>::namespaced(workload.clone(), "kube-system")
        .patch_status(
            "net-agent",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await?;
    let status = wait_for("the cluster Ready with healthy add-ons", WAIT, || async {
        let s = clusters.get("withaddons").await?.status.unwrap_or_default();
        Ok((s.phase.as_deref() == Some("Ready")).then_some(s))
    })
    .await?;
    assert!(status.addons.iter().all(|a| a.ready), "{:?}", status.addons);
    let greeting = config_maps("default").get("greeting").await?;
    assert_eq!(
        greeting.data.unwrap_or_default()["text"],
        "hello from withaddons"
    );

    // A valid override is applied.
    let set_addons = |addons: serde_json::Value| {
        let clusters = clusters.clone();
        async move {
            clusters
                .patch(
                    "withaddons",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"addons": addons}})),
                )
                .await
        }
    };
    set_addons(json!([{"name": "greeter", "values": {"greeting": "moin"}}])).await?;
    wait_for("the override applied", WAIT, || async {
        let cm = config_maps("default").get("greeting").await?;
        Ok((cm.data.unwrap_or_default()["text"] == "moin from withaddons").then_some(()))
    })
    .await?;

    // A bad override is refused with its field, and nothing is applied.
    set_addons(json!([{"name": "greeter", "values": {"greting": "typo"}}])).await?;
    let (_, reason, message) = wait_for("the bad override refused", WAIT, || async {
        let s = clusters.get("withaddons").await?.status.unwrap_or_default();
        Ok(addons_condition(&s).filter(|c| c.1 == "InvalidAddonValues"))
    })
    .await?;
    assert_eq!(reason, "InvalidAddonValues");
    assert!(
        message.contains("spec.addons[0].values.greting"),
        "{message}"
    );
    let cm = config_maps("default").get("greeting").await?;
    assert_eq!(
        cm.data.unwrap_or_default()["text"],
        "moin from withaddons",
        "nothing changed"
    );
    set_addons(json!([{"name": "greeter", "values": {"greeting": "moin"}}])).await?;

    // Drift: a deleted object comes back, an edited one is put back.
    config_maps("default")
        .delete("greeting", &DeleteParams::default())
        .await?;
    config_maps("kube-system")
        .patch(
            "net-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mtu": "9000"}})),
        )
        .await?;
    wait_for("drift put back", WAIT, || async {
        let back = config_maps("default").get_opt("greeting").await?.is_some();
        let mtu = config_maps("kube-system")
            .get("net-config")
            .await?
            .data
            .unwrap_or_default()["mtu"]
            .clone();
        Ok((back && mtu == "1400").then_some(()))
    })
    .await?;

    // A new release: the object it dropped is pruned, the changed one updated.
    assert!(
        config_maps("default")
            .get_opt("greeter-legacy")
            .await?
            .is_some()
    );
    clusters
        .patch(
            "withaddons",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusterStack": {"version": "1.1.0"}}})),
        )
        .await?;
    wait_for("the new release's add-ons", WAIT, || async {
        let pruned = config_maps("default")
            .get_opt("greeter-legacy")
            .await?
            .is_none();
        let text = config_maps("default")
            .get("greeting")
            .await?
            .data
            .unwrap_or_default()["text"]
            .clone();
        Ok((pruned && text == "moin from withaddons, v1.1.0").then_some(()))
    })
    .await?;
    let status = wait_for("status on 1.1.0", WAIT, || async {
        let s = clusters.get("withaddons").await?.status.unwrap_or_default();
        Ok((s
            .addons
            .iter()
            .any(|a| a.version.as_deref() == Some("1.1.0"))
            && s.phase.as_deref() == Some("Ready"))
        .then_some(s))
    })
    .await?;
    assert_eq!(status.cluster_stack_version.as_deref(), Some("1.1.0"));
    stand_in.abort();
    Ok(())
}
