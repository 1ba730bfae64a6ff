//! The whole build of one cluster, the same for the operator and for offline use (golden
//! tests, `kaasctl render`): resolved cluster → provider node images → provider infrastructure
//! → Cluster API objects. Only `Provider::node_images` may reach outside the process.

use std::collections::BTreeMap;

use api::v1beta1::{KaasCluster, ProviderClass};
use kaas_stack::format::Kubeadm;
use serde_json::Value;

use crate::provider::{ClusterContext, NodeImages, Provider, ProviderError};
use crate::resolve::Resolved;

/// What a cluster needs applied: the shared node image objects, then its own objects.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Node images and their shared objects.
    pub images: NodeImages,
    /// The cluster's own objects, in apply order.
    pub objects: Vec<Value>,
}

/// Builds everything for `cluster` (defaulted and validated) with `provider`.
pub async fn desired<P: Provider>(
    provider: &P,
    cluster: &KaasCluster,
    class: &ProviderClass,
    resolved: &Resolved,
    kubeadm: &Kubeadm,
    manager: &str,
    credentials: Option<&BTreeMap<String, String>>,
) -> Result<Desired, ProviderError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let ctx = ClusterContext {
        cluster,
        name: &name,
        namespace: &namespace,
        kubernetes_version: &resolved.kubernetes_version,
        stack: &resolved.stack,
        class,
        credentials,
    };
    let mut images = provider.node_images(&ctx).await?;
    for obj in &mut images.shared_objects {
        obj["metadata"]["namespace"] = namespace.clone().into();
    }
    let infra = provider.render(&ctx, &images)?;
    Ok(Desired {
        objects: crate::render::render(&ctx, &infra, kubeadm, manager),
        images,
    })
}

/// The field manager (and managed-by label) of the operator for `provider`.
pub fn manager_name<P: Provider>(provider: &P) -> String {
    format!("kaas-operator-{}", provider.name())
}
