//! The `KaasOperator` controller: preflight, apply the operator's objects with server-side
//! apply under the installer's field manager, create the classes asked for, ensure the Cluster
//! API operator's provider objects when asked, prune what a new version no longer has, report
//! conditions (with an Event per transition) and, on deletion, remove exactly what was
//! installed (finalizer). `run` sequences named steps (`finish_deletion`, `set_finalizers`,
//! `preflight_and_install`, `observe`, `report`, `write_status`); the decisions are in
//! [`crate::render`], [`crate::preflight`] and [`crate::status`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::install::NAMESPACE;
use api::install::bundles::{self, Bundle, CapiProvider};
use api::install::v1alpha1::{
    InstalledObject, KaasOperator, KaasOperatorStatus, OperatorCondition,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::preflight::{self, Served};
use crate::render::{self, MANAGER, Mode, OWNER_LABEL};
use crate::status::{self, Found};

/// The finalizer that makes a deletion remove what was installed first.
pub const FINALIZER: &str = "operator.kaas.scs.community/installer";
/// The group of the Cluster API operator's provider kinds.
pub const CAPI_OPERATOR_API: &str = "operator.cluster.x-k8s.io/v1alpha2";

/// What a reconcile needs.
pub struct Context {
    /// The API client (the installer's service account).
    pub client: Client,
    /// Records Events (`events.k8s.io/v1`) as the installer, naming this replica.
    pub recorder: Recorder,
    /// Every `KaasOperator` (shared Cluster API objects are kept while another needs them).
    pub operators: Store<KaasOperator>,
    /// The installer's metrics.
    pub metrics: Arc<Metrics>,
    /// Image repositories a `KaasOperator` may name besides the bundle's.
    pub allowed_image_repositories: Vec<String>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Why a reconcile failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The API error.
        source: kube::Error,
    },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// One reconcile of `op`.
pub async fn reconcile(op: Arc<KaasOperator>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics
        .started(&kube::ResourceExt::name_any(op.as_ref()));
    let started = std::time::Instant::now();
    let result = run(&op, &ctx).await;
    ctx.metrics
        .reconciled(result.is_ok(), started.elapsed().as_secs_f64());
    result
}

/// Requeues a failed reconcile after a short wait.
pub fn error_policy(_op: Arc<KaasOperator>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// One reconcile: a deleted operator is uninstalled; else the finalizer first, then the
/// preflight and the install, what runs, the Events of what changed and the status.
async fn run(op: &KaasOperator, ctx: &Context) -> Result<Action, Error> {
    if op.metadata.deletion_timestamp.is_some() {
        return finish_deletion(op, ctx).await;
    }
    if !has_finalizer(op) {
        set_finalizers(op, ctx, true).await?;
        // The patch is an event of its own: the next reconcile installs.
        return Ok(Action::await_change());
    }
    let previous = op.status.clone().unwrap_or_default();
    let installing = preflight_and_install(op, ctx, &previous).await?;
    let mut found = installing.found;
    found.extend(observe(op, ctx, installing.version.as_deref()).await?);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = KaasOperatorStatus {
        observed_generation: op.metadata.generation,
        installed_version: installing.version,
        conditions: status::conditions(found, &previous.conditions, op.metadata.generation, &now),
        inventory: installing.inventory,
    };
    report(op, ctx, &previous, &status).await;
    write_status(op, ctx, &status).await?;
    let ready = status::is_ready(&status.conditions);
    ctx.metrics.set_ready(&op.spec.provider, ready);
    Ok(Action::requeue(Duration::from_secs(if ready {
        300
    } else {
        5
    })))
}

/// A deleted `KaasOperator`: what it installed is removed, then its finalizer.
async fn finish_deletion(op: &KaasOperator, ctx: &Context) -> Result<Action, Error> {
    if has_finalizer(op) {
        uninstall(op, ctx).await?;
        set_finalizers(op, ctx, false).await?;
        tracing::info!(operator = %op.name_any(), "uninstalled");
    }
    Ok(Action::await_change())
}

/// Adds (`with`) or removes the installer's finalizer, keeping the others; refused when the
/// object changed since it was read.
async fn set_finalizers(op: &KaasOperator, ctx: &Context, with: bool) -> Result<(), Error> {
    let mut finalizers: Vec<String> = op
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if with {
        finalizers.push(FINALIZER.into());
    }
    Api::<KaasOperator>::all(ctx.client.clone())
        .patch(
            &op.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "finalizers": finalizers,
                "resourceVersion": op.resource_version(),
            }})),
        )
        .await
        .map_err(api_err(if with {
            "adding the finalizer"
        } else {
            "removing the finalizer"
        }))?;
    Ok(())
}

/// What the preflight and the install step found, and what is installed after them.
struct Installing {
    /// `PreflightPassed` and `Installed`.
    found: Vec<(OperatorCondition, Found)>,
    /// Every object installed.
    inventory: Vec<InstalledObject>,
    /// The version installed.
    version: Option<String>,
}

/// The preflight of the version asked for (the webhook's rules again, then the bundle against
/// what the cluster serves); when it passes, the install. A failed preflight or install keeps
/// what was installed.
async fn preflight_and_install(
    op: &KaasOperator,
    ctx: &Context,
    previous: &KaasOperatorStatus,
) -> Result<Installing, Error> {
    let served = served_crds(ctx, &op.spec.provider).await?;
    let request = preflight::Request {
        provider: &op.spec.provider,
        version: &op.spec.version,
        installed: previous.installed_version.as_deref(),
        installs_cluster_api: op.spec.install_cluster_api,
        image_repository: op.spec.image.as_ref().and_then(|i| i.repository.as_deref()),
        allowed_repositories: &ctx.allowed_image_repositories,
    };
    let mut installing = Installing {
        found: Vec::new(),
        inventory: previous.inventory.clone(),
        version: previous.installed_version.clone(),
    };
    // The webhook's rules, again: an object written while it was not registered (or with it
    // bypassed) must not reach the Deployment unbounded or unknown.
    let others = api::Catalog {
        operators: ctx.operators.state(),
        ..Default::default()
    };
    let checked = api::validation::validate_kaas_operator(op, None, &others)
        .map_err(|e| vec![format!("invalid: {e}")])
        .and_then(|()| preflight::check(request, &served));
    let bundle = match checked {
        Ok(bundle) => bundle,
        Err(problems) => {
            let kept = match &previous.installed_version {
                Some(installed) => Found::ok(
                    "KeptPrevious",
                    format!(
                        "{installed} stays installed until the preflight of {} passes",
                        op.spec.version
                    ),
                ),
                None => Found::not("PreflightFailed", "nothing installed"),
            };
            installing.found = vec![
                (
                    OperatorCondition::PreflightPassed,
                    Found::not("PreflightFailed", problems.join("; ")),
                ),
                (OperatorCondition::Installed, kept),
            ];
            return Ok(installing);
        }
    };
    installing.found.push((
        OperatorCondition::PreflightPassed,
        Found::ok(
            "Passed",
            format!("bundle {} {}", bundle.provider, bundle.version),
        ),
    ));
    let installed = match install(op, bundle, ctx, &previous.inventory).await {
        Ok((objects, skipped)) => {
            let message = if skipped.is_empty() {
                format!("{} objects of {} applied", objects.len(), bundle.version)
            } else {
                format!(
                    "{} objects of {} applied; ProviderClass {} exists and was not created by this KaasOperator: left alone",
                    objects.len(),
                    bundle.version,
                    skipped.join(", ")
                )
            };
            installing.inventory = objects;
            installing.version = Some(bundle.version.to_string());
            Found::ok("Applied", message)
        }
        Err(e) => Found::not("ApplyFailed", e.to_string()),
    };
    installing
        .found
        .push((OperatorCondition::Installed, installed));
    Ok(installing)
}

/// What runs: the operator's Deployment, and Cluster API when it is asked for.
async fn observe(
    op: &KaasOperator,
    ctx: &Context,
    installed_version: Option<&str>,
) -> Result<Vec<(OperatorCondition, Found)>, Error> {
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), NAMESPACE)
        .get_opt(&render::base_name(&op.spec.provider))
        .await
        .map_err(api_err("reading the operator's Deployment"))?;
    let mut found = vec![(
        OperatorCondition::Available,
        status::available(deployment.as_ref()),
    )];
    if op.spec.install_cluster_api {
        let bundle = installed_version.and_then(|v| bundles::find(&op.spec.provider, v));
        found.push((
            OperatorCondition::ClusterApiReady,
            capi_readiness(ctx, bundle).await,
        ));
    }
    Ok(found)
}

/// An Event per condition that changed, and one when the installed version did.
async fn report(
    op: &KaasOperator,
    ctx: &Context,
    previous: &KaasOperatorStatus,
    status: &KaasOperatorStatus,
) {
    for c in status::transitions(&status.conditions, &previous.conditions) {
        let message = format!("{} is {}: {}", c.type_, c.status, c.message);
        record(ctx, op, c.status == "True", &c.reason, message).await;
    }
    if status.installed_version != previous.installed_version
        && let Some(to) = &status.installed_version
    {
        let (reason, message) = match &previous.installed_version {
            Some(from) => ("VersionChanged", format!("moved from {from} to {to}")),
            None => ("VersionInstalled", format!("installed {to}")),
        };
        record(ctx, op, true, reason, message).await;
    }
}

/// Applies `status` unless the object already has it.
async fn write_status(
    op: &KaasOperator,
    ctx: &Context,
    status: &KaasOperatorStatus,
) -> Result<(), Error> {
    if op.status.as_ref() == Some(status) {
        return Ok(());
    }
    Api::<KaasOperator>::all(ctx.client.clone())
        .patch_status(
            &op.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": KaasOperator::api_version(&()),
                "kind": "KaasOperator",
                "status": status,
            })),
        )
        .await
        .map_err(api_err("writing the status"))?;
    Ok(())
}

/// One Event on `op` (a condition's transition, a version installed or changed). Events about
/// a cluster-scoped object live in `default`.
async fn record(ctx: &Context, op: &KaasOperator, normal: bool, reason: &str, message: String) {
    let event = Event {
        type_: if normal {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: reason.into(),
        note: Some(message),
        action: "Install".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &op.object_ref(&())).await {
        tracing::warn!(error = %e, "could not record an event");
    }
}

fn has_finalizer(op: &KaasOperator) -> bool {
    op.finalizers().iter().any(|f| f == FINALIZER)
}

/// The served versions of every CRD any bundle of `provider` reads.
async fn served_crds(ctx: &Context, provider: &str) -> Result<Served, Error> {
    let names: BTreeSet<&str> = bundles::ALL
        .iter()
        .filter(|b| b.provider == provider)
        .flat_map(|b| b.kaas_crds.iter().chain(b.cluster_api_crds))
        .map(|c| c.name)
        .collect();
    let crds = Api::<CustomResourceDefinition>::all(ctx.client.clone());
    let mut served = Served::default();
    for name in names {
        if let Some(crd) = crds
            .get_opt(name)
            .await
            .map_err(api_err(format!("reading CRD {name}")))?
        {
            let versions = crd
                .spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| v.name.clone())
                .collect();
            served.0.insert(name.to_string(), versions);
        }
    }
    Ok(served)
}

/// `(group, version)` of an `apiVersion`.
fn split(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The plural of the kinds the installer writes (`NetworkPolicy` -> `networkpolicies`).
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

fn api_for(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = split(api_version);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        &plural(kind),
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn entry(object: &Value) -> InstalledObject {
    InstalledObject {
        api_version: object["apiVersion"].as_str().unwrap_or_default().into(),
        kind: object["kind"].as_str().unwrap_or_default().into(),
        namespace: object["metadata"]["namespace"].as_str().map(String::from),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .into(),
    }
}

async fn apply(ctx: &Context, object: &Value) -> Result<(), Error> {
    let e = entry(object);
    api_for(&ctx.client, &e.api_version, &e.kind, e.namespace.as_deref())
        .patch(
            &e.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(api_err(format!("applying {} {}", e.kind, e.name)))?;
    Ok(())
}

async fn delete(ctx: &Context, o: &InstalledObject) -> Result<(), Error> {
    match api_for(&ctx.client, &o.api_version, &o.kind, o.namespace.as_deref())
        .delete(&o.name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(api_err(format!("deleting {} {}", o.kind, o.name))(e)),
    }
}

/// Applies the operator's objects, its classes and (when asked) Cluster API's, prunes what
/// the previous inventory had and this one has not; the new inventory and the classes left
/// alone.
async fn install(
    op: &KaasOperator,
    bundle: &Bundle,
    ctx: &Context,
    previous: &[InstalledObject],
) -> Result<(Vec<InstalledObject>, Vec<String>), Error> {
    let owner = op.name_any();
    let objects = render::render(op, bundle, Mode::Installed(&owner));
    let mut inventory = Vec::new();
    for object in &objects {
        apply(ctx, object).await?;
        inventory.push(entry(object));
    }
    let mut skipped = Vec::new();
    let classes = Api::<DynamicObject>::all_with(
        ctx.client.clone(),
        &ApiResource::erase::<api::v1beta1::ProviderClass>(&()),
    );
    for class in render::classes(op) {
        let name = class["metadata"]["name"].as_str().unwrap_or_default();
        let existing = classes
            .get_opt(name)
            .await
            .map_err(api_err(format!("reading ProviderClass {name}")))?;
        let ours = existing.as_ref().is_none_or(|c| {
            c.labels().get(OWNER_LABEL).map(String::as_str) == Some(owner.as_str())
        });
        if ours {
            apply(ctx, &class).await?;
            inventory.push(entry(&class));
        } else {
            skipped.push(name.to_string());
        }
    }
    if op.spec.install_cluster_api {
        for object in capi_objects(op, bundle, ctx) {
            apply(ctx, &object).await?;
            inventory.push(entry(&object));
        }
    }
    // What the previous version (or spec) installed and this one does not.
    for gone in previous.iter().filter(|o| !inventory.contains(o)) {
        if !shared_and_needed(op, gone, ctx) {
            delete(ctx, gone).await?;
        }
    }
    Ok((inventory, skipped))
}

/// The namespaces and Cluster API operator objects `op` asks for. The core, bootstrap and
/// control plane providers are shared by every `KaasOperator` asking for Cluster API: they
/// get the newest version any of them needs.
fn capi_objects(op: &KaasOperator, bundle: &Bundle, ctx: &Context) -> Vec<Value> {
    let others: Vec<&'static Bundle> = ctx
        .operators
        .state()
        .iter()
        .filter(|o| o.spec.install_cluster_api && o.metadata.deletion_timestamp.is_none())
        .filter_map(|o| bundles::find(&o.spec.provider, &o.spec.version))
        .collect();
    let newest = |p: &CapiProvider| -> &'static str {
        others
            .iter()
            .flat_map(|b| b.cluster_api.iter())
            .filter(|q| q.kind == p.kind && q.name == p.name)
            .map(|q| q.version)
            .chain([p.version])
            .max_by_key(|v| semver::Version::parse(v.trim_start_matches('v')).ok())
            .unwrap_or(p.version)
    };
    let mut out = Vec::new();
    for p in &bundle.cluster_api {
        let shared = p.kind != "InfrastructureProvider";
        let mut labels = serde_json::Map::new();
        labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        if !shared {
            labels.insert(OWNER_LABEL.into(), op.name_any().into());
        }
        out.push(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": p.namespace, "labels": labels.clone()},
        }));
        out.push(json!({
            "apiVersion": CAPI_OPERATOR_API, "kind": p.kind,
            "metadata": {"name": p.name, "namespace": p.namespace, "labels": labels},
            "spec": {"version": if shared { newest(p) } else { p.version }},
        }));
    }
    out
}

/// Whether `o` is a shared Cluster API object (or its namespace) that another
/// `KaasOperator`, not being deleted, still asks for.
fn shared_and_needed(op: &KaasOperator, o: &InstalledObject, ctx: &Context) -> bool {
    let shared = bundles::ALL
        .iter()
        .flat_map(|b| b.cluster_api.iter())
        .filter(|p| p.kind != "InfrastructureProvider")
        .any(|p| {
            (o.kind == p.kind && o.name == p.name)
                || (o.kind == "Namespace" && o.name == p.namespace)
        });
    shared
        && ctx.operators.state().iter().any(|other| {
            other.name_any() != op.name_any()
                && other.spec.install_cluster_api
                && other.metadata.deletion_timestamp.is_none()
        })
}

/// `ClusterAPIReady`: every provider object of the installed bundle reports `Ready`.
async fn capi_readiness(ctx: &Context, bundle: Option<&Bundle>) -> Found {
    let Some(bundle) = bundle else {
        return Found::not("NotInstalled", "nothing installed yet");
    };
    let mut waiting = Vec::new();
    for p in &bundle.cluster_api {
        let api = api_for(&ctx.client, CAPI_OPERATOR_API, p.kind, Some(p.namespace));
        match api.get_opt(p.name).await {
            Ok(Some(o)) => {
                let ready = o.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if !ready {
                    waiting.push(format!("{} {}/{}", p.kind, p.namespace, p.name));
                }
            }
            Ok(None) => waiting.push(format!("{} {}/{} (missing)", p.kind, p.namespace, p.name)),
            Err(e) => {
                return Found::not(
                    "ClusterAPIOperatorMissing",
                    format!("the Cluster API operator's kinds cannot be read: {e}"),
                );
            }
        }
    }
    if waiting.is_empty() {
        Found::ok(
            "ProvidersReady",
            format!(
                "Cluster API {} and {} {} are ready",
                bundle.cluster_api[0].version,
                bundle.cluster_api[3].name,
                bundle.cluster_api[3].version
            ),
        )
    } else {
        Found::not(
            "ProvidersNotReady",
            format!("waiting for {}", waiting.join(", ")),
        )
    }
}

/// Deletes what `op` installed, newest first, but shared Cluster API objects another
/// `KaasOperator` still asks for.
async fn uninstall(op: &KaasOperator, ctx: &Context) -> Result<(), Error> {
    let inventory = op
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    for o in inventory.iter().rev() {
        if shared_and_needed(op, o, ctx) {
            continue;
        }
        delete(ctx, o).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_of_the_kinds_written() {
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural("PodDisruptionBudget"), "poddisruptionbudgets");
        assert_eq!(plural("ClusterRoleBinding"), "clusterrolebindings");
        assert_eq!(plural("InfrastructureProvider"), "infrastructureproviders");
        assert_eq!(plural("ProviderClass"), "providerclasses");
    }
}
