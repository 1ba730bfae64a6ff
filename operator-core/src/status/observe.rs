//! Reading what Cluster API reports: replica counts, flags and conditions out of the observed
//! objects' status, tolerant of any shape (a missing or mistyped field reads as zero or false).

use api::v1beta1::ReplicaStatus;
use serde_json::Value;

use super::Observed;

/// The only Cluster API condition types read ([`control_plane_initialized`],
/// [`infrastructure_provisioned`]); the owned caches keep no others.
pub const READ_CONDITIONS: [&str; 2] = ["ControlPlaneInitialized", "InfrastructureReady"];

/// Whether Cluster API reports the control plane initialized (the workload API answers).
pub fn control_plane_initialized(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        truthy(c, &["status", "initialization", "controlPlaneInitialized"])
            || capi_condition_true(c, READ_CONDITIONS[0])
    })
}

/// Whether Cluster API reports the infrastructure provisioned.
pub(super) fn infrastructure_provisioned(observed: &Observed) -> bool {
    observed.cluster.as_ref().is_some_and(|c| {
        truthy(
            c,
            &["status", "initialization", "infrastructureProvisioned"],
        ) || capi_condition_true(c, READ_CONDITIONS[1])
    })
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |cur, p| &cur[*p])
}

fn int(v: &Value, path: &[&str]) -> i32 {
    at(v, path).as_i64().map_or(0, |n| {
        n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    })
}

fn truthy(v: &Value, path: &[&str]) -> bool {
    at(v, path).as_bool() == Some(true)
}

fn capi_condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// The replica counts an object (`KubeadmControlPlane`, `MachineDeployment`) reports against
/// `desired`; all zero but `desired` when it does not exist.
pub(super) fn replicas(obj: Option<&Value>, desired: i32) -> ReplicaStatus {
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
        certificates_expiry_date: None,
    }
}
