//! The fetching steps between the plan and the apply: the stack releases the plan names (the
//! target's, and the one the pools stay on mid-upgrade), then the build through the provider
//! (node images may call the cloud; the rendering is pure): the control plane at its version
//! and the pools at theirs, taken as typed pool objects from a second rendering when they
//! differ.

use super::Context;
use super::policy::Stopped;
use crate::desired::{Desired, PlanReleases};
use crate::plan::Plan;
use crate::provider::Provider;

/// Fetches the releases `plan` needs.
pub(super) async fn releases<P: Provider>(
    plan: &Plan,
    ctx: &Context<P>,
) -> Result<PlanReleases, Stopped> {
    let target = ctx
        .releases
        .get(&plan.target.stack)
        .await
        .map_err(Stopped::Release)?;
    let mut target_stack = plan.target.stack.clone();
    crate::stacks::fill_node_images(&mut target_stack, &target);
    let workers_stack = match &plan.workers_stack {
        None => target_stack.clone(),
        Some(old) => {
            let mut stack = old.clone();
            if let Ok(old_release) = ctx.releases.get(old).await {
                crate::stacks::fill_node_images(&mut stack, &old_release);
            }
            stack
        }
    };
    Ok(PlanReleases {
        target,
        target_stack,
        workers_stack,
    })
}

/// Builds the objects of `plan` with the provider: credentials from the class's Secret, node
/// images, infrastructure, Cluster API objects.
pub(super) async fn build<P: Provider>(
    plan: &Plan,
    releases: &PlanReleases,
    ctx: &Context<P>,
) -> Result<Desired, Stopped> {
    let namespace = plan.cluster.metadata.namespace.clone().unwrap_or_default();
    let credentials = crate::credentials::read(
        ctx.applier.client(),
        &plan.class,
        &namespace,
        ctx.provider.credential_keys(),
    )
    .await
    .map_err(Stopped::Provider)?;
    crate::desired::for_plan(
        &ctx.provider,
        plan,
        releases,
        ctx.applier.manager(),
        credentials.as_ref(),
    )
    .await
    .map_err(Stopped::Provider)
}
