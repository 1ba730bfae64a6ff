//! A Cluster API object as the operator caches it: its metadata and only the fields the
//! operator reads (the control plane endpoint Cluster API sets on a `Cluster`; replica counts,
//! versions, initialization and conditions by type and status), decoded straight into this
//! shape. With 10,000 clusters the caches hold 30,000 of these: a generic JSON tree of each
//! object was most of the operator's memory and of its start-up time.
//!
//! Every read field is lenient: a value of an unexpected shape reads as absent instead of
//! failing the object (and with it the whole list of its kind).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use kube::core::{DynamicResourceScope, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `T` when the field holds one, else absent (never an error).
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// The metadata fields an [`Owned`] is decoded with; every other one (managed fields above
/// all: a tree per field the operator applied) is skipped while parsing, never built. A
/// restart lists every object of a kind in one response: decoded whole, their managed
/// fields alone would be most of the restarted operator's memory.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    /// The watch needs it to resume; the cache drops it afterwards.
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// The metadata with only the fields of [`ReadMeta`].
fn read_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = ReadMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        labels: m.labels,
        ..ObjectMeta::default()
    })
}

/// A cached `Cluster`, `KubeadmControlPlane` or `MachineDeployment`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Owned {
    /// Its metadata: name, namespace, uid, resource version, generation and labels.
    #[serde(default, deserialize_with = "read_meta")]
    pub metadata: ObjectMeta,
    /// What is read of its spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<OwnedSpec>,
    /// What is read of its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OwnedStatus>,
    /// The `KaasCluster` it belongs to (its `kaas.scs.community/cluster` label). The cache
    /// moves the two labels it reads here and drops the label map, which costs far more
    /// than the two strings, once per cached object.
    #[serde(skip)]
    pub cluster: Option<Box<str>>,
    /// The worker pool of a `MachineDeployment` (its `kaas.scs.community/pool` label).
    #[serde(skip)]
    pub pool: Option<Box<str>>,
}

/// The spec field read: where Cluster API says the workload cluster's API server is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedSpec {
    /// `{host, port}` of a `Cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<Value>,
}

/// The status fields read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedStatus {
    /// Machines.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub replicas: Option<i64>,
    /// Ready machines.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub ready_replicas: Option<i64>,
    /// Machines at the current spec.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub up_to_date_replicas: Option<i64>,
    /// The control plane's running version.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,
    /// The generation the controller has seen.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub observed_generation: Option<i64>,
    /// A `Cluster`'s initialization (v1beta2).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub initialization: Option<Initialization>,
    /// Conditions, by type and status only.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub conditions: Option<Vec<OwnedCondition>>,
}

/// A `Cluster`'s `status.initialization`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initialization {
    /// The infrastructure is provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_provisioned: Option<bool>,
    /// The control plane is initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_initialized: Option<bool>,
}

/// A condition's type and status. The cache points both at static strings where it knows
/// them ([`OwnedCondition::intern`]): two allocations less per condition kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OwnedCondition {
    /// Its type.
    #[serde(rename = "type", default)]
    pub type_: Cow<'static, str>,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: Cow<'static, str>,
}

impl OwnedCondition {
    /// The condition with its type one of `types` and its status one of the three a
    /// condition has, shared instead of owned; other values are kept as they are.
    pub fn intern(&mut self, types: &[&'static str]) {
        fn shared(s: &mut Cow<'static, str>, known: &[&'static str]) {
            if let Some(k) = known.iter().find(|k| **k == s.as_ref()) {
                *s = Cow::Borrowed(k);
            }
        }
        shared(&mut self.type_, types);
        shared(&mut self.status, &["True", "False", "Unknown"]);
    }
}

impl Owned {
    /// Just a name: an object this operator applied before its watch delivered it.
    pub fn named(name: &str) -> Owned {
        let mut owned = Owned::default();
        owned.metadata.name = Some(name.to_string());
        owned
    }

    fn read<T: Default>(&self, field: impl Fn(&OwnedStatus) -> Option<T>) -> T {
        self.status.as_ref().and_then(field).unwrap_or_default()
    }

    /// Its generation (0 when unknown).
    pub fn generation(&self) -> i64 {
        self.metadata.generation.unwrap_or(0)
    }

    /// The generation its controller has seen (0 when unknown).
    pub fn observed_generation(&self) -> i64 {
        self.read(|s| s.observed_generation)
    }

    /// Machines (0 when unknown).
    pub fn replicas(&self) -> i64 {
        self.read(|s| s.replicas)
    }

    /// Ready machines (0 when unknown).
    pub fn ready_replicas(&self) -> i64 {
        self.read(|s| s.ready_replicas)
    }

    /// Machines at the current spec (0 when unknown).
    pub fn up_to_date_replicas(&self) -> i64 {
        self.read(|s| s.up_to_date_replicas)
    }

    /// The replica counts it reports (a `KubeadmControlPlane`, a `MachineDeployment`) against
    /// `desired`, as the status shows them.
    pub fn replica_status(&self, desired: i32) -> api::v1beta1::ReplicaStatus {
        let int = |n: i64| n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        api::v1beta1::ReplicaStatus {
            desired,
            replicas: int(self.replicas()),
            ready_replicas: int(self.ready_replicas()),
            up_to_date_replicas: int(self.up_to_date_replicas()),
            certificates_expiry_date: None,
        }
    }

    /// The running version its status reports.
    pub fn version(&self) -> Option<&str> {
        self.status.as_ref()?.version.as_deref()
    }

    /// Whether its condition `type_` is `True`.
    pub fn condition_true(&self, type_: &str) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    }

    /// A flag of a `Cluster`'s `status.initialization`.
    pub fn initialized(&self, flag: impl Fn(&Initialization) -> Option<bool>) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(flag)
            == Some(true)
    }

    /// `(host, port)` of a `Cluster`'s control plane endpoint, once Cluster API set both.
    pub fn control_plane_endpoint(&self) -> Option<(&str, u16)> {
        let endpoint = self.spec.as_ref()?.control_plane_endpoint.as_ref()?;
        let host = endpoint["host"].as_str().filter(|h| !h.is_empty())?;
        let port = endpoint["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)?;
        Some((host, port))
    }
}

impl Resource for Owned {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_is_read_is_kept_and_a_bad_field_reads_as_absent() {
        let object = json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": "c1", "namespace": "ns", "generation": 3,
                         "managedFields": [{"manager": "kaas", "fieldsV1": {"f:spec": {}}}],
                         "annotations": {"a": "b"}},
            "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443},
                     "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}}},
            "status": {"replicas": "three", "readyReplicas": 2, "version": "v1.34.1",
                       "initialization": {"controlPlaneInitialized": true},
                       "conditions": [{"type": "InfrastructureReady", "status": "True",
                                       "reason": "Ready", "message": "a long message"}],
                       "failureDomains": [{"name": "a"}]},
        });
        let owned: Owned = serde_json::from_value(object).unwrap();
        let back = serde_json::to_value(&owned).unwrap();
        assert_eq!(
            back,
            json!({
                "metadata": {"name": "c1", "namespace": "ns", "generation": 3},
                "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}},
                "status": {"readyReplicas": 2, "version": "v1.34.1",
                           "initialization": {"controlPlaneInitialized": true},
                           "conditions": [{"type": "InfrastructureReady", "status": "True"}]},
            })
        );
    }
}
