//! The build of one cluster without a management cluster: the same steps the operator takes
//! (the plan of [`crate::cluster::plan`], the provider's node images and infrastructure, the Cluster
//! API objects, the add-on manifests), run on objects read from files: the build inputs come
//! from files instead of the gather step, and the build is the operator's
//! ([`crate::cluster::build::build`]). Golden tests and `kaasctl render` use it, so what they print is
//! what the operator writes. Nothing here reaches the cloud: providers get no credentials and
//! nothing is looked up.

use std::sync::Arc;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::{Release, RenderedAddon};
use serde_json::Value;

use crate::cluster::gather::{BuildInputs, PlanReleases};
use crate::cluster::render::ClusterObjects;
use crate::cluster::status::Observed;
use crate::cluster::upgrade::Decision;
use crate::provider::Provider;

/// What a cluster would get.
#[derive(Debug, Clone)]
pub struct Built {
    /// The defaulted cluster.
    pub cluster: KaasCluster,
    /// The full Kubernetes version it runs or moves to.
    pub kubernetes_version: String,
    /// The step rendered: the control plane's and the pools' versions, the upgrade in
    /// progress (read from the cluster's status, as the operator reads it).
    pub decision: Decision,
    /// Shared node image objects (such as ORC `Image`s), in the cluster's namespace.
    pub node_images: Vec<Value>,
    /// The Cluster API objects.
    pub objects: ClusterObjects,
    /// The add-ons for the workload cluster.
    pub addons: Vec<RenderedAddon>,
}

/// Builds `cluster` of `class` with `provider`, choosing among `stacks`. The content of a
/// stack release is the one of `releases` of that name and version, else the shipped release of that name
/// and version, else the object alone. A cluster with a status (read from a live management
/// cluster) is planned as the operator plans it: mid-upgrade, the step its status records
/// (nothing of Cluster API is observed here, so no stage is taken as finished). Every
/// problem is one line naming the field.
pub fn build<P: Provider>(
    provider: &P,
    class: &ProviderClass,
    stacks: &[ClusterStack],
    cluster: KaasCluster,
    releases: &[Release],
) -> Result<Built, String> {
    let catalog = api::Catalog {
        classes: vec![Arc::new(class.clone())],
        stacks: stacks.iter().cloned().map(Arc::new).collect(),
        clusters: Vec::new(),
        ..Default::default()
    };
    let plan = crate::cluster::plan::plan(provider, &cluster, &catalog, &Observed::default())
        .map_err(|stop| stop.to_string())?;
    let content = |stack: &ClusterStack| -> Result<Release, String> {
        let spec = &stack.spec;
        match find(releases, spec) {
            Some(r) => Ok(r.clone()),
            None => {
                crate::stacks::offline_release(provider.name(), spec).map_err(|e| e.to_string())
            }
        }
    };
    let target = Arc::new(content(&plan.target.stack)?);
    let workers = plan
        .workers_stack
        .as_ref()
        .and_then(|old| content(old).ok());
    let releases = PlanReleases::new(&plan, target, workers.as_ref());
    let inputs = BuildInputs::new(provider, &plan, releases, None).map_err(|e| e.to_string())?;
    let manager = crate::cluster::build::manager_name(provider);
    let desired = crate::cluster::build::build(provider, &plan, &inputs, &manager)
        .map_err(|e| e.to_string())?;
    let releases = &inputs.releases;
    let values = crate::addons::cluster_values(
        &plan.cluster,
        provider.name(),
        &plan.decision.control_plane_version,
    );
    let addons =
        kaas_stack::template::render_addons(&releases.target, &values, &plan.cluster.spec.addons)
            .map_err(|e| e.to_string())?;
    Ok(Built {
        cluster: plan.cluster,
        kubernetes_version: plan.target.kubernetes_version,
        decision: plan.decision,
        node_images: desired.images.shared_objects,
        objects: desired.objects,
        addons,
    })
}

/// `stack` as the operator's stack controller would leave it: `Ready` when its content (the
/// one of `releases` of that name and version, else the shipped one, else the object alone)
/// agrees with the object, else not ready with the first disagreement.
pub fn verified(mut stack: ClusterStack, releases: &[Release]) -> ClusterStack {
    let spec = &stack.spec;
    let content = match find(releases, spec) {
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
        last_transition_time: crate::cluster::status::now(),
    };
    stack.status = Some(api::v1beta1::ClusterStackStatus {
        conditions: vec![condition],
        ..Default::default()
    });
    stack
}

/// The release of `spec`'s name and version among `releases`.
fn find<'a>(releases: &'a [Release], spec: &api::v1beta1::ClusterStackSpec) -> Option<&'a Release> {
    releases.iter().find(|r| r.id() == spec.id())
}
