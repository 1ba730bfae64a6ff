//! scs-0219 v1, KaaS networking: the cluster's CNI enforces NetworkPolicies. The stack says so
//! (`provides: [NetworkPolicy]` on its CNI add-on) and the probe ([`super::probe`]) shows it in
//! the workload cluster.

use kaas_stack::Release;
use kaas_stack::format::NETWORK_POLICY;

use super::probe::ProbeState;
use super::{Evidence, Finding, Outcome};

/// The standard's id.
pub const ID: &str = "scs-0219-v1";

/// The add-on that declares NetworkPolicy support.
pub(super) fn provider(release: &Release) -> Option<&str> {
    release
        .stack
        .addons
        .iter()
        .find(|a| a.provides.iter().any(|p| p == NETWORK_POLICY))
        .map(|a| a.name.as_str())
}

pub(super) fn check(e: &Evidence<'_>) -> Finding {
    let Some(cni) = provider(e.release) else {
        return check_static(e.release);
    };
    let workload = match &e.workload {
        Ok(w) => w,
        Err(why) => return Finding::new(ID, Outcome::Unknown, why.clone()),
    };
    match &workload.probe {
        ProbeState::Passed => Finding::new(
            ID,
            Outcome::Pass,
            format!(
                "{cni} enforced the probe's NetworkPolicy: the allowed pod reached the server, the denied one did not"
            ),
        ),
        ProbeState::Failed(why) => Finding::new(ID, Outcome::Fail, why.clone()),
        ProbeState::Inconclusive(why) => Finding::new(ID, Outcome::Unknown, why.clone()),
        ProbeState::Running(job) => Finding::new(
            ID,
            Outcome::Unknown,
            format!("{cni} declares NetworkPolicy support; the probe's Job {job} has not finished"),
        ),
        ProbeState::NotStarted => Finding::new(
            ID,
            Outcome::Unknown,
            format!("{cni} declares NetworkPolicy support; the probe has not started"),
        ),
    }
}

/// The release's side: an add-on declares NetworkPolicy support.
pub(super) fn check_static(release: &Release) -> Finding {
    match provider(release) {
        Some(cni) => Finding::new(
            ID,
            Outcome::Pass,
            format!("{cni} declares NetworkPolicy support"),
        ),
        None => Finding::new(
            ID,
            Outcome::Fail,
            "no add-on of the stack declares NetworkPolicy support (provides: [NetworkPolicy] on its CNI)",
        ),
    }
}
