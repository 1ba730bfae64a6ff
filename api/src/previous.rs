//! What an update of a `KaasCluster` is judged against: the few fields of the stored object
//! that the update rules ([`crate::validation`]) and update defaulting ([`crate::defaulting`])
//! read. Naming them in one type keeps those rules honest about what they depend on, and lets
//! a caller that holds the stored object only as JSON (the webhook's `oldObject`) parse just
//! these and skip the rest: add-ons, OIDC, labels, managed fields, most of the status (of the
//! pools, only their sizes).

use serde::Deserialize;

use crate::v1beta1::{ClusterStackRef, ControlPlane, KaasCluster, KaasClusterSpec, Network};

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
    /// The size and machine type of each of `spec.workers` (what a `TenantPolicy` counts).
    pub pools: Vec<PoolSize>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.providerConfig` (where its machines run, for a `TenantPolicy`).
    pub provider_config: Option<serde_json::Value>,
    /// Whether `spec.registryMirrors`, `spec.authentication` and
    /// `spec.maintenance.autoUpgrade` were set (a policy leaves what is set alone).
    pub set: SetFields,
}

/// Optional features a stored cluster had set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetFields {
    /// `spec.registryMirrors` is not empty.
    pub registry_mirrors: bool,
    /// `spec.authentication` is set.
    pub authentication: bool,
    /// `spec.maintenance.autoUpgrade` is set.
    pub auto_upgrade: bool,
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
            pools: PoolSize::of(spec),
            generation: cluster.metadata.generation,
            provider_config: spec.provider_config.clone(),
            set: SetFields {
                registry_mirrors: !spec.registry_mirrors.is_empty(),
                authentication: spec.authentication.is_some(),
                auto_upgrade: spec
                    .maintenance
                    .as_ref()
                    .is_some_and(|m| m.auto_upgrade.is_some()),
            },
        }
    }
}

/// The stored object's wire shape, reduced to what [`Previous`] keeps (serde skips the rest
/// without building it).
#[derive(Deserialize)]
struct StoredObject {
    #[serde(default)]
    metadata: StoredMeta,
    spec: StoredSpec,
    #[serde(default)]
    status: Option<StoredStatus>,
}

#[derive(Deserialize, Default)]
struct StoredMeta {
    #[serde(default)]
    generation: Option<i64>,
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
    #[serde(default)]
    workers: Vec<PoolSize>,
    #[serde(default)]
    provider_config: Option<serde_json::Value>,
    #[serde(default)]
    registry_mirrors: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    authentication: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    maintenance: Option<StoredMaintenance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredMaintenance {
    #[serde(default)]
    auto_upgrade: Option<serde::de::IgnoredAny>,
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
            pools: spec.workers,
            generation: stored.metadata.generation,
            provider_config: spec.provider_config,
            set: SetFields {
                registry_mirrors: !spec.registry_mirrors.is_empty(),
                authentication: spec.authentication.is_some(),
                auto_upgrade: spec.maintenance.is_some_and(|m| m.auto_upgrade.is_some()),
            },
        }
    }
}

/// A pool as far as its size counts: parsed from a stored object's `spec.workers[]`, skipping
/// everything else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSize {
    /// `machineType`.
    #[serde(default)]
    pub machine_type: String,
    /// `replicas`.
    #[serde(default)]
    pub replicas: i32,
    /// `maxReplicas`: an autoscaled pool counts at its upper bound.
    #[serde(default)]
    pub max_replicas: Option<i32>,
}

impl PoolSize {
    /// The size of each pool of `spec`.
    pub fn of(spec: &KaasClusterSpec) -> Vec<PoolSize> {
        spec.workers
            .iter()
            .map(|w| PoolSize {
                machine_type: w.machine_type.clone(),
                replicas: w.replicas,
                max_replicas: w.max_replicas,
            })
            .collect()
    }

    /// The nodes it counts: an autoscaled pool at its upper bound.
    pub fn nodes(&self) -> i64 {
        i64::from(
            self.max_replicas
                .unwrap_or(self.replicas)
                .max(self.replicas)
                .max(0),
        )
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
