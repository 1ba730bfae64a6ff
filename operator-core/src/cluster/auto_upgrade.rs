//! Automatic upgrades (the side of [`crate::cluster::maintenance`] that writes): a settled cluster
//! (Ready, no upgrade running) whose maintenance policy allows an offered release moves to it
//! when its window is open, by setting its `spec.clusterStack.version` (field manager
//! `kaas-maintenance`); the next reconcile orchestrates the upgrade as any other. The window is
//! looked at on every reconcile (at least every add-on resync), so an upgrade starts within
//! that long after the window opens. A move refused at admission (a `TenantPolicy` that no
//! longer allows automatic upgrades) is a Warning Event, not a reconcile error.

use api::v1beta1::{ClusterPhase, KaasCluster, KaasClusterStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::Context;
use crate::error::Error;
use crate::provider::Provider;

/// The field manager of the versions automatic upgrades set.
/// kaas-webhooks knows it by this name: a `TenantPolicy` that does not allow automatic upgrades
/// refuses its moves.
pub const MAINTENANCE_MANAGER: &str = api::tenancy::AUTOMATIC_UPGRADE_MANAGER;

/// The release `cluster` moves to now, if any: its policy, its offered releases, its window
/// at `now`; only for a settled cluster.
pub fn due(cluster: &KaasCluster, status: &KaasClusterStatus, now: Timestamp) -> Option<String> {
    let m = cluster.spec.maintenance.as_ref()?;
    let policy = m.auto_upgrade.as_deref()?;
    let current = cluster.spec.cluster_stack.version.as_deref()?;
    if status.current_phase() != Some(ClusterPhase::Ready) || status.upgrade.is_some() {
        return None;
    }
    let target = crate::cluster::maintenance::target(policy, current, &status.available_upgrades)?;
    crate::cluster::maintenance::is_open(&m.window, now)
        .ok()?
        .then_some(target)
}

/// Moves `cluster` to its due release, with an Event; whether it did.
pub(super) async fn apply<P: Provider>(
    cluster: &KaasCluster,
    status: &KaasClusterStatus,
    ctx: &Context<P>,
) -> Result<bool, Error> {
    let Some(target) = due(cluster, status, Timestamp::now()) else {
        return Ok(false);
    };
    let from = cluster
        .spec
        .cluster_stack
        .version
        .clone()
        .unwrap_or_default();
    let api: Api<KaasCluster> = Api::namespaced(
        ctx.applier.client().clone(),
        &cluster.namespace().unwrap_or_default(),
    );
    let params = PatchParams {
        field_manager: Some(MAINTENANCE_MANAGER.into()),
        ..Default::default()
    };
    let patch = serde_json::json!({"spec": {"clusterStack": {"version": target}}});
    match api
        .patch(&cluster.name_any(), &params, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        // Refused at admission (a TenantPolicy that no longer allows automatic upgrades):
        // said on the cluster, and tried again in the next window's reconciles.
        Err(kube::Error::Api(e)) if e.code == 403 => {
            let event = Event {
                type_: EventType::Warning,
                reason: "AutoUpgradeRefused".into(),
                note: Some(format!("stack {from} → {target}: {}", e.message)),
                action: "Upgrade".into(),
                secondary: None,
            };
            if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
                tracing::debug!(error = %e, "auto-upgrade event not recorded");
            }
            return Ok(false);
        }
        Err(e) => return Err(Error::Kube(e)),
    }
    let event = Event {
        type_: EventType::Normal,
        reason: "AutoUpgrade".into(),
        note: Some(format!(
            "stack {} {from} → {target} in the maintenance window",
            cluster.spec.cluster_stack.name
        )),
        action: "Upgrade".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::debug!(error = %e, "auto-upgrade event not recorded");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(policy: &str) -> KaasCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"clusterStack": {"name": "scs", "version": "1.0.0"},
                     "maintenance": {"autoUpgrade": policy,
                                     "window": {"days": ["Sat"], "start": "22:00", "durationMinutes": 120}}},
        }))
        .unwrap()
    }

    fn status(phase: &str) -> KaasClusterStatus {
        KaasClusterStatus {
            phase: Some(phase.into()),
            available_upgrades: vec!["1.0.2".into(), "1.1.0".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_settled_cluster_moves_only_inside_its_window() {
        let saturday_night: Timestamp = "2026-12-05T22:30:00Z".parse().unwrap();
        let friday: Timestamp = "2026-12-04T22:30:00Z".parse().unwrap();
        let c = cluster("patch");
        assert_eq!(
            due(&c, &status("Ready"), saturday_night).as_deref(),
            Some("1.0.2")
        );
        assert_eq!(
            due(&c, &status("Ready"), friday),
            None,
            "the window is closed"
        );
        assert_eq!(
            due(&cluster("minor"), &status("Ready"), saturday_night).as_deref(),
            Some("1.1.0")
        );
        assert_eq!(
            due(&c, &status("Provisioning"), saturday_night),
            None,
            "only a Ready cluster"
        );
    }
}
