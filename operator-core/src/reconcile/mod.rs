//! The reconcile pipeline for one `KaasCluster`: route by class → default and validate →
//! resolve stack and version → decide the upgrade step → build the Cluster API objects →
//! apply → add-ons → status. The middle steps are the pure functions of `api`,
//! [`crate::resolve`], [`crate::upgrade`], [`crate::render`] and [`crate::status`]; this module
//! only fetches, sequences and writes. The steps that write or fetch live beside it:
//! [`build`], [`apply_step`], [`addon_step`], [`own_writes`] (finalizer and status of the
//! `KaasCluster`, kept from repeating by [`written`]), [`shared`] (node images several clusters
//! use) and [`delete`] (the finalizer's work); [`policy`] says when to look again and
//! [`context`] holds what reconciles share.

mod addon_step;
mod apply_step;
mod build;
mod context;
mod delete;
mod own_writes;
mod policy;
mod shared;
mod written;

pub use context::{Context, OwnedStores};
pub use policy::error_policy;
pub use shared::USER_LABEL_PREFIX;
pub use written::Written;

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::Catalog;
use api::v1beta1::KaasCluster;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;

use crate::error::Error;
use crate::metrics::{InfoLabels, ResultLabels};
use crate::provider::{Provider, ProviderError};
use crate::status::{AddonsProgress, Observed, Progress};
use own_writes::write_status;
use policy::report_invalid;

/// Whether `cluster` belongs to this operator: its class (named, or the default class) names
/// this operator's controller.
pub fn serves<P: Provider>(ctx: &Context<P>, cluster: &KaasCluster, catalog: &Catalog) -> bool {
    let mut spec = cluster.spec.clone();
    api::defaulting::default_kaas_cluster(&mut spec, catalog);
    spec.provider_class_name
        .as_deref()
        .and_then(|c| catalog.class(c))
        .is_some_and(|c| c.spec.controller == ctx.controller_name)
}

/// A watched `KaasCluster`, or one that does not deserialize (written before a schema
/// change, say): the guard keeps such an object from failing the whole watch.
pub type Watched = DeserializeGuard<KaasCluster>;

/// [`reconcile`] within the context's deadline: a cluster whose API calls, cloud, stack
/// source or workload cluster hangs gives its worker back and is retried with backoff.
pub async fn reconcile_within_deadline<P: Provider>(
    watched: Arc<Watched>,
    ctx: Arc<Context<P>>,
) -> Result<Action, Error> {
    let deadline = ctx.reconcile_timeout;
    match tokio::time::timeout(deadline, reconcile(watched, ctx)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Deadline(deadline)),
    }
}

/// Reconciles one cluster.
pub async fn reconcile<P: Provider>(
    watched: Arc<Watched>,
    ctx: Arc<Context<P>>,
) -> Result<Action, Error> {
    let start = Instant::now();
    let cluster = match &watched.0 {
        Ok(cluster) => cluster,
        Err(invalid) => return report_invalid(invalid, &ctx).await,
    };
    let result = run(cluster, &ctx).await;
    ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels { result: label })
        .inc();
    result
}

/// Now, to the second (as Kubernetes stores times).
pub fn now() -> Time {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

async fn run<P: Provider>(cluster: &KaasCluster, ctx: &Context<P>) -> Result<Action, Error> {
    let catalog = ctx.catalog();
    // A cluster being deleted that carries this operator's finalizer is finished by it even
    // when its class is gone (or no longer names it): the finalizer says whose it is, and
    // nobody else would ever take it off.
    let finishing = cluster.metadata.deletion_timestamp.is_some()
        && cluster.finalizers().contains(&ctx.finalizer);
    if !finishing && !serves(ctx, cluster, &catalog) {
        return Ok(Action::await_change());
    }
    // The span goes with the future, never entered across an await (which would leak it into
    // whatever the thread runs next).
    let span = tracing::info_span!("reconcile", name = %cluster.name_any(), namespace = ?cluster.namespace());
    tracing::Instrument::instrument(run_served(cluster, ctx, catalog), span).await
}

/// The defaulted cluster, or every problem with it in one line (the shared rules of `api`
/// and the provider's check of its `providerConfig`).
fn validated<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
    catalog: &Catalog,
) -> Result<KaasCluster, String> {
    let mut defaulted = cluster.clone();
    api::defaulting::default_kaas_cluster(&mut defaulted.spec, catalog);
    let mut invalid = match api::validation::validate_kaas_cluster(&defaulted, None, catalog) {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    invalid.extend(
        ctx.provider
            .validate_config(defaulted.spec.provider_config.as_ref()),
    );
    if invalid.is_empty() {
        return Ok(defaulted);
    }
    Err(invalid
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; "))
}

/// A reconcile that cannot go on: the status says why, and `then` says when to look again.
async fn stop<P: Provider>(
    cluster: &KaasCluster,
    progress: &Progress,
    observed: &Observed,
    ctx: &Context<P>,
    then: Action,
) -> Result<Action, Error> {
    write_status(cluster, progress, observed, ctx).await?;
    Ok(then)
}

async fn run_served<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
    catalog: Catalog,
) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        return delete::delete(cluster, ctx).await;
    }
    let mut progress = Progress::default();
    let defaulted = match validated(cluster, ctx, &catalog) {
        Ok(d) => d,
        Err(problems) => {
            progress.invalid = Some(problems);
            let unseen = Observed::default();
            return stop(cluster, &progress, &unseen, ctx, Action::await_change()).await;
        }
    };

    // Resolve the stack release and the Kubernetes version.
    let mut resolved = match crate::resolve::resolve(&defaulted, ctx.provider.name(), &catalog) {
        Ok(r) => r,
        Err(problem) => {
            progress.stack_problem = Some(problem);
            let retry = Action::requeue(Duration::from_secs(30));
            return stop(cluster, &progress, &ctx.observed(cluster), ctx, retry).await;
        }
    };
    progress.kubernetes_version = Some(resolved.kubernetes_version.clone());
    let release = match ctx.releases.get(&resolved.stack).await {
        Ok(r) => r,
        Err(e) => {
            progress.stack_problem = Some((e.reason().into(), e.to_string()));
            let then = if e.is_transient() {
                Action::requeue(Duration::from_secs(30))
            } else {
                Action::await_change()
            };
            return stop(cluster, &progress, &ctx.observed(cluster), ctx, then).await;
        }
    };
    crate::stacks::fill_node_images(&mut resolved.stack, &release);
    let name = cluster.name_any();
    let namespace = cluster
        .namespace()
        .ok_or(Error::Missing("KaasCluster without a namespace"))?;
    let class_name = defaulted
        .spec
        .provider_class_name
        .clone()
        .unwrap_or_default();
    let class = catalog
        .class(&class_name)
        .ok_or(Error::Missing("class vanished"))?
        .clone();

    // Decide this reconcile's step of an upgrade (or none).
    let previous = cluster.status.clone().unwrap_or_default();
    let skip = cluster
        .annotations()
        .get(crate::upgrade::SKIP_ANNOTATION)
        .map(String::as_str);
    let pools: Vec<(String, i64)> = defaulted
        .spec
        .workers
        .iter()
        .map(|w| (w.name.clone(), i64::from(w.replicas)))
        .collect();
    let target_stack = resolved.stack.spec.version.clone();
    let mut decision = match crate::upgrade::decide(&crate::upgrade::Inputs {
        previous: &previous,
        target_version: &resolved.kubernetes_version,
        target_stack: &target_stack,
        supported: &resolved.stack.spec.kubernetes_versions,
        observed: &ctx.observed(cluster),
        control_plane_replicas: i64::from(defaulted.spec.control_plane.replicas.unwrap_or(3)),
        pools: &pools,
        skip,
    }) {
        Ok(d) => d,
        Err(message) => {
            progress.stack_problem = Some(("UpgradeNotPossible".into(), message));
            let observed = ctx.observed(cluster);
            return stop(cluster, &progress, &observed, ctx, Action::await_change()).await;
        }
    };
    progress.available_upgrades =
        build::available_upgrades(&catalog, ctx.provider.name(), &defaulted);

    // Build: the provider's node images and objects, for this step's versions.
    let manager = ctx.applier.manager().to_string();
    let built = async {
        let credentials = crate::credentials::read(
            ctx.applier.client(),
            &class,
            &namespace,
            ctx.provider.credential_keys(),
        )
        .await?;
        build::build(
            ctx,
            &defaulted,
            &class,
            &resolved,
            &release,
            &decision,
            &catalog,
            &manager,
            credentials.as_ref(),
        )
        .await
    };
    let desired = match built.await {
        Ok(d) => d,
        Err(e) => {
            let then = match e {
                ProviderError::Invalid(_) => {
                    progress.invalid = Some(e.to_string());
                    Action::await_change()
                }
                ProviderError::NotReady(_) => {
                    progress.image_problem = Some(("ImageNotReady".into(), e.to_string()));
                    Action::requeue(Duration::from_secs(15))
                }
                ProviderError::Transient(_) => {
                    progress.image_problem = Some(("ProviderFailed".into(), e.to_string()));
                    Action::requeue(Duration::from_secs(15))
                }
            };
            return stop(cluster, &progress, &ctx.observed(cluster), ctx, then).await;
        }
    };

    // Apply, then the add-ons into the workload cluster.
    let applied = apply_step::apply(cluster, &desired, &namespace, ctx).await?;
    if let Some(problem) = applied.image_problem {
        progress.image_problem = Some(("ImageNotAvailable".into(), problem));
    }
    let observed = ctx.observed(cluster);
    (progress.addons, progress.compliance) = match decision.addons {
        crate::upgrade::AddonScope::Untouched => {
            (AddonsProgress::Synced(previous.addons.clone()), None)
        }
        scope => {
            addon_step::sync_addons(
                &defaulted,
                &release,
                &decision.control_plane_version,
                scope,
                &observed,
                ctx,
            )
            .await
        }
    };
    let addons_ready = match &progress.addons {
        AddonsProgress::NoAddons => true,
        AddonsProgress::Synced(states) => states.iter().all(|s| s.ready),
        _ => false,
    };
    let stage_before = previous.upgrade.as_ref().map(|u| u.stage.clone());
    crate::upgrade::after_addons(&mut decision, addons_ready, skip);
    progress.running = Some((
        decision.running_version.clone(),
        decision.running_stack.clone(),
    ));
    progress.upgrade = decision.upgrade.clone();

    // Status, then what an operator-admin sees besides it.
    let status = write_status(cluster, &progress, &observed, ctx).await?;
    match &decision.upgrade {
        Some(u) if stage_before.as_deref() != Some(u.stage.as_str()) => {
            tracing::info!(stage = %u.stage, step = u.step, "upgrade stage");
        }
        Some(_) => {}
        None => {
            if stage_before.is_some() {
                tracing::info!("upgrade finished");
            }
            if applied.wrote {
                tracing::info!(
                    objects = desired.objects.len(),
                    "applied Cluster API objects"
                );
            }
            ctx.metrics.set_cluster(
                (namespace.clone(), name.clone()),
                status.phase.clone(),
                Some(InfoLabels {
                    namespace,
                    name,
                    stack: defaulted.spec.cluster_stack.name.clone(),
                    stack_version: defaulted
                        .spec
                        .cluster_stack
                        .version
                        .clone()
                        .unwrap_or_default(),
                    kubernetes_version: resolved.kubernetes_version,
                }),
            );
        }
    }
    Ok(policy::next(&policy::Outcome {
        upgrade: decision.upgrade.as_ref(),
        stage_before: stage_before.as_deref(),
        image_problem: progress.image_problem.is_some(),
        addons: &progress.addons,
        phase: status.phase.as_deref(),
        addon_resync: ctx.addon_resync,
    }))
}
