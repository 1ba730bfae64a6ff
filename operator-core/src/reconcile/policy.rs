//! When a cluster is looked at next: after an error (transient ones back off with jitter, the
//! rest wait for a change), after an object that cannot be read, and after a reconcile that
//! went through (soon while something moves, rarely once all is Ready). Pure, apart from the
//! one Event an unreadable object gets.

use std::sync::Arc;
use std::time::Duration;

use api::v1beta1::{KaasCluster, UpgradeStatus};
use kube::ResourceExt;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};

use super::{Context, Watched};
use crate::error::Error;
use crate::metrics::CategoryLabels;
use crate::provider::Provider;
use crate::status::AddonsProgress;

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
    pub phase: Option<&'a str>,
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
            crate::upgrade::stages::PRE | crate::upgrade::stages::POST => {
                crate::upgrade::backoff(u.attempts)
                    .min(outcome.addon_resync.max(Duration::from_secs(2)))
            }
            _ => Duration::from_secs(10),
        });
    }
    if outcome.image_problem {
        return Action::requeue(Duration::from_secs(15));
    }
    match (outcome.addons, outcome.phase) {
        (AddonsProgress::NoAddons | AddonsProgress::Pending, Some("Ready")) => {
            Action::requeue(crate::apply::RESYNC)
        }
        (AddonsProgress::Synced(_), Some("Ready")) => Action::requeue(outcome.addon_resync),
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

    fn outcome<'a>(addons: &'a AddonsProgress, phase: Option<&'a str>) -> Outcome<'a> {
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
            next(&outcome(&synced, Some("Ready"))),
            Action::requeue(Duration::from_secs(60))
        );
        let waiting = AddonsProgress::Waiting("kubeconfig".into());
        assert_eq!(
            next(&outcome(&waiting, Some("Provisioning"))),
            Action::requeue(Duration::from_secs(10))
        );
        let mut problem = outcome(&synced, Some("Ready"));
        problem.image_problem = true;
        assert_eq!(next(&problem), Action::requeue(Duration::from_secs(15)));
    }

    #[test]
    fn entering_an_upgrade_stage_looks_again_at_once() {
        let upgrade = UpgradeStatus {
            stage: crate::upgrade::stages::CONTROL_PLANE.into(),
            ..Default::default()
        };
        let none = AddonsProgress::NoAddons;
        let mut o = outcome(&none, Some("Upgrading"));
        o.upgrade = Some(&upgrade);
        assert_eq!(next(&o), Action::requeue(Duration::from_secs(1)));
        o.stage_before = Some(crate::upgrade::stages::CONTROL_PLANE);
        assert_eq!(next(&o), Action::requeue(Duration::from_secs(10)));
    }
}
