//! Reading what Cluster API reports: replica counts, flags and conditions of the observed
//! objects as the cache decoded them ([`crate::owned::Owned`]; a missing or mistyped field
//! reads as zero or false).

use api::v1beta1::ReplicaStatus;

use super::Observed;
use crate::owned::Owned;

/// The only Cluster API condition types read ([`control_plane_initialized`],
/// [`infrastructure_provisioned`]); the owned caches keep no others.
pub const READ_CONDITIONS: [&str; 2] = ["ControlPlaneInitialized", "InfrastructureReady"];

/// Whether Cluster API reports the control plane initialized (the workload API answers).
pub fn control_plane_initialized(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        c.initialized(|i| i.control_plane_initialized) || c.condition_true(READ_CONDITIONS[0])
    })
}

/// Whether Cluster API reports the infrastructure provisioned.
pub(super) fn infrastructure_provisioned(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        c.initialized(|i| i.infrastructure_provisioned) || c.condition_true(READ_CONDITIONS[1])
    })
}

fn int(n: i64) -> i32 {
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The replica counts an object (`KubeadmControlPlane`, `MachineDeployment`) reports against
/// `desired`; all zero but `desired` when it does not exist.
pub(super) fn replicas(obj: Option<&Owned>, desired: i32) -> ReplicaStatus {
    let Some(obj) = obj else {
        return ReplicaStatus {
            desired,
            ..Default::default()
        };
    };
    ReplicaStatus {
        desired,
        replicas: int(obj.replicas()),
        ready_replicas: int(obj.ready_replicas()),
        up_to_date_replicas: int(obj.up_to_date_replicas()),
        certificates_expiry_date: None,
    }
}
