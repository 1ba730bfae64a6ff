//! The rollout planner (pure): one step of a `StackRollout` over what its clusters report.
//! It decides which clusters belong to which wave, which are done (on the release, Ready and
//! Compliant), which to start now (the caller sets their `spec.clusterStack.version`), when a
//! wave's soak ends, and whether a cluster that took longer than its time halts the rollout.
//! Everything it needs to resume lives in the rollout's status, so a restarted operator goes
//! on where the last one stopped. The controller around it (reading clusters, moving them,
//! writing the status and events) is [`controller`], beside it.

use api::v1beta1::{RolloutClusterState, RolloutPhase};
use std::collections::BTreeMap;

use api::Catalog;
use api::v1beta1::{
    KaasCluster, RolloutClusterStatus, RolloutHalt, StackRollout, StackRolloutSpec,
    StackRolloutStatus, WaveStatus,
};
use kube::ResourceExt;

use api::v1beta1::ClusterCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub(crate) mod controller;

/// What the planner reads of one `KaasCluster` of the rollout's namespace and class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.clusterStack.name`.
    pub stack: String,
    /// `spec.clusterStack.version`.
    pub wanted: Option<String>,
    /// `status.clusterStackVersion`: what it runs.
    pub running: Option<String>,
    /// Ready and Compliant.
    pub healthy: bool,
    /// Its first failing condition: type and message.
    pub failing: Option<(String, String)>,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The rollout's new status.
    pub status: StackRolloutStatus,
    /// Clusters to move to the release now.
    pub start: Vec<String>,
    /// Events to record: (reason, message).
    pub events: Vec<(String, String)>,
    /// When to look again at the latest (a soak's end or a cluster's time running out).
    pub requeue_at: Option<Timestamp>,
}

/// What a cluster tells a rollout.
pub fn view(c: &KaasCluster) -> ClusterView {
    let status = c.status.clone().unwrap_or_default();
    let holds = |t: &str| {
        status
            .conditions
            .iter()
            .find(|x| x.type_ == t)
            .map(|x| x.status == "True")
    };
    let current = status.observed_generation == c.metadata.generation;
    // Compliant is reported only for stacks built on a base: absent counts as holding.
    let healthy = current
        && holds(ClusterCondition::Ready.as_str()) == Some(true)
        && holds(ClusterCondition::Compliant.as_str()) != Some(false);
    let failing = status
        .conditions
        .iter()
        .find(|x| {
            x.status != "True"
                && x.type_ != ClusterCondition::Upgrading.as_str()
                && x.type_ != ClusterCondition::Ready.as_str()
        })
        .or_else(|| {
            status
                .conditions
                .iter()
                .find(|x| x.status != "True" && x.type_ == ClusterCondition::Ready.as_str())
        })
        .map(|x| (x.type_.clone(), x.message.clone()));
    ClusterView {
        name: c.name_any(),
        labels: c.labels().clone(),
        stack: c.spec.cluster_stack.name.clone(),
        wanted: c.spec.cluster_stack.version.clone(),
        running: status.cluster_stack_version.clone(),
        healthy,
        failing,
    }
}

/// The clusters of `rollout`'s class among `clusters` (those of its namespace), as the
/// planner reads them.
pub fn candidates<'a>(
    rollout: &StackRollout,
    clusters: impl IntoIterator<Item = &'a KaasCluster>,
    catalog: &Catalog,
) -> Vec<ClusterView> {
    let class = |name: Option<&str>| catalog.class_for(name).map(|c| c.name_any());
    let wanted = class(rollout.spec.provider_class_name.as_deref());
    clusters
        .into_iter()
        .filter(|c| wanted.is_some() && class(c.spec.provider_class_name.as_deref()) == wanted)
        .map(view)
        .collect()
}

pub use api::selector::matches;

/// The wave of each cluster of the rollout's stack: the first whose selector matches, in
/// name order; clusters no wave selects are not in the plan.
pub fn plan_waves<'a>(
    spec: &StackRolloutSpec,
    clusters: &'a [ClusterView],
) -> Vec<(usize, &'a ClusterView)> {
    let mut planned: Vec<(usize, &ClusterView)> = clusters
        .iter()
        .filter(|c| c.stack == spec.cluster_stack.name)
        .filter_map(|c| {
            spec.waves
                .iter()
                .position(|w| matches(&w.selector, &c.labels))
                .map(|w| (w, c))
        })
        .collect();
    planned.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    planned
}

/// Whether version `a` is newer than `b` (both semantic versions).
fn newer_than(a: &str, b: &str) -> bool {
    matches!(
        (semver::Version::parse(a), semver::Version::parse(b)),
        (Ok(a), Ok(b)) if a > b
    )
}

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

/// One step of the rollout `spec` from `previous` over `clusters` at `now`; `resumed_at` is
/// the resume annotation's time.
pub fn step(
    spec: &StackRolloutSpec,
    previous: &StackRolloutStatus,
    clusters: &[ClusterView],
    resumed_at: Option<Timestamp>,
    now: Timestamp,
) -> Step {
    let target = &spec.cluster_stack.version;
    let timeout = secs(spec.cluster_timeout_seconds.unwrap_or(3600));
    let min_ready = secs(spec.min_ready_seconds.unwrap_or(30));
    let mut events = Vec::new();
    let mut requeue_at: Option<Timestamp> = None;
    let mut halted = previous.halted.clone();
    let resumed = halted
        .as_ref()
        .is_some_and(|h| resumed_at.is_some_and(|r| r > h.at.0));
    if resumed {
        let h = halted.take().expect("halted");
        events.push((
            "Resumed".into(),
            format!("resumed after halting on {}", h.cluster),
        ));
    }
    let started_before = |name: &str| {
        previous
            .clusters
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.started_at.clone())
    };

    // Each cluster's state; a resume gives the clusters upgrading their time again.
    let planned = plan_waves(spec, clusters);
    let mut rows: Vec<RolloutClusterStatus> = planned
        .iter()
        .map(|(wave, c)| {
            let asks = c.wanted.as_deref() == Some(target.as_str());
            // Done stays done (a later blip of the cluster is its own status's business, not
            // a reason to halt the rollout); one moved past the release by hand is done too.
            let before = previous.clusters.iter().find(|r| r.name == c.name);
            let was_done = before.is_some_and(|r| r.state == RolloutClusterState::Done.as_str());
            let newer = c.wanted.as_deref().is_some_and(|w| newer_than(w, target));
            // Ready and Compliant on the release, for `minReadySeconds` in a row: a status
            // written before Cluster API reacted to the move must not count.
            let ready_since = (asks && c.running.as_deref() == Some(target.as_str()) && c.healthy)
                .then(|| {
                    before
                        .and_then(|r| r.ready_since.clone())
                        .unwrap_or(Time(now))
                });
            let settled = ready_since.as_ref().is_some_and(|since| {
                let at = since.0.saturating_add(min_ready).unwrap_or(since.0);
                if now < at {
                    requeue_at = Some(requeue_at.map_or(at, |r: Timestamp| r.min(at)));
                }
                now >= at
            });
            let state = if newer || (asks && (was_done || settled)) {
                RolloutClusterState::Done
            } else if asks {
                RolloutClusterState::Upgrading
            } else {
                RolloutClusterState::Pending
            };
            let started_at = match state {
                RolloutClusterState::Pending => None,
                RolloutClusterState::Upgrading if resumed => Some(Time(now)),
                RolloutClusterState::Upgrading | RolloutClusterState::Done => {
                    started_before(&c.name).or(Some(Time(now)))
                }
            };
            RolloutClusterStatus {
                name: c.name.clone(),
                wave: *wave as i32,
                state: state.as_str().into(),
                started_at,
                ready_since,
            }
        })
        .collect();

    // Waves: counts, and when each finished (kept once set).
    let waves: Vec<WaveStatus> = spec
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let of_wave: Vec<&RolloutClusterStatus> =
                rows.iter().filter(|r| r.wave == i as i32).collect();
            let done = of_wave
                .iter()
                .filter(|r| r.state == RolloutClusterState::Done.as_str())
                .count();
            let finished = done == of_wave.len();
            let kept = previous
                .waves
                .iter()
                .find(|p| p.name == w.name)
                .and_then(|p| p.finished_at.clone());
            WaveStatus {
                name: w.name.clone(),
                clusters: of_wave.len() as i32,
                done: done as i32,
                finished_at: if finished {
                    kept.or(Some(Time(now)))
                } else {
                    None
                },
            }
        })
        .collect();
    for (w, p) in waves.iter().zip(&spec.waves) {
        let was = previous.waves.iter().find(|x| x.name == p.name);
        if w.finished_at.is_some() && was.is_none_or(|x| x.finished_at.is_none()) && w.clusters > 0
        {
            events.push((
                "WaveDone".into(),
                format!("wave {} done: {} clusters", w.name, w.clusters),
            ));
        }
    }

    // A cluster past its time halts the rollout, naming its failing condition.
    if halted.is_none() {
        for row in rows
            .iter()
            .filter(|r| r.state == RolloutClusterState::Upgrading.as_str())
        {
            let started = row.started_at.as_ref().map_or(now, |t| t.0);
            let deadline = started.saturating_add(timeout).unwrap_or(started);
            if now >= deadline {
                let view = clusters.iter().find(|c| c.name == row.name);
                let failing = view.and_then(|c| c.failing.clone());
                let message = match &failing {
                    Some((t, m)) => format!(
                        "{} is not Ready and Compliant on {target} after {} s: {t}: {m}",
                        row.name,
                        timeout.as_secs()
                    ),
                    None => format!(
                        "{} is not Ready and Compliant on {target} after {} s",
                        row.name,
                        timeout.as_secs()
                    ),
                };
                events.push(("Halted".into(), message.clone()));
                halted = Some(RolloutHalt {
                    cluster: row.name.clone(),
                    condition: failing.map(|(t, _)| t),
                    message,
                    at: Time(now),
                });
                break;
            }
            requeue_at = Some(requeue_at.map_or(deadline, |r: Timestamp| r.min(deadline)));
        }
    }

    // The wave in progress: the first not finished; the one before it must have soaked.
    let current = waves
        .iter()
        .position(|w| w.finished_at.is_none())
        .unwrap_or(waves.len());
    let soak_until = current
        .checked_sub(1)
        .and_then(|prev| {
            let finished = waves[prev].finished_at.as_ref()?.0;
            let soak = spec.waves[prev].soak_seconds.unwrap_or(0);
            (soak > 0).then(|| finished.saturating_add(secs(soak)).unwrap_or(finished))
        })
        .filter(|until| now < *until);

    let mut start = Vec::new();
    let phase = if current == waves.len() {
        if previous.phase.as_deref() != Some(RolloutPhase::Completed.as_str()) {
            events.push((
                "Completed".into(),
                format!("every selected cluster runs {target}"),
            ));
        }
        RolloutPhase::Completed.as_str()
    } else if halted.is_some() {
        RolloutPhase::Halted.as_str()
    } else if spec.paused == Some(true) {
        RolloutPhase::Paused.as_str()
    } else if let Some(until) = soak_until {
        requeue_at = Some(requeue_at.map_or(until, |r| r.min(until)));
        RolloutPhase::Soaking.as_str()
    } else {
        let limit = spec.waves[current].max_concurrent.unwrap_or(1).max(1) as usize;
        let in_wave = |r: &&mut RolloutClusterStatus| r.wave == current as i32;
        let upgrading = rows
            .iter()
            .filter(|r| {
                r.wave == current as i32 && r.state == RolloutClusterState::Upgrading.as_str()
            })
            .count();
        for row in rows
            .iter_mut()
            .filter(in_wave)
            .filter(|r| r.state == RolloutClusterState::Pending.as_str())
            .take(limit.saturating_sub(upgrading))
        {
            row.state = RolloutClusterState::Upgrading.as_str().into();
            row.started_at = Some(Time(now));
            start.push(row.name.clone());
            events.push((
                "ClusterStarted".into(),
                format!(
                    "{} moves to {target} (wave {})",
                    row.name, spec.waves[current].name
                ),
            ));
            let deadline = now.saturating_add(timeout).unwrap_or(now);
            requeue_at = Some(requeue_at.map_or(deadline, |r| r.min(deadline)));
        }
        RolloutPhase::Progressing.as_str()
    };
    rows.sort_by(|a, b| (a.wave, &a.name).cmp(&(b.wave, &b.name)));
    Step {
        status: StackRolloutStatus {
            phase: Some(phase.into()),
            wave: Some(current as i32),
            soak_until: soak_until
                .filter(|_| phase == RolloutPhase::Soaking.as_str())
                .map(Time),
            waves,
            clusters: rows,
            halted,
            observed_generation: previous.observed_generation,
        },
        start,
        events,
        requeue_at,
    }
}

#[cfg(test)]
mod tests;
