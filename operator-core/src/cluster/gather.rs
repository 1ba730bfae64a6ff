//! The gather step, between the plan and the build: everything the build reads from outside
//! the process, read once into [`BuildInputs`]: the stack releases the plan names (the
//! target's, and the one the pools stay on mid-upgrade), the class's credentials, and the node
//! images of every step the plan renders, looked up in the cloud by the provider. The build
//! that follows ([`crate::cluster::build`]) is pure.

use super::Context;
use super::policy::Stopped;
use crate::cluster::build::{BuildInputs, PlanReleases};
use crate::cluster::plan::Plan;
use crate::provider::Provider;

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
