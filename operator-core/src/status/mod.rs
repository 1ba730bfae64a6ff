//! Status step of the pipeline (pure): what Cluster API reports, turned into the
//! `KaasCluster` status a user reads: phase, conditions with actionable reasons, replica
//! counts, the kubeconfig Secret. A condition that did not change keeps its transition time,
//! so an unchanged world computes an identical status and nothing is written.

use api::v1beta1::{
    AddonStatus, KaasCluster, KaasClusterStatus, PoolStatus, ReplicaStatus, SecretKeyRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use crate::render::control_plane_name;

/// Condition types, fixed by the API contract.
pub mod types {
    /// Everything below is true.
    pub const READY: &str = "Ready";
    /// The stack release and Kubernetes version were found.
    pub const STACK_RESOLVED: &str = "StackResolved";
    /// The node images exist.
    pub const NODE_IMAGES_READY: &str = "NodeImagesReady";
    /// The provider's infrastructure (networks, load balancer) is provisioned.
    pub const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
    /// Every control plane machine is ready.
    pub const CONTROL_PLANE_READY: &str = "ControlPlaneReady";
    /// Every worker pool has its ready replicas.
    pub const WORKERS_READY: &str = "WorkersReady";
    /// The stack's add-ons are applied and healthy.
    pub const ADDONS_READY: &str = "AddonsReady";
    /// A version change is rolling out.
    pub const UPGRADING: &str = "Upgrading";
    /// The workload cluster has every component of its stack's base and the application
    /// surface (only for a stack built on a base).
    pub const COMPLIANT: &str = "Compliant";
}

/// What the pipeline found before looking at Cluster API.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The resolved full Kubernetes version, once resolved.
    pub kubernetes_version: Option<String>,
    /// Why the stack or version could not be resolved.
    pub stack_problem: Option<(String, String)>,
    /// Why the node images are not ready.
    pub image_problem: Option<(String, String)>,
    /// Why the spec was refused.
    pub invalid: Option<String>,
    /// A transient failure to report (reason, message).
    pub failure: Option<(String, String)>,
    /// Where the add-ons stand.
    pub addons: AddonsProgress,
    /// The Kubernetes and stack versions the whole cluster runs, once decided.
    pub running: Option<(String, String)>,
    /// The upgrade in progress.
    pub upgrade: Option<api::v1beta1::UpgradeStatus>,
    /// Stack versions the cluster can move to.
    pub available_upgrades: Vec<String>,
    /// The compliance check of this reconcile (ok, reason, message); `None` keeps the last.
    pub compliance: Option<(bool, String, String)>,
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

/// Whether Cluster API reports the control plane initialized (the workload API answers).
pub fn control_plane_initialized(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        truthy(c, &["status", "initialization", "controlPlaneInitialized"])
            || capi_condition_true(c, "ControlPlaneInitialized")
    })
}

fn addons_condition(progress: &AddonsProgress) -> Cond {
    let t = types::ADDONS_READY;
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

/// The Cluster API objects of the cluster as last observed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The `Cluster`.
    pub cluster: Option<Value>,
    /// The `KubeadmControlPlane`.
    pub control_plane: Option<Value>,
    /// The `MachineDeployment`s, by pool name.
    pub machine_deployments: std::collections::BTreeMap<String, Value>,
}

fn int(v: &Value, path: &[&str]) -> i32 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_i64().unwrap_or(0) as i32
}

fn replicas(obj: Option<&Value>, desired: i32) -> ReplicaStatus {
    let Some(obj) = obj else {
        return ReplicaStatus {
            desired,
            ..Default::default()
        };
    };
    ReplicaStatus {
        desired,
        replicas: int(obj, &["status", "replicas"]),
        ready_replicas: int(obj, &["status", "readyReplicas"]),
        up_to_date_replicas: int(obj, &["status", "upToDateReplicas"]),
    }
}

fn truthy(v: &Value, path: &[&str]) -> bool {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_bool() == Some(true)
}

fn capi_condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

struct Cond {
    type_: &'static str,
    ok: bool,
    reason: String,
    message: String,
}

fn cond(type_: &'static str, ok: bool, reason: &str, message: impl Into<String>) -> Cond {
    Cond {
        type_,
        ok,
        reason: reason.to_string(),
        message: message.into(),
    }
}

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
    let mut conds = Vec::new();

    match (&progress.invalid, &progress.stack_problem) {
        (Some(msg), _) => conds.push(cond(
            types::STACK_RESOLVED,
            false,
            "InvalidSpec",
            msg.clone(),
        )),
        (None, Some((reason, msg))) => {
            conds.push(cond(types::STACK_RESOLVED, false, reason, msg.clone()))
        }
        (None, None) => conds.push(cond(
            types::STACK_RESOLVED,
            progress.kubernetes_version.is_some(),
            "Resolved",
            format!(
                "stack {} {} with Kubernetes {}",
                spec.cluster_stack.name,
                spec.cluster_stack.version.as_deref().unwrap_or("?"),
                progress.kubernetes_version.as_deref().unwrap_or("?")
            ),
        )),
    }
    match &progress.image_problem {
        Some((reason, msg)) => {
            conds.push(cond(types::NODE_IMAGES_READY, false, reason, msg.clone()))
        }
        None if progress.kubernetes_version.is_some() && progress.invalid.is_none() => {
            conds.push(cond(
                types::NODE_IMAGES_READY,
                true,
                "Available",
                "node images are available",
            ))
        }
        None => conds.push(cond(
            types::NODE_IMAGES_READY,
            false,
            "Waiting",
            "waiting for the stack to resolve",
        )),
    }

    let infra_ready = observed.cluster.as_ref().is_some_and(|c| {
        truthy(
            c,
            &["status", "initialization", "infrastructureProvisioned"],
        ) || capi_condition_true(c, "InfrastructureReady")
    });
    conds.push(match &observed.cluster {
        None => cond(
            types::INFRASTRUCTURE_READY,
            false,
            "NotCreated",
            "the Cluster API Cluster does not exist yet",
        ),
        Some(_) if infra_ready => cond(
            types::INFRASTRUCTURE_READY,
            true,
            "Provisioned",
            "infrastructure is provisioned",
        ),
        Some(_) => cond(
            types::INFRASTRUCTURE_READY,
            false,
            "Provisioning",
            "waiting for the infrastructure provider",
        ),
    });

    let cp_desired = spec.control_plane.replicas.unwrap_or(3);
    let cp = replicas(observed.control_plane.as_ref(), cp_desired);
    let cp_ready = observed.control_plane.is_some()
        && cp.ready_replicas >= cp_desired
        && cp.replicas == cp_desired;
    conds.push(if cp_ready {
        cond(
            types::CONTROL_PLANE_READY,
            true,
            "Ready",
            format!("{cp_desired} of {cp_desired} control plane machines ready"),
        )
    } else {
        cond(
            types::CONTROL_PLANE_READY,
            false,
            if observed.control_plane.is_some() {
                "ScalingUp"
            } else {
                "NotCreated"
            },
            format!(
                "{} of {cp_desired} control plane machines ready ({})",
                cp.ready_replicas,
                control_plane_name(&name)
            ),
        )
    });

    let mut pools = Vec::new();
    let mut lagging = Vec::new();
    for pool in &spec.workers {
        let md = observed.machine_deployments.get(&pool.name);
        let r = replicas(md, pool.replicas);
        // An autoscaled pool's size is the autoscaler's: ready when every machine it has is
        // ready and the lower bound is met.
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
    let workers_ready = lagging.is_empty();
    conds.push(if workers_ready {
        cond(
            types::WORKERS_READY,
            true,
            "Ready",
            format!("{} pools ready", spec.workers.len()),
        )
    } else {
        cond(
            types::WORKERS_READY,
            false,
            "ScalingUp",
            format!("waiting for pools: {}", lagging.join(", ")),
        )
    });
    let addons = addons_condition(&progress.addons);
    let addons_ready = addons.ok;
    conds.push(addons);
    conds.push(match &progress.upgrade {
        None => cond(
            types::UPGRADING,
            false,
            "NoUpgrade",
            "no upgrade in progress",
        ),
        Some(u) => cond(
            types::UPGRADING,
            true,
            &u.stage,
            format!(
                "step {} of {} (Kubernetes {}, stack {} to {}): {}",
                u.step + 1,
                u.steps.len(),
                u.steps
                    .get(u.step.max(0) as usize)
                    .map_or("?", String::as_str),
                u.from_stack_version,
                u.to_stack_version,
                u.message.as_deref().unwrap_or("in progress")
            ),
        ),
    });

    let compliance = match &progress.compliance {
        Some((ok, reason, message)) => Some(cond(types::COMPLIANT, *ok, reason, message.clone())),
        None => previous
            .conditions
            .iter()
            .find(|c| c.type_ == types::COMPLIANT)
            .map(|c| {
                cond(
                    types::COMPLIANT,
                    c.status == "True",
                    &c.reason,
                    c.message.clone(),
                )
            }),
    };

    let base_ready = progress.invalid.is_none()
        && progress.failure.is_none()
        && progress.kubernetes_version.is_some()
        && progress.image_problem.is_none()
        && infra_ready
        && cp_ready
        && workers_ready
        && addons_ready;
    let first_problem = conds.iter().find(|c| !c.ok && c.type_ != types::UPGRADING);
    conds.insert(
        0,
        match (&progress.failure, base_ready, first_problem) {
            (Some((reason, msg)), _, _) => cond(types::READY, false, reason, msg.clone()),
            (None, true, _) => cond(types::READY, true, "Ready", "the cluster is ready"),
            (None, false, Some(p)) => cond(
                types::READY,
                false,
                &format!(
                    "{}NotReady",
                    p.type_
                        .trim_end_matches("Ready")
                        .trim_end_matches("Resolved")
                ),
                format!("{}: {}", p.type_, p.message),
            ),
            (None, false, None) => cond(types::READY, false, "NotReady", "waiting"),
        },
    );

    // Informational: a cluster being put back into shape is still ready.
    conds.extend(compliance);

    let phase = if cluster.metadata.deletion_timestamp.is_some() {
        "Deleting"
    } else if progress.invalid.is_some() {
        "Failed"
    } else if progress.upgrade.is_some() {
        "Upgrading"
    } else if base_ready {
        "Ready"
    } else if observed.cluster.is_some() {
        "Provisioning"
    } else {
        "Pending"
    };

    let conditions = conds
        .into_iter()
        .map(|c| {
            let status = if c.ok { "True" } else { "False" };
            let keep = previous
                .conditions
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason,
                message: c.message,
                observed_generation: cluster.metadata.generation,
                last_transition_time: keep.unwrap_or_else(|| now.clone()),
            }
        })
        .collect();

    let cp_initialized = control_plane_initialized(observed);
    KaasClusterStatus {
        observed_generation: cluster.metadata.generation,
        phase: Some(phase.to_string()),
        conditions,
        kubernetes_version: progress
            .running
            .as_ref()
            .map(|r| r.0.clone())
            .or_else(|| progress.kubernetes_version.clone())
            .or(previous.kubernetes_version),
        cluster_stack_version: progress
            .running
            .as_ref()
            .map(|r| r.1.clone())
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
        control_plane: Some(cp),
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
    }
}
