//! The whole build of one cluster, the same for the operator and for offline use (golden
//! tests, `kaasctl render`): resolved cluster → provider node images → provider infrastructure
//! → Cluster API objects; for a [`Plan`], the control plane and the pools each at the version
//! and release of the plan's step. Only `Provider::node_images` may reach outside the process.

use std::collections::BTreeMap;
use std::sync::Arc;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::Release;
use kaas_stack::format::Kubeadm;

use crate::plan::Plan;
use crate::provider::{ClusterContext, NodeImages, Provider, ProviderError};
use crate::render::ClusterObjects;
use crate::resolve::Resolved;

/// What a cluster needs applied: the shared node image objects, then its own objects.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Node images and their shared objects.
    pub images: NodeImages,
    /// The cluster's own objects.
    pub objects: ClusterObjects,
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
        objects: crate::render::render(&ctx, &P::KINDS, &infra, kubeadm, manager),
        images,
    })
}

/// The field manager (and managed-by label) of the operator for `provider`.
pub fn manager_name<P: Provider>(provider: &P) -> String {
    format!("kaas-operator-{}", provider.name())
}

/// The releases of one plan, with their node images filled in.
#[derive(Debug, Clone)]
pub struct PlanReleases {
    /// The target release's content.
    pub target: Arc<Release>,
    /// The target release object, node images filled in from its content.
    pub target_stack: ClusterStack,
    /// The release object the pools stay on, filled in the same way (the target's when the
    /// plan names none, or when its content cannot be had: the pools then keep the target's
    /// images, as before an upgrade began).
    pub workers_stack: ClusterStack,
}

/// The build of `plan` with `provider`, given its releases and the credentials: the control
/// plane at its version, and the pools at theirs, from a second rendering when they differ
/// (another version or release mid-upgrade).
pub async fn for_plan<P: Provider>(
    provider: &P,
    plan: &Plan,
    releases: &PlanReleases,
    manager: &str,
    credentials: Option<&BTreeMap<String, String>>,
) -> Result<Desired, ProviderError> {
    let kubeadm = &releases.target.stack.kubeadm;
    let decision = &plan.decision;
    let at = |version: &str, stack: &ClusterStack| Resolved {
        stack: stack.clone(),
        kubernetes_version: version.to_string(),
    };
    let mut built = desired(
        provider,
        &plan.cluster,
        &plan.class,
        &at(&decision.control_plane_version, &releases.target_stack),
        kubeadm,
        manager,
        credentials,
    )
    .await?;
    if !plan.pools_apart() {
        return Ok(built);
    }
    let workers = desired(
        provider,
        &plan.cluster,
        &plan.class,
        &at(&decision.workers_version, &releases.workers_stack),
        kubeadm,
        manager,
        credentials,
    )
    .await?;
    built.objects.pools = workers.objects.pools;
    for shared in workers.images.shared_objects {
        if !built.images.shared_objects.contains(&shared) {
            built.images.shared_objects.push(shared);
        }
    }
    Ok(built)
}
