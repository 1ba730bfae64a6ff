//! Status step of the pipeline (pure): what Cluster API reports, turned into the
//! `KaasCluster` status a user reads: phase, conditions with actionable reasons, replica
//! counts, the kubeconfig Secret. A condition that did not change keeps its transition time,
//! so an unchanged world computes an identical status and nothing is written. Each condition
//! is its own function in [`conditions`], the standards' part is in [`standards`]; [`observe`]
//! holds what Cluster API reports ([`Observed`]).

pub mod conditions;
pub(crate) mod observe;
pub mod standards;

use api::v1beta1::{
    AddonStatus, ClusterCondition, ClusterPhase, KaasCluster, KaasClusterStatus, ReplicaStatus,
    SecretKeyRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use conditions::Cond;
pub use observe::{Observed, control_plane_initialized};

/// What the pipeline found before looking at Cluster API.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The resolved full Kubernetes version, once resolved.
    pub kubernetes_version: Option<String>,
    /// Why the stack or version could not be resolved.
    pub stack_problem: Option<Problem>,
    /// Why the node images are not ready.
    pub image_problem: Option<Problem>,
    /// Why the spec was refused.
    pub invalid: Option<String>,
    /// A transient failure to report.
    pub failure: Option<Problem>,
    /// Where the add-ons stand.
    pub addons: AddonsProgress,
    /// The Kubernetes and stack versions the whole cluster runs, once decided.
    pub running: Option<Running>,
    /// The upgrade in progress.
    pub upgrade: Option<api::v1beta1::UpgradeStatus>,
    /// Stack versions the cluster can move to.
    pub available_upgrades: Vec<String>,
    /// The compliance check of this reconcile; `None` keeps the last.
    pub compliance: Option<crate::cluster::conformance::Verdict>,
    /// The standards checks of this reconcile; `None` keeps the last.
    pub standards: Option<Vec<crate::cluster::conformance::Finding>>,
}

/// Why what a condition reports does not hold: a reason (CamelCase, a bounded set) and a
/// message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

impl Problem {
    /// A problem with `reason` and `message`.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The versions the whole cluster runs, once decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The full Kubernetes version.
    pub kubernetes_version: String,
    /// The stack release's version.
    pub stack_version: String,
}

/// Where a cluster's add-ons stand after the add-ons step.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AddonsProgress {
    /// The step was not reached (the cluster is not built yet).
    #[default]
    Pending,
    /// The stack has no add-ons.
    NoAddons,
    /// The workload cluster is not reachable yet (control plane or kubeconfig missing).
    Waiting(String),
    /// The cluster's add-on overrides do not fit the stack.
    Invalid(String),
    /// The workload cluster failed a request.
    Failed(String),
    /// The workload cluster's kubeconfig Secret is refused (what and why, no secret quoted).
    Refused(String),
    /// Synced: each add-on's state.
    Synced(Vec<AddonStatus>),
}

pub use crate::clock::now;

/// Computes the status for `cluster` from the pipeline's progress and what Cluster API shows.
pub fn compute(
    cluster: &KaasCluster,
    progress: &Progress,
    observed: &Observed,
    now: &Time,
) -> KaasClusterStatus {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let previous = cluster.status.clone().unwrap_or_default();
    let spec = &cluster.spec;

    let (control_plane, cp) = conditions::control_plane_ready(&name, spec, observed);
    let (workers, pools) = conditions::workers_ready(spec, observed);
    let mut conds = vec![
        conditions::stack_resolved(progress, spec),
        conditions::node_images_ready(progress),
        conditions::infrastructure_ready(observed),
        control_plane,
        workers,
        conditions::addons_ready(&progress.addons),
        conditions::upgrading(progress),
    ];
    // Ready: no failure, and every condition holds but two. `Upgrading` is no problem, and a
    // stack that cannot be fetched again (its source down) leaves a built cluster ready:
    // `NodeImagesReady` already requires a valid spec and a resolved version.
    let all_ready = progress.failure.is_none()
        && conds
            .iter()
            .filter(|c| {
                c.type_ != ClusterCondition::Upgrading && c.type_ != ClusterCondition::StackResolved
            })
            .all(|c| c.ok);
    conds.insert(0, conditions::ready(progress, all_ready, &conds));
    // Informational: a cluster being put back into shape is still ready.
    conds.extend(conditions::compliant(progress, &previous));
    let standards = match &progress.standards {
        Some(findings) => standards::results(findings, &previous.standards, now),
        None => previous.standards.clone(),
    };
    conds.extend(standards::compliant(&standards));
    conds.extend(conditions::within_tenant_policy(observed));

    let cp_initialized = control_plane_initialized(observed);
    KaasClusterStatus {
        observed_generation: cluster.metadata.generation,
        phase: Some(
            phase(cluster, progress, observed, all_ready)
                .as_str()
                .to_string(),
        ),
        conditions: conds
            .into_iter()
            .map(|c| to_condition(c, cluster, &previous, now))
            .collect(),
        kubernetes_version: progress
            .running
            .as_ref()
            .map(|r| r.kubernetes_version.clone())
            .or_else(|| progress.kubernetes_version.clone())
            .or(previous.kubernetes_version),
        cluster_stack_version: progress
            .running
            .as_ref()
            .map(|r| r.stack_version.clone())
            .or(previous.cluster_stack_version)
            .or_else(|| spec.cluster_stack.version.clone()),
        available_upgrades: if progress.running.is_some() {
            progress.available_upgrades.clone()
        } else {
            previous.available_upgrades
        },
        kubeconfig_secret_ref: cp_initialized.then(|| SecretKeyRef {
            name: format!("{name}-kubeconfig"),
            key: "value".into(),
        }),
        control_plane: Some(ReplicaStatus {
            certificates_expiry_date: observed
                .certificates_expiry
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            ..cp
        }),
        workers: pools,
        addons: match &progress.addons {
            AddonsProgress::Synced(states) => states.clone(),
            AddonsProgress::NoAddons => Vec::new(),
            _ => previous.addons,
        },
        upgrade: if progress.running.is_some() {
            progress.upgrade.clone()
        } else {
            previous.upgrade
        },
        standards,
    }
}

/// The phase a user sees first: `Deleting`, `Failed` (invalid spec), `Upgrading`, `Ready`,
/// `Provisioning` (the Cluster exists) or `Pending`.
pub fn phase(
    cluster: &KaasCluster,
    progress: &Progress,
    observed: &Observed,
    all_ready: bool,
) -> ClusterPhase {
    if cluster.metadata.deletion_timestamp.is_some() {
        ClusterPhase::Deleting
    } else if progress.invalid.is_some() {
        ClusterPhase::Failed
    } else if progress.upgrade.is_some() {
        ClusterPhase::Upgrading
    } else if all_ready {
        ClusterPhase::Ready
    } else if observed.cluster.is_some() {
        ClusterPhase::Provisioning
    } else {
        ClusterPhase::Pending
    }
}

/// The `metav1.Condition`, keeping the last transition time while its status is unchanged.
fn to_condition(
    c: Cond,
    cluster: &KaasCluster,
    previous: &KaasClusterStatus,
    now: &Time,
) -> Condition {
    let status = if c.ok { "True" } else { "False" };
    let keep = previous
        .conditions
        .iter()
        .find(|p| p.type_ == c.type_.as_str() && p.status == status)
        .map(|p| p.last_transition_time.clone());
    Condition {
        type_: c.type_.as_str().to_string(),
        status: status.to_string(),
        reason: c.reason,
        message: c.message,
        observed_generation: cluster.metadata.generation,
        last_transition_time: keep.unwrap_or_else(|| now.clone()),
    }
}
