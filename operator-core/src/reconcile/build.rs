//! The build step: the Cluster API objects of one reconcile's decision, the control plane at
//! its version and the worker pools at theirs (during an upgrade's control plane stage the
//! pools stay on the version and the release's node images they run), through the provider's
//! pure rendering; and the releases a cluster may move to next.

use api::Catalog;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use serde_json::Value;

use super::Context;
use crate::provider::{Provider, ProviderError};
use crate::render::POOL_LABEL;

/// Builds the cluster's objects for this reconcile's decision: the control plane at its
/// version, and the worker pools at theirs (during an upgrade's control plane stage they stay
/// on the version, and the release's node images, they run).
#[allow(clippy::too_many_arguments)]
pub(super) async fn build<P: Provider>(
    ctx: &Context<P>,
    cluster: &KaasCluster,
    class: &ProviderClass,
    resolved: &crate::resolve::Resolved,
    release: &kaas_stack::Release,
    decision: &crate::upgrade::Decision,
    catalog: &Catalog,
    manager: &str,
    credentials: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<crate::desired::Desired, ProviderError> {
    let at = |version: &str, stack: &ClusterStack| crate::resolve::Resolved {
        stack: stack.clone(),
        kubernetes_version: version.to_string(),
    };
    let kubeadm = &release.stack.kubeadm;
    let mut desired = crate::desired::desired(
        &ctx.provider,
        cluster,
        class,
        &at(&decision.control_plane_version, &resolved.stack),
        kubeadm,
        manager,
        credentials,
    )
    .await?;
    let same_stack = decision.workers_stack_version == resolved.stack.spec.version;
    if decision.workers_version == decision.control_plane_version && same_stack {
        return Ok(desired);
    }
    let mut workers_stack = resolved.stack.clone();
    if !same_stack
        && let Some(old) = catalog.release(
            ctx.provider.name(),
            &resolved.stack.spec.name,
            &decision.workers_stack_version,
        )
    {
        workers_stack = old.clone();
        if let Ok(old_release) = ctx.releases.get(old).await {
            crate::stacks::fill_node_images(&mut workers_stack, &old_release);
        }
    }
    let workers = crate::desired::desired(
        &ctx.provider,
        cluster,
        class,
        &at(&decision.workers_version, &workers_stack),
        kubeadm,
        manager,
        credentials,
    )
    .await?;
    let is_pool = |o: &Value| o["metadata"]["labels"][POOL_LABEL].is_string();
    desired.objects.retain(|o| !is_pool(o));
    desired
        .objects
        .extend(workers.objects.into_iter().filter(is_pool));
    for shared in workers.images.shared_objects {
        if !desired.images.shared_objects.contains(&shared) {
            desired.images.shared_objects.push(shared);
        }
    }
    Ok(desired)
}

/// Ready releases of the cluster's stack it may move to from its version (their upgrade
/// edges name it).
pub(super) fn available_upgrades(
    catalog: &Catalog,
    provider: &str,
    cluster: &KaasCluster,
) -> Vec<String> {
    let Some(current) = cluster.spec.cluster_stack.version.as_deref() else {
        return Vec::new();
    };
    let mut found: Vec<semver::Version> = catalog
        .stacks
        .iter()
        .filter(|s| {
            s.spec.provider == provider
                && s.spec.name == cluster.spec.cluster_stack.name
                && s.is_ready()
                && s.spec.upgrade_from.iter().any(|v| v == current)
        })
        .filter_map(|s| semver::Version::parse(&s.spec.version).ok())
        .collect();
    found.sort();
    found.iter().map(ToString::to_string).collect()
}
