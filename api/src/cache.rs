//! A watch-backed cache that one malformed stored object cannot break (feature `runtime`).
//!
//! A plain reflector deserializes every object of a list into the kind; one stored object that
//! does not fit (written before a schema change, or through a path that skipped validation)
//! fails the whole list, the watch retries forever and the cache never becomes ready: the
//! webhook would then refuse every write to the API group. Here objects are read through
//! [`DeserializeGuard`]: one that does not deserialize is reported (a warning naming it) and
//! left out, or taken out if an earlier version of it was cached; the others are served.

use futures::StreamExt;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};

/// Starts watching `api` in the background and returns the store it fills with the objects
/// that deserialize. `on_event` runs after every event the store applied, with the event and
/// the store: what it reacts to (a change counter, a controller's trigger) is then already
/// readable there, so a reader woken by it never finds the store behind the event.
pub fn tolerant_store<K>(
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    on_event: impl Fn(&Event<K>, &Store<K>) + Send + 'static,
) -> Store<K>
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
    let mut writer = reflector::store::Writer::<K>::default();
    let reader = writer.as_reader();
    let own = reader.clone();
    let kind = K::kind(&()).to_string();
    let events = watcher::watcher(api, config).default_backoff();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    if let Some(event) = sorted(event, &kind) {
                        writer.apply_watcher_event(&event);
                        on_event(&event, &own);
                    }
                }
                Err(e) => tracing::warn!(error = %e, %kind, "watch error; retrying"),
            }
        }
    });
    reader
}

/// The event over the objects that deserialize; an object that does not is reported and, if
/// cached, removed. Managed fields are dropped (most of a small object, never read).
fn sorted<K>(event: Event<DeserializeGuard<K>>, kind: &str) -> Option<Event<K>>
where
    K: Resource<DynamicType = ()> + Default,
{
    let valid = |guard: DeserializeGuard<K>| match guard.0 {
        Ok(mut object) => {
            object.meta_mut().managed_fields = None;
            Ok(object)
        }
        Err(invalid) => {
            tracing::warn!(
                %kind,
                name = %invalid.metadata.name.clone().unwrap_or_default(),
                error = %invalid.error,
                "stored object does not deserialize; left out of the cache"
            );
            let mut placeholder = K::default();
            *placeholder.meta_mut() = invalid.metadata;
            Err(placeholder)
        }
    };
    Some(match event {
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
        Event::InitApply(guard) => Event::InitApply(valid(guard).ok()?),
        Event::Apply(guard) => match valid(guard) {
            Ok(object) => Event::Apply(object),
            Err(placeholder) => Event::Delete(placeholder),
        },
        Event::Delete(guard) => Event::Delete(valid(guard).unwrap_or_else(|p| p)),
    })
}
