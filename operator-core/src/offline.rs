//! The build of one cluster without a management cluster: the same steps the operator takes
//! (defaulting and validation from `api`, resolve, the provider's node images and
//! infrastructure, the Cluster API objects, the add-on manifests), run on objects read from
//! files. Golden tests and `kaasctl render` use it, so what they print is what the operator
//! writes. Nothing here reaches the cloud: providers get no credentials and take what they
//! would look up as present.

use std::sync::Arc;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::{Release, RenderedAddon};
use serde_json::Value;

use crate::provider::Provider;

/// What a cluster would get.
#[derive(Debug, Clone)]
pub struct Built {
    /// The defaulted cluster.
    pub cluster: KaasCluster,
    /// The full Kubernetes version.
    pub kubernetes_version: String,
    /// Shared node image objects (such as ORC `Image`s), in the cluster's namespace.
    pub node_images: Vec<Value>,
    /// The Cluster API objects, in apply order.
    pub objects: Vec<Value>,
    /// The add-ons for the workload cluster.
    pub addons: Vec<RenderedAddon>,
}

/// Builds `cluster` of `class` with `provider`, choosing among `stacks`. The content of its
/// stack release is `release` when given, else the shipped release of that name and version,
/// else the object alone. Every problem is one line naming the field.
pub async fn build<P: Provider>(
    provider: &P,
    class: &ProviderClass,
    stacks: &[ClusterStack],
    cluster: KaasCluster,
    release: Option<&Release>,
) -> Result<Built, String> {
    let catalog = api::Catalog {
        classes: vec![Arc::new(class.clone())],
        stacks: stacks.iter().cloned().map(Arc::new).collect(),
        clusters: Vec::new(),
    };
    let mut cluster = cluster;
    api::defaulting::default_kaas_cluster(&mut cluster.spec, &catalog);
    api::validation::validate_kaas_cluster(&cluster, None, &catalog).map_err(|e| e.to_string())?;
    let invalid = provider.validate_config(cluster.spec.provider_config.as_ref());
    if !invalid.is_empty() {
        return Err(invalid
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "));
    }
    let mut resolved =
        crate::resolve::resolve(&cluster, provider.name(), &catalog).map_err(|(_, m)| m)?;
    let owned;
    let spec = &resolved.stack.spec;
    let release =
        match release.filter(|r| r.stack.name == spec.name && r.stack.version == spec.version) {
            Some(r) => r,
            None => {
                owned = crate::stacks::offline_release(provider.name(), &resolved.stack.spec)
                    .map_err(|e| e.to_string())?;
                &owned
            }
        };
    crate::stacks::fill_node_images(&mut resolved.stack, release);
    let manager = crate::desired::manager_name(provider);
    let desired = crate::desired::desired(
        provider,
        &cluster,
        class,
        &resolved,
        &release.stack.kubeadm,
        &manager,
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    let values =
        crate::addons::cluster_values(&cluster, provider.name(), &resolved.kubernetes_version);
    let addons = kaas_stack::template::render_addons(release, &values, &cluster.spec.addons)
        .map_err(|e| e.to_string())?;
    Ok(Built {
        cluster,
        kubernetes_version: resolved.kubernetes_version,
        node_images: desired.images.shared_objects,
        objects: desired.objects,
        addons,
    })
}

/// `stack` as the operator's stack controller would leave it: `Ready` when its content (the
/// given `release` of that name and version, else the shipped one, else the object alone)
/// agrees with the object, else not ready with the first disagreement.
pub fn verified(mut stack: ClusterStack, release: Option<&Release>) -> ClusterStack {
    let spec = &stack.spec;
    let content =
        match release.filter(|r| r.stack.name == spec.name && r.stack.version == spec.version) {
            Some(r) => Ok(r.clone()),
            None => crate::stacks::offline_release(&spec.provider, spec).map_err(|e| e.to_string()),
        };
    let problem = match content {
        Ok(r) => crate::stacks::mismatches(spec, &r.stack).into_iter().next(),
        Err(e) => Some(e),
    };
    let condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "Ready".into(),
        status: if problem.is_none() { "True" } else { "False" }.into(),
        reason: if problem.is_none() {
            "Verified"
        } else {
            "ContentMismatch"
        }
        .into(),
        message: problem.unwrap_or_else(|| "content verified offline".into()),
        observed_generation: None,
        last_transition_time: crate::reconcile::now(),
    };
    stack.status = Some(api::v1beta1::ClusterStackStatus {
        conditions: vec![condition],
        ..Default::default()
    });
    stack
}
