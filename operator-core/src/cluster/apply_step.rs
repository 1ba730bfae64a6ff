//! The apply step: what the build step produced goes to the API server in an order Cluster API
//! can follow. Shared node images first (each marked with this cluster as a user, after the
//! finalizer that lets the cluster release them), then the cluster's own objects in two waves,
//! what is referenced with the finalizer and then what refers to it, and last the removal of
//! pools the spec dropped.

use api::v1beta1::KaasCluster;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::Context;
use super::own_writes::cluster_api;
use super::shared::{mark_user, shared_problem};
use crate::cluster::build::Desired;
use crate::error::Error;
use crate::kinds::{Kind, Wave};
use crate::provider::Provider;

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
    let mut has_finalizer = cluster
        .finalizers()
        .iter()
        .any(|f| f == &ctx.settings.controller_name)
        || ctx.ledger.written(cluster).finalizer;
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
    let kinds = crate::provider::kinds::<P>();
    let (first, second): (Vec<_>, Vec<_>) = desired
        .objects
        .all()
        .into_iter()
        .map(|obj| (crate::kinds::find(&kinds, obj), obj))
        .partition(|(kind, _)| kind.is_none_or(|k| k.wave == Wave::Referenced));
    let finalizer = async {
        if has_finalizer {
            Ok(())
        } else {
            add_finalizer(cluster, ctx).await
        }
    };
    let first = futures::future::join_all(
        first
            .iter()
            .map(|&(kind, obj)| ctx.applier.apply(obj, live(ctx, kind, obj))),
    );
    let (finalizer, first) = tokio::join!(finalizer, first);
    finalizer?;
    let mut wrote = false;
    for result in first {
        wrote |= result?;
    }
    let second = futures::future::join_all(
        second
            .iter()
            .map(|&(kind, obj)| ctx.applier.apply(obj, live(ctx, kind, obj))),
    )
    .await;
    for result in second {
        wrote |= result?;
    }
    prune_pools(cluster, &kinds, ctx, &namespace).await?;
    Ok(Applied {
        wrote,
        image_problem,
    })
}

/// Adds this operator's finalizer (remembered in the ledger until the watch shows it).
async fn add_finalizer<P: Provider>(cluster: &KaasCluster, ctx: &Context<P>) -> Result<(), Error> {
    let api = cluster_api(cluster, ctx);
    // Server-side apply of the finalizer alone: finalizers are a set, so this merges with
    // anyone else's and never conflicts with concurrent status or spec writes. Its own field
    // manager keeps it apart from the status this operator applies.
    let patch = json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "metadata": {"name": cluster.name_any(), "finalizers": [ctx.settings.controller_name]},
    });
    ctx.applier.count_write();
    let done = api
        .patch(
            &cluster.name_any(),
            &PatchParams::apply(&format!("{}-finalizer", ctx.applier.manager())),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.ledger
        .remember(cluster, done.metadata.resource_version, |w| {
            w.finalizer = true;
        });
    Ok(())
}

/// Deletes the objects of watched kinds per pool (the `MachineDeployment`s) of pools that
/// were removed from the spec.
async fn prune_pools<P: Provider>(
    cluster: &KaasCluster,
    kinds: &[Kind],
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
    for kind in kinds.iter().filter(|k| k.per_pool()) {
        let Some(store) = ctx.caches.of(kind) else {
            continue;
        };
        let stale: Vec<(String, String)> = store
            .state()
            .iter()
            .filter(|o| {
                o.metadata.namespace.as_deref() == Some(namespace)
                    && o.cluster.as_deref() == Some(name.as_str())
            })
            .filter_map(|o| Some((o.pool.as_deref()?.to_string(), o.metadata.name.clone()?)))
            .filter(|(pool, _)| !wanted.contains(&pool.as_str()))
            .collect();
        for (pool, obj_name) in stale {
            ctx.applier
                .delete(&kind.resource(), namespace, &obj_name)
                .await?;
            tracing::info!(pool = %pool, kind = kind.kind, "removed pool");
        }
    }
    Ok(())
}

/// For an object of a watched kind, its generation as the cache last saw it (`Some(None)` when
/// not there yet): it is applied again at once when the generation moved (someone edited
/// it) or when the watch has not seen it for a while (someone deleted it). `None` for a kind
/// not watched.
fn live<P: Provider>(ctx: &Context<P>, kind: Option<&Kind>, obj: &Value) -> Option<Option<i64>> {
    let kind = kind.filter(|k| k.watched)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    Some(
        ctx.caches
            .get(kind, namespace, name)
            .and_then(|o| o.metadata.generation),
    )
}
