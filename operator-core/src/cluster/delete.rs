//! Deletion behind the finalizer: delete the Cluster API `Cluster` (Cluster API tears down
//! machines and infrastructure in order), wait until it and the operator's other objects are
//! gone, release shared node images, then drop the finalizer.

use std::time::Duration;

use api::v1beta1::KaasCluster;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::Context;
use super::own_writes::{cluster_api, write_status};
use super::shared::release_shared;
use crate::cluster::render::{self, CLUSTER_LABEL};
use crate::cluster::status::{Problem, Progress};
use crate::error::Error;
use crate::kinds::{self, Kind};
use crate::provider::Provider;

pub(super) async fn delete<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    if !cluster
        .finalizers()
        .iter()
        .any(|f| f == &ctx.settings.controller_name)
    {
        return Ok(Action::await_change());
    }
    let name = cluster.name_any();
    let namespace = cluster
        .namespace()
        .ok_or(Error::Missing("KaasCluster without a namespace"))?;
    let client = ctx.applier.client().clone();
    // First the Cluster API Cluster: Cluster API tears the machines down behind it.
    let capi = kinds::CLUSTER.resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &capi);
    if let Some(existing) = api.get_opt(&name).await? {
        if existing.metadata.deletion_timestamp.is_none() {
            ctx.applier.delete(&capi, &namespace, &name).await?;
        }
        let waiting_on = existing.finalizers().join(", ");
        let progress = Progress {
            failure: Some(Problem::new(
                "DeletingInfrastructure",
                format!(
                    "waiting for Cluster API to delete Cluster {name} (finalizers: {waiting_on})"
                ),
            )),
            ..Progress::default()
        };
        write_status(cluster, &progress, &ctx.observed(cluster), ctx).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    // Then whatever is left of ours (Cluster API and the garbage collector usually did it).
    let selector = format!(
        "{CLUSTER_LABEL}={name},{}={}",
        render::MANAGED_BY_LABEL,
        ctx.applier.manager()
    );
    for ar in crate::provider::kinds::<P>().iter().map(Kind::resource) {
        for obj in ctx.list_labelled(&ar, &namespace, &selector).await? {
            ctx.applier.delete(&ar, &namespace, &obj.name_any()).await?;
        }
    }
    release_shared(&namespace, &name, ctx).await?;
    ctx.ledger.forget(cluster, &ctx.applier);
    // Finally the finalizer, keeping any others.
    let api = cluster_api(cluster, ctx);
    let remaining: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != &ctx.settings.controller_name)
        .cloned()
        .collect();
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": cluster.resource_version()},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]);
    ctx.applier.count_write();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(patch)?),
    )
    .await?;
    ctx.metrics
        .set_standards((namespace.clone(), name.clone()), Vec::new());
    ctx.metrics.set_cluster((namespace, name.clone()), None);
    tracing::info!("deleted");
    Ok(Action::await_change())
}
