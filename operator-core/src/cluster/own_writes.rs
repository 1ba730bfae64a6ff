//! The operator's write of the `KaasCluster`'s status (with the Events of noteworthy phase
//! changes), skipped when the object, or the ledger's memory of this process's last write,
//! already shows it. (The other write to the object, its finalizer, is the apply step's.)

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use api::v1beta1::{ClusterPhase, KaasCluster};

use super::Context;
use crate::cluster::status::now;
use crate::cluster::status::{self, Observed, Progress};
use crate::error::Error;
use crate::provider::Provider;

pub(super) async fn write_status<P: Provider>(
    cluster: &KaasCluster,
    progress: &Progress,
    observed: &Observed,
    ctx: &Context<P>,
) -> Result<api::v1beta1::KaasClusterStatus, Error> {
    // The status this process wrote last is newer than the cache's until the watch catches
    // up: compare with it, so a write is not repeated (and transition times stay put).
    let remembered;
    let cluster = match ctx.ledger.written(cluster).status {
        Some(status) if cluster.status.as_ref() != Some(&status) => {
            let mut view = cluster.clone();
            view.status = Some(status);
            remembered = view;
            &remembered
        }
        _ => cluster,
    };
    let status = status::compute(cluster, progress, observed, &now());
    let previous = cluster.status.clone().unwrap_or_default();
    if cluster.status.as_ref() == Some(&status) {
        return Ok(status);
    }
    let api = cluster_api(cluster, ctx);
    let patch = json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "status": status,
    });
    ctx.applier.count_write();
    let done = api
        .patch_status(
            &cluster.name_any(),
            &PatchParams::apply(ctx.applier.manager()).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.ledger
        .remember(cluster, done.metadata.resource_version, |w| {
            w.status = Some(status.clone());
        });
    // Events for the transitions an operator-admin acts on: reaching Ready, failing, and
    // leaving Ready. (Every phase change is in the status; an event per step of a
    // thousand-cluster rollout would only flood the API server.)
    let noteworthy = matches!(
        status.current_phase(),
        Some(ClusterPhase::Ready | ClusterPhase::Failed)
    ) || previous.current_phase() == Some(ClusterPhase::Ready);
    if previous.phase != status.phase && noteworthy {
        let note = status
            .conditions
            .first()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        let event = Event {
            type_: if status.current_phase() == Some(ClusterPhase::Failed) {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: format!("Phase{}", status.phase.clone().unwrap_or_default()),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.applier.count_write();
        if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
            tracing::debug!(error = %e, "could not publish event");
        }
    }
    Ok(status)
}

/// The `KaasCluster` API of `cluster`'s namespace.
pub(super) fn cluster_api<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
) -> Api<KaasCluster> {
    Api::namespaced(
        ctx.applier.client().clone(),
        &cluster.namespace().unwrap_or_default(),
    )
}
