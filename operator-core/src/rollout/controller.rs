//! The `StackRollout` controller: for each rollout of a class this operator serves, read the
//! clusters of its namespace (same class, same stack) from the operator's one cluster cache
//! (never a list per rollout), run one step of the pure planner
//! ([`crate::rollout`]), move the clusters it starts to the release (their
//! `spec.clusterStack.version`, which the cluster controller then upgrades as usual), write
//! the rollout's status and record its events. A cluster whose move the API server refuses
//! (kaas-webhooks: no upgrade edge, a Kubernetes version the release lacks) halts the
//! rollout naming it. Everything is in the status, so a restarted operator goes on.

use api::v1beta1::{RolloutClusterState, RolloutPhase};
use std::sync::Arc;
use std::time::Duration;

use api::Catalog;
use api::v1beta1::{
    KaasCluster, ProviderClass, RESUMED_AT_ANNOTATION, RolloutHalt, StackRollout,
    StackRolloutStatus,
};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::rollout;

/// The field manager of the versions a rollout sets.
pub const ROLLOUT_MANAGER: &str = "kaas-rollout";

/// Rollouts reconciled at once: a step is a cache read and, rarely, a few writes.
const CONCURRENCY: u16 = 4;

/// What the rollout reconciles share.
pub(crate) struct RolloutContext {
    pub client: Client,
    /// The cluster controller's cache of `KaasCluster`s.
    pub clusters: Store<crate::cluster::Watched>,
    pub classes: Store<ProviderClass>,
    pub controller_name: String,
    pub recorder: Recorder,
    /// `kaas_stack_rollouts`, read from this controller's cache.
    pub phases: crate::store_metrics::RolloutPhases,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RolloutError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("the cluster cache is gone")]
    Cache,
}

async fn reconcile(
    rollout: Arc<StackRollout>,
    ctx: Arc<RolloutContext>,
) -> Result<Action, RolloutError> {
    let catalog = Catalog {
        classes: ctx.classes.state(),
        ..Default::default()
    };
    let class = catalog.class_for(rollout.spec.provider_class_name.as_deref());
    if class.is_none_or(|c| c.spec.controller != ctx.controller_name) {
        return Ok(Action::await_change());
    }
    // Written past kaas-webhooks (or before it ran): the same validation, and nothing moves.
    let problems = api::validation::validate_stack_rollout_spec(&rollout.spec);
    if !problems.fields().is_empty() {
        let status = StackRolloutStatus {
            phase: Some(RolloutPhase::Invalid.as_str().into()),
            observed_generation: rollout.metadata.generation,
            ..rollout.status.clone().unwrap_or_default()
        };
        write_status(&ctx.client, &rollout, &status).await?;
        let event = Event {
            type_: EventType::Warning,
            reason: "Invalid".into(),
            note: Some(problems.to_string()),
            action: "Rollout".into(),
            secondary: None,
        };
        let _ = ctx.recorder.publish(&event, &rollout.object_ref(&())).await;
        return Ok(Action::await_change());
    }
    let ns = rollout.namespace().unwrap_or_default();
    let clusters_api: Api<KaasCluster> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.clusters
        .wait_until_ready()
        .await
        .map_err(|_| RolloutError::Cache)?;
    let cached = ctx.clusters.state();
    let in_namespace = cached
        .iter()
        .filter_map(|w| w.0.as_ref().ok())
        .filter(|c| c.metadata.namespace.as_deref() == Some(ns.as_str()));
    let views = rollout::candidates(&rollout, in_namespace, &catalog);
    let resumed_at = rollout
        .annotations()
        .get(RESUMED_AT_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let previous = rollout.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut step = rollout::step(&rollout.spec, &previous, &views, resumed_at, now);

    let target = &rollout.spec.cluster_stack.version;
    for name in std::mem::take(&mut step.start) {
        let patch = serde_json::json!({"spec": {"clusterStack": {"version": target}}});
        let params = PatchParams {
            field_manager: Some(ROLLOUT_MANAGER.into()),
            ..Default::default()
        };
        if let Err(e) = clusters_api
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
        {
            // Refused (no upgrade edge, say): the rollout halts on it, naming why.
            let message = format!("{name} cannot move to {target}: {e}");
            step.events.push(("Halted".into(), message.clone()));
            step.status.halted = Some(RolloutHalt {
                cluster: name.clone(),
                condition: None,
                message,
                at: Time(now),
            });
            step.status.phase = Some(RolloutPhase::Halted.as_str().into());
            for row in step.status.clusters.iter_mut().filter(|r| r.name == name) {
                row.state = RolloutClusterState::Pending.as_str().into();
                row.started_at = None;
            }
            break;
        }
    }
    step.status.observed_generation = rollout.metadata.generation;
    write_status(&ctx.client, &rollout, &step.status).await?;
    for (reason, note) in &step.events {
        let event = Event {
            type_: if reason == "Halted" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.clone(),
            note: Some(note.clone()),
            action: "Rollout".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &rollout.object_ref(&())).await {
            tracing::debug!(error = %e, "rollout event not recorded");
        }
    }
    Ok(next_look(&step, now))
}

/// When to look again: at the step's time, else within a minute while clusters move; a
/// paused, halted, completed or invalid rollout only when it or its clusters change.
fn next_look(step: &rollout::Step, now: Timestamp) -> Action {
    let waits = matches!(
        step.status.phase.as_deref().and_then(RolloutPhase::parse),
        Some(RolloutPhase::Progressing | RolloutPhase::Soaking)
    );
    match step.requeue_at {
        None if !waits => Action::await_change(),
        at => Action::requeue(
            at.map(|at| at.duration_since(now).unsigned_abs())
                .unwrap_or(Duration::from_secs(60))
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
        ),
    }
}

async fn write_status(
    client: &Client,
    rollout: &StackRollout,
    status: &StackRolloutStatus,
) -> Result<(), kube::Error> {
    if rollout.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<StackRollout> =
        Api::namespaced(client.clone(), &rollout.namespace().unwrap_or_default());
    api.patch_status(
        &rollout.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": status})),
    )
    .await?;
    Ok(())
}

fn error_policy(_: Arc<StackRollout>, e: &RolloutError, _: Arc<RolloutContext>) -> Action {
    tracing::warn!(error = %e, "rollout reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The controller: rollouts (in `namespace`, or all), woken by changes of the clusters of
/// their namespace, [`CONCURRENCY`] at once. Clusters are watched by metadata only (the
/// reconcile reads them from the cluster cache),
/// a completed rollout is not woken at all, and wake-ups within a second are one: during a
/// rollout every cluster's status write would otherwise make every rollout of its namespace
/// list the namespace again.
pub(crate) fn controller(
    ctx: RolloutContext,
    namespace: Option<&str>,
) -> impl Future<Output = ()> + use<> {
    type ClusterMeta = PartialObjectMeta<KaasCluster>;
    let (rollouts, clusters): (Api<StackRollout>, Api<ClusterMeta>) = match namespace {
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    let controller = Controller::new(rollouts, watcher::Config::default());
    let store = controller.store();
    ctx.phases.set_source(crate::store_metrics::Source {
        rollouts: store.clone(),
        classes: ctx.classes.clone(),
        controller_name: ctx.controller_name.clone(),
    });
    controller
        .with_config(
            controller::Config::default()
                .debounce(Duration::from_secs(1))
                .concurrency(CONCURRENCY),
        )
        .watches(
            clusters,
            watcher::Config::default(),
            move |c: ClusterMeta| {
                let ns = c.namespace();
                store
                    .state()
                    .iter()
                    .filter(|r| r.namespace() == ns)
                    .filter(|r| {
                        r.status.as_ref().and_then(|s| s.phase.as_deref())
                            != Some(RolloutPhase::Completed.as_str())
                    })
                    .map(|r| ObjectRef::from_obj(&**r))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(kaas_listener::admin::shutdown_signal())
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|_| futures::future::ready(()))
}
