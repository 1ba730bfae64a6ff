//! The operator's caches: one reflector per kind it reads, without managed fields (they are
//! most of a small object). An owned Cluster API kind is watched once and feeds both its cache
//! (metadata and status only: the spec is the operator's own rendering) and the stream of
//! changes that triggers the owning cluster's reconcile. Classes and stacks trigger reconciles
//! from their own caches too, after the cache holds the change: a reconcile woken by a class
//! always finds that class (two watches, one for the cache and one for the trigger, raced, and
//! a cluster applied together with its class could be dropped for good). Tenant policies the
//! same way: where a policy stands is each governed cluster's `WithinTenantPolicy`.

use anyhow::Context as _;
use api::v1beta1::{ClusterStack, ProviderClass, TenantPolicy};
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Client;
use kube::api::{Api, ApiResource};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};

use crate::cluster::Watched;
use crate::cluster::render;
use crate::kinds::Kind;
use crate::owned::Owned;

/// The clusters whose Cluster API objects changed, for the controller.
pub(super) type Triggers = BoxStream<'static, ObjectRef<Watched>>;

/// Triggers buffered per owned kind while the controller is busy or not yet running.
const TRIGGER_BUFFER: usize = 16_384;

/// A cache of one owned Cluster API kind, and the stream of the clusters whose objects of
/// that kind changed (from each object's cluster label). One watch feeds both, so the API
/// server serves each kind once.
fn spawn_owned_store(
    api: Api<Owned>,
    ar: ApiResource,
    config: watcher::Config,
) -> (Store<Owned>, Triggers) {
    let writer = reflector::store::Writer::new(ar);
    let reader = writer.as_reader();
    let (tx, rx) = tokio::sync::mpsc::channel(TRIGGER_BUFFER);
    let stream = reflector::reflector(
        writer,
        // Only what the operator reads is decoded and kept ([`Owned`], [`slim`]): with
        // thousands of clusters these caches are most of the operator's memory.
        watcher(api, config).default_backoff().modify(slim),
    )
    .touched_objects();
    tokio::spawn(stream.for_each(move |o| {
        if let Ok(o) = o
            && let Some(cluster) = o.cluster.as_deref()
        {
            let mut trigger = ObjectRef::<Watched>::new(cluster);
            if let Some(ns) = o.metadata.namespace.as_deref() {
                trigger = trigger.within(ns);
            }
            // The controller may not run yet (a standby replica): the buffer holds the
            // triggers, which are small, and drops what does not fit. Nothing is lost by that:
            // a starting controller reconciles every cluster, and a running one requeues each
            // cluster periodically.
            if tx.try_send(trigger).is_err() {
                tracing::debug!("owned-object trigger dropped: the controller is behind");
            }
        }
        futures::future::ready(())
    }));
    let triggers =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) });
    (reader, triggers.boxed())
}

/// Class or stack changes, sent once the cache holds them.
pub(super) type CachedTriggers<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// A class or stack cache and the stream of what changed in it. Each object an event touched
/// is sent after the store applied the event; after a (re)list, every object is.
fn spawn_cached_triggers<K>(client: &Client) -> (Store<K>, CachedTriggers<K>)
where
    K: kube::Resource<DynamicType = ()>
        + Default
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<K>(TRIGGER_BUFFER);
    let send = move |object: K| {
        // Dropped only when 16,384 changes wait (a standby replica whose controller does not
        // run yet): a starting controller reconciles every cluster anyway.
        if tx.try_send(object).is_err() {
            tracing::debug!("class or stack trigger dropped: the controller is behind");
        }
    };
    let store = api::cache::tolerant_store(
        Api::<DeserializeGuard<K>>::all(client.clone()),
        watcher::Config::default(),
        move |event, store| match event {
            Event::Apply(object) | Event::Delete(object) => send(object.clone()),
            Event::InitDone => store.state().iter().for_each(|o| send((**o).clone())),
            Event::Init | Event::InitApply(_) => {}
        },
    );
    let triggers =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|o| (Ok(o), rx)) },
        );
    (store, triggers.boxed())
}

/// Keeps of an owned object only what the operator reads ([`Owned`] decodes little more):
/// its name, namespace, uid (a kubeconfig Secret is trusted when the `Cluster` or control
/// plane of that uid owns it) and generation; its cluster and pool labels move to
/// [`Owned::cluster`] and [`Owned::pool`]; of its conditions only the types the status reads,
/// with shared strings. The resource version goes: the store's key would copy it once more,
/// and the watch has read it before this runs.
fn slim(o: &mut Owned) {
    let meta = &mut o.metadata;
    meta.resource_version = None;
    if let Some(mut labels) = meta.labels.take() {
        o.cluster = labels
            .remove(render::CLUSTER_LABEL)
            .map(String::into_boxed_str);
        o.pool = labels
            .remove(render::POOL_LABEL)
            .map(String::into_boxed_str);
    }
    if let Some(status) = o.status.as_mut()
        && let Some(conditions) = status.conditions.as_mut()
    {
        let read = &crate::cluster::status::observe::READ_CONDITIONS;
        conditions.retain(|c| read.contains(&c.type_.as_ref()));
        conditions.iter_mut().for_each(|c| c.intern(read));
        conditions.shrink_to_fit();
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// Every cache the operator reads, synced, and the streams of what changed in them.
pub(super) struct Started {
    /// The caches reconciles read.
    pub caches: crate::cluster::Caches,
    /// The clusters whose objects changed in them.
    pub triggers: Triggers,
    /// What changed in the class, stack and policy caches.
    pub cached: CachedChanges,
}

/// What changed in the class, stack and tenant policy caches, each sent once its cache holds
/// the change.
pub(super) struct CachedChanges {
    /// Classes.
    pub classes: CachedTriggers<ProviderClass>,
    /// Stacks.
    pub stacks: CachedTriggers<ClusterStack>,
    /// Tenant policies.
    pub policies: CachedTriggers<TenantPolicy>,
}

/// Starts the caches (one per watched kind of `kinds`, only with this operator's `manager`
/// label, in `namespace` or everywhere) and waits until each has listed.
pub(super) async fn start(
    client: &Client,
    namespace: Option<&str>,
    kinds: &[Kind],
    manager: &str,
) -> anyhow::Result<Started> {
    let dynamic = |ar: &ApiResource| -> Api<Owned> {
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        }
    };
    // Listed from the API server's watch cache in one response (resourceVersion 0 and no
    // page size): a page size sends the list to etcd page by page, which made a restart over
    // 10,000 clusters take several times longer to be ready.
    let mine = watcher::Config::default()
        .labels(&format!("{}={manager}", render::MANAGED_BY_LABEL))
        .any_semantic();
    let mine = watcher::Config {
        page_size: None,
        ..mine
    };
    let mut by_kind = Vec::new();
    let mut triggers = Vec::new();
    for kind in kinds.iter().filter(|k| k.watched) {
        let ar = kind.resource();
        let (store, kind_triggers) = spawn_owned_store(dynamic(&ar), ar, mine.clone());
        by_kind.push((*kind, store));
        triggers.push(kind_triggers);
    }
    let (tx, rx) = tokio::sync::mpsc::channel(TRIGGER_BUFFER);
    let machines = crate::certificates::machine_resource();
    let machines = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &machines),
        None => Api::all_with(client.clone(), &machines),
    };
    let certificates = crate::certificates::start(machines, manager, tx);
    let certificate_triggers =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) });
    triggers.push(certificate_triggers.boxed());
    // Classes and stacks through the tolerant cache: one that does not deserialize is
    // reported and left out, the others are served.
    let (classes, class_triggers) = spawn_cached_triggers::<ProviderClass>(client);
    let (stacks, stack_triggers) = spawn_cached_triggers::<ClusterStack>(client);
    let (policies, policy_triggers) = spawn_cached_triggers::<TenantPolicy>(client);
    let started = std::time::Instant::now();
    for (kind, store) in &by_kind {
        store.wait_until_ready().await.context("caches")?;
        tracing::info!(kind = %kind.kind, objects = store.len(), after_ms = started.elapsed().as_millis() as u64, "cache listed");
    }
    classes.wait_until_ready().await.context("caches")?;
    stacks.wait_until_ready().await.context("caches")?;
    policies.wait_until_ready().await.context("caches")?;
    Ok(Started {
        caches: crate::cluster::Caches {
            classes,
            stacks,
            by_kind,
            certificates,
            policies,
        },
        triggers: futures::stream::select_all(triggers).boxed(),
        cached: CachedChanges {
            classes: class_triggers,
            stacks: stack_triggers,
            policies: policy_triggers,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_keeps_what_the_status_reads() {
        let mut o: Owned = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c1-md-0", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                         "generation": 2, "annotations": {"a": "b"},
                         "labels": {"kaas.scs.community/cluster": "c1", "kaas.scs.community/pool": "md-0",
                                    "other": "x"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "c1", "uid": "o"}]},
            "status": {"conditions": [
                {"type": "InfrastructureReady", "status": "True"},
                {"type": "RemoteConnectionProbe", "status": "True"},
                {"type": "ControlPlaneInitialized", "status": "Maybe"}]},
        }))
        .unwrap();
        slim(&mut o);
        let m = &o.metadata;
        assert_eq!(
            (m.uid.as_deref(), m.resource_version.as_deref()),
            (Some("u-1"), None),
            "the uid is how a kubeconfig Secret's owner is checked"
        );
        assert_eq!(m.generation, Some(2));
        assert!(
            m.owner_references.is_none() && m.annotations.is_none() && m.labels.is_none(),
            "never decoded, or moved"
        );
        assert_eq!(
            (o.cluster.as_deref(), o.pool.as_deref()),
            (Some("c1"), Some("md-0"))
        );
        let conditions = o.status.as_ref().unwrap().conditions.as_ref().unwrap();
        let read: Vec<(&str, &str)> = conditions
            .iter()
            .map(|c| (c.type_.as_ref(), c.status.as_ref()))
            .collect();
        assert_eq!(
            read,
            [
                ("InfrastructureReady", "True"),
                ("ControlPlaneInitialized", "Maybe")
            ],
            "an unknown status is kept as it is"
        );
        assert!(matches!(
            conditions[0].status,
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
