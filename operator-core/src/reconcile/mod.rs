//! The reconcile pipeline for one `KaasCluster`: route by class → default and validate →
//! resolve stack and version → node images → build the Cluster API objects → apply → status.
//! The middle steps are the pure functions of `api`, [`crate::resolve`], [`crate::render`] and
//! [`crate::status`]; this module only fetches, sequences and writes. Beside the pipeline:
//! [`context`] (what reconciles share), [`own_writes`] (finalizer and status of the
//! `KaasCluster`) with [`written`] (the memory that keeps them from repeating), [`shared`]
//! (node images several clusters use) and [`delete`] (the finalizer's work).

mod context;
mod delete;
mod own_writes;
mod shared;
mod written;

pub use context::{Context, OwnedStores};
pub use shared::USER_LABEL_PREFIX;
pub use written::Written;

use delete::delete;
use own_writes::{add_finalizer, write_status};
use shared::{mark_user, shared_problem};

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::Catalog;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::error_boundary::{DeserializeGuard, InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use serde_json::Value;

use crate::apply::resource;
use crate::error::Error;
use crate::metrics::{CategoryLabels, InfoLabels, ResultLabels};
use crate::provider::{Provider, ProviderError};
use crate::render::{self, CLUSTER_LABEL, POOL_LABEL};
use crate::status::{self, AddonsProgress, Observed, Progress};

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

/// An object that does not have the shape of a `KaasCluster`: say so once, on the object,
/// and wait for it to change. The other clusters go on.
async fn report_invalid<P: Provider>(
    invalid: &InvalidObject,
    ctx: &Context<P>,
) -> Result<Action, Error> {
    ctx.metrics
        .errors
        .get_or_create(&CategoryLabels {
            category: "invalid_object",
        })
        .inc();
    let name = invalid.metadata.name.clone().unwrap_or_default();
    tracing::warn!(%name, namespace = ?invalid.metadata.namespace, error = %invalid.error, "KaasCluster cannot be read");
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("kaas.scs.community/v1beta1".into()),
        kind: Some("KaasCluster".into()),
        name: Some(name),
        namespace: invalid.metadata.namespace.clone(),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidObject".into(),
        note: Some(format!(
            "the operator cannot read this object: {}",
            invalid.error
        )),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.applier.count_write();
    if let Err(e) = ctx.recorder.publish(&event, &reference).await {
        tracing::debug!(error = %e, "could not publish event");
    }
    Ok(Action::await_change())
}

/// Backoff after an error: transient ones retry with jitter, the rest wait for a change.
pub fn error_policy<P: Provider>(
    watched: Arc<Watched>,
    error: &Error,
    ctx: Arc<Context<P>>,
) -> Action {
    let Ok(cluster) = &watched.0 else {
        return Action::await_change();
    };
    ctx.metrics
        .errors
        .get_or_create(&CategoryLabels {
            category: error.category(),
        })
        .inc();
    tracing::warn!(name = %cluster.name_any(), namespace = ?cluster.namespace(), category = error.category(), %error, "reconcile failed");
    if error.is_transient() {
        // 5 to 15 seconds, spread by the object's uid so failing clusters do not retry in step.
        let jitter = cluster
            .uid()
            .map(|u| {
                u.bytes()
                    .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b.into()))
                    % 10_000
            })
            .unwrap_or(0);
        Action::requeue(Duration::from_millis(5_000 + jitter))
    } else {
        Action::await_change()
    }
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
    if !serves(ctx, cluster, &catalog) {
        return Ok(Action::await_change());
    }
    // The span goes with the future, never entered across an await (which would leak it into
    // whatever the thread runs next).
    let span = tracing::info_span!("reconcile", name = %cluster.name_any(), namespace = ?cluster.namespace());
    tracing::Instrument::instrument(run_served(cluster, ctx, catalog), span).await
}

async fn run_served<P: Provider>(
    cluster: &KaasCluster,
    ctx: &Context<P>,
    catalog: Catalog,
) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        return delete(cluster, ctx).await;
    }
    let mut defaulted = cluster.clone();
    api::defaulting::default_kaas_cluster(&mut defaulted.spec, &catalog);
    let mut progress = Progress::default();
    let mut invalid = match api::validation::validate_kaas_cluster(&defaulted, None, &catalog) {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    invalid.extend(
        ctx.provider
            .validate_config(defaulted.spec.provider_config.as_ref()),
    );
    if !invalid.is_empty() {
        let msg = invalid
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        progress.invalid = Some(msg);
        write_status(cluster, &progress, &Observed::default(), ctx).await?;
        return Ok(Action::await_change());
    }

    let mut resolved = match crate::resolve::resolve(&defaulted, ctx.provider.name(), &catalog) {
        Ok(r) => r,
        Err(problem) => {
            progress.stack_problem = Some(problem);
            write_status(cluster, &progress, &ctx.observed(cluster), ctx).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    progress.kubernetes_version = Some(resolved.kubernetes_version.clone());
    let release = match ctx.releases.get(&resolved.stack).await {
        Ok(r) => r,
        Err(e) => {
            progress.stack_problem = Some((e.reason().into(), e.to_string()));
            write_status(cluster, &progress, &ctx.observed(cluster), ctx).await?;
            return Ok(if e.is_transient() {
                Action::requeue(Duration::from_secs(30))
            } else {
                Action::await_change()
            });
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
    let manager = ctx.applier.manager().to_string();
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
            write_status(cluster, &progress, &ctx.observed(cluster), ctx).await?;
            return Ok(Action::await_change());
        }
    };
    progress.available_upgrades = available_upgrades(&catalog, ctx.provider.name(), &defaulted);
    let built = async {
        let credentials = crate::credentials::read(
            ctx.applier.client(),
            &class,
            &namespace,
            ctx.provider.credential_keys(),
        )
        .await?;
        build(
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
            let wait = match e {
                ProviderError::Invalid(_) => {
                    progress.invalid = Some(e.to_string());
                    None
                }
                ProviderError::NotReady(_) => {
                    progress.image_problem = Some(("ImageNotReady".into(), e.to_string()));
                    Some(15)
                }
                ProviderError::Transient(_) => {
                    progress.image_problem = Some(("ProviderFailed".into(), e.to_string()));
                    Some(15)
                }
            };
            write_status(cluster, &progress, &ctx.observed(cluster), ctx).await?;
            return Ok(wait.map_or(Action::await_change(), |s| {
                Action::requeue(Duration::from_secs(s))
            }));
        }
    };
    let has_finalizer =
        cluster.finalizers().iter().any(|f| f == &ctx.finalizer) || ctx.written(cluster).finalizer;
    if !desired.images.shared_objects.is_empty() && !has_finalizer {
        // A cluster that uses a shared object must be able to release it: finalizer first.
        add_finalizer(cluster, ctx).await?;
    }
    for shared in &desired.images.shared_objects {
        ctx.applier.apply(shared, None).await?;
        mark_user(shared, &name, ctx).await?;
        if progress.image_problem.is_none()
            && let Some(problem) = shared_problem(shared, ctx).await?
        {
            // The rest is applied all the same: the machines wait for their image.
            progress.image_problem = Some(("ImageNotAvailable".into(), problem));
        }
    }
    let objects = desired.objects;
    // Two waves, each sent at once: first what is referenced (templates, the infrastructure
    // cluster) together with the finalizer, then what refers to them (control plane,
    // machine deployments, the Cluster), so Cluster API never sees a dangling reference.
    // Should the finalizer fail, the reconcile fails and is retried; the owner references
    // still let the garbage collector remove what was created.
    let (referrers, referenced): (Vec<&Value>, Vec<&Value>) =
        objects.iter().partition(|o| render::is_referrer(o));
    let finalizer = async {
        if has_finalizer || !desired.images.shared_objects.is_empty() {
            Ok(())
        } else {
            add_finalizer(cluster, ctx).await
        }
    };
    let first = futures::future::join_all(
        referenced
            .iter()
            .map(|obj| ctx.applier.apply(obj, ctx.live_generation(obj))),
    );
    let (finalizer, first) = tokio::join!(finalizer, first);
    finalizer?;
    let mut wrote = false;
    for result in first {
        wrote |= result?;
    }
    let second = futures::future::join_all(
        referrers
            .iter()
            .map(|obj| ctx.applier.apply(obj, ctx.live_generation(obj))),
    )
    .await;
    for result in second {
        wrote |= result?;
    }
    prune_pools(cluster, ctx, &namespace).await?;
    let observed = ctx.observed(cluster);
    (progress.addons, progress.compliance) = match decision.addons {
        crate::upgrade::AddonScope::Untouched => {
            (AddonsProgress::Synced(previous.addons.clone()), None)
        }
        scope => {
            sync_addons(
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
    let status = write_status(cluster, &progress, &observed, ctx).await?;
    if let Some(u) = &decision.upgrade {
        if stage_before.as_deref() != Some(u.stage.as_str()) {
            tracing::info!(stage = %u.stage, step = u.step, "upgrade stage");
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        return Ok(Action::requeue(match u.stage.as_str() {
            crate::upgrade::stages::PRE | crate::upgrade::stages::POST => {
                crate::upgrade::backoff(u.attempts)
                    .min(ctx.addon_resync.max(Duration::from_secs(2)))
            }
            _ => Duration::from_secs(10),
        }));
    }
    if stage_before.is_some() {
        tracing::info!("upgrade finished");
    }
    if wrote {
        tracing::info!(objects = objects.len(), "applied Cluster API objects");
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
    if progress.image_problem.is_some() {
        return Ok(Action::requeue(Duration::from_secs(15)));
    }
    Ok(match (&progress.addons, status.phase.as_deref()) {
        (AddonsProgress::NoAddons | AddonsProgress::Pending, Some("Ready")) => {
            Action::requeue(crate::apply::RESYNC)
        }
        // Nothing in the workload cluster is watched: health and drift are polled.
        (AddonsProgress::Synced(_), Some("Ready")) => Action::requeue(ctx.addon_resync),
        (AddonsProgress::Invalid(_), _) => Action::requeue(Duration::from_secs(300)),
        (AddonsProgress::Synced(_) | AddonsProgress::Waiting(_) | AddonsProgress::Failed(_), _) => {
            Action::requeue(ctx.addon_resync.min(Duration::from_secs(10)))
        }
        _ => Action::requeue(Duration::from_secs(300)),
    })
}

/// Builds the cluster's objects for this reconcile's decision: the control plane at its
/// version, and the worker pools at theirs (during an upgrade's control plane stage they stay
/// on the version, and the release's node images, they run).
#[allow(clippy::too_many_arguments)]
async fn build<P: Provider>(
    ctx: &Context<P>,
    cluster: &KaasCluster,
    class: &ProviderClass,
    resolved: &crate::resolve::Resolved,
    release: &kaas_stack::Release,
    decision: &crate::upgrade::Decision,
    catalog: &Catalog,
    manager: &str,
    credentials: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<crate::desired::Desired, ProviderError> {
    let at = |version: &str, stack: &ClusterStack| crate::resolve::Resolved {
        stack: stack.clone(),
        kubernetes_version: version.to_string(),
    };
    let kubeadm = &release.stack.kubeadm;
    let mut desired = crate::desired::desired(
        &ctx.provider,
        cluster,
        class,
        &at(&decision.control_plane_version, &resolved.stack),
        kubeadm,
        manager,
        credentials,
    )
    .await?;
    let same_stack = decision.workers_stack_version == resolved.stack.spec.version;
    if decision.workers_version == decision.control_plane_version && same_stack {
        return Ok(desired);
    }
    let mut workers_stack = resolved.stack.clone();
    if !same_stack
        && let Some(old) = catalog.release(
            ctx.provider.name(),
            &resolved.stack.spec.name,
            &decision.workers_stack_version,
        )
    {
        workers_stack = old.clone();
        if let Ok(old_release) = ctx.releases.get(old).await {
            crate::stacks::fill_node_images(&mut workers_stack, &old_release);
        }
    }
    let workers = crate::desired::desired(
        &ctx.provider,
        cluster,
        class,
        &at(&decision.workers_version, &workers_stack),
        kubeadm,
        manager,
        credentials,
    )
    .await?;
    let is_pool = |o: &Value| o["metadata"]["labels"][POOL_LABEL].is_string();
    desired.objects.retain(|o| !is_pool(o));
    desired
        .objects
        .extend(workers.objects.into_iter().filter(is_pool));
    for shared in workers.images.shared_objects {
        if !desired.images.shared_objects.contains(&shared) {
            desired.images.shared_objects.push(shared);
        }
    }
    Ok(desired)
}

/// Ready releases of the cluster's stack it may move to from its version (their upgrade
/// edges name it).
fn available_upgrades(catalog: &Catalog, provider: &str, cluster: &KaasCluster) -> Vec<String> {
    let Some(current) = cluster.spec.cluster_stack.version.as_deref() else {
        return Vec::new();
    };
    let mut found: Vec<semver::Version> = catalog
        .stacks
        .iter()
        .filter(|s| {
            s.spec.provider == provider
                && s.spec.name == cluster.spec.cluster_stack.name
                && s.is_ready()
                && s.spec.upgrade_from.iter().any(|v| v == current)
        })
        .filter_map(|s| semver::Version::parse(&s.spec.version).ok())
        .collect();
    found.sort();
    found.iter().map(ToString::to_string).collect()
}

/// The add-ons step: renders the stack's add-ons for the cluster and syncs them into the
/// workload cluster once Cluster API has initialized its control plane.
async fn sync_addons<P: Provider>(
    cluster: &KaasCluster,
    release: &kaas_stack::Release,
    kubernetes_version: &str,
    scope: crate::upgrade::AddonScope,
    observed: &Observed,
    ctx: &Context<P>,
) -> (AddonsProgress, Option<(bool, String, String)>) {
    if release.stack.addons.is_empty() {
        return (AddonsProgress::NoAddons, None);
    }
    let spec = &cluster.spec;
    let values = crate::addons::cluster_values(cluster, ctx.provider.name(), kubernetes_version);
    let mut rendered = match kaas_stack::template::render_addons(release, &values, &spec.addons) {
        Ok(r) => r,
        Err(e) => return (AddonsProgress::Invalid(e.to_string()), None),
    };
    let partial = scope == crate::upgrade::AddonScope::PreUpgradeOnly;
    if partial {
        rendered.retain(|a| a.stage == kaas_stack::Stage::PreUpgrade);
    }
    if !status::control_plane_initialized(observed) {
        return (
            AddonsProgress::Waiting(
                "waiting for Cluster API to initialize the control plane".into(),
            ),
            None,
        );
    }
    let client = match ctx
        .workloads
        .client(ctx.applier.client(), &values.namespace, &values.name)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                AddonsProgress::Waiting(format!(
                    "waiting for the kubeconfig Secret {}-kubeconfig",
                    values.name
                )),
                None,
            );
        }
        Err(e) => return (AddonsProgress::Failed(e.to_string()), None),
    };
    match crate::addons::sync(&client, &rendered, ctx.applier.manager(), !partial).await {
        Ok(synced) => {
            if synced.writes > 0 {
                tracing::info!(
                    writes = synced.writes,
                    "synced add-ons into the workload cluster"
                );
            }
            ctx.metrics.addon_writes.inc_by(synced.writes as u64);
            let compliance = if partial {
                None
            } else {
                crate::compliance::live(release, &synced, &client).await
            };
            (AddonsProgress::Synced(synced.statuses), compliance)
        }
        Err(e) => (AddonsProgress::Failed(e.to_string()), None),
    }
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
            md.namespace().as_deref() == Some(namespace)
                && md.labels().get(CLUSTER_LABEL) == Some(&name)
        })
        .filter_map(|md| md.labels().get(POOL_LABEL).cloned())
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
