//! The apply step: what the build step produced goes to the API server in an order Cluster API
//! can follow. Shared node images first (each marked with this cluster as a user, after the
//! finalizer that lets the cluster release them), then the cluster's own objects in two waves,
//! what is referenced with the finalizer and then what refers to it, and last the removal of
//! pools the spec dropped.

use crate::owned::Owned;
use api::v1beta1::KaasCluster;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

use super::Context;
use super::own_writes::add_finalizer;
use super::shared::{mark_user, shared_problem};
use crate::apply::resource;
use crate::build::Desired;
use crate::error::Error;
use crate::provider::Provider;
use crate::render;

/// What the apply step did.
pub(super) struct Applied {
    /// Whether any object was written (rather than found as wanted).
    pub wrote: bool,
    /// The first problem a shared node image reports (not imported yet, failed).
    pub image_problem: Option<String>,
}

/// Applies `desired` for `cluster` in `namespace`.
pub(super) async fn apply<P: Provider>(
    cluster: &KaasCluster,
    desired: &Desired,
    ctx: &Context<P>,
) -> Result<Applied, Error> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let shared = &desired.images.shared_objects;
    let mut has_finalizer =
        cluster.finalizers().iter().any(|f| f == &ctx.finalizer) || ctx.written(cluster).finalizer;
    if !shared.is_empty() && !has_finalizer {
        // A cluster that uses a shared object must be able to release it: finalizer first.
        add_finalizer(cluster, ctx).await?;
        has_finalizer = true;
    }
    let mut image_problem = None;
    for object in shared {
        ctx.applier.apply(object, None).await?;
        mark_user(object, &name, ctx).await?;
        if image_problem.is_none() {
            // The rest is applied all the same: the machines wait for their image.
            image_problem = shared_problem(object, ctx).await?;
        }
    }
    // Two waves, each sent at once: first what is referenced (templates, the infrastructure
    // cluster) together with the finalizer, then what refers to them (control plane,
    // machine deployments, the Cluster), so Cluster API never sees a dangling reference.
    // Should the finalizer fail, the reconcile fails and is retried; the owner references
    // still let the garbage collector remove what was created.
    let objects = &desired.objects;
    let owned = &ctx.owned;
    // Each referrer is checked against the cache its kind lives in.
    let referrers = [(&objects.control_plane, &owned.control_planes)]
        .into_iter()
        .chain(
            objects
                .pools
                .iter()
                .map(|p| (&p.machine_deployment, &owned.machine_deployments)),
        )
        .chain([(&objects.cluster, &owned.clusters)]);
    let finalizer = async {
        if has_finalizer {
            Ok(())
        } else {
            add_finalizer(cluster, ctx).await
        }
    };
    let first =
        futures::future::join_all(objects.referenced().map(|obj| ctx.applier.apply(obj, None)));
    let (finalizer, first) = tokio::join!(finalizer, first);
    finalizer?;
    let mut wrote = false;
    for result in first {
        wrote |= result?;
    }
    let second = futures::future::join_all(
        referrers.map(|(obj, store)| ctx.applier.apply(obj, Some(live_generation(store, obj)))),
    )
    .await;
    for result in second {
        wrote |= result?;
    }
    prune_pools(cluster, ctx, &namespace).await?;
    Ok(Applied {
        wrote,
        image_problem,
    })
}

/// Deletes MachineDeployments of pools that were removed from the spec.
async fn prune_pools<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
    namespace: &str,
) -> Result<(), Error> {
    let name = cluster.name_any();
    let wanted: Vec<&str> = cluster
        .spec
        .workers
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    let stale: Vec<String> = ctx
        .owned
        .machine_deployments
        .state()
        .iter()
        .filter(|md| {
            md.metadata.namespace.as_deref() == Some(namespace)
                && md.cluster.as_deref() == Some(name.as_str())
        })
        .filter_map(|md| md.pool.as_deref().map(str::to_string))
        .filter(|pool| !wanted.contains(&pool.as_str()))
        .collect();
    for pool in stale {
        let md_name = render::machine_deployment_name(&name, &pool);
        ctx.applier
            .delete(
                &resource(render::CAPI_CORE, "MachineDeployment"),
                namespace,
                &md_name,
            )
            .await?;
        tracing::info!(pool = %pool, "removed pool");
    }
    Ok(())
}

/// The generation of `obj` as the cache `store` last saw it (`None` when not there yet).
fn live_generation(store: &Store<Owned>, obj: &Value) -> Option<i64> {
    let name = obj["metadata"]["name"].as_str()?;
    let namespace = obj["metadata"]["namespace"].as_str()?;
    let r = ObjectRef::new_with(name, crate::apply::resource_of(obj)).within(namespace);
    store.get(&r).and_then(|o| o.metadata.generation)
}
