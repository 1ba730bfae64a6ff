//! What an update of a `KaasCluster` is judged against: the few fields of the stored object
//! that the update rules ([`crate::validation`]) and update defaulting ([`crate::defaulting`])
//! read. Naming them in one type keeps those rules honest about what they depend on, and lets
//! a caller that holds the stored object only as JSON (the webhook's `oldObject`) parse just
//! these and skip the rest: pools, add-ons, OIDC, labels, managed fields, most of the status.

use serde::Deserialize;

use crate::v1beta1::{ClusterStackRef, ControlPlane, KaasCluster, Network};

/// The fields of a stored `KaasCluster` an update may be compared with. Deserializes from the
/// whole stored object (`{"spec": ..., "status": ...}`), ignoring everything else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "StoredObject")]
pub struct Previous {
    /// `spec.providerClassName` (immutable).
    pub provider_class_name: Option<String>,
    /// `spec.clusterStack` (the name is immutable, the version moves along upgrade edges).
    pub cluster_stack: ClusterStackRef,
    /// `spec.kubernetesVersion`: what was asked.
    pub kubernetes_version: Option<String>,
    /// `spec.controlPlane` (kept on update when left out).
    pub control_plane: ControlPlane,
    /// `spec.network` (immutable).
    pub network: Network,
    /// `status.kubernetesVersion`: what runs now, the floor of a version change.
    pub running_version: Option<String>,
}

impl From<&KaasCluster> for Previous {
    fn from(cluster: &KaasCluster) -> Self {
        let spec = &cluster.spec;
        Previous {
            provider_class_name: spec.provider_class_name.clone(),
            cluster_stack: spec.cluster_stack.clone(),
            kubernetes_version: spec.kubernetes_version.clone(),
            control_plane: spec.control_plane.clone(),
            network: spec.network.clone(),
            running_version: cluster
                .status
                .as_ref()
                .and_then(|s| s.kubernetes_version.clone()),
        }
    }
}

/// The stored object's wire shape, reduced to what [`Previous`] keeps (serde skips the rest
/// without building it).
#[derive(Deserialize)]
struct StoredObject {
    spec: StoredSpec,
    #[serde(default)]
    status: Option<StoredStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSpec {
    #[serde(default)]
    provider_class_name: Option<String>,
    cluster_stack: ClusterStackRef,
    #[serde(default)]
    kubernetes_version: Option<String>,
    #[serde(default)]
    control_plane: ControlPlane,
    #[serde(default)]
    network: Network,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredStatus {
    #[serde(default)]
    kubernetes_version: Option<String>,
}

impl From<StoredObject> for Previous {
    fn from(stored: StoredObject) -> Self {
        let spec = stored.spec;
        Previous {
            provider_class_name: spec.provider_class_name,
            cluster_stack: spec.cluster_stack,
            kubernetes_version: spec.kubernetes_version,
            control_plane: spec.control_plane,
            network: spec.network,
            running_version: stored.status.and_then(|s| s.kubernetes_version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsing the stored JSON and converting the typed object agree, whatever else the
    /// object holds.
    #[test]
    fn parsed_and_converted_agree() {
        let json = serde_json::json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": "a", "namespace": "n", "labels": {"x": "y"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"providerClassName": "docker", "clusterStack": {"name": "scs", "version": "1.0.0"},
                     "kubernetesVersion": "1.33", "controlPlane": {"replicas": 3},
                     "workers": [{"name": "md-0", "replicas": 2, "machineType": "m"}],
                     "network": {"podCIDRs": ["10.0.0.0/16"], "serviceCIDRs": ["10.1.0.0/16"], "mtu": 1400},
                     "oidc": {"issuerURL": "https://id.example.com", "clientID": "k"}},
            "status": {"kubernetesVersion": "1.33.4", "phase": "Ready",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                       "message": "", "lastTransitionTime": "2026-11-24T10:00:00Z"}]}
        });
        let parsed: Previous = serde_json::from_value(json.clone()).expect("parses");
        let typed: KaasCluster = serde_json::from_value(json).expect("typed");
        assert_eq!(parsed, Previous::from(&typed));
        assert_eq!(parsed.running_version.as_deref(), Some("1.33.4"));
        assert_eq!(parsed.network.mtu, Some(1400));
        assert_eq!(parsed.control_plane.replicas, Some(3));
    }

    #[test]
    fn an_object_without_a_spec_is_refused() {
        let err = serde_json::from_value::<Previous>(serde_json::json!({"metadata": {}}))
            .expect_err("no spec");
        assert!(err.to_string().contains("spec"), "{err}");
    }
}
