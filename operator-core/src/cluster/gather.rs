//! The gather step, between the plan and the build: everything the build reads from outside
//! the process, read once into [`BuildInputs`]: the stack releases the plan names (the
//! target's, and the one the pools stay on mid-upgrade), the class's credentials, and the node
//! images of every step the plan renders, looked up in the cloud by the provider. The build
//! that follows ([`crate::cluster::build`]) is pure. The inputs' types and their pure
//! constructors are here too: `kaasctl render/plan` ([`crate::offline`]) makes the same
//! inputs from files.

use std::collections::BTreeMap;
use std::sync::Arc;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::Release;

use super::Context;
use super::policy::Stopped;
use crate::cluster::plan::Plan;
use crate::provider::{ClusterContext, NodeImages, Provider, ProviderError};

/// Reads what the build of `plan` needs.
pub(super) async fn gather<P: Provider>(
    plan: &Plan,
    ctx: &Context<P>,
) -> Result<BuildInputs, Stopped> {
    let target = ctx
        .releases
        .get(&plan.target.stack)
        .await
        .map_err(Stopped::Release)?;
    let workers = match &plan.workers_stack {
        Some(old) => ctx.releases.get(old).await.ok(),
        None => None,
    };
    let releases = PlanReleases::new(plan, target, workers.as_deref());
    let namespace = plan
        .cluster
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default();
    let credentials = crate::cluster::credentials::read(
        ctx.applier.client(),
        &plan.class,
        namespace,
        ctx.provider.credential_keys(),
    )
    .await
    .map_err(Stopped::Provider)?;
    let looked_up = credentials.is_some();
    let inputs =
        BuildInputs::new(&ctx.provider, plan, releases, credentials).map_err(Stopped::Provider)?;
    if looked_up {
        for (step, images) in inputs.steps(plan) {
            ctx.provider
                .find_node_images(&step, images)
                .await
                .map_err(Stopped::Provider)?;
        }
    }
    Ok(inputs)
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

impl PlanReleases {
    /// The releases of `plan` from the target's content and the content of the release the
    /// pools stay on (`None`: the plan names none, or it cannot be had).
    pub fn new(plan: &Plan, target: Arc<Release>, workers: Option<&Release>) -> PlanReleases {
        let mut target_stack = plan.target.stack.clone();
        crate::stacks::fill_node_images(&mut target_stack, &target);
        let workers_stack = match &plan.workers_stack {
            None => target_stack.clone(),
            Some(old) => {
                let mut stack = old.clone();
                if let Some(content) = workers {
                    crate::stacks::fill_node_images(&mut stack, content);
                }
                stack
            }
        };
        PlanReleases {
            target,
            target_stack,
            workers_stack,
        }
    }
}

/// Everything the build reads besides the plan, gathered before it.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The releases the plan names.
    pub releases: PlanReleases,
    /// The keys [`Provider::credential_keys`] asks for, from the class's Secret; `None`
    /// offline.
    pub credentials: Option<BTreeMap<String, String>>,
    /// The node images of the control plane's step.
    pub control_plane_images: NodeImages,
    /// The node images of the pools' step when it is not the control plane's
    /// ([`Plan::pools_apart`]).
    pub worker_images: Option<NodeImages>,
}

/// One rendering: a cluster of a class at one Kubernetes version on one release.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The cluster, defaulted and validated.
    pub cluster: &'a KaasCluster,
    /// Its class.
    pub class: &'a ProviderClass,
    /// The full Kubernetes version, such as `1.34.2`.
    pub kubernetes_version: &'a str,
    /// The release object, node images filled in.
    pub stack: &'a ClusterStack,
}

impl<'a> Step<'a> {
    /// The control plane's step of `plan`.
    pub fn control_plane(plan: &'a Plan, releases: &'a PlanReleases) -> Step<'a> {
        Step {
            cluster: &plan.cluster,
            class: &plan.class,
            kubernetes_version: &plan.decision.control_plane_version,
            stack: &releases.target_stack,
        }
    }

    /// The pools' step of `plan` (rendered apart only when [`Plan::pools_apart`]).
    pub fn workers(plan: &'a Plan, releases: &'a PlanReleases) -> Step<'a> {
        Step {
            cluster: &plan.cluster,
            class: &plan.class,
            kubernetes_version: &plan.decision.workers_version,
            stack: &releases.workers_stack,
        }
    }

    /// The provider's view of this step.
    pub fn context(&self, credentials: Option<&'a BTreeMap<String, String>>) -> ClusterContext<'a> {
        let meta = &self.cluster.metadata;
        ClusterContext {
            cluster: self.cluster,
            name: meta.name.as_deref().unwrap_or_default(),
            namespace: meta.namespace.as_deref().unwrap_or_default(),
            kubernetes_version: self.kubernetes_version,
            stack: self.stack,
            class: self.class,
            credentials,
        }
    }
}

/// The node images of `step` as the provider names them, their shared objects in the
/// cluster's namespace. Pure: whether the cloud has them is the gather step's question.
pub fn node_images<P: Provider>(
    provider: &P,
    step: &Step<'_>,
    credentials: Option<&BTreeMap<String, String>>,
) -> Result<NodeImages, ProviderError> {
    let ctx = step.context(credentials);
    let mut images = provider.node_images(&ctx)?;
    for obj in &mut images.shared_objects {
        obj["metadata"]["namespace"] = ctx.namespace.into();
    }
    Ok(images)
}

impl BuildInputs {
    /// The inputs of `plan` from its releases and the credentials, with the node images of
    /// every step the plan renders as the provider names them (pure; the gather step then
    /// asks the cloud for them).
    pub fn new<P: Provider>(
        provider: &P,
        plan: &Plan,
        releases: PlanReleases,
        credentials: Option<BTreeMap<String, String>>,
    ) -> Result<BuildInputs, ProviderError> {
        let control_plane_images = node_images(
            provider,
            &Step::control_plane(plan, &releases),
            credentials.as_ref(),
        )?;
        let worker_images = plan
            .pools_apart()
            .then(|| {
                node_images(
                    provider,
                    &Step::workers(plan, &releases),
                    credentials.as_ref(),
                )
            })
            .transpose()?;
        Ok(BuildInputs {
            releases,
            credentials,
            control_plane_images,
            worker_images,
        })
    }

    /// Each step's context with the node images it boots, for the gather step's lookups.
    pub fn steps<'a>(&'a self, plan: &'a Plan) -> Vec<(ClusterContext<'a>, &'a NodeImages)> {
        let credentials = self.credentials.as_ref();
        let mut steps = vec![(
            Step::control_plane(plan, &self.releases).context(credentials),
            &self.control_plane_images,
        )];
        if let Some(images) = &self.worker_images {
            let step = Step::workers(plan, &self.releases);
            steps.push((step.context(credentials), images));
        }
        steps
    }
}
