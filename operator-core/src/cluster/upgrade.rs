//! Upgrade step of the pipeline (pure): when the Kubernetes version or the stack version of a
//! running cluster changes, the move is orchestrated instead of applied at once:
//!
//! 1. `PreUpgrade`: the new release's `preUpgrade` add-ons are applied and must be healthy;
//! 2. for each Kubernetes minor on the way (a jump of two minors is a chain of two steps):
//!    `ControlPlane` (the control plane moves, workers stay) until every control plane
//!    machine runs the step's version, then `Workers` until every pool rolled;
//! 3. `PostUpgrade`: every add-on of the new release, pruning what it dropped.
//!
//! The plan and the stage are kept in `status.upgrade`, so a restarted operator resumes where
//! it stopped. A stage that does not finish is retried with growing pauses and shows what it
//! waits for; an operator-admin can skip it with the annotation [`SKIP_ANNOTATION`] set to the
//! stage's name.

use api::v1beta1::{KaasClusterStatus, UpgradeStatus};
use api::version::KubeVersion;

use crate::cluster::status::Observed;

/// Annotation on a `KaasCluster` whose value names a stage to skip (`PreUpgrade`, ...).
pub const SKIP_ANNOTATION: &str = "kaas.scs.community/skip-upgrade-stage";

/// Stage names, as kept in `status.upgrade.stage`.
pub mod stages {
    /// Pre-upgrade add-ons.
    pub const PRE: &str = "PreUpgrade";
    /// The control plane moves.
    pub const CONTROL_PLANE: &str = "ControlPlane";
    /// The worker pools move.
    pub const WORKERS: &str = "Workers";
    /// Post-upgrade add-ons.
    pub const POST: &str = "PostUpgrade";
}

/// What the add-ons step should do in this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddonScope {
    /// Every add-on of the release (no upgrade, or the post-upgrade stage).
    All,
    /// Only the `preUpgrade` add-ons.
    PreUpgradeOnly,
    /// Leave the workload cluster's add-ons as they are (machines are rolling).
    Untouched,
}

/// The versions to render and the add-on scope for this reconcile, and the upgrade state.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Version of the control plane.
    pub control_plane_version: String,
    /// Version of the worker pools.
    pub workers_version: String,
    /// The stack version the worker pools' images come from.
    pub workers_stack_version: String,
    /// What the add-ons step does.
    pub addons: AddonScope,
    /// The upgrade to record, when one is in progress.
    pub upgrade: Option<UpgradeStatus>,
    /// The version the whole cluster runs (for `status.kubernetesVersion`).
    pub running_version: String,
    /// The stack version in use (for `status.clusterStackVersion`).
    pub running_stack: String,
}

/// The chain of full versions from `from` to `to`, one minor per step, each the newest patch
/// of its minor in `supported` (the last is `to` itself). Refused when a minor on the way is
/// not supported, or when `to` is older than `from`.
pub fn chain(from: &str, to: &str, supported: &[String]) -> Result<Vec<String>, String> {
    let parse = |v: &str| KubeVersion::parse(v).map_err(|e| format!("{v}: {e}"));
    let (f, t) = (parse(from)?, parse(to)?);
    if t.major != f.major || t.minor < f.minor {
        return Err(format!("Kubernetes cannot move from {from} to {to}"));
    }
    let mut steps = Vec::new();
    for minor in f.minor + 1..t.minor {
        let wanted = KubeVersion {
            major: f.major,
            minor,
            patch: None,
        };
        let step = api::version::newest_match(&wanted, supported).ok_or_else(|| {
            format!(
                "no patch of Kubernetes {}.{minor} in the stack to pass through from {from} to {to}",
                f.major
            )
        })?;
        steps.push(step.to_string());
    }
    steps.push(to.to_string());
    Ok(steps)
}

/// Why the control plane has not finished moving to `version`, or `None` when it has.
fn control_plane_waits(observed: &Observed, version: &str, replicas: i64) -> Option<String> {
    let Some(kcp) = &observed.control_plane else {
        return Some("the control plane is not observed yet".into());
    };
    let at = kcp.version().unwrap_or("?");
    let up = kcp.up_to_date_replicas();
    let ready = kcp.ready_replicas();
    if at == format!("v{version}") && up >= replicas && ready >= replicas {
        None
    } else {
        Some(format!(
            "control plane at {at}, {up} of {replicas} machines up to date with v{version}"
        ))
    }
}

/// Why the worker pools have not finished rolling, or `None` when they have.
fn workers_wait(observed: &Observed, pools: &[(String, i64)]) -> Option<String> {
    let lagging: Vec<String> = pools
        .iter()
        .filter_map(|(name, replicas)| {
            let Some(md) = observed.machine_deployments.get(name) else {
                return Some(format!("{name} (not observed)"));
            };
            let up = md.up_to_date_replicas();
            (md.observed_generation() < md.generation() || up < *replicas)
                .then(|| format!("{name} ({up} of {replicas} up to date)"))
        })
        .collect();
    (!lagging.is_empty()).then(|| format!("waiting for pools: {}", lagging.join(", ")))
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The status as last written.
    pub previous: &'a KaasClusterStatus,
    /// The resolved target Kubernetes version.
    pub target_version: &'a str,
    /// The target stack version.
    pub target_stack: &'a str,
    /// Versions the target release supports.
    pub supported: &'a [String],
    /// What Cluster API shows.
    pub observed: &'a Observed,
    /// Control plane replicas asked for.
    pub control_plane_replicas: i64,
    /// Worker pools and their replicas.
    pub pools: &'a [(String, i64)],
    /// The stage an operator-admin asked to skip, if any.
    pub skip: Option<&'a str>,
}

/// Decides what this reconcile renders, advancing the upgrade through the stages whose end
/// the observed Cluster API objects show. (The add-on stages advance in [`after_addons`].)
pub fn decide(i: &Inputs<'_>) -> Result<Decision, String> {
    let target = Decision {
        control_plane_version: i.target_version.to_string(),
        workers_version: i.target_version.to_string(),
        workers_stack_version: i.target_stack.to_string(),
        addons: AddonScope::All,
        upgrade: None,
        running_version: i.target_version.to_string(),
        running_stack: i.target_stack.to_string(),
    };
    let (Some(from), Some(from_stack)) = (
        i.previous.kubernetes_version.as_deref(),
        i.previous.cluster_stack_version.as_deref(),
    ) else {
        // A new cluster: built at the target at once.
        return Ok(target);
    };
    let mut upgrade = match &i.previous.upgrade {
        Some(u)
            if u.steps.last().map(String::as_str) == Some(i.target_version)
                && u.to_stack_version == i.target_stack
                && consistent(u, i.supported) =>
        {
            u.clone()
        }
        // A new target (or a changed one mid-way): plan from what the whole cluster runs.
        _ if from == i.target_version && from_stack == i.target_stack => return Ok(target),
        _ => UpgradeStatus {
            from_kubernetes_version: from.to_string(),
            from_stack_version: from_stack.to_string(),
            to_stack_version: i.target_stack.to_string(),
            steps: chain(from, i.target_version, i.supported)?,
            step: 0,
            stage: stages::PRE.into(),
            attempts: 0,
            message: None,
        },
    };
    // Advance through the machine stages as far as Cluster API shows they are done.
    loop {
        let step = upgrade.step.max(0) as usize;
        let version = upgrade.steps.get(step).cloned().unwrap_or_default();
        let skip = i.skip == Some(upgrade.stage.as_str());
        let waits = match upgrade.stage.as_str() {
            stages::CONTROL_PLANE => {
                control_plane_waits(i.observed, &version, i.control_plane_replicas)
            }
            stages::WORKERS => workers_wait(i.observed, i.pools),
            _ => break,
        };
        match waits {
            Some(message) if !skip => {
                upgrade.message = Some(message);
                break;
            }
            _ => {
                upgrade.attempts = 0;
                upgrade.message = None;
                if upgrade.stage == stages::CONTROL_PLANE {
                    upgrade.stage = stages::WORKERS.into();
                    // The pools get their new version in this reconcile: what is observed of
                    // them predates it, so their end is judged next time.
                    break;
                } else if step + 1 < upgrade.steps.len() {
                    upgrade.step += 1;
                    upgrade.stage = stages::CONTROL_PLANE.into();
                } else {
                    upgrade.stage = stages::POST.into();
                }
            }
        }
    }
    let step = upgrade.step.max(0) as usize;
    let version = upgrade.steps.get(step).cloned().unwrap_or_default();
    let previous_version = match step.checked_sub(1) {
        Some(before) => upgrade.steps.get(before).cloned().unwrap_or_default(),
        None => upgrade.from_kubernetes_version.clone(),
    };
    let (cp, workers, workers_stack, addons) = match upgrade.stage.as_str() {
        stages::PRE => (
            previous_version.clone(),
            previous_version.clone(),
            upgrade.from_stack_version.clone(),
            AddonScope::PreUpgradeOnly,
        ),
        stages::CONTROL_PLANE => (
            version.clone(),
            previous_version.clone(),
            if step == 0 {
                upgrade.from_stack_version.clone()
            } else {
                upgrade.to_stack_version.clone()
            },
            AddonScope::Untouched,
        ),
        stages::WORKERS => (
            version.clone(),
            version.clone(),
            upgrade.to_stack_version.clone(),
            AddonScope::Untouched,
        ),
        _ => (
            version.clone(),
            version.clone(),
            upgrade.to_stack_version.clone(),
            AddonScope::All,
        ),
    };
    let running = if upgrade.stage == stages::POST {
        version
    } else {
        previous_version
    };
    Ok(Decision {
        control_plane_version: cp,
        workers_version: workers,
        workers_stack_version: workers_stack,
        addons,
        running_version: running,
        running_stack: upgrade.from_stack_version.clone(),
        upgrade: Some(upgrade),
    })
}

/// Whether an upgrade read back from status is one this operator could have written: its
/// step within its chain, a known stage, every step a version the stack supports. Anyone
/// who may patch the status subresource can write anything there; an upgrade that is not
/// consistent is planned anew from what the whole cluster runs.
fn consistent(u: &UpgradeStatus, supported: &[String]) -> bool {
    usize::try_from(u.step).is_ok_and(|s| s < u.steps.len())
        && [
            stages::PRE,
            stages::CONTROL_PLANE,
            stages::WORKERS,
            stages::POST,
        ]
        .contains(&u.stage.as_str())
        && u.steps.iter().all(|s| supported.contains(s))
}

/// Advances an add-on stage once the add-ons step ran: `addons_ready` is whether the add-ons
/// of the stage are healthy. A finished upgrade leaves the decision with no upgrade and the
/// target as what runs.
pub fn after_addons(decision: &mut Decision, addons_ready: bool, skip: Option<&str>) {
    let Some(upgrade) = decision.upgrade.as_mut() else {
        return;
    };
    let done = addons_ready || skip == Some(upgrade.stage.as_str());
    match (upgrade.stage.as_str(), done) {
        (stages::PRE, true) => {
            upgrade.stage = stages::CONTROL_PLANE.into();
            upgrade.attempts = 0;
            upgrade.message = None;
        }
        (stages::POST, true) => {
            decision.running_stack = upgrade.to_stack_version.clone();
            decision.upgrade = None;
        }
        (stages::PRE | stages::POST, false) => {
            upgrade.attempts = upgrade.attempts.saturating_add(1);
            upgrade.message = Some("waiting for the stage's add-ons to be healthy".into());
        }
        _ => {}
    }
}

/// The pause before the next check of a stage that is not done: 5 s, doubling per attempt,
/// at most 5 minutes.
pub fn backoff(attempts: i32) -> std::time::Duration {
    let secs = 5u64.saturating_mul(1 << attempts.clamp(0, 6));
    std::time::Duration::from_secs(secs.min(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn supported() -> Vec<String> {
        ["1.33.4", "1.34.1", "1.35.0"].map(String::from).to_vec()
    }

    #[test]
    fn a_two_minor_jump_is_a_chain_of_two_steps() {
        assert_eq!(
            chain("1.33.4", "1.35.0", &supported()).unwrap(),
            vec!["1.34.1", "1.35.0"]
        );
        assert_eq!(
            chain("1.34.1", "1.34.1", &supported()).unwrap(),
            vec!["1.34.1"]
        );
        assert!(
            chain("1.35.0", "1.34.1", &supported()).is_err(),
            "never down"
        );
        let err = chain("1.32.1", "1.35.0", &["1.35.0".to_string()]).unwrap_err();
        assert!(err.contains("1.33"), "{err}");
    }

    fn observed(cp_version: &str, md_generation: i64, md_seen: i64) -> Observed {
        let owned = |v| serde_json::from_value(v).unwrap();
        Observed {
            control_plane: Some(owned(
                json!({"status": {"version": cp_version, "upToDateReplicas": 1, "readyReplicas": 1}}),
            )),
            machine_deployments: [(
                "md-0".to_string(),
                owned(
                    json!({"metadata": {"generation": md_generation}, "status": {"observedGeneration": md_seen, "upToDateReplicas": 2}}),
                ),
            )]
            .into(),
            ..Observed::default()
        }
    }

    #[test]
    fn stages_go_pre_control_plane_workers_post_and_one_minor_at_a_time() {
        let pools = vec![("md-0".to_string(), 2)];
        let mut previous = KaasClusterStatus {
            kubernetes_version: Some("1.33.4".into()),
            cluster_stack_version: Some("1.0.0".into()),
            ..Default::default()
        };
        let obs = observed("v1.33.4", 1, 1);
        let inputs = |previous: &KaasClusterStatus, obs: &Observed| {
            decide(&Inputs {
                previous,
                target_version: "1.35.0",
                target_stack: "1.1.0",
                supported: &supported(),
                observed: obs,
                control_plane_replicas: 1,
                pools: &pools,
                skip: None,
            })
            .unwrap()
        };
        let mut d = inputs(&previous, &obs);
        assert_eq!(d.addons, AddonScope::PreUpgradeOnly);
        assert_eq!(
            (d.control_plane_version.as_str(), d.workers_version.as_str()),
            ("1.33.4", "1.33.4")
        );
        after_addons(&mut d, true, None);
        assert_eq!(d.upgrade.as_ref().unwrap().stage, stages::CONTROL_PLANE);
        previous.upgrade = d.upgrade.clone();

        let d = inputs(&previous, &obs);
        assert_eq!(
            (d.control_plane_version.as_str(), d.workers_version.as_str()),
            ("1.34.1", "1.33.4")
        );
        assert_eq!(d.addons, AddonScope::Untouched);
        assert!(
            d.upgrade
                .as_ref()
                .unwrap()
                .message
                .as_ref()
                .unwrap()
                .contains("control plane at v1.33.4")
        );
        previous.upgrade = d.upgrade.clone();

        // The control plane reached 1.34.1; the pools have not rolled (generation not seen).
        let d = inputs(&previous, &observed("v1.34.1", 2, 1));
        assert_eq!(d.upgrade.as_ref().unwrap().stage, stages::WORKERS);
        assert_eq!(d.workers_version, "1.34.1");
        previous.upgrade = d.upgrade.clone();

        // Pools rolled: the second step starts with the control plane.
        let d = inputs(&previous, &observed("v1.34.1", 2, 2));
        let u = d.upgrade.clone().unwrap();
        assert_eq!((u.step, u.stage.as_str()), (1, stages::CONTROL_PLANE));
        assert_eq!(
            (d.control_plane_version.as_str(), d.workers_version.as_str()),
            ("1.35.0", "1.34.1")
        );
        assert_eq!(d.running_version, "1.34.1");
        previous.upgrade = d.upgrade.clone();

        // The control plane reached 1.35.0: the pools are judged only once re-observed.
        let d = inputs(&previous, &observed("v1.35.0", 3, 3));
        assert_eq!(d.upgrade.as_ref().unwrap().stage, stages::WORKERS);
        previous.upgrade = d.upgrade.clone();
        let mut d = inputs(&previous, &observed("v1.35.0", 3, 3));
        assert_eq!(d.upgrade.as_ref().unwrap().stage, stages::POST);
        assert_eq!(d.addons, AddonScope::All);
        after_addons(&mut d, false, None);
        assert_eq!(
            d.upgrade.as_ref().unwrap().attempts,
            1,
            "waits and backs off"
        );
        after_addons(&mut d, false, Some(stages::POST));
        assert!(d.upgrade.is_none(), "an admin skipped the stage");
        assert_eq!(
            (d.running_version.as_str(), d.running_stack.as_str()),
            ("1.35.0", "1.1.0")
        );
    }
}
