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

/// A cached `Cluster`, `KubeadmControlPlane` or `MachineDeployment`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Owned {
    /// Its metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is read of its spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<OwnedSpec>,
    /// What is read of its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OwnedStatus>,
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

/// A condition's type and status.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OwnedCondition {
    /// Its type.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: String,
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
            "metadata": {"name": "c1", "namespace": "ns", "generation": 3},
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
