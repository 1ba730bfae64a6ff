//! When a cluster is looked at next: after an error (transient ones back off with jitter, the
//! rest wait for a change), after an object that cannot be read, after a reconcile that stopped
//! short ([`Stopped`]: what the status says and when to look again, in one place) and after
//! one that went through (soon while something moves, rarely once all is Ready). Pure, apart
//! from the one Event an unreadable object gets.

use std::sync::Arc;
use std::time::Duration;

use api::v1beta1::{ClusterPhase, KaasCluster, UpgradeStatus};
use kube::ResourceExt;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};

use super::{Context, Watched};
use crate::cluster::plan::Stop;
use crate::cluster::status::{AddonsProgress, Problem, Progress};
use crate::error::Error;
use crate::metrics::CategoryLabels;
use crate::provider::{Provider, ProviderError};

/// An object that does not have the shape of a `KaasCluster`: say so once, on the object,
/// and wait for it to change. The other clusters go on.
pub(super) async fn report_invalid<P: Provider>(
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
        Action::requeue(Duration::from_millis(5_000 + jitter_ms(cluster)))
    } else {
        Action::await_change()
    }
}

/// 0 to 10 s, spread by the object's uid so failing clusters do not retry in step.
fn jitter_ms(cluster: &KaasCluster) -> u64 {
    cluster
        .uid()
        .map(|u| {
            u.bytes()
                .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b.into()))
                % 10_000
        })
        .unwrap_or(0)
}

/// Why a reconcile stopped before applying anything.
#[derive(Debug)]
pub(super) enum Stopped {
    /// The plan could not be made.
    Plan(crate::cluster::plan::Stop),
    /// The target release's content cannot be had (fetch, verification, mismatch).
    Release(crate::stacks::StackError),
    /// The provider could not build (credentials, node images, its rendering).
    Provider(ProviderError),
}

/// What a stopped reconcile shows, and when to look again. `target` is the version the
/// cluster was resolved to, when it was.
pub(super) fn after_stop(stopped: &Stopped, target: Option<&str>) -> (Progress, Action) {
    let mut progress = Progress {
        kubernetes_version: target.map(str::to_string),
        ..Progress::default()
    };
    let retry = |secs| Action::requeue(Duration::from_secs(secs));
    let then = match stopped {
        Stopped::Plan(Stop::Invalid(problems)) => {
            progress.invalid = Some(problems.clone());
            Action::await_change()
        }
        Stopped::Plan(Stop::Unresolved { reason, message }) => {
            progress.stack_problem = Some(Problem::new(reason.clone(), message.clone()));
            retry(30)
        }
        Stopped::Plan(Stop::UpgradeNotPossible {
            kubernetes_version,
            message,
        }) => {
            progress.kubernetes_version = Some(kubernetes_version.clone());
            progress.stack_problem = Some(Problem::new("UpgradeNotPossible", message.clone()));
            Action::await_change()
        }
        Stopped::Release(e) => {
            progress.stack_problem = Some(Problem::new(e.reason(), e.to_string()));
            if e.is_transient() {
                retry(30)
            } else {
                Action::await_change()
            }
        }
        Stopped::Provider(e @ ProviderError::Invalid(_)) => {
            progress.invalid = Some(e.to_string());
            Action::await_change()
        }
        Stopped::Provider(e @ ProviderError::NotReady(_)) => {
            progress.image_problem = Some(Problem::new("ImageNotReady", e.to_string()));
            retry(15)
        }
        Stopped::Provider(e @ ProviderError::Transient(_)) => {
            progress.image_problem = Some(Problem::new("ProviderFailed", e.to_string()));
            retry(15)
        }
    };
    (progress, then)
}

/// What a reconcile that went through saw, for deciding when to look again.
pub(super) struct Outcome<'a> {
    /// The upgrade in progress, if any.
    pub upgrade: Option<&'a UpgradeStatus>,
    /// The upgrade stage before this reconcile.
    pub stage_before: Option<&'a str>,
    /// Whether a node image is missing or failing.
    pub image_problem: bool,
    /// The add-ons' state.
    pub addons: &'a AddonsProgress,
    /// The phase just written.
    pub phase: Option<ClusterPhase>,
    /// How often a healthy cluster's add-ons are checked for drift.
    pub addon_resync: Duration,
}

/// When to look at a cluster again after a reconcile that went through: at once when an
/// upgrade stage was entered, soon while anything moves, rarely once all is Ready (nothing in
/// the workload cluster is watched: add-on health and drift are polled).
pub(super) fn next(outcome: &Outcome<'_>) -> Action {
    if let Some(u) = outcome.upgrade {
        if outcome.stage_before != Some(u.stage.as_str()) {
            return Action::requeue(Duration::from_secs(1));
        }
        return Action::requeue(match u.stage.as_str() {
            crate::cluster::upgrade::stages::PRE | crate::cluster::upgrade::stages::POST => {
                crate::cluster::upgrade::backoff(u.attempts)
                    .min(outcome.addon_resync.max(Duration::from_secs(2)))
            }
            _ => Duration::from_secs(10),
        });
    }
    if outcome.image_problem {
        return Action::requeue(Duration::from_secs(15));
    }
    match (outcome.addons, outcome.phase) {
        (AddonsProgress::NoAddons | AddonsProgress::Pending, Some(ClusterPhase::Ready)) => {
            Action::requeue(crate::apply::RESYNC)
        }
        (AddonsProgress::Synced(_), Some(ClusterPhase::Ready)) => {
            Action::requeue(outcome.addon_resync)
        }
        (AddonsProgress::Invalid(_), _) => Action::requeue(Duration::from_secs(300)),
        (
            AddonsProgress::Synced(_)
            | AddonsProgress::Waiting(_)
            | AddonsProgress::Failed(_)
            | AddonsProgress::Refused(_),
            _,
        ) => Action::requeue(outcome.addon_resync.min(Duration::from_secs(10))),
        _ => Action::requeue(Duration::from_secs(300)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(addons: &AddonsProgress, phase: Option<ClusterPhase>) -> Outcome<'_> {
        Outcome {
            upgrade: None,
            stage_before: None,
            image_problem: false,
            addons,
            phase,
            addon_resync: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_ready_cluster_is_looked_at_rarely_and_a_moving_one_soon() {
        let synced = AddonsProgress::Synced(Vec::new());
        assert_eq!(
            next(&outcome(&synced, Some(ClusterPhase::Ready))),
            Action::requeue(Duration::from_secs(60))
        );
        let waiting = AddonsProgress::Waiting("kubeconfig".into());
        assert_eq!(
            next(&outcome(&waiting, Some(ClusterPhase::Provisioning))),
            Action::requeue(Duration::from_secs(10))
        );
        let mut problem = outcome(&synced, Some(ClusterPhase::Ready));
        problem.image_problem = true;
        assert_eq!(next(&problem), Action::requeue(Duration::from_secs(15)));
    }

    #[test]
    fn a_stop_waits_for_a_change_unless_time_can_mend_it() {
        let cases = [
            (
                Stopped::Plan(Stop::Invalid("spec.x: bad".into())),
                Action::await_change(),
            ),
            (
                Stopped::Plan(Stop::Unresolved {
                    reason: "StackNotFound".into(),
                    message: "no stack".into(),
                }),
                Action::requeue(Duration::from_secs(30)),
            ),
            (
                Stopped::Plan(Stop::UpgradeNotPossible {
                    kubernetes_version: "1.35.0".into(),
                    message: "two minors".into(),
                }),
                Action::await_change(),
            ),
            (
                Stopped::Release(crate::stacks::StackError::Mismatch("other".into())),
                Action::await_change(),
            ),
            (
                Stopped::Provider(ProviderError::Invalid("no flavor".into())),
                Action::await_change(),
            ),
            (
                Stopped::Provider(ProviderError::NotReady("importing".into())),
                Action::requeue(Duration::from_secs(15)),
            ),
            (
                Stopped::Provider(ProviderError::Transient("cloud down".into())),
                Action::requeue(Duration::from_secs(15)),
            ),
        ];
        for (stopped, then) in cases {
            let (progress, action) = after_stop(&stopped, Some("1.34.1"));
            assert_eq!(action, then, "{stopped:?}");
            // Each stop is shown: as an invalid spec, a stack or an image problem.
            assert!(
                progress.invalid.is_some()
                    || progress.stack_problem.is_some()
                    || progress.image_problem.is_some(),
                "{stopped:?} shows nothing"
            );
        }
        let (progress, _) = after_stop(
            &Stopped::Plan(Stop::UpgradeNotPossible {
                kubernetes_version: "1.35.0".into(),
                message: "m".into(),
            }),
            None,
        );
        assert_eq!(progress.kubernetes_version.as_deref(), Some("1.35.0"));
    }

    #[test]
    fn entering_an_upgrade_stage_looks_again_at_once() {
        let upgrade = UpgradeStatus {
            stage: crate::cluster::upgrade::stages::CONTROL_PLANE.into(),
            ..Default::default()
        };
        let none = AddonsProgress::NoAddons;
        let mut o = outcome(&none, Some(ClusterPhase::Upgrading));
        o.upgrade = Some(&upgrade);
        assert_eq!(next(&o), Action::requeue(Duration::from_secs(1)));
        o.stage_before = Some(crate::cluster::upgrade::stages::CONTROL_PLANE);
        assert_eq!(next(&o), Action::requeue(Duration::from_secs(10)));
    }
}
