//! The CAPI stand-in: Cluster API's own controllers cannot run on these machines, so this small
//! loop does their part, and says so in its name. Every half second it
//!
//! - marks each `Cluster`'s infrastructure provisioned and its control plane initialized, and
//!   writes `<cluster>-kubeconfig` pointing at a second real API server that stands in for the
//!   workload cluster;
//! - reports each `KubeadmControlPlane` and `MachineDeployment` with the replicas and the
//!   version it asks for, all ready (the machines "roll" at once), and keeps a control plane
//!   `Machine` per replica, labelled from the control plane's `machineTemplate.metadata` and
//!   reporting its certificates' expiry a year after it was created (deleted with its
//!   control plane, as Cluster API's owner references would have it);
//! - holds a cluster's control plane not ready while the `KaasCluster` carries
//!   [`HOLD_ANNOTATION`] naming the stack version it asks for (a failure a test provokes);
//! - plays ORC's image controller: each ORC `Image` reports itself `Available` (imported);
//! - optionally plays the workload cluster's kubelets: Deployments, DaemonSets and StatefulSets
//!   there report their pods ready, so add-on health can turn true, and Jobs report success
//!   (which plays a CNI that enforces NetworkPolicies for the standards probe);
//! - registers a Node in each per-cluster workload cluster for every machine the control plane
//!   and the MachineDeployments ask for, labelled as a cloud controller manager would (region,
//!   a zone per machine round-robin over three, a host id), once: a test may relabel them;
//! - plays the management cluster's deployment controller and kubelets for what
//!   `kaas-installer` installed (its Deployments report every replica updated and available;
//!   no pod runs here), and the Cluster API operator (its provider objects report `Ready`).
//!
//! It writes only status, the `Cluster`'s control plane endpoint (Cluster API copies it from
//! the infrastructure cluster) and the kubeconfig Secret, as Cluster API does: of Cluster API's
//! Secret type, labelled with the cluster's name, owned by the `KubeadmControlPlane`, with the
//! CA and credentials inline.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// On a `KaasCluster`: the stand-in holds its control plane not ready while the cluster asks
/// for this stack version (a cluster failing its upgrade, for the rollout tests).
pub const HOLD_ANNOTATION: &str = "stand-in.kaas.scs.community/hold-not-ready-on";

fn ar(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(group, version, kind))
}

/// What the stand-in needs.
#[derive(Clone)]
pub struct StandIn {
    /// The management cluster.
    pub management: Client,
    /// The kubeconfig (YAML) every workload cluster's Secret gets.
    pub workload_kubeconfig: String,
    /// The workload cluster, when its workloads should be reported ready.
    pub kubelets: Option<Client>,
    /// Per-cluster workload clusters (cluster name → kubeconfig YAML and client), for several
    /// clusters that must not share one API server; the others get `workload_kubeconfig`.
    pub per_cluster: std::collections::BTreeMap<String, (String, Client)>,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn").finish_non_exhaustive()
    }
}

impl StandIn {
    /// Runs the loop in the background until the returned handle is aborted or dropped with
    /// the runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.tick().await {
                    tracing::debug!(error = %e, "CAPI stand-in tick failed");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    /// Runs the loop on a thread of its own, with its own runtime and its own clients (made
    /// there from kubeconfig files, so no request depends on the caller's runtime), until
    /// `stop` is set. `per_cluster` names the kubeconfig of each cluster with a workload API
    /// server of its own; every other cluster gets `shared`, whose workloads are reported ready.
    pub fn run_on_thread(
        management: std::path::PathBuf,
        shared: std::path::PathBuf,
        per_cluster: std::collections::BTreeMap<String, std::path::PathBuf>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>> {
        Ok(kaas_testenv::on_own_thread(
            "capi-stand-in",
            move || async move {
                let stand_in =
                    match Self::from_kubeconfigs(&management, &shared, &per_cluster).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "CAPI stand-in cannot start");
                            return;
                        }
                    };
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(e) = stand_in.tick().await {
                        tracing::debug!(error = %e, "CAPI stand-in tick failed");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        )?)
    }

    async fn from_kubeconfigs(
        management: &std::path::Path,
        shared: &std::path::Path,
        per_cluster: &std::collections::BTreeMap<String, std::path::PathBuf>,
    ) -> Result<StandIn> {
        let mut clusters = std::collections::BTreeMap::new();
        for (name, path) in per_cluster {
            clusters.insert(
                name.clone(),
                (
                    std::fs::read_to_string(path)?,
                    kaas_testenv::client_for(path).await?,
                ),
            );
        }
        Ok(StandIn {
            management: kaas_testenv::client_for(management).await?,
            workload_kubeconfig: std::fs::read_to_string(shared)?,
            kubelets: Some(kaas_testenv::client_for(shared).await?),
            per_cluster: clusters,
        })
    }

    /// One pass over every object.
    pub async fn tick(&self) -> Result<()> {
        self.tick_installed().await?;
        self.tick_clusters().await?;
        self.tick_control_planes().await?;
        self.tick_machine_deployments().await?;
        self.tick_images().await?;
        self.tick_nodes().await?;
        self.tick_kubelets().await
    }

    /// Nodes for the machines of each cluster with a workload API server of its own.
    pub async fn tick_nodes(&self) -> Result<()> {
        for (name, (_, workload)) in &self.per_cluster {
            let selector =
                ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={name}"));
            let mut machines = Vec::new();
            let kcps: Api<DynamicObject> = Api::all_with(
                self.management.clone(),
                &ar(
                    "controlplane.cluster.x-k8s.io/v1beta2",
                    "KubeadmControlPlane",
                ),
            );
            for kcp in kcps.list(&selector).await? {
                let n = kcp.data["spec"]["replicas"].as_i64().unwrap_or(1);
                machines.extend((0..n).map(|i| (format!("{name}-control-plane-{i}"), true, i)));
            }
            let mds: Api<DynamicObject> = Api::all_with(
                self.management.clone(),
                &ar("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
            );
            for md in mds.list(&selector).await? {
                let n = md.data["spec"]["replicas"].as_i64().unwrap_or(1);
                let pool = md.name_any();
                machines.extend((0..n).map(|i| (format!("{pool}-{i}"), false, i)));
            }
            let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(workload.clone());
            for (node, control_plane, i) in machines {
                if nodes.get_opt(&node).await?.is_some() {
                    continue;
                }
                let zone = ["zone-a", "zone-b", "zone-c"][(i % 3) as usize];
                let mut labels = json!({
                    "kubernetes.io/hostname": node,
                    "topology.kubernetes.io/region": "region-1",
                    "topology.kubernetes.io/zone": zone,
                    "topology.scs.community/host-id": format!("host-{node}"),
                });
                if control_plane {
                    labels["node-role.kubernetes.io/control-plane"] = json!("");
                }
                let object: k8s_openapi::api::core::v1::Node =
                    serde_json::from_value(json!({"metadata": {"name": node, "labels": labels}}))?;
                match nodes.create(&PostParams::default(), &object).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// What kaas-installer installed: its Deployments rolled out and available, the Cluster
    /// API operator's provider objects ready at the version asked for.
    pub async fn tick_installed(&self) -> Result<()> {
        let c = &self.management;
        let deployments: Api<DynamicObject> =
            Api::namespaced_with(c.clone(), "kaas-system", &ar("apps/v1", "Deployment"));
        let installed = ListParams::default().labels("app.kubernetes.io/managed-by=kaas-installer");
        for d in deployments.list(&installed).await? {
            let replicas = d.data["spec"]["replicas"].as_i64().unwrap_or(1);
            let wanted = json!({"observedGeneration": d.metadata.generation, "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas,
                "availableReplicas": replicas});
            if d.data["status"] != wanted {
                patch_status(
                    c,
                    "kaas-system",
                    "apps/v1",
                    "Deployment",
                    &d.name_any(),
                    wanted,
                )
                .await?;
            }
        }
        for (api_version, kind) in crate::CAPI_OPERATOR_KINDS {
            let api: Api<DynamicObject> = Api::all_with(c.clone(), &ar(api_version, kind));
            for p in api.list(&ListParams::default()).await? {
                let wanted = json!({"installedVersion": p.data["spec"]["version"],
                    "conditions": [{"type": "Ready", "status": "True", "reason": "StandIn",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
                if p.data["status"] != wanted {
                    let ns = p.namespace().unwrap_or_default();
                    patch_status(c, &ns, api_version, kind, &p.name_any(), wanted).await?;
                }
            }
        }
        Ok(())
    }

    /// ORC `Image`s: imported and available, as ORC reports them once the upload finished.
    pub async fn tick_images(&self) -> Result<()> {
        const ORC: &str = "openstack.k-orc.cloud/v1alpha1";
        let images: Api<DynamicObject> = Api::all_with(self.management.clone(), &ar(ORC, "Image"));
        for image in images.list(&ListParams::default()).await? {
            let available = image.data["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Available" && c["status"] == "True")
                });
            if !available {
                let status = json!({"id": image.metadata.uid, "conditions": [{
                    "type": "Available", "status": "True", "reason": "Success",
                    "message": "imported by the stand-in",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }]});
                let ns = image.namespace().unwrap_or_default();
                patch_status(
                    &self.management,
                    &ns,
                    ORC,
                    "Image",
                    &image.name_any(),
                    status,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Clusters: infrastructure provisioned, control plane initialized, kubeconfig written.
    pub async fn tick_clusters(&self) -> Result<()> {
        let c = &self.management;
        let clusters: Api<DynamicObject> =
            Api::all_with(c.clone(), &ar("cluster.x-k8s.io/v1beta2", "Cluster"));
        for cluster in clusters.list(&ListParams::default()).await? {
            let ns = cluster.namespace().unwrap_or_default();
            let name = cluster.name_any();
            let kubeconfig = self
                .per_cluster
                .get(&name)
                .map_or(&self.workload_kubeconfig, |w| &w.0);
            let endpoint = endpoint_of(kubeconfig)?;
            if cluster.data["spec"]["controlPlaneEndpoint"] != endpoint {
                Api::<DynamicObject>::namespaced_with(
                    c.clone(),
                    &ns,
                    &ar("cluster.x-k8s.io/v1beta2", "Cluster"),
                )
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"controlPlaneEndpoint": endpoint}})),
                )
                .await?;
            }
            let wanted = json!({"initialization": {"infrastructureProvisioned": true, "controlPlaneInitialized": true}});
            if cluster.data["status"]["initialization"] != wanted["initialization"] {
                patch_status(c, &ns, "cluster.x-k8s.io/v1beta2", "Cluster", &name, wanted).await?;
            }
            let control_plane = cluster.data["spec"]["controlPlaneRef"]["name"]
                .as_str()
                .unwrap_or_default();
            self.kubeconfig(&ns, &name, control_plane, kubeconfig)
                .await?;
        }
        Ok(())
    }

    /// Control planes: the replicas and the version asked for, all ready.
    pub async fn tick_control_planes(&self) -> Result<()> {
        let c = &self.management;
        let kcps: Api<DynamicObject> = Api::all_with(
            c.clone(),
            &ar(
                "controlplane.cluster.x-k8s.io/v1beta2",
                "KubeadmControlPlane",
            ),
        );
        let kcps = kcps.list(&ListParams::default()).await?;
        self.control_plane_machines(&kcps.items).await?;
        let held = self.held().await?;
        for kcp in kcps {
            let spec = &kcp.data["spec"];
            let n = spec["replicas"].as_i64().unwrap_or(1);
            let cluster = (
                kcp.namespace().unwrap_or_default(),
                kcp.labels()
                    .get("kaas.scs.community/cluster")
                    .cloned()
                    .unwrap_or_default(),
            );
            let ready = if held.contains(&cluster) { 0 } else { n };
            let wanted = json!({"replicas": n, "readyReplicas": ready, "upToDateReplicas": n,
                                "availableReplicas": n, "version": spec["version"],
                                "observedGeneration": kcp.metadata.generation});
            if !holds(&kcp.data["status"], &wanted) {
                patch_status(
                    c,
                    &kcp.namespace().unwrap_or_default(),
                    "controlplane.cluster.x-k8s.io/v1beta2",
                    "KubeadmControlPlane",
                    &kcp.name_any(),
                    wanted,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The clusters (namespace, name) held not ready: [`HOLD_ANNOTATION`] names the stack
    /// version they ask for.
    async fn held(&self) -> Result<std::collections::BTreeSet<(String, String)>> {
        let clusters: Api<DynamicObject> = Api::all_with(
            self.management.clone(),
            &ar("kaas.scs.community/v1beta1", "KaasCluster"),
        );
        Ok(clusters
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|c| {
                c.annotations().get(HOLD_ANNOTATION).is_some_and(|v| {
                    Some(v.as_str()) == c.data["spec"]["clusterStack"]["version"].as_str()
                })
            })
            .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
            .collect())
    }

    /// A control plane `Machine` per replica of each of `kcps`, each reporting when its
    /// certificates expire; none for a control plane that is gone or replicas it dropped.
    async fn control_plane_machines(&self, kcps: &[DynamicObject]) -> Result<()> {
        const KCP_LABEL: &str = "stand-in.kaas.scs.community/control-plane";
        let machine = ar("cluster.x-k8s.io/v1beta2", "Machine");
        let all: Api<DynamicObject> = Api::all_with(self.management.clone(), &machine);
        let mut wanted = std::collections::BTreeMap::new();
        for kcp in kcps {
            let n = kcp.data["spec"]["replicas"].as_i64().unwrap_or(1);
            let ns = kcp.namespace().unwrap_or_default();
            for i in 0..n {
                wanted.insert((ns.clone(), format!("{}-{i}", kcp.name_any())), kcp);
            }
        }
        let existing = all.list(&ListParams::default().labels(KCP_LABEL)).await?;
        let mut have = std::collections::BTreeSet::new();
        for m in existing {
            let key = (m.namespace().unwrap_or_default(), m.name_any());
            if wanted.contains_key(&key) {
                have.insert(key);
            } else {
                Api::<DynamicObject>::namespaced_with(self.management.clone(), &key.0, &machine)
                    .delete(&key.1, &Default::default())
                    .await?;
            }
        }
        for ((ns, name), kcp) in wanted {
            if have.contains(&(ns.clone(), name.clone())) {
                continue;
            }
            let mut labels = kcp.data["spec"]["machineTemplate"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            let cluster = kcp.labels().get("cluster.x-k8s.io/cluster-name").cloned();
            labels[KCP_LABEL] = json!(kcp.name_any());
            labels["cluster.x-k8s.io/control-plane"] = json!("");
            labels["cluster.x-k8s.io/cluster-name"] = json!(cluster.unwrap_or_default());
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.management.clone(), &ns, &machine);
            let object: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                // What Cluster API's control plane controller gives each Machine it makes.
                "spec": {"clusterName": kcp.labels().get("cluster.x-k8s.io/cluster-name"),
                         "version": kcp.data["spec"]["version"],
                         "bootstrap": {"dataSecretName": format!("{name}-bootstrap")},
                         "infrastructureRef": kcp.data["spec"]["machineTemplate"]["spec"]["infrastructureRef"]},
            }))?;
            api.create(&PostParams::default(), &object).await?;
            let expiry = k8s_openapi::jiff::Timestamp::now()
                .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(365 * 24))?
                .round(k8s_openapi::jiff::Unit::Second)?;
            patch_status(
                &self.management,
                &ns,
                "cluster.x-k8s.io/v1beta2",
                "Machine",
                &name,
                json!({"certificatesExpiryDate": expiry.to_string()}),
            )
            .await?;
        }
        Ok(())
    }

    /// Machine deployments: the replicas asked for, all rolled and ready.
    pub async fn tick_machine_deployments(&self) -> Result<()> {
        let c = &self.management;
        let mds: Api<DynamicObject> = Api::all_with(
            c.clone(),
            &ar("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
        );
        for md in mds.list(&ListParams::default()).await? {
            let spec = &md.data["spec"];
            // Without replicas (an autoscaled pool) Cluster API starts at the lower bound.
            let min = md
                .annotations()
                .get("cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size")
                .and_then(|v| v.parse().ok());
            let n = spec["replicas"].as_i64().or(min).unwrap_or(1);
            let wanted = json!({"replicas": n, "readyReplicas": n, "upToDateReplicas": n,
                                "availableReplicas": n, "observedGeneration": md.metadata.generation});
            if !holds(&md.data["status"], &wanted) {
                patch_status(
                    c,
                    &md.namespace().unwrap_or_default(),
                    "cluster.x-k8s.io/v1beta2",
                    "MachineDeployment",
                    &md.name_any(),
                    wanted,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The workload cluster's workloads report ready (when kubelets are played).
    pub async fn tick_kubelets(&self) -> Result<()> {
        if let Some(workload) = &self.kubelets {
            kubelets(workload).await?;
        }
        for (_, workload) in self.per_cluster.values() {
            kubelets(workload).await?;
        }
        Ok(())
    }

    /// Writes `<name>-kubeconfig` owned by the control plane, once it exists.
    async fn kubeconfig(
        &self,
        ns: &str,
        name: &str,
        control_plane: &str,
        kubeconfig: &str,
    ) -> Result<()> {
        let secrets: Api<Secret> = Api::namespaced(self.management.clone(), ns);
        let secret_name = format!("{name}-kubeconfig");
        if secrets.get_opt(&secret_name).await?.is_some() {
            return Ok(());
        }
        let kcps: Api<DynamicObject> = Api::namespaced_with(
            self.management.clone(),
            ns,
            &ar(
                "controlplane.cluster.x-k8s.io/v1beta2",
                "KubeadmControlPlane",
            ),
        );
        let Some(kcp) = kcps.get_opt(control_plane).await? else {
            return Ok(());
        };
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "labels": {"cluster.x-k8s.io/cluster-name": name},
                "ownerReferences": [{
                    "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
                    "kind": "KubeadmControlPlane", "name": control_plane,
                    "uid": kcp.metadata.uid, "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "type": "cluster.x-k8s.io/secret",
            "stringData": {"value": kubeconfig},
        }))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The control plane endpoint (`{host, port}`) a kubeconfig's first cluster points at.
pub fn endpoint_of(kubeconfig: &str) -> Result<Value> {
    let config: Value = serde_saphyr::from_str(kubeconfig)?;
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap_or_default();
    let uri: http::Uri = server.parse()?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Ok(json!({"host": host, "port": uri.port_u16().unwrap_or(443)}))
}

/// Whether `status` already has every field of `wanted`.
fn holds(status: &Value, wanted: &Value) -> bool {
    wanted
        .as_object()
        .is_some_and(|w| w.iter().all(|(k, v)| &status[k] == v))
}

async fn patch_status(
    client: &Client,
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
    status: Value,
) -> Result<()> {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar(api_version, kind))
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// Reports every workload in the workload cluster ready, as its kubelets would, and every Job
/// succeeded.
async fn kubelets(client: &Client) -> Result<()> {
    let jobs: Api<DynamicObject> = Api::all_with(client.clone(), &ar("batch/v1", "Job"));
    for job in jobs.list(&ListParams::default()).await? {
        if job.data["status"]["succeeded"].as_i64().unwrap_or(0) == 0 {
            // As the Job controller finishes one: the API server refuses `Complete` without
            // `SuccessCriteriaMet` and the start and completion times.
            let now = k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let condition = |type_: &str| {
                json!({"type": type_, "status": "True", "reason": "StandIn",
                       "lastProbeTime": now, "lastTransitionTime": now})
            };
            patch_status(
                client,
                &job.namespace().unwrap_or_default(),
                "batch/v1",
                "Job",
                &job.name_any(),
                json!({"succeeded": 1, "startTime": now, "completionTime": now,
                       "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}),
            )
            .await?;
        }
    }
    for (kind, status) in [
        ("Deployment", "deployment"),
        ("StatefulSet", "statefulset"),
        ("DaemonSet", "daemonset"),
    ] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar("apps/v1", kind));
        for obj in api.list(&ListParams::default()).await? {
            let n = obj.data["spec"]["replicas"].as_i64().unwrap_or(1);
            let wanted = match status {
                "daemonset" => json!({"desiredNumberScheduled": 1, "numberReady": 1,
                                      "currentNumberScheduled": 1, "numberMisscheduled": 0}),
                _ => json!({"replicas": n, "readyReplicas": n, "availableReplicas": n}),
            };
            if !holds(&obj.data["status"], &wanted) {
                patch_status(
                    client,
                    &obj.namespace().unwrap_or_default(),
                    "apps/v1",
                    kind,
                    &obj.name_any(),
                    wanted,
                )
                .await?;
            }
        }
    }
    Ok(())
}
