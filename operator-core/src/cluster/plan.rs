//! Plan step of the pipeline (pure): from a `KaasCluster`, the catalog of classes and stack
//! releases, and what Cluster API reports, either a typed [`Plan`] of what this reconcile
//! renders or a typed [`Stop`] saying why it cannot. Defaulting, the shared validation of
//! `api` and the provider's check of `providerConfig`, resolving the release and the
//! Kubernetes version, and the upgrade decision all happen here, once.
//!
//! The operator, `kaasctl render`/`plan` and the golden tests call this same function, so what
//! kaasctl prints is what the operator writes, in the middle of an upgrade too.

use api::Catalog;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kube::ResourceExt;

use crate::cluster::resolve::Resolved;
use crate::cluster::status::Observed;
use crate::cluster::upgrade::{self, Decision};
use crate::provider::Provider;

/// What one reconcile renders, and what it knows about the cluster's future.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cluster, defaulted and validated.
    pub cluster: KaasCluster,
    /// Its class.
    pub class: ProviderClass,
    /// The release and full Kubernetes version the cluster runs or moves to.
    pub target: Resolved,
    /// This reconcile's step: the versions to render, the add-on scope, the upgrade to record.
    pub decision: Decision,
    /// The release the worker pools stay on while an upgrade's first stages run, when it is
    /// not the target's (`None`: the pools use the target's).
    pub workers_stack: Option<ClusterStack>,
    /// Ready releases of the cluster's stack it may move to next.
    pub available_upgrades: Vec<String>,
}

impl Plan {
    /// Whether the pools are rendered apart from the control plane in this step (another
    /// Kubernetes version or another release).
    pub fn pools_apart(&self) -> bool {
        self.decision.workers_version != self.decision.control_plane_version
            || self.decision.workers_stack_version != self.target.stack.spec.version
    }
}

/// Why a reconcile cannot go on; [`crate::cluster`] maps each to the status and to when to
/// look again, in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The spec breaks a rule: every problem, with its field, in one line. Waits for a change.
    Invalid(String),
    /// The stack release or the Kubernetes version cannot be resolved (yet).
    Unresolved {
        /// A CamelCase reason, such as `StackNotFound`.
        reason: String,
        /// What is missing.
        message: String,
    },
    /// The move asked for cannot be made (a downgrade, a minor on the way unsupported).
    UpgradeNotPossible {
        /// The version asked for.
        kubernetes_version: String,
        /// Why not.
        message: String,
    },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Invalid(m) | Stop::Unresolved { message: m, .. } => f.write_str(m),
            Stop::UpgradeNotPossible {
                kubernetes_version,
                message,
            } => write!(
                f,
                "cannot move to Kubernetes {kubernetes_version}: {message}"
            ),
        }
    }
}

/// Plans `cluster` for `provider` against `catalog`, with `observed` what Cluster API reports.
pub fn plan<P: Provider>(
    provider: &P,
    cluster: &KaasCluster,
    catalog: &Catalog,
    observed: &Observed,
) -> Result<Plan, Stop> {
    let cluster = validated(provider, cluster, catalog).map_err(Stop::Invalid)?;
    let class_name = cluster.spec.provider_class_name.as_deref().unwrap_or("");
    let class = catalog.class(class_name).cloned().ok_or_else(|| {
        Stop::Invalid(format!(
            "spec.providerClassName: ProviderClass {class_name:?} not found"
        ))
    })?;
    let target = crate::cluster::resolve::resolve(&cluster, provider.name(), catalog)
        .map_err(|(reason, message)| Stop::Unresolved { reason, message })?;
    let previous = cluster.status.clone().unwrap_or_default();
    let pools: Vec<(String, i64)> = cluster
        .spec
        .workers
        .iter()
        .map(|w| (w.name.clone(), i64::from(w.replicas)))
        .collect();
    let decision = upgrade::decide(&upgrade::Inputs {
        previous: &previous,
        target_version: &target.kubernetes_version,
        target_stack: &target.stack.spec.version,
        supported: &target.stack.spec.kubernetes_versions,
        observed,
        control_plane_replicas: i64::from(cluster.spec.control_plane.replicas.unwrap_or(3)),
        pools: &pools,
        skip: skip_annotation(&cluster),
    })
    .map_err(|message| Stop::UpgradeNotPossible {
        kubernetes_version: target.kubernetes_version.clone(),
        message,
    })?;
    let workers_stack = (decision.workers_stack_version != target.stack.spec.version)
        .then(|| {
            catalog.release(
                provider.name(),
                &target.stack.spec.name,
                &decision.workers_stack_version,
            )
        })
        .flatten()
        .cloned();
    let available_upgrades = available_upgrades(catalog, provider.name(), &cluster);
    Ok(Plan {
        class,
        target,
        decision,
        workers_stack,
        available_upgrades,
        cluster,
    })
}

/// The stage an operator-admin asked to skip (annotation [`upgrade::SKIP_ANNOTATION`]).
pub fn skip_annotation(cluster: &KaasCluster) -> Option<&str> {
    cluster
        .annotations()
        .get(upgrade::SKIP_ANNOTATION)
        .map(String::as_str)
}

/// The defaulted cluster, or every problem with it in one line (the shared rules of `api`
/// and the provider's check of its `providerConfig`).
fn validated<P: Provider>(
    provider: &P,
    cluster: &KaasCluster,
    catalog: &Catalog,
) -> Result<KaasCluster, String> {
    let mut defaulted = cluster.clone();
    api::defaulting::default_kaas_cluster(&mut defaulted.spec, catalog);
    let mut invalid = match api::validation::validate_kaas_cluster(&defaulted, None, catalog) {
        Ok(()) => Vec::new(),
        Err(e) => e.0,
    };
    invalid.extend(provider.validate_config(defaulted.spec.provider_config.as_ref()));
    if invalid.is_empty() {
        return Ok(defaulted);
    }
    Err(invalid
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; "))
}

/// Ready releases of the cluster's stack it may move to from its version (their upgrade
/// edges name it), oldest first.
pub fn available_upgrades(catalog: &Catalog, provider: &str, cluster: &KaasCluster) -> Vec<String> {
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
