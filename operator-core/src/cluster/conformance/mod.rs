//! SCS container-layer standards, checked for every cluster: one pure check per standard
//! over what the operator knows ([`Evidence`]: the effective stack, the objects it rendered,
//! the stack catalog, and what the workload cluster reports), each giving `Pass`, `Fail` with
//! what to do, or `Unknown` with what could not be observed. [`live`] gathers the workload
//! cluster's part (Nodes, StorageClasses, the NetworkPolicy probe of [`probe`]); the status
//! step turns the findings into `status.standards` and the `StandardsCompliant` condition
//! ([`crate::cluster::status::standards`]). docs/standards.md.

pub mod live;
pub mod probe;
mod s0210;
mod s0211;
mod s0214;
mod s0217;
mod s0219;

use std::collections::BTreeMap;

use kaas_stack::Release;
use kaas_stack::format::KubernetesCalendar;
use serde_json::Value;

pub use s0210::newest_patches;

/// The standards checked, in the order they are reported.
pub const STANDARDS: [&str; 5] = [s0210::ID, s0211::ID, s0214::ID, s0217::ID, s0219::ID];

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The standard holds.
    Pass,
    /// It does not (the message says why and what to do).
    Fail,
    /// What it needs could not be observed (the message says what and why).
    Unknown,
}

impl Outcome {
    /// As written in the status: `Pass`, `Fail`, `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "Pass",
            Outcome::Fail => "Fail",
            Outcome::Unknown => "Unknown",
        }
    }
}

/// One standard's verdict for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The standard and its version (`scs-0210-v2`).
    pub id: &'static str,
    /// The verdict.
    pub outcome: Outcome,
    /// Why.
    pub message: String,
}

impl Finding {
    pub(crate) fn new(id: &'static str, outcome: Outcome, message: impl Into<String>) -> Self {
        Finding {
            id,
            outcome,
            message: message.into(),
        }
    }
}

/// A Node of the workload cluster, as far as the checks read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Its name.
    pub name: String,
    /// Whether it carries `node-role.kubernetes.io/control-plane`.
    pub control_plane: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What the workload cluster reported in this reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// Its Nodes.
    pub nodes: Vec<NodeFacts>,
    /// Its StorageClasses: name and whether it is marked the default.
    pub storage_classes: Vec<(String, bool)>,
    /// StorageClasses the add-on sync found missing and put back in this reconcile.
    pub restored_storage_classes: Vec<String>,
    /// Where the NetworkPolicy probe stands.
    pub probe: probe::ProbeState,
}

/// Everything the checks read.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// Today (UTC).
    pub today: jiff::civil::Date,
    /// The effective release the cluster runs.
    pub release: &'a Release,
    /// The full Kubernetes version the cluster runs, once resolved.
    pub kubernetes_version: Option<&'a str>,
    /// The Kubernetes dates of every release the operator knows (merged).
    pub calendar: &'a KubernetesCalendar,
    /// The versions the catalog offers for this cluster's stack: (stack version, full
    /// Kubernetes version), ready releases only.
    pub offered: &'a [(String, String)],
    /// The control plane's replicas in the spec.
    pub control_plane_replicas: i32,
    /// The rendered `KubeadmControlPlane`.
    pub control_plane: Option<&'a Value>,
    /// The rendered `KubeadmConfigTemplate`s of the pools.
    pub bootstraps: Vec<&'a Value>,
    /// What the workload cluster reported, or why nothing could be read.
    pub workload: Result<&'a Workload, String>,
}

/// Every standard's verdict, in [`STANDARDS`] order.
pub fn check_all(e: &Evidence<'_>) -> Vec<Finding> {
    vec![
        s0210::check(e),
        s0211::check(e),
        s0214::check(e),
        s0217::check(e),
        s0219::check(e),
    ]
}

/// The static checks of a release (no cluster): what `kaasctl stack verify --standards`
/// reports. scs-0210's catalog side, and scs-0211, scs-0217 and scs-0219 on what the release
/// itself says and its kubeadm settings render to.
pub fn check_release(release: &Release, today: jiff::civil::Date) -> Vec<Finding> {
    let calendar = release
        .stack
        .kubernetes_calendar
        .clone()
        .unwrap_or_default();
    let (control_plane, bootstrap) =
        crate::cluster::render::release_kubeadm(&release.stack.kubeadm);
    vec![
        s0210::check_catalog(release, &calendar, today),
        s0211::check_static(release),
        s0217::check_rendered(Some(&control_plane), &[&bootstrap]),
        s0219::check_static(release),
    ]
}

/// A check's verdict for one condition: whether it holds, why, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the condition holds.
    pub ok: bool,
    /// Its reason (CamelCase).
    pub reason: String,
    /// Its message.
    pub message: String,
}

impl Verdict {
    /// A condition that does not hold, for `reason`.
    pub fn fails(reason: impl Into<String>, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether the release's CNI declares NetworkPolicy support, so the probe runs.
pub fn probes_network_policy(release: &Release) -> bool {
    s0219::provider(release).is_some()
}

/// Today's date in UTC.
pub fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}
