//! One function per condition of a `KaasCluster` (pure): each reads the pipeline's progress or
//! what Cluster API reports and says whether its part holds, with a constant reason and a
//! message a user can act on. [`super::compute`] puts them together and derives `Ready`.

use api::v1beta1::{
    ClusterCondition, KaasClusterSpec, KaasClusterStatus, PoolStatus, ReplicaStatus,
};

use super::observe::infrastructure_provisioned;
use super::{AddonsProgress, Observed, Progress};
use crate::cluster::render::control_plane_name;

/// One condition before it becomes a `metav1.Condition`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// Its type.
    pub type_: ClusterCondition,
    /// Whether it holds.
    pub ok: bool,
    /// Why, in one CamelCase word.
    pub reason: String,
    /// Why, for a person.
    pub message: String,
}

fn cond(type_: ClusterCondition, ok: bool, reason: &str, message: impl Into<String>) -> Cond {
    Cond {
        type_,
        ok,
        reason: reason.to_string(),
        message: message.into(),
    }
}

/// The replica counts `obj` reports against `desired`; all zero but `desired` when it does
/// not exist.
fn counts(obj: Option<&crate::owned::Owned>, desired: i32) -> ReplicaStatus {
    obj.map_or_else(
        || ReplicaStatus {
            desired,
            ..Default::default()
        },
        |o| o.replica_status(desired),
    )
}

/// `StackResolved`: the spec is valid and its stack release and Kubernetes version were found.
pub fn stack_resolved(progress: &Progress, spec: &KaasClusterSpec) -> Cond {
    let t = ClusterCondition::StackResolved;
    match (&progress.invalid, &progress.stack_problem) {
        (Some(msg), _) => cond(t, false, "InvalidSpec", msg.clone()),
        (None, Some(p)) => cond(t, false, &p.reason, p.message.clone()),
        (None, None) => cond(
            t,
            progress.kubernetes_version.is_some(),
            "Resolved",
            format!(
                "stack {} {} with Kubernetes {}",
                spec.cluster_stack.name,
                spec.cluster_stack.version.as_deref().unwrap_or("?"),
                progress.kubernetes_version.as_deref().unwrap_or("?")
            ),
        ),
    }
}

/// `NodeImagesReady`: the provider has the node images (after the stack resolved).
pub fn node_images_ready(progress: &Progress) -> Cond {
    let t = ClusterCondition::NodeImagesReady;
    match &progress.image_problem {
        Some(p) => cond(t, false, &p.reason, p.message.clone()),
        None if progress.kubernetes_version.is_some() && progress.invalid.is_none() => {
            cond(t, true, "Available", "node images are available")
        }
        None => cond(t, false, "Waiting", "waiting for the stack to resolve"),
    }
}

/// `InfrastructureReady`: Cluster API reports the infrastructure provisioned.
pub fn infrastructure_ready(observed: &Observed) -> Cond {
    let t = ClusterCondition::InfrastructureReady;
    match &observed.cluster {
        None => cond(
            t,
            false,
            "NotCreated",
            "the Cluster API Cluster does not exist yet",
        ),
        Some(_) if infrastructure_provisioned(observed) => {
            cond(t, true, "Provisioned", "infrastructure is provisioned")
        }
        Some(_) => cond(
            t,
            false,
            "Provisioning",
            "waiting for the infrastructure provider",
        ),
    }
}

/// `ControlPlaneReady`: the control plane has exactly the replicas asked, all ready; with the
/// replica counts for the status.
pub fn control_plane_ready(
    name: &str,
    spec: &KaasClusterSpec,
    observed: &Observed,
) -> (Cond, ReplicaStatus) {
    let t = ClusterCondition::ControlPlaneReady;
    let desired = spec.control_plane.replicas.unwrap_or(3);
    let cp = counts(observed.control_plane.as_ref(), desired);
    let ready =
        observed.control_plane.is_some() && cp.ready_replicas >= desired && cp.replicas == desired;
    let c = if ready {
        cond(
            t,
            true,
            "Ready",
            format!("{desired} of {desired} control plane machines ready"),
        )
    } else {
        cond(
            t,
            false,
            if observed.control_plane.is_some() {
                "ScalingUp"
            } else {
                "NotCreated"
            },
            format!(
                "{} of {desired} control plane machines ready ({})",
                cp.ready_replicas,
                control_plane_name(name)
            ),
        )
    };
    (c, cp)
}

/// `WorkersReady`: every pool has its ready replicas (an autoscaled pool: every machine it has
/// and at least its lower bound); with each pool's counts for the status.
pub fn workers_ready(spec: &KaasClusterSpec, observed: &Observed) -> (Cond, Vec<PoolStatus>) {
    let t = ClusterCondition::WorkersReady;
    let mut pools = Vec::new();
    let mut lagging = Vec::new();
    for pool in &spec.workers {
        let md = observed.machine_deployments.get(&pool.name);
        let r = counts(md, pool.replicas);
        // An autoscaled pool's size is the autoscaler's.
        let want = if pool.min_replicas.is_some() || pool.max_replicas.is_some() {
            r.replicas.max(pool.min_replicas.unwrap_or(0))
        } else {
            pool.replicas
        };
        if md.is_none() || r.ready_replicas < want {
            lagging.push(format!(
                "{} ({} of {} ready)",
                pool.name, r.ready_replicas, want
            ));
        }
        pools.push(PoolStatus {
            name: pool.name.clone(),
            desired: r.desired,
            replicas: r.replicas,
            ready_replicas: r.ready_replicas,
            up_to_date_replicas: r.up_to_date_replicas,
        });
    }
    let c = if lagging.is_empty() {
        cond(
            t,
            true,
            "Ready",
            format!("{} pools ready", spec.workers.len()),
        )
    } else {
        cond(
            t,
            false,
            "ScalingUp",
            format!("waiting for pools: {}", lagging.join(", ")),
        )
    };
    (c, pools)
}

/// `AddonsReady`: where the add-ons step left the stack's add-ons.
pub fn addons_ready(progress: &AddonsProgress) -> Cond {
    let t = ClusterCondition::AddonsReady;
    match progress {
        AddonsProgress::Pending => cond(t, false, "Waiting", "waiting for the cluster to be built"),
        AddonsProgress::NoAddons => cond(t, true, "NoAddons", "the stack has no add-ons"),
        AddonsProgress::Waiting(m) => cond(t, false, "WaitingForWorkloadCluster", m.clone()),
        AddonsProgress::Invalid(m) => cond(t, false, "InvalidAddonValues", m.clone()),
        AddonsProgress::Failed(m) => cond(t, false, "WorkloadClusterFailed", m.clone()),
        AddonsProgress::Refused(m) => cond(t, false, "KubeconfigRefused", m.clone()),
        AddonsProgress::Synced(states) => match states.iter().find(|s| !s.ready) {
            None => cond(
                t,
                true,
                "Healthy",
                format!("{} add-ons healthy", states.len()),
            ),
            Some(s) => cond(
                t,
                false,
                "Progressing",
                format!(
                    "{}: {}",
                    s.name,
                    s.message.as_deref().unwrap_or("not ready")
                ),
            ),
        },
    }
}

/// `Upgrading`: true while a version change rolls out, its reason the stage.
pub fn upgrading(progress: &Progress) -> Cond {
    let t = ClusterCondition::Upgrading;
    match &progress.upgrade {
        None => cond(t, false, "NoUpgrade", "no upgrade in progress"),
        Some(u) => cond(
            t,
            true,
            &u.stage,
            format!(
                "step {} of {} (Kubernetes {}, stack {} to {}): {}",
                u.step.saturating_add(1),
                u.steps.len(),
                usize::try_from(u.step)
                    .ok()
                    .and_then(|i| u.steps.get(i))
                    .map_or("?", String::as_str),
                u.from_stack_version,
                u.to_stack_version,
                u.message.as_deref().unwrap_or("in progress")
            ),
        ),
    }
}

/// `Compliant`: this reconcile's check, else the last one (the check runs only when the
/// add-ons are synced); none for a stack without a base.
pub fn compliant(progress: &Progress, previous: &KaasClusterStatus) -> Option<Cond> {
    let t = ClusterCondition::Compliant;
    match &progress.compliance {
        Some(v) => Some(cond(t, v.ok, &v.reason, v.message.clone())),
        None => previous
            .conditions
            .iter()
            .find(|c| c.type_ == t.as_str())
            .map(|c| cond(t, c.status == "True", &c.reason, c.message.clone())),
    }
}

/// `WithinTenantPolicy`, only where a `TenantPolicy` governs the cluster's namespace: false,
/// naming the policy and what is over, when its namespaces use more than it allows now (it
/// was lowered below their usage). Nothing that exists is changed for it; kaas-webhooks
/// refuses growth. Not part of `Ready`.
pub fn within_tenant_policy(observed: &Observed) -> Option<Cond> {
    let t = ClusterCondition::WithinTenantPolicy;
    if observed.policies.is_empty() {
        return None;
    }
    let over: Vec<String> = observed
        .policies
        .iter()
        .filter_map(|s| {
            s.over
                .as_ref()
                .map(|m| format!("TenantPolicy {}: {m}", s.policy))
        })
        .collect();
    let names: Vec<&str> = observed
        .policies
        .iter()
        .map(|s| s.policy.as_str())
        .collect();
    Some(if over.is_empty() {
        cond(
            t,
            true,
            "WithinLimits",
            format!("within the limits of TenantPolicy {}", names.join(", ")),
        )
    } else {
        cond(t, false, "OverTenantPolicy", over.join("; "))
    })
}

/// `Ready`: a reported failure, else true when `all_ready`, else the first condition that does
/// not hold (`Upgrading` aside) names the reason (`ControlPlaneNotReady`).
pub fn ready(progress: &Progress, all_ready: bool, others: &[Cond]) -> Cond {
    let t = ClusterCondition::Ready;
    let first_problem = others
        .iter()
        .find(|c| !c.ok && c.type_ != ClusterCondition::Upgrading);
    match (&progress.failure, all_ready, first_problem) {
        (Some(p), _, _) => cond(t, false, &p.reason, p.message.clone()),
        (None, true, _) => cond(t, true, "Ready", "the cluster is ready"),
        (None, false, Some(p)) => cond(
            t,
            false,
            &format!(
                "{}NotReady",
                p.type_
                    .as_str()
                    .trim_end_matches("Ready")
                    .trim_end_matches("Resolved")
            ),
            format!("{}: {}", p.type_, p.message),
        ),
        (None, false, None) => cond(t, false, "NotReady", "waiting"),
    }
}
