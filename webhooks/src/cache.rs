//! The watch-backed cache admission decisions are made from. Admission never calls the API
//! server in the request path: classes, stacks and clusters come from reflectors, and a
//! request that refers to something the cache has not seen yet may wait a moment for the
//! watch to catch up (an `kubectl apply -f` of a class and a cluster together races it).
//! `StackRollout`s and `Namespace`s are cached by metadata only: admission counts the
//! rollouts per namespace and reads the namespaces' labels (which `TenantPolicy` governs
//! them). The client the stores watch with is kept for the one write admission makes: a
//! tenant policy's usage reservation ([`crate::reserve`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::Catalog;
use api::install::v1alpha1::KaasOperator;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass, StackRollout, TenantPolicy};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

/// StackRollouts a namespace may hold unless told otherwise: one per stack release in
/// flight is the usual count, and each costs the operators a reconcile per change of the
/// namespace's clusters.
pub const MAX_ROLLOUTS_PER_NAMESPACE: usize = 100;

/// Readers of the stores, a change counter and a readiness flag.
#[derive(Clone)]
pub struct CatalogCache {
    classes: Store<ProviderClass>,
    stacks: Store<ClusterStack>,
    clusters: Store<KaasCluster>,
    operators: Store<KaasOperator>,
    rollouts: Store<PartialObjectMeta<StackRollout>>,
    policies: Store<TenantPolicy>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    client: Option<Client>,
    reserver: Option<Arc<crate::reserve::Reserver>>,
    max_rollouts: usize,
    changes: watch::Receiver<u64>,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogCache")
            .field("classes", &self.classes.len())
            .field("stacks", &self.stacks.len())
            .field("clusters", &self.clusters.len())
            .field("operators", &self.operators.len())
            .field("rollouts", &self.rollouts.len())
            .field("policies", &self.policies.len())
            .field("namespaces", &self.namespaces.len())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl CatalogCache {
    /// Starts one reflector per kind on `client` and returns the cache at once; it becomes
    /// ready when every store has listed its kind.
    pub fn watch(client: Client) -> CatalogCache {
        let (tx, changes) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let classes = spawn_reflector::<ProviderClass>(client.clone(), tx.clone());
        let stacks = spawn_reflector::<ClusterStack>(client.clone(), tx.clone());
        let clusters = spawn_reflector::<KaasCluster>(client.clone(), tx.clone());
        let operators = spawn_reflector::<KaasOperator>(client.clone(), tx.clone());
        let rollouts = spawn_metadata_store::<StackRollout>(client.clone(), tx.clone());
        let policies = spawn_reflector::<TenantPolicy>(client.clone(), tx.clone());
        let namespaces = spawn_metadata_store::<Namespace>(client.clone(), tx);
        let ready = Arc::new(AtomicBool::new(false));
        let cache = CatalogCache {
            classes,
            stacks,
            clusters,
            operators,
            rollouts,
            policies,
            namespaces,
            reserver: Some(Arc::new(crate::reserve::Reserver::new(client.clone()))),
            client: Some(client),
            max_rollouts: MAX_ROLLOUTS_PER_NAMESPACE,
            changes,
            ready: ready.clone(),
        };
        let stores = cache.clone();
        tokio::spawn(async move {
            let synced = stores.classes.wait_until_ready().await.is_ok()
                && stores.stacks.wait_until_ready().await.is_ok()
                && stores.clusters.wait_until_ready().await.is_ok()
                && stores.operators.wait_until_ready().await.is_ok()
                && stores.rollouts.wait_until_ready().await.is_ok()
                && stores.policies.wait_until_ready().await.is_ok()
                && stores.namespaces.wait_until_ready().await.is_ok();
            if synced {
                tracing::info!(?stores, "caches synced");
                ready.store(true, Ordering::Release);
            }
        });
        cache
    }

    /// A cache holding exactly `catalog`, ready at once (for tests and offline use).
    pub fn fixed(catalog: &Catalog) -> CatalogCache {
        let (_tx, changes) = watch::channel(0u64);
        CatalogCache {
            classes: fixed_store(&catalog.classes),
            stacks: fixed_store(&catalog.stacks),
            clusters: fixed_store(&catalog.clusters),
            operators: fixed_store(&catalog.operators),
            rollouts: fixed_store(&[]),
            policies: fixed_store(&[]),
            namespaces: fixed_store(&[]),
            client: None,
            reserver: None,
            max_rollouts: MAX_ROLLOUTS_PER_NAMESPACE,
            changes,
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The same cache admitting at most `max` StackRollouts per namespace.
    pub fn with_rollout_bound(mut self, max: usize) -> CatalogCache {
        self.max_rollouts = max;
        self
    }

    /// StackRollouts a namespace may hold.
    pub fn rollout_bound(&self) -> usize {
        self.max_rollouts
    }

    /// StackRollouts of `namespace` in the cache other than `name`.
    pub fn rollouts_besides(&self, namespace: &str, name: &str) -> usize {
        self.rollouts
            .state()
            .iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace) && r.name_any() != name)
            .count()
    }

    /// The tenant policies.
    pub fn policies(&self) -> Vec<Arc<TenantPolicy>> {
        self.policies.state()
    }

    /// The labels of `namespace` (none when the cache has not seen it).
    pub fn labels_of(&self, namespace: &str) -> std::collections::BTreeMap<String, String> {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    }

    /// The labels of each namespace, by name.
    pub fn namespace_labels(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
        self.namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect()
    }

    /// Every `KaasCluster`.
    pub fn clusters(&self) -> Vec<Arc<KaasCluster>> {
        self.clusters.state()
    }

    /// The client the stores watch with (None for a fixed cache).
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// The writer of tenant policies' reservations (None for a fixed cache).
    pub fn reserver(&self) -> Option<&crate::reserve::Reserver> {
        self.reserver.as_deref()
    }

    /// Whether every store has synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What the cache holds now. The clusters, which only the "in use" checks on delete
    /// need and which can be many, are included only when asked for.
    pub fn snapshot(&self, with_clusters: bool) -> Catalog {
        Catalog {
            classes: self.classes.state(),
            stacks: self.stacks.state(),
            clusters: if with_clusters {
                self.clusters.state()
            } else {
                Vec::new()
            },
            operators: self.operators.state(),
        }
    }

    /// Waits until the cache changes or `timeout` passes; true when it changed.
    pub async fn changed_within(&self, timeout: Duration) -> bool {
        let mut rx = self.changes.clone();
        rx.mark_unchanged();
        matches!(
            tokio::time::timeout(timeout, rx.changed()).await,
            Ok(Ok(()))
        )
    }
}

/// A store of `K` from a watch that one malformed stored object cannot break (it is reported
/// and left out; see [`api::cache`]).
fn spawn_reflector<K>(client: Client, changes: Arc<watch::Sender<u64>>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Default
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    api::cache::tolerant_store(
        Api::<kube::core::DeserializeGuard<K>>::all(client),
        watcher::Config::default(),
        move |_, _| changes.send_modify(|n| *n = n.wrapping_add(1)),
    )
}

/// A store of `K`'s metadata only (no spec, no status, no managed fields).
fn spawn_metadata_store<K>(
    client: Client,
    changes: Arc<watch::Sender<u64>>,
) -> Store<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher::watcher(
        Api::<PartialObjectMeta<K>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|m| m.metadata.managed_fields = None)
    .reflect(writer);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => changes.send_modify(|n| *n = n.wrapping_add(1)),
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying"),
            }
        }
    });
    reader
}

fn fixed_store<K>(objects: &[Arc<K>]) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for obj in objects {
        writer.apply_watcher_event(&Event::InitApply((**obj).clone()));
    }
    writer.apply_watcher_event(&Event::InitDone);
    // The writer may go: a reader keeps the state it last saw.
    drop(writer);
    reader
}
