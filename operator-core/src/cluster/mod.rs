//! The `KaasCluster` controller, its steps side by side. One reconcile: route by class →
//! [`plan`] (default, validate, [`resolve`] the release and version, decide the [`upgrade`]
//! step; pure) → [`gather`] what the build reads (releases, [`credentials`], node images) →
//! [`build`] the objects ([`render`]; pure) → apply them ([`apply_step`], with the node images
//! several clusters share: [`shared`]) → add-ons and standards in the workload cluster
//! ([`addon_step`], [`conformance`], [`compliance`]) → [`status`] (pure) written by
//! [`own_writes`] → an automatic upgrade in a [`maintenance`] window ([`auto_upgrade`]). This
//! module only sequences; a step that cannot go on returns a [`policy::Stopped`], which
//! [`policy`] maps to the status and to when to look again in one place. [`delete`] is the
//! finalizer's work; [`context`] holds what reconciles share and the [`ledger`] what they
//! remember.

mod addon_step;
mod apply_step;
mod auto_upgrade;
pub mod build;
pub(crate) mod compliance;
pub mod conformance;
mod context;
pub(crate) mod credentials;
mod delete;
pub mod gather;
mod ledger;
pub(crate) mod maintenance;
mod own_writes;
pub mod plan;
mod policy;
pub mod render;
pub mod resolve;
mod shared;
pub mod status;
pub mod upgrade;

pub use context::{Caches, Context, Settings};
pub use ledger::Ledger;
pub use policy::error_policy;

use std::sync::Arc;
use std::time::Instant;

use api::Catalog;
use api::v1beta1::KaasCluster;
use kube::ResourceExt;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;

use crate::cluster::plan::Plan;
use crate::cluster::status::{AddonsProgress, Observed, Problem, Progress, Running};
use crate::error::Error;
use crate::metrics::{ClusterSeries, InfoLabels, ResultLabels};
use crate::provider::Provider;
use own_writes::write_status;
use policy::{Stopped, report_invalid};

/// Whether `cluster` belongs to this operator: its class (named, or the default class) names
/// this operator's controller.
pub fn serves<P: Provider>(ctx: &Context<P>, cluster: &KaasCluster, catalog: &Catalog) -> bool {
    catalog
        .class_for(cluster.spec.provider_class_name.as_deref())
        .is_some_and(|c| c.spec.controller == ctx.settings.controller_name)
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
    let deadline = ctx.settings.reconcile_timeout;
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
    let meta = kube::Resource::meta(&*watched);
    ctx.metrics.started(&(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    ));
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

async fn run<P: Provider>(cluster: &KaasCluster, ctx: &Context<P>) -> Result<Action, Error> {
    let catalog = ctx.catalog();
    // A cluster being deleted that carries this operator's finalizer is finished by it even
    // when its class is gone (or no longer names it): the finalizer says whose it is, and
    // nobody else would ever take it off.
    let finishing = cluster.metadata.deletion_timestamp.is_some()
        && cluster.finalizers().contains(&ctx.settings.controller_name);
    if !finishing && !serves(ctx, cluster, &catalog) {
        return Ok(Action::await_change());
    }
    // The span goes with the future, never entered across an await (which would leak it into
    // whatever the thread runs next).
    let span = tracing::info_span!("reconcile", name = %cluster.name_any(), namespace = ?cluster.namespace());
    tracing::Instrument::instrument(run_served(cluster, ctx, catalog), span).await
}

/// A reconcile that stopped short: the status says why, and the policy when to look again.
async fn stop<P: Provider>(
    cluster: &KaasCluster,
    stopped: Stopped,
    target: Option<&str>,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    let (progress, then) = policy::after_stop(&stopped, target);
    // An invalid spec shows no Cluster API progress: what runs is not what was asked.
    let observed = if progress.invalid.is_some() {
        Observed::default()
    } else {
        ctx.observed(cluster)
    };
    write_status(cluster, &progress, &observed, ctx).await?;
    Ok(then)
}

/// The pipeline for a cluster this operator serves: plan → gather → build → apply →
/// add-ons → status → report, then when to look again.
async fn run_served<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
    catalog: Catalog,
) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        return delete::delete(cluster, ctx).await;
    }
    let plan = match crate::cluster::plan::plan(
        &ctx.provider,
        cluster,
        &catalog,
        &ctx.observed(cluster),
    ) {
        Ok(plan) => plan,
        Err(stopped) => return stop(cluster, Stopped::Plan(stopped), None, ctx).await,
    };
    let target = Some(plan.target.kubernetes_version.as_str());
    let inputs = match gather::gather(&plan, ctx).await {
        Ok(inputs) => inputs,
        Err(stopped) => return stop(cluster, stopped, target, ctx).await,
    };
    let desired =
        match crate::cluster::build::build(&ctx.provider, &plan, &inputs, ctx.applier.manager()) {
            Ok(desired) => desired,
            Err(e) => return stop(cluster, Stopped::Provider(e), target, ctx).await,
        };
    let releases = &inputs.releases;
    let applied = apply_step::apply(cluster, &desired, ctx).await?;
    let observed = ctx.observed(cluster);
    let addon_step::AddonOutcome {
        addons,
        compliance,
        workload,
    } = addon_step::sync(&plan, &releases.target, &observed, ctx).await;
    let mut decision = plan.decision.clone();
    let addons_ready = match &addons {
        AddonsProgress::NoAddons => true,
        AddonsProgress::Synced(states) => states.iter().all(|s| s.ready),
        _ => false,
    };
    crate::cluster::upgrade::after_addons(
        &mut decision,
        addons_ready,
        crate::cluster::plan::skip_annotation(cluster),
    );
    let progress = Progress {
        kubernetes_version: target.map(str::to_string),
        image_problem: applied
            .image_problem
            .map(|problem| Problem::new("ImageNotAvailable", problem)),
        standards: workload
            .map(|w| standards(&plan, &desired, releases, &decision, w, &catalog, ctx)),
        addons,
        compliance,
        running: Some(Running {
            kubernetes_version: decision.running_version.clone(),
            stack_version: decision.running_stack.clone(),
        }),
        upgrade: decision.upgrade.clone(),
        available_upgrades: plan.available_upgrades.clone(),
        ..Progress::default()
    };
    let status = write_status(cluster, &progress, &observed, ctx).await?;
    if auto_upgrade::apply(cluster, &status, ctx).await? {
        // The spec changed: the watch brings the cluster back at once for the upgrade.
        return Ok(Action::await_change());
    }
    let stage_before = cluster
        .status
        .as_ref()
        .and_then(|s| s.upgrade.as_ref())
        .map(|u| u.stage.as_str());
    let wrote = applied.wrote.then(|| desired.objects.all().len());
    report(&plan, &decision, stage_before, wrote, &status, ctx);
    Ok(policy::next(&policy::Outcome {
        upgrade: decision.upgrade.as_ref(),
        stage_before,
        image_problem: progress.image_problem.is_some(),
        addons: &progress.addons,
        phase: status.current_phase(),
        addon_resync: ctx.settings.addon_resync,
    }))
}

/// The standards checks of this reconcile over what the pipeline built and found.
fn standards<P: Provider>(
    plan: &Plan,
    desired: &crate::cluster::build::Desired,
    releases: &crate::cluster::gather::PlanReleases,
    decision: &crate::cluster::upgrade::Decision,
    workload: Result<crate::cluster::conformance::Workload, String>,
    catalog: &Catalog,
    ctx: &Context<P>,
) -> Vec<crate::cluster::conformance::Finding> {
    let cluster = &plan.cluster;
    let offered: Vec<(String, String)> = catalog
        .stacks
        .iter()
        .filter(|s| {
            s.spec.provider == ctx.provider.name()
                && s.spec.name == cluster.spec.cluster_stack.name
                && s.is_ready()
        })
        .flat_map(|s| {
            s.spec
                .kubernetes_versions
                .iter()
                .map(|v| (s.spec.version.clone(), v.clone()))
        })
        .collect();
    let calendar = ctx.releases.calendar(&releases.target);
    let objects = &desired.objects;
    let evidence = crate::cluster::conformance::Evidence {
        today: crate::cluster::conformance::today(),
        release: &releases.target,
        kubernetes_version: Some(decision.running_version.as_str()),
        calendar: &calendar,
        offered: &offered,
        control_plane_replicas: cluster
            .spec
            .control_plane
            .replicas
            .unwrap_or(api::v1beta1::DEFAULT_CONTROL_PLANE_REPLICAS),
        control_plane: Some(&objects.control_plane),
        bootstraps: objects
            .pools
            .iter()
            .map(|p| &p.bootstrap_template)
            .collect(),
        workload: workload.as_ref().map_err(Clone::clone),
    };
    crate::cluster::conformance::check_all(&evidence)
}

/// What an operator-admin sees besides the status: upgrade stages and writes in the log (with
/// how many objects the cluster has, when any was written), the cluster's phase and versions
/// in the metrics.
fn report<P: Provider>(
    plan: &Plan,
    decision: &crate::cluster::upgrade::Decision,
    stage_before: Option<&str>,
    wrote: Option<usize>,
    status: &api::v1beta1::KaasClusterStatus,
    ctx: &Context<P>,
) {
    match &decision.upgrade {
        Some(u) if stage_before != Some(u.stage.as_str()) => {
            tracing::info!(stage = %u.stage, step = u.step, "upgrade stage");
        }
        Some(_) => {}
        None if stage_before.is_some() => tracing::info!("upgrade finished"),
        None => {}
    }
    if let (None, Some(objects)) = (&decision.upgrade, wrote) {
        tracing::info!(objects, "applied Cluster API objects");
    }
    let cluster = &plan.cluster;
    let (namespace, name) = (cluster.namespace().unwrap_or_default(), cluster.name_any());
    ctx.metrics.set_standards(
        (namespace.clone(), name.clone()),
        status
            .standards
            .iter()
            .map(|s| (s.id.clone(), s.result.clone()))
            .collect(),
    );
    // During an upgrade the cluster still runs the version it moves from.
    let kubernetes_version = match (&decision.upgrade, &status.kubernetes_version) {
        (Some(_), Some(from)) => from.clone(),
        _ => plan.target.kubernetes_version.clone(),
    };
    let ready = status
        .condition(api::v1beta1::ClusterCondition::Ready)
        .is_some_and(|c| c.status == "True");
    let certificates_expiry = status
        .control_plane
        .as_ref()
        .and_then(|c| c.certificates_expiry_date.as_ref())
        .map(|t| t.0.as_second());
    ctx.metrics.set_cluster(
        (namespace.clone(), name.clone()),
        Some(ClusterSeries {
            phase: status.phase.clone(),
            ready,
            upgrade_stage: decision.upgrade.as_ref().map(|u| u.stage.clone()),
            certificates_expiry,
            info: InfoLabels {
                namespace,
                name,
                stack: cluster.spec.cluster_stack.name.clone(),
                stack_version: cluster
                    .spec
                    .cluster_stack
                    .version
                    .clone()
                    .unwrap_or_default(),
                kubernetes_version,
            },
        }),
    );
}
