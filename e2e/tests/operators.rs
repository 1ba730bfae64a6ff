//! The three provider operators as processes against one real API server with stand-in CAPI
//! CRDs: each serves only its own class's clusters (checked through `managedFields`), a cluster
//! of a class nobody serves stays untouched, scaling, machine type changes, pools and deletion
//! behave, and nothing is left behind.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

struct Operators {
    env: &'static TestEnv,
    _procs: Vec<Process>,
    /// The Hetzner Cloud API stand-in the Hetzner operator asks for snapshots.
    hcloud: kaas_testenv::hcloud::FakeHcloud,
}

impl Operators {
    /// The end of one operator's log (`openstack`), for failure messages.
    fn log_tail(&self, provider: &str) -> String {
        self._procs
            .iter()
            .find(|p| p.log.to_string_lossy().contains(provider))
            .map(Process::log_tail)
            .unwrap_or_default()
    }
}

static OPERATORS: OnceLock<Operators> = OnceLock::new();
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(60);

fn ar(api_version: &str, kind: &str) -> ApiResource {
    let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(g, v, kind),
        &format!("{}s", kind.to_lowercase()),
    )
}

async fn operators() -> Result<(&'static Operators, Client)> {
    if let Some(o) = OPERATORS.get() {
        return Ok((o, o.env.client().await?));
    }
    let _guard = STARTING.lock().await;
    if let Some(o) = OPERATORS.get() {
        return Ok((o, o.env.client().await?));
    }
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let mut crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    for crd in &mut crds {
        crd.spec.conversion = None; // no webhook server in this suite
    }
    crds.extend(kaas_e2e::stand_in_crds());
    kaas_testenv::install_crds(&client, &crds).await?;

    let classes = Api::<ProviderClass>::all(client.clone());
    for (name, controller, secret) in [
        ("docker", "kaas.scs.community/docker", None),
        (
            "openstack",
            "kaas.scs.community/openstack",
            Some("openstack-credentials"),
        ),
        (
            "hetzner",
            "kaas.scs.community/hetzner",
            Some("hetzner-token"),
        ),
        ("vsphere", "kaas.scs.community/vsphere", None),
    ] {
        let mut spec = json!({"controller": controller});
        if let Some(s) = secret {
            spec["parameters"] = json!({"kind": "Secret", "name": s, "namespace": "kaas-system"});
        }
        let class: ProviderClass = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        classes
            .patch(
                name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&class),
            )
            .await?;
    }
    let stacks = Api::<ClusterStack>::all(client.clone());
    for provider in ["docker", "openstack", "hetzner", "vsphere"] {
        let images: Vec<Value> = ["1.31.4", "1.32.1"]
            .iter()
            .map(|v| json!({"kubernetesVersion": v, "name": format!("ubuntu-2404-kube-v{v}"),
                             "url": format!("https://images.example.com/ubuntu-2404-kube-v{v}.qcow2"),
                             "checksum": format!("sha256:{}", "c".repeat(64)), "format": "qcow2"}))
            .collect();
        let stack: ClusterStack = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
            "metadata": {"name": format!("{provider}-e2e-1-0-0")},
            "spec": {"provider": provider, "name": "e2e", "version": "1.0.0",
                     "kubernetesVersions": ["1.31.4", "1.32.1"],
                     "nodeImages": if provider == "docker" { json!([]) } else { json!(images) }},
        }))?;
        stacks
            .patch(
                &stack.name_any(),
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&stack),
            )
            .await?;
        kaas_e2e::mark_ready(&client, &format!("{provider}-e2e-1-0-0")).await?;
    }

    // The e2e stack's 1.31 snapshot exists in the Hetzner project; its 1.32 one does not.
    let hcloud = kaas_e2e::hetzner_api(&["ubuntu-2404-kube-v1.31.4"])?;
    let mut procs = Vec::new();
    for provider in ["docker", "openstack", "hetzner"] {
        let args = vec![
            format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
            "--metrics-insecure".to_string(),
            format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
            "--concurrency=4".to_string(),
        ];
        procs.push(Process::start_with_env(
            env,
            &format!("kaas-operator-{provider}"),
            &args,
            &[("HCLOUD_ENDPOINT", &hcloud.endpoint)],
            &format!("operator-{provider}"),
        )?);
    }
    let o = OPERATORS.get_or_init(|| Operators {
        env,
        _procs: procs,
        hcloud,
    });
    Ok((o, client))
}

fn cluster(name: &str, class: &str, workers: Value) -> Result<KaasCluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
        "spec": {"providerClassName": class, "clusterStack": {"name": "e2e"},
                 "kubernetesVersion": "1.31", "controlPlane": {"replicas": 1, "machineType": "cp-small"},
                 "workers": workers},
    }))?)
}

/// Every object in `ns` labeled for cluster `name`, as `(kind, name, managers)`.
async fn objects_of(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Vec<(String, String, BTreeSet<String>)>> {
    let mut out = Vec::new();
    for (v, k) in kaas_e2e::capi_kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar(v, k));
        for obj in api
            .list(&ListParams::default().labels(&format!("kaas.scs.community/cluster={name}")))
            .await?
        {
            let managers = obj
                .managed_fields()
                .iter()
                .filter_map(|m| m.manager.clone())
                .collect();
            out.push((k.to_string(), obj.name_any(), managers));
        }
    }
    Ok(out)
}

async fn get_dyn(
    client: &Client,
    ns: &str,
    v: &str,
    k: &str,
    name: &str,
) -> Result<Option<DynamicObject>> {
    Ok(
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar(v, k))
            .get_opt(name)
            .await?,
    )
}

#[tokio::test]
async fn each_operator_serves_only_its_own_class() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "routing").await?;
    kaas_e2e::hetzner_token(&client, &ns).await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let pool = json!([{"name": "md-0", "replicas": 2, "machineType": "m-medium"}]);
    for (name, class) in [
        ("d1", "docker"),
        ("o1", "openstack"),
        ("h1", "hetzner"),
        ("v1", "vsphere"),
    ] {
        clusters
            .create(&PostParams::default(), &cluster(name, class, pool.clone())?)
            .await?;
    }
    for (name, provider, kinds) in [
        ("d1", "docker", ["DevCluster", "DevMachineTemplate"]),
        (
            "o1",
            "openstack",
            ["OpenStackCluster", "OpenStackMachineTemplate"],
        ),
        ("h1", "hetzner", ["HetznerCluster", "HCloudMachineTemplate"]),
    ] {
        let objects = wait_for(&format!("{name}'s Cluster API objects"), WAIT, || async {
            let objs = objects_of(&client, &ns, name).await?;
            Ok((objs.len() >= 7).then_some(objs))
        })
        .await?;
        let found: BTreeSet<&str> = objects.iter().map(|(k, _, _)| k.as_str()).collect();
        for kind in [
            "Cluster",
            "KubeadmControlPlane",
            "MachineDeployment",
            "KubeadmConfigTemplate",
        ]
        .into_iter()
        .chain(kinds)
        {
            assert!(found.contains(kind), "{name}: no {kind} in {found:?}");
        }
        let manager = format!("kaas-operator-{provider}");
        for (kind, obj, managers) in &objects {
            assert_eq!(
                managers,
                &BTreeSet::from([manager.clone()]),
                "{kind} {obj} of {name}"
            );
        }
        // The status is written once the objects are applied.
        let kc = wait_for(&format!("{name}'s status"), WAIT, || async {
            Ok(Some(clusters.get(name).await?).filter(|c| c.status.is_some()))
        })
        .await?;
        assert_eq!(kc.finalizers(), [format!("kaas.scs.community/{provider}")]);
        let status = kc.status.clone().expect("status written");
        assert_eq!(status.kubernetes_version.as_deref(), Some("1.31.4"));
        assert_eq!(status.phase.as_deref(), Some("Provisioning"));
        assert!(
            kc.managed_fields()
                .iter()
                .any(|m| m.manager.as_deref() == Some(manager.as_str()))
        );
    }
    // OpenStack imported its node image as a shared ORC Image.
    let image = get_dyn(
        &client,
        &ns,
        "openstack.k-orc.cloud/v1alpha1",
        "Image",
        "ubuntu-2404-kube-v1.31.4",
    )
    .await?;
    let image = image.expect("ORC Image for 1.31.4");
    assert_eq!(
        image.data["spec"]["resource"]["content"]["download"]["hash"]["value"],
        "c".repeat(64)
    );

    // Nobody serves vsphere: its cluster stays exactly as written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v1 = clusters.get("v1").await?;
    assert!(v1.finalizers().is_empty());
    assert!(v1.status.is_none());
    assert!(objects_of(&client, &ns, "v1").await?.is_empty());
    let managers: BTreeSet<_> = v1
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().all(|m| !m.starts_with("kaas-operator")),
        "{managers:?}"
    );
    Ok(())
}

fn md_ref(md: &DynamicObject) -> String {
    md.data["spec"]["template"]["spec"]["infrastructureRef"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn scaling_machine_types_and_pools_change_what_they_should() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "changes").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let workers = json!([{"name": "web", "replicas": 2, "machineType": "SCS-4V-8"},
                         {"name": "db", "replicas": 1, "machineType": "SCS-8V-32"}]);
    clusters
        .create(
            &PostParams::default(),
            &cluster("shop", "openstack", workers)?,
        )
        .await?;
    let md = |pool: &'static str| {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            get_dyn(
                &client,
                &ns,
                "cluster.x-k8s.io/v1beta2",
                "MachineDeployment",
                &format!("shop-{pool}"),
            )
            .await
        }
    };
    let web = wait_for("shop-web", WAIT, || async { md("web").await }).await?;
    let db = wait_for("shop-db", WAIT, || async { md("db").await }).await?;
    let web_template = md_ref(&web);
    let db_template = md_ref(&db);
    assert!(web_template.starts_with("shop-web-"));

    // Scale: only the replicas move.
    let scale = json!({"spec": {"workers": [{"name": "web", "replicas": 5, "machineType": "SCS-4V-8"},
                                            {"name": "db", "replicas": 1, "machineType": "SCS-8V-32"}]}});
    clusters
        .patch("shop", &PatchParams::default(), &Patch::Merge(&scale))
        .await?;
    let web = wait_for("web scaled to 5", WAIT, || async {
        Ok(md("web").await?.filter(|m| m.data["spec"]["replicas"] == 5))
    })
    .await?;
    assert_eq!(
        md_ref(&web),
        web_template,
        "scaling does not touch the template"
    );

    // A new machine type makes a new template for that pool only.
    let resize = json!({"spec": {"workers": [{"name": "web", "replicas": 5, "machineType": "SCS-8V-16"},
                                             {"name": "db", "replicas": 1, "machineType": "SCS-8V-32"}]}});
    clusters
        .patch("shop", &PatchParams::default(), &Patch::Merge(&resize))
        .await?;
    let web = wait_for("web on a new template", WAIT, || async {
        Ok(md("web").await?.filter(|m| md_ref(m) != web_template))
    })
    .await?;
    let new_name = md_ref(&web);
    let new_template = wait_for("the new template", WAIT, || async {
        get_dyn(
            &client,
            &ns,
            "infrastructure.cluster.x-k8s.io/v1beta1",
            "OpenStackMachineTemplate",
            &new_name,
        )
        .await
    })
    .await?;
    assert_eq!(
        new_template.data["spec"]["template"]["spec"]["flavor"],
        "SCS-8V-16"
    );
    assert_eq!(
        md_ref(&md("db").await?.expect("db")),
        db_template,
        "db does not roll"
    );

    // Control plane replicas, a pool added, a pool removed.
    let change = json!({"spec": {"controlPlane": {"replicas": 3, "machineType": "cp-small"},
                                 "workers": [{"name": "web", "replicas": 5, "machineType": "SCS-8V-16"},
                                             {"name": "batch", "replicas": 0, "machineType": "SCS-16V-64"}]}});
    clusters
        .patch("shop", &PatchParams::default(), &Patch::Merge(&change))
        .await?;
    wait_for("batch pool", WAIT, || async { md("batch").await }).await?;
    wait_for("db pool removed", WAIT, || async {
        Ok(md("db").await?.is_none().then_some(()))
    })
    .await?;
    let kcp = wait_for("3 control plane replicas", WAIT, || async {
        Ok(get_dyn(
            &client,
            &ns,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
            "shop-control-plane",
        )
        .await?
        .filter(|k| k.data["spec"]["replicas"] == 3))
    })
    .await?;
    assert_eq!(kcp.data["spec"]["version"], "v1.31.4");
    Ok(())
}

#[tokio::test]
async fn status_follows_cluster_api_and_deletion_leaves_nothing() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "lifecycle").await?;
    kaas_e2e::hetzner_token(&client, &ns).await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let workers = json!([{"name": "md-0", "replicas": 2, "machineType": "cx22"}]);
    clusters
        .create(
            &PostParams::default(),
            &cluster("life", "hetzner", workers)?,
        )
        .await?;
    wait_for("life's objects", WAIT, || async {
        Ok((objects_of(&client, &ns, "life").await?.len() >= 7).then_some(()))
    })
    .await?;

    // Report what Cluster API would once the machines run.
    let status = |v: &str, k: &str, name: &str, status: Value| {
        let client = client.clone();
        let ns = ns.clone();
        let ar = ar(v, k);
        let name = name.to_string();
        async move {
            Api::<DynamicObject>::namespaced_with(client, &ns, &ar)
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
        }
    };
    status("cluster.x-k8s.io/v1beta2", "Cluster", "life",
        json!({"initialization": {"infrastructureProvisioned": true, "controlPlaneInitialized": true}})).await?;
    status(
        "controlplane.cluster.x-k8s.io/v1beta2",
        "KubeadmControlPlane",
        "life-control-plane",
        json!({"replicas": 1, "readyReplicas": 1, "upToDateReplicas": 1}),
    )
    .await?;
    status(
        "cluster.x-k8s.io/v1beta2",
        "MachineDeployment",
        "life-md-0",
        json!({"replicas": 2, "readyReplicas": 2, "upToDateReplicas": 2}),
    )
    .await?;
    let ready = wait_for("life Ready", WAIT, || async {
        let kc = clusters.get("life").await?;
        Ok(kc
            .status
            .clone()
            .filter(|s| s.phase.as_deref() == Some("Ready")))
    })
    .await?;
    let cond = ready
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(cond.status, "True");
    assert_eq!(
        ready
            .kubeconfig_secret_ref
            .as_ref()
            .map(|r| r.name.as_str()),
        Some("life-kubeconfig")
    );
    assert_eq!(ready.workers[0].ready_replicas, 2);

    // Cluster API creates the control plane Machine with the labels of the control plane's
    // machine template and reports when its certificates expire: the status shows it.
    let kcp = get_dyn(
        &client,
        &ns,
        "controlplane.cluster.x-k8s.io/v1beta2",
        "KubeadmControlPlane",
        "life-control-plane",
    )
    .await?
    .expect("the control plane");
    let mut labels = kcp.data["spec"]["machineTemplate"]["metadata"]["labels"].clone();
    labels["cluster.x-k8s.io/control-plane"] = json!("");
    let machines: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ar("cluster.x-k8s.io/v1beta2", "Machine"),
    );
    machines
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": "life-control-plane-abcde", "labels": labels},
                "spec": {"clusterName": "life",
                         "bootstrap": {"dataSecretName": "life-control-plane-abcde"},
                         "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                                               "kind": "DevMachine", "name": "life-control-plane-abcde"}},
            }))?,
        )
        .await?;
    status(
        "cluster.x-k8s.io/v1beta2",
        "Machine",
        "life-control-plane-abcde",
        json!({"certificatesExpiryDate": "2027-12-01T09:30:00Z"}),
    )
    .await?;
    let expiry = wait_for("the certificate expiry in the status", WAIT, || async {
        Ok(clusters
            .get("life")
            .await?
            .status
            .and_then(|s| s.control_plane)
            .and_then(|c| c.certificates_expiry_date))
    })
    .await?;
    assert_eq!(expiry.0.to_string(), "2027-12-01T09:30:00Z");
    machines
        .delete("life-control-plane-abcde", &Default::default())
        .await?;

    // Reaching Ready is announced as an event on the cluster.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    wait_for("a PhaseReady event", WAIT, || async {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("PhaseReady")
                    && e.involved_object.name.as_deref() == Some("life")
            }))
    })
    .await?;

    // Deletion while Cluster API still holds the Cluster (its finalizer, as a provider that
    // cannot reach its cloud would): the cluster says what it waits for.
    let capi_clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ar("cluster.x-k8s.io/v1beta2", "Cluster"),
    );
    capi_clusters
        .patch(
            "life",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["cluster.cluster.x-k8s.io"]}})),
        )
        .await?;
    clusters.delete("life", &Default::default()).await?;
    let waiting = wait_for("the cluster saying what it waits for", WAIT, || async {
        let kc = clusters.get("life").await?;
        Ok(kc
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .filter(|c| c.reason == "DeletingInfrastructure"))
    })
    .await?;
    assert!(
        waiting.message.contains("cluster.cluster.x-k8s.io"),
        "{}",
        waiting.message
    );
    assert_eq!(
        clusters
            .get("life")
            .await?
            .status
            .and_then(|s| s.phase)
            .as_deref(),
        Some("Deleting")
    );
    // Cluster API lets go; the finalizer goes last, after every object of the cluster.
    capi_clusters
        .patch(
            "life",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    wait_for("life gone", WAIT, || async {
        Ok(clusters.get_opt("life").await?.is_none().then_some(()))
    })
    .await?;
    let left = objects_of(&client, &ns, "life").await?;
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

#[tokio::test]
async fn the_examples_apply_to_any_namespace_and_get_served() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "examples").await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for (provider, cluster_name) in [("docker", "dev"), ("openstack", "shop"), ("hetzner", "web")] {
        let out = o
            .env
            .kubectl()
            .args(["apply", "-n", &ns, "-f"])
            .arg(root.join(provider))
            .output()?;
        assert!(
            out.status.success(),
            "kubectl apply -n {ns} -f examples/{provider}/: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(&format!("examples/{provider} served"), WAIT, || async {
            get_dyn(
                &client,
                &ns,
                "cluster.x-k8s.io/v1beta2",
                "Cluster",
                cluster_name,
            )
            .await
        })
        .await?;
        let clusters = Api::<KaasCluster>::namespaced(client.clone(), &ns);
        let version = wait_for(&format!("{cluster_name}'s status"), WAIT, || async {
            Ok(clusters
                .get(cluster_name)
                .await?
                .status
                .and_then(|s| s.kubernetes_version))
        })
        .await?;
        assert_eq!(version, "1.35.0");
        same_as_kaasctl_render(&client, &ns, provider).await?;
    }
    Ok(())
}

/// `kaasctl render` of `examples/<provider>/` gives the objects the operator wrote: every
/// rendered object exists with the same spec and labels (one rendering path).
async fn same_as_kaasctl_render(client: &Client, ns: &str, provider: &str) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(kaas_e2e::binary("kaasctl")?)
        .args(["render", "--no-addons", "-n", ns, "-f"])
        .arg(root.join("examples").join(provider))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "kaasctl render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)?;
    assert!(
        rendered.len() >= 7,
        "{provider}: {} objects",
        rendered.len()
    );
    for obj in &rendered {
        let (v, k) = (
            obj["apiVersion"].as_str().unwrap_or_default(),
            obj["kind"].as_str().unwrap_or_default(),
        );
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let live = wait_for(&format!("{provider}: {k} {name}"), WAIT, || async {
            get_dyn(client, ns, v, k, name).await
        })
        .await?;
        assert_eq!(
            live.data["spec"], obj["spec"],
            "{provider}: {k} {name}: the operator wrote another spec than kaasctl renders"
        );
        for (key, value) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
            assert_eq!(
                live.labels().get(key).map(String::as_str),
                value.as_str(),
                "{provider}: {k} {name}: label {key}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_node_image_is_shared_and_deleted_with_its_last_user() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "images").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let workers = json!([{"name": "md-0", "replicas": 1, "machineType": "SCS-2V-4"}]);
    for name in ["first", "second"] {
        clusters
            .create(
                &PostParams::default(),
                &cluster(name, "openstack", workers.clone())?,
            )
            .await?;
    }
    let image_name = "ubuntu-2404-kube-v1.31.4";
    let image = || {
        get_dyn(
            &client,
            &ns,
            "openstack.k-orc.cloud/v1alpha1",
            "Image",
            image_name,
        )
    };
    let users = |img: &DynamicObject| -> BTreeSet<String> {
        img.labels()
            .keys()
            .filter_map(|k| {
                k.strip_prefix("users.kaas.scs.community/")
                    .map(str::to_string)
            })
            .collect()
    };
    wait_for("one image used by both clusters", WAIT, || async {
        Ok(image().await?.filter(|i| users(i).len() == 2))
    })
    .await?;
    let images_condition = |name: &'static str| {
        let clusters = clusters.clone();
        async move {
            anyhow::Ok(clusters.get(name).await?.status.and_then(|s| {
                s.conditions
                    .into_iter()
                    .find(|c| c.type_ == "NodeImagesReady")
            }))
        }
    };
    // No ORC controller runs in this suite: the image is never imported, and the status says so.
    let waiting = wait_for("NodeImagesReady names the image", WAIT, || async {
        Ok(images_condition("second")
            .await?
            .filter(|c| c.status == "False"))
    })
    .await?;
    assert_eq!(
        waiting.message,
        format!("ORC Image {image_name} is not imported yet (ORC has not reported it Available)")
    );
    // ORC reports a failed upload: its message reaches the cluster.
    Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &ar("openstack.k-orc.cloud/v1alpha1", "Image"),
    )
    .patch_status(
        image_name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"conditions": [{"type": "Available", "status": "False",
            "reason": "TransientError", "message": "download failed: 404 Not Found",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        ),
    )
    .await?;
    wait_for("ORC's message in NodeImagesReady", WAIT, || async {
        Ok(images_condition("second").await?.filter(|c| {
            c.message
                == format!(
                    "ORC Image {image_name} is not available: download failed: 404 Not Found"
                )
        }))
    })
    .await?;

    clusters.delete("first", &DeleteParams::default()).await?;
    let left = wait_for("first released the image", WAIT, || async {
        let gone = clusters.get_opt("first").await?.is_none();
        Ok(image().await?.filter(|i| gone && users(i).len() == 1))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; logs: {}", o.log_tail("openstack")))?;
    assert_eq!(users(&left), BTreeSet::from(["second".to_string()]));

    clusters.delete("second", &DeleteParams::default()).await?;
    wait_for("the image deleted with its last user", WAIT, || async {
        Ok(image().await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_hetzner_snapshot_is_named_until_it_appears() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "snapshots").await?;
    kaas_e2e::hetzner_token(&client, &ns).await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let mut new = cluster(
        "fresh",
        "hetzner",
        json!([{"name": "md-0", "replicas": 1, "machineType": "cx22"}]),
    )?;
    new.spec.kubernetes_version = Some("1.32".into());
    clusters.create(&PostParams::default(), &new).await?;

    let message = wait_for("NodeImagesReady=False", WAIT, || async {
        Ok(clusters.get("fresh").await?.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "NodeImagesReady" && c.status == "False")
                .map(|c| c.message)
        }))
    })
    .await?;
    assert!(
        message.contains("no snapshot labelled caph-image-name=ubuntu-2404-kube-v1.32.1")
            && message.contains(&format!("Secret {ns}/hetzner-token")),
        "{message}"
    );
    assert!(
        get_dyn(&client, &ns, "cluster.x-k8s.io/v1beta2", "Cluster", "fresh")
            .await?
            .is_none(),
        "no machine may be asked for before its image exists"
    );

    o.hcloud
        .add_snapshot("ubuntu-2404-kube-v1.32.1", "available");
    let template = wait_for("the machine templates", WAIT, || async {
        let objs = objects_of(&client, &ns, "fresh").await?;
        Ok(objs
            .into_iter()
            .find(|(k, _, _)| k == "HCloudMachineTemplate"))
    })
    .await?;
    let hmt = get_dyn(
        &client,
        &ns,
        "infrastructure.cluster.x-k8s.io/v1beta1",
        "HCloudMachineTemplate",
        &template.1,
    )
    .await?
    .expect("listed just now");
    assert_eq!(
        hmt.data["spec"]["template"]["spec"]["imageName"],
        "ubuntu-2404-kube-v1.32.1"
    );
    Ok(())
}

/// Runs `kaasctl` against the suite's management API server; (exit code, stdout, stderr).
fn kaasctl(o: &Operators, args: &[&str]) -> Result<(i32, String, String)> {
    let out = std::process::Command::new(kaas_e2e::binary("kaasctl")?)
        .args(args)
        .env("KUBECONFIG", o.env.kubeconfig_path())
        .env("KAAS_STACK_CACHE", o.env.dir().join("kaasctl-cache"))
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn kaasctl_plans_rollouts_and_upgrades_and_shows_status() -> Result<()> {
    let (o, client) = operators().await?;
    let ns = o.env.namespace(&client, "plan").await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/openstack");
    for file in [
        "1-providerclass.yaml",
        "2-clusterstack.yaml",
        "3-credentials.yaml",
    ] {
        let out = o
            .env
            .kubectl()
            .args(["apply", "-n", &ns, "-f"])
            .arg(root.join(file))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let manifest = |machine_type: &str, version: &str| {
        format!(
            "apiVersion: kaas.scs.community/v1beta1\nkind: KaasCluster\nmetadata: {{name: planned, namespace: {ns}}}\nspec:\n  providerClassName: openstack\n  clusterStack: {{name: scs, version: 1.0.0}}\n  kubernetesVersion: \"{version}\"\n  controlPlane: {{replicas: 1, machineType: SCS-2V-4}}\n  workers:\n    - {{name: md-0, replicas: 2, machineType: SCS-2V-4}}\n    - {{name: md-1, replicas: 1, machineType: {machine_type}}}\n"
        )
    };
    let dir = tempfile::tempdir()?;
    let current = dir.path().join("current.yaml");
    std::fs::write(&current, manifest("SCS-4V-8", "1.33"))?;
    let out = o
        .env
        .kubectl()
        .args(["apply", "-f"])
        .arg(&current)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    wait_for("planned's objects and status", WAIT, || async {
        let running = clusters
            .get("planned")
            .await?
            .status
            .and_then(|s| s.kubernetes_version);
        let objects = objects_of(&client, &ns, "planned").await?.len();
        Ok((running.as_deref() == Some("1.33.4") && objects >= 10).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; logs: {}", o.log_tail("openstack")))?;
    let generation = clusters.get("planned").await?.metadata.generation;

    // Nothing to do for what is applied.
    let (code, stdout, stderr) = kaasctl(o, &["plan", "-f", current.to_str().unwrap()])?;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("no change") && stdout.contains("no machine is replaced"),
        "{stdout}"
    );

    // A machine type change rolls exactly its pool.
    let bigger = dir.path().join("bigger.yaml");
    std::fs::write(&bigger, manifest("SCS-8V-16", "1.33"))?;
    let (code, stdout, stderr) = kaasctl(o, &["plan", "-f", bigger.to_str().unwrap()])?;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rollouts: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "Rollouts:")
        .skip(1)
        .collect();
    assert_eq!(rollouts.len(), 1, "{stdout}");
    assert!(
        rollouts[0].starts_with("  pool md-1 rolls: machine template planned-md-1-"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "create OpenStackMachineTemplate {ns}/planned-md-1-"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "update MachineDeployment {ns}/planned-md-1 (spec.template.spec.infrastructureRef.name)"
        )),
        "{stdout}"
    );

    // Two minors at once: the chain of two steps, and the API server's refusal.
    let jump = dir.path().join("jump.yaml");
    std::fs::write(&jump, manifest("SCS-4V-8", "1.35"))?;
    let (code, stdout, stderr) = kaasctl(o, &["plan", "-f", jump.to_str().unwrap()])?;
    eprintln!("kaasctl plan of a two-minor jump:\n{stdout}");
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains("Kubernetes upgrade 1.33.4 → 1.35.0 in 2 steps (control plane, then workers, each step):\n  1. 1.34.1\n  2. 1.35.0\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("spec.kubernetesVersion: may move at most one minor version per change"),
        "{stdout}"
    );
    for roll in [
        "control plane rolls: Kubernetes v1.33.4 → v1.35.0",
        "pool md-0 rolls",
        "pool md-1 rolls",
    ] {
        assert!(stdout.contains(roll), "{roll:?} not in {stdout}");
    }
    assert_eq!(
        clusters.get("planned").await?.metadata.generation,
        generation,
        "plan writes nothing"
    );

    // Status and kubeconfig.
    let (code, stdout, _) = kaasctl(o, &["status", "-n", &ns])?;
    assert_eq!(code, 0);
    let mut lines = stdout.lines();
    assert!(
        lines.next().unwrap_or_default().starts_with("NAMESPACE"),
        "{stdout}"
    );
    let row = lines.next().unwrap_or_default();
    assert!(
        row.starts_with(&format!("{ns}  planned  ")) && row.contains("scs 1.0.0  1.33.4"),
        "{stdout}"
    );
    let (code, _, stderr) = kaasctl(o, &["get", "kubeconfig", "planned", "-n", &ns])?;
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim(),
        format!(
            "kaasctl: KaasCluster {ns}/planned has no kubeconfig yet: Cluster API has not written Secret {ns}/planned-kubeconfig"
        )
    );
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "planned-kubeconfig"}, "stringData": {"value": "apiVersion: v1\nkind: Config\n"}}))?;
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let (code, stdout, _) = kaasctl(o, &["get", "kubeconfig", "planned", "-n", &ns])?;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "apiVersion: v1\nkind: Config\n")
    );
    Ok(())
}
