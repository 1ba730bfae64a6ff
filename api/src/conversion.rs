//! Conversion between `KaasCluster` `v1alpha1` and `v1beta1`, lossless in both directions.
//!
//! Every `v1alpha1` field has a place in `v1beta1`. The reverse is not true: autoscaling bounds,
//! node labels and taints, extra (dual-stack) CIDRs, the MTU, the OIDC prefixes, add-on
//! overrides, `providerConfig` and `paused` have no `v1alpha1` field. Going down to `v1alpha1`
//! they travel in the [`V1BETA1_FIELDS_ANNOTATION`] annotation, and coming back up they are
//! restored from it and the annotation is dropped. The API server calls this (through the
//! webhook's `/convert`) every time a client reads or writes the version that is not stored.

use std::collections::BTreeMap;

use kube::core::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::{v1alpha1, v1beta1};

/// Annotation on a `v1alpha1` object holding the `v1beta1` fields `v1alpha1` cannot express.
pub const V1BETA1_FIELDS_ANNOTATION: &str = "kaas.scs.community/v1beta1-fields";

/// `apiVersion` of the storage version.
pub const V1BETA1: &str = "kaas.scs.community/v1beta1";
/// `apiVersion` of the older version.
pub const V1ALPHA1: &str = "kaas.scs.community/v1alpha1";

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The annotation carrying `v1beta1`-only fields is not what this crate wrote.
    #[error("metadata.annotations[{V1BETA1_FIELDS_ANNOTATION}]: cannot be read: {0}")]
    Annotation(#[source] serde_json::Error),
    /// The object is not a `KaasCluster` of a known version.
    #[error("apiVersion: {0:?} is not a served version of kaasclusters.kaas.scs.community")]
    UnknownVersion(String),
    /// The object does not have the shape of its version.
    #[error("object does not match {version}: {source}")]
    Shape {
        /// The `apiVersion` it claimed.
        version: String,
        /// What did not match.
        #[source]
        source: serde_json::Error,
    },
}

impl ConversionError {
    /// A bounded name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Annotation(_) => "annotation",
            Self::UnknownVersion(_) => "unknown_version",
            Self::Shape { .. } => "shape",
        }
    }
}

/// The `v1beta1` fields a `v1alpha1` object cannot hold.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Residue {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    workers: Vec<WorkerResidue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extra_pod_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extra_service_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc_username_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc_groups_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    addons: Vec<v1beta1::AddonOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authentication: Option<v1beta1::Authentication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificates_expiry_days: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    registry_mirrors: Vec<v1beta1::RegistryMirror>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    maintenance: Option<v1beta1::Maintenance>,
}

/// Pool fields `v1alpha1` lacks, tied to the pool by position and name.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct WorkerResidue {
    index: usize,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    taints: Vec<v1beta1::Taint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    taint_propagation: Option<v1beta1::TaintPropagation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollout: Option<v1beta1::PoolRollout>,
}

impl Residue {
    fn is_empty(&self) -> bool {
        self == &Residue::default()
    }
}

/// Splits a list into its first element and the rest.
fn split_first(mut list: Vec<String>) -> (Option<String>, Vec<String>) {
    if list.is_empty() {
        (None, list)
    } else {
        let first = list.remove(0);
        (Some(first), list)
    }
}

impl From<v1beta1::KaasCluster> for v1alpha1::KaasCluster {
    fn from(cluster: v1beta1::KaasCluster) -> Self {
        let v1beta1::KaasCluster {
            mut metadata,
            spec,
            status,
        } = cluster;
        let mut residue = Residue::default();

        let mut machine_deployments = Vec::with_capacity(spec.workers.len());
        for (index, pool) in spec.workers.into_iter().enumerate() {
            let extra = WorkerResidue {
                index,
                name: pool.name.clone(),
                min_replicas: pool.min_replicas,
                max_replicas: pool.max_replicas,
                labels: pool.labels,
                taints: pool.taints,
                taint_propagation: pool.taint_propagation,
                rollout: pool.rollout,
            };
            if extra.min_replicas.is_some()
                || extra.max_replicas.is_some()
                || !extra.labels.is_empty()
                || !extra.taints.is_empty()
                || extra.taint_propagation.is_some()
                || extra.rollout.is_some()
            {
                residue.workers.push(extra);
            }
            machine_deployments.push(v1alpha1::MachineDeployment {
                name: pool.name,
                replicas: pool.replicas,
                machine_type: pool.machine_type,
            });
        }

        let (pod_cidr, extra_pod) = split_first(spec.network.pod_cidrs);
        let (service_cidr, extra_service) = split_first(spec.network.service_cidrs);
        residue.extra_pod_cidrs = extra_pod;
        residue.extra_service_cidrs = extra_service;
        residue.mtu = spec.network.mtu;

        let oidc = spec.oidc.map(|o| {
            residue.oidc_username_prefix = o.username_prefix;
            residue.oidc_groups_prefix = o.groups_prefix;
            v1alpha1::Oidc {
                issuer_url: o.issuer_url,
                client_id: o.client_id,
                username_claim: o.username_claim,
                groups_claim: o.groups_claim,
            }
        });
        residue.addons = spec.addons;
        residue.provider_config = spec.provider_config;
        residue.paused = spec.paused;
        residue.authentication = spec.authentication;
        residue.certificates_expiry_days = spec.control_plane.certificates_expiry_days;
        residue.registry_mirrors = spec.registry_mirrors;
        residue.maintenance = spec.maintenance;

        let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
        if residue.is_empty() {
            annotations.remove(V1BETA1_FIELDS_ANNOTATION);
        } else {
            // Serializing plain data with string keys cannot fail.
            let json = serde_json::to_string(&residue).unwrap_or_default();
            annotations.insert(V1BETA1_FIELDS_ANNOTATION.to_string(), json);
        }
        if annotations.is_empty() {
            metadata.annotations = None;
        }

        v1alpha1::KaasCluster {
            metadata,
            spec: v1alpha1::KaasClusterSpec {
                provider_class: spec.provider_class_name,
                cluster_stack_name: spec.cluster_stack.name,
                cluster_stack_version: spec.cluster_stack.version,
                kubernetes_version: spec.kubernetes_version,
                control_plane_replicas: spec.control_plane.replicas,
                control_plane_machine_type: spec.control_plane.machine_type,
                machine_deployments,
                pod_cidr,
                service_cidr,
                oidc,
            },
            status,
        }
    }
}

/// Takes the residue annotation off the metadata.
fn take_residue(metadata: &mut ObjectMeta) -> Result<Residue, ConversionError> {
    let Some(annotations) = metadata.annotations.as_mut() else {
        return Ok(Residue::default());
    };
    let Some(raw) = annotations.remove(V1BETA1_FIELDS_ANNOTATION) else {
        return Ok(Residue::default());
    };
    if annotations.is_empty() {
        metadata.annotations = None;
    }
    serde_json::from_str(&raw).map_err(ConversionError::Annotation)
}

impl TryFrom<v1alpha1::KaasCluster> for v1beta1::KaasCluster {
    type Error = ConversionError;

    fn try_from(cluster: v1alpha1::KaasCluster) -> Result<Self, Self::Error> {
        let v1alpha1::KaasCluster {
            mut metadata,
            spec,
            status,
        } = cluster;
        let residue = take_residue(&mut metadata)?;

        let mut workers: Vec<v1beta1::WorkerPool> = spec
            .machine_deployments
            .into_iter()
            .map(|md| v1beta1::WorkerPool {
                name: md.name,
                replicas: md.replicas,
                machine_type: md.machine_type,
                ..Default::default()
            })
            .collect();
        for extra in residue.workers {
            let slot = match workers.get(extra.index) {
                Some(pool) if pool.name == extra.name => Some(extra.index),
                // The pools were reordered in v1alpha1: find the pool by name instead.
                _ => workers.iter().position(|p| p.name == extra.name),
            };
            if let Some(pool) = slot.and_then(|i| workers.get_mut(i)) {
                pool.min_replicas = extra.min_replicas;
                pool.max_replicas = extra.max_replicas;
                pool.labels = extra.labels;
                pool.taints = extra.taints;
                pool.taint_propagation = extra.taint_propagation;
                pool.rollout = extra.rollout;
            }
        }

        let mut pod_cidrs: Vec<String> = spec.pod_cidr.into_iter().collect();
        pod_cidrs.extend(residue.extra_pod_cidrs);
        let mut service_cidrs: Vec<String> = spec.service_cidr.into_iter().collect();
        service_cidrs.extend(residue.extra_service_cidrs);

        let oidc = spec.oidc.map(|o| v1beta1::Oidc {
            issuer_url: o.issuer_url,
            client_id: o.client_id,
            username_claim: o.username_claim,
            groups_claim: o.groups_claim,
            username_prefix: residue.oidc_username_prefix,
            groups_prefix: residue.oidc_groups_prefix,
        });

        Ok(v1beta1::KaasCluster {
            metadata,
            spec: v1beta1::KaasClusterSpec {
                provider_class_name: spec.provider_class,
                cluster_stack: v1beta1::ClusterStackRef {
                    name: spec.cluster_stack_name,
                    version: spec.cluster_stack_version,
                },
                kubernetes_version: spec.kubernetes_version,
                control_plane: v1beta1::ControlPlane {
                    replicas: spec.control_plane_replicas,
                    machine_type: spec.control_plane_machine_type,
                    certificates_expiry_days: residue.certificates_expiry_days,
                },
                workers,
                network: v1beta1::Network {
                    pod_cidrs,
                    service_cidrs,
                    mtu: residue.mtu,
                },
                oidc,
                addons: residue.addons,
                provider_config: residue.provider_config,
                paused: residue.paused,
                authentication: residue.authentication,
                registry_mirrors: residue.registry_mirrors,
                maintenance: residue.maintenance,
            },
            status,
        })
    }
}

/// Converts a `KaasCluster` in JSON form to `desired_api_version`, as the API server asks the
/// conversion webhook to. An object already in that version comes back unchanged.
pub fn convert_kaas_cluster(
    object: serde_json::Value,
    desired_api_version: &str,
) -> Result<serde_json::Value, ConversionError> {
    let from = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    for version in [from.as_str(), desired_api_version] {
        if version != V1BETA1 && version != V1ALPHA1 {
            return Err(ConversionError::UnknownVersion(version.to_string()));
        }
    }
    if from == desired_api_version {
        return Ok(object);
    }
    let shape = |source| ConversionError::Shape {
        version: from.clone(),
        source,
    };
    let converted = if from == V1ALPHA1 {
        let alpha: v1alpha1::KaasCluster = serde_json::from_value(object).map_err(shape)?;
        serde_json::to_value(v1beta1::KaasCluster::try_from(alpha)?)
    } else {
        let beta: v1beta1::KaasCluster = serde_json::from_value(object).map_err(shape)?;
        serde_json::to_value(v1alpha1::KaasCluster::from(beta))
    };
    converted.map_err(shape)
}
