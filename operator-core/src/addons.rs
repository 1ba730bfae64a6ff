//! Add-ons step of the pipeline: the stack's add-ons, rendered for the cluster, applied into the
//! workload cluster (reached through Cluster API's `<cluster>-kubeconfig` Secret) and judged.
//!
//! - Apply is server-side apply under the operator's field manager, and only when the live
//!   object does not already hold every field the add-on sets: a converged cluster costs reads,
//!   never writes, and a changed or deleted object (drift) is put back.
//! - What was applied is recorded in an inventory ConfigMap in the workload cluster
//!   (`kube-system/kaas-addons`), so objects a new release or a disabled add-on no longer has
//!   are pruned, even after an operator restart.
//! - An add-on waits until those it depends on are healthy; health is judged from the live
//!   objects (workloads report their replicas ready, or the objects exist).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use api::v1beta1::AddonStatus;
use k8s_openapi::api::core::v1::Secret;
use kaas_stack::{Health, RenderedAddon};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

use crate::workload_access::Expected;

/// Namespace and name of the inventory ConfigMap in the workload cluster.
pub const INVENTORY: (&str, &str) = ("kube-system", "kaas-addons");

/// Why the add-ons could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    /// The kubeconfig Secret is refused (see [`crate::workload_access`]).
    #[error("{0}")]
    Refused(#[from] crate::workload_access::Refused),
    /// The accepted kubeconfig cannot make a client.
    #[error("kubeconfig Secret {0}")]
    Kubeconfig(String),
    /// The workload API server refused or failed a request.
    #[error("workload cluster: {0}")]
    Workload(#[from] kube::Error),
}

/// A cached client and what it was built from: the Secret's resource version and what the
/// Secret was checked against.
type Cached = (String, Expected, Client);

/// Workload cluster clients, by management namespace and cluster, rebuilt when the kubeconfig
/// Secret or what it must match changes.
#[derive(Default)]
pub struct Workloads {
    clients: Mutex<HashMap<(String, String), Cached>>,
}

impl std::fmt::Debug for Workloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workloads")
            .field("clients", &self.lock().len())
            .finish()
    }
}

impl Workloads {
    /// The client of the cluster `expected` describes, in `namespace`, or `None` while Cluster
    /// API has not written its kubeconfig Secret. The Secret must pass
    /// [`crate::workload_access::check`].
    pub async fn client(
        &self,
        management: &Client,
        namespace: &str,
        expected: &Expected,
    ) -> Result<Option<Client>, AddonError> {
        let name = &expected.cluster;
        let secret_name = format!("{name}-kubeconfig");
        let secrets: Api<Secret> = Api::namespaced(management.clone(), namespace);
        let Some(secret) = secrets.get_opt(&secret_name).await? else {
            return Ok(None);
        };
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let key = (namespace.to_string(), name.to_string());
        if let Some((v, e, c)) = self.lock().get(&key)
            && *v == version
            && e == expected
        {
            return Ok(Some(c.clone()));
        }
        let accepted = crate::workload_access::check(&secret, expected)?;
        let config = crate::workload_access::config(accepted)
            .await
            .map_err(|e| AddonError::Kubeconfig(format!("{secret_name}: {e}")))?;
        let client =
            crate::workload_reads::client(config, crate::workload_reads::Bounds::default())
                .map_err(|e| AddonError::Kubeconfig(format!("{secret_name}: {e}")))?;
        self.lock()
            .insert(key, (version, expected.clone(), client.clone()));
        Ok(Some(client))
    }

    /// Forgets the client of a deleted cluster.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the add-on templates know about `cluster` (`cluster.*`, and its MTU) when it runs
/// `kubernetes_version` on `provider`.
pub fn cluster_values(
    cluster: &api::v1beta1::KaasCluster,
    provider: &str,
    kubernetes_version: &str,
) -> kaas_stack::ClusterValues {
    let network = &cluster.spec.network;
    kaas_stack::ClusterValues {
        name: cluster.metadata.name.clone().unwrap_or_default(),
        namespace: cluster.metadata.namespace.clone().unwrap_or_default(),
        provider: provider.to_string(),
        kubernetes_version: kubernetes_version.to_string(),
        pod_cidr: network.pod_cidrs.first().cloned().unwrap_or_default(),
        service_cidr: network.service_cidrs.first().cloned().unwrap_or_default(),
        mtu: network.mtu,
    }
}

/// What one sync found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Synced {
    /// Per add-on state, in stack order.
    pub statuses: Vec<AddonStatus>,
    /// Objects written (applied or pruned) in the workload cluster.
    pub writes: usize,
    /// Objects that were gone from the workload cluster and were put back, as
    /// `(add-on, "Kind namespace/name")`.
    pub missing: Vec<(String, String)>,
}

impl Synced {
    /// Whether every add-on is healthy.
    pub fn all_ready(&self) -> bool {
        self.statuses.iter().all(|s| s.ready)
    }
}

/// `apiVersion/kind/namespace/name` of an object: its inventory key.
fn key(obj: &Value) -> String {
    format!(
        "{}/{}/{}/{}",
        obj["apiVersion"].as_str().unwrap_or_default(),
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Whether `live` holds every field `desired` sets, with the same value.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| contains(lv, dv))),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        _ => live == desired,
    }
}

/// Whether a live object is healthy, or why not.
pub fn health(obj: &Value) -> Result<(), String> {
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &obj["status"];
    let name = format!(
        "{} {}/{}",
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    );
    let (ready, want) = match obj["kind"].as_str() {
        Some("Deployment") => (
            int(&status["availableReplicas"]),
            obj["spec"]["replicas"].as_i64().unwrap_or(1),
        ),
        Some("StatefulSet") => (
            int(&status["readyReplicas"]),
            obj["spec"]["replicas"].as_i64().unwrap_or(1),
        ),
        Some("DaemonSet") if status["desiredNumberScheduled"].is_null() => {
            return Err(format!("{name}: not scheduled yet"));
        }
        Some("DaemonSet") => (
            int(&status["numberReady"]),
            int(&status["desiredNumberScheduled"]),
        ),
        _ => return Ok(()),
    };
    if ready >= want {
        Ok(())
    } else {
        Err(format!("{name}: {ready} of {want} ready"))
    }
}

/// Resolves kinds to API resources through discovery, once per kind and client.
#[derive(Default)]
struct Kinds(BTreeMap<String, ApiResource>);

impl Kinds {
    async fn resource(&mut self, client: &Client, obj: &Value) -> Result<ApiResource, String> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let id = format!("{api_version}/{kind}");
        if let Some(ar) = self.0.get(&id) {
            return Ok(ar.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| format!("kind {id} is not served by the workload cluster: {e}"))?;
        self.0.insert(id, ar.clone());
        Ok(ar)
    }
}

fn api_for(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if !ns.is_empty() => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

/// Applies `addons` into the workload cluster behind `client`, prunes what they no longer
/// hold, and reports each add-on's health. With `prune_absent`, add-ons missing from
/// `addons` are removed too (a full sync); without, they are left alone (an upgrade's
/// pre-upgrade stage syncs only some).
pub async fn sync(
    client: &Client,
    addons: &[RenderedAddon],
    manager: &str,
    prune_absent: bool,
) -> Result<Synced, AddonError> {
    let mut kinds = Kinds::default();
    let mut synced = Synced::default();
    let inventory_api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), INVENTORY.0);
    let inventory = inventory_api.get_opt(INVENTORY.1).await?;
    let previous: BTreeMap<String, BTreeSet<String>> = inventory
        .and_then(|cm| cm.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(addon, list)| (addon, serde_json::from_str(&list).unwrap_or_default()))
        .collect();
    let mut now: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut healthy: BTreeSet<&str> = BTreeSet::new();
    let params = PatchParams::apply(manager).force();
    for addon in addons {
        let keys: BTreeSet<String> = addon.objects.iter().map(key).collect();
        let waiting: Vec<&str> = addon
            .depends_on
            .iter()
            .map(String::as_str)
            .filter(|d| !healthy.contains(d))
            .collect();
        if !waiting.is_empty() {
            // Keep what an earlier sync applied: waiting is not removing.
            if let Some(old) = previous.get(&addon.name) {
                now.insert(addon.name.clone(), old.clone());
            }
            synced.statuses.push(status(
                addon,
                false,
                format!("waiting for {}", waiting.join(", ")),
            ));
            continue;
        }
        let mut problems = Vec::new();
        for obj in &addon.objects {
            let ar = match kinds.resource(client, obj).await {
                Ok(ar) => ar,
                Err(message) => {
                    problems.push(message);
                    continue;
                }
            };
            let api = api_for(client, &ar, obj["metadata"]["namespace"].as_str());
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let live = api
                .get_opt(name)
                .await?
                .map(|o| serde_json::to_value(o).unwrap_or_default());
            if live.is_none()
                && previous
                    .get(&addon.name)
                    .is_some_and(|k| k.contains(&key(obj)))
            {
                // Applied before and gone now: deleted behind the operator's back.
                synced
                    .missing
                    .push((addon.name.clone(), kaas_stack::compliance::identity(obj)));
            }
            let live = match live {
                Some(l) if contains(&l, obj) => l,
                _ => {
                    synced.writes += 1;
                    let applied = api.patch(name, &params, &Patch::Apply(obj)).await?;
                    serde_json::to_value(applied).unwrap_or_default()
                }
            };
            if addon.health == Health::Ready
                && let Err(message) = health(&live)
            {
                problems.push(message);
            }
        }
        if let Some(old) = previous.get(&addon.name) {
            for stale in old.difference(&keys) {
                if prune(client, &mut kinds, stale).await? {
                    synced.writes += 1;
                }
            }
        }
        now.insert(addon.name.clone(), keys);
        if problems.is_empty() {
            healthy.insert(&addon.name);
            synced.statuses.push(status(addon, true, "healthy".into()));
        } else {
            synced
                .statuses
                .push(status(addon, false, problems.join("; ")));
        }
    }
    // Add-ons the stack no longer has, or the cluster turned off.
    for (addon, old) in &previous {
        if !now.contains_key(addon) && !prune_absent {
            now.insert(addon.clone(), old.clone());
        } else if !now.contains_key(addon) {
            for stale in old {
                if prune(client, &mut kinds, stale).await? {
                    synced.writes += 1;
                }
            }
        }
    }
    if now != previous {
        let data: BTreeMap<String, String> = now
            .iter()
            .map(|(a, keys)| (a.clone(), serde_json::to_string(keys).unwrap_or_default()))
            .collect();
        synced.writes += 1;
        inventory_api
            .patch(
                INVENTORY.1,
                &params,
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": INVENTORY.1, "namespace": INVENTORY.0},
                    "data": data,
                })),
            )
            .await?;
    }
    Ok(synced)
}

fn status(addon: &RenderedAddon, ready: bool, message: String) -> AddonStatus {
    AddonStatus {
        name: addon.name.clone(),
        version: Some(addon.version.clone()),
        ready,
        message: (!ready).then_some(message),
    }
}

/// Deletes the object with inventory key `stale`; whether it existed.
async fn prune(client: &Client, kinds: &mut Kinds, stale: &str) -> Result<bool, AddonError> {
    let parts: Vec<&str> = stale.rsplitn(4, '/').collect();
    let [name, namespace, kind, api_version] = parts.as_slice() else {
        return Ok(false);
    };
    let probe = json!({"apiVersion": api_version, "kind": kind});
    let Ok(ar) = kinds.resource(client, &probe).await else {
        return Ok(false);
    };
    let api = api_for(client, &ar, Some(namespace));
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(object = %stale, "pruned add-on object");
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
