//! When each cluster's control plane certificates expire, as Cluster API reports it on the
//! control plane's `Machine`s (`status.certificatesExpiryDate`, set by the kubeadm control
//! plane controller). One watch of the control plane Machines this operator's control planes
//! created (they carry the labels of `machineTemplate.metadata`), kept as the earliest date
//! per cluster: a reconcile looks its cluster up instead of scanning every Machine, and a
//! change of the earliest date triggers the cluster's reconcile so the status follows it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};

use crate::kinds as render;

/// Label Cluster API puts on every control plane Machine.
pub const CONTROL_PLANE_MACHINE_LABEL: &str = "cluster.x-k8s.io/control-plane";

/// (namespace, cluster) → machine name → its expiry date.
type ByCluster = HashMap<(String, String), HashMap<String, Timestamp>>;

/// The earliest control plane certificate expiry per cluster.
#[derive(Clone, Debug, Default)]
pub struct CertificateExpiry(Arc<RwLock<ByCluster>>);

impl CertificateExpiry {
    /// The earliest date the control plane machines of `namespace/cluster` report, if any.
    pub fn earliest(&self, namespace: &str, cluster: &str) -> Option<Timestamp> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(namespace.to_string(), cluster.to_string()))
            .and_then(|machines| machines.values().min().copied())
    }

    /// Records `machine` (its date, or none); whether the cluster's earliest date changed.
    fn record(&self, key: (String, String), machine: String, date: Option<Timestamp>) -> bool {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        let before = map.get(&key).and_then(|m| m.values().min().copied());
        match date {
            Some(date) => {
                map.entry(key.clone()).or_default().insert(machine, date);
            }
            None => {
                if let Some(machines) = map.get_mut(&key) {
                    machines.remove(&machine);
                    if machines.is_empty() {
                        map.remove(&key);
                    }
                }
            }
        }
        let after = map.get(&key).and_then(|m| m.values().min().copied());
        before != after
    }

    /// Replaces everything with a fresh list's content (a watch (re)started).
    fn replace(&self, fresh: ByCluster) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }
}

/// Where a Machine belongs and its date: (namespace, cluster), name, expiry. A date that is
/// not RFC 3339 (or absent) reads as none.
fn read(o: &DynamicObject) -> Option<((String, String), String, Option<Timestamp>)> {
    let cluster = o
        .metadata
        .labels
        .as_ref()?
        .get(render::CLUSTER_LABEL)?
        .clone();
    let ns = o.metadata.namespace.clone().unwrap_or_default();
    let name = o.metadata.name.clone()?;
    let date = o.data["status"]["certificatesExpiryDate"]
        .as_str()
        .filter(|d| d.len() <= 64)
        .and_then(|d| d.parse::<Timestamp>().ok());
    Some(((ns, cluster), name, date))
}

/// Starts the watch; the clusters whose earliest date changed go to `triggers`.
pub(crate) fn start<K>(
    api: Api<DynamicObject>,
    manager: &str,
    triggers: tokio::sync::mpsc::Sender<ObjectRef<K>>,
) -> CertificateExpiry
where
    K: kube::Resource<DynamicType = ()> + 'static,
{
    let expiry = CertificateExpiry::default();
    let config = watcher::Config::default().labels(&format!(
        "{CONTROL_PLANE_MACHINE_LABEL},{}={manager}",
        render::MANAGED_BY_LABEL
    ));
    let kept = expiry.clone();
    tokio::spawn(async move {
        let mut fresh: Option<ByCluster> = None;
        let mut events = watch(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let mut changed = Vec::new();
            match event {
                Ok(Event::Init) => fresh = Some(ByCluster::new()),
                Ok(Event::InitApply(o)) => {
                    if let (Some(map), Some((key, name, Some(date)))) = (fresh.as_mut(), read(&o)) {
                        map.entry(key).or_default().insert(name, date);
                    }
                }
                Ok(Event::InitDone) => {
                    if let Some(map) = fresh.take() {
                        changed.extend(map.keys().cloned());
                        kept.replace(map);
                    }
                }
                Ok(Event::Apply(o)) => {
                    if let Some((key, name, date)) = read(&o)
                        && kept.record(key.clone(), name, date)
                    {
                        changed.push(key);
                    }
                }
                Ok(Event::Delete(o)) => {
                    if let Some((key, name, _)) = read(&o)
                        && kept.record(key.clone(), name, None)
                    {
                        changed.push(key);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "control plane machine watch"),
            }
            for (ns, cluster) in changed {
                // Dropped when the controller is behind: it requeues every cluster anyway.
                let _ = triggers.try_send(ObjectRef::<K>::new(&cluster).within(&ns));
            }
        }
    });
    expiry
}

/// The `Machine` kind.
pub(crate) fn machine_resource() -> ApiResource {
    crate::apply::resource(crate::kinds::CAPI_CORE, "Machine")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> (String, String) {
        ("ns".into(), c.into())
    }

    fn at(s: &str) -> Option<Timestamp> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_earliest_machine_counts_and_a_change_of_it_is_reported() {
        let e = CertificateExpiry::default();
        assert!(e.record(key("a"), "m1".into(), at("2027-12-01T00:00:00Z")));
        assert!(
            e.record(key("a"), "m2".into(), at("2027-06-01T00:00:00+02:00")),
            "an earlier machine moves the date"
        );
        assert!(
            !e.record(key("a"), "m3".into(), at("2027-12-24T00:00:00Z")),
            "a later one does not"
        );
        assert_eq!(e.earliest("ns", "a"), at("2027-05-31T22:00:00Z"));
        assert_eq!(e.earliest("ns", "b"), None, "clusters are apart");
        assert!(e.record(key("a"), "m2".into(), None), "a machine gone");
        assert_eq!(e.earliest("ns", "a"), at("2027-12-01T00:00:00Z"));
        e.record(key("a"), "m1".into(), None);
        e.record(key("a"), "m3".into(), None);
        assert_eq!(e.earliest("ns", "a"), None);
    }

    #[test]
    fn a_machine_without_the_cluster_label_or_with_a_bad_date_is_read_as_such() {
        let machine = |labels: serde_json::Value, date: &str| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "metadata": {"name": "m", "namespace": "ns", "labels": labels},
                "status": {"certificatesExpiryDate": date},
            }))
            .unwrap()
        };
        let labelled = serde_json::json!({(render::CLUSTER_LABEL): "a"});
        assert_eq!(
            read(&machine(labelled.clone(), "2027-12-01T00:00:00Z")),
            Some((key("a"), "m".into(), at("2027-12-01T00:00:00Z")))
        );
        assert_eq!(
            read(&machine(labelled, "next year")),
            Some((key("a"), "m".into(), None))
        );
        assert_eq!(
            read(&machine(serde_json::json!({}), "2027-12-01T00:00:00Z")),
            None
        );
    }
}
