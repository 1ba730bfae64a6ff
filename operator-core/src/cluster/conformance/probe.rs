//! The NetworkPolicy probe (scs-0219), run in the workload cluster in its own namespace: a
//! small HTTP server, a NetworkPolicy that lets only pods labelled `netpol-probe: allowed`
//! reach it, and two Jobs. The allowed Job must reach the server (the positive control: the
//! server is up and reachable); only then is the denied Job started, which succeeds when its
//! connection fails. Both succeeding shows the CNI enforces NetworkPolicies. The objects and
//! the reading of the Jobs' results are pure here; [`super::live`] creates and reads them.

use serde_json::{Value, json};

/// The namespace of the probe.
pub const NAMESPACE: &str = "kaas-conformance";
/// The image of the server and the Jobs (Kubernetes' own e2e test image).
pub const IMAGE: &str = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";
/// The Job that must reach the server.
pub const ALLOWED_JOB: &str = "netpol-allowed";
/// The Job that must not.
pub const DENIED_JOB: &str = "netpol-denied";
/// The annotation naming the release content a Job probed (a new release probes again).
pub const FOR_ANNOTATION: &str = "kaas.scs.community/probe-for";

/// Where the probe stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProbeState {
    /// Not started (why).
    #[default]
    NotStarted,
    /// A Job has not finished yet (which).
    Running(String),
    /// Both Jobs succeeded.
    Passed,
    /// The denied Job reached the server.
    Failed(String),
    /// The result cannot be told (why).
    Inconclusive(String),
}

fn restricted_container(name: &str, command: &str) -> Value {
    json!({
        "name": name,
        "image": IMAGE,
        "command": ["sh", "-c", command],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
    })
}

/// The namespace, server, Service and NetworkPolicy (created once, never changed).
pub fn fixtures() -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/managed-by": "kaas-operator", "app.kubernetes.io/part-of": "kaas-conformance"});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "netpol-server", "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "netpol-server"}},
                "template": {
                    "metadata": {"labels": {"app": "netpol-server"}},
                    "spec": {"containers": [restricted_container(
                        "server",
                        "echo ok > /tmp/index.html && exec httpd -f -p 8080 -h /tmp",
                    )]},
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "netpol-server", "namespace": NAMESPACE, "labels": labels},
            "spec": {"selector": {"app": "netpol-server"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "netpol-server", "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": {"app": "netpol-server"}},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"netpol-probe": "allowed"}}}],
                    "ports": [{"port": 8080}],
                }],
            },
        }),
    ]
}

/// Job `name` (allowed or denied) for the release content `digest`.
pub fn job(name: &str, digest: &str) -> Value {
    let url = format!("http://netpol-server.{NAMESPACE}:8080/");
    let (labels, command) = if name == ALLOWED_JOB {
        (
            json!({"netpol-probe": "allowed"}),
            format!("wget -q -T 5 -O- {url}"),
        )
    } else {
        (
            json!({"netpol-probe": "denied"}),
            format!("! wget -q -T 5 -O- {url}"),
        )
    };
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {FOR_ANNOTATION: digest}},
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [restricted_container("probe", &command)]},
            },
        },
    })
}

/// How a Job ended: `Some(true)` succeeded, `Some(false)` failed, `None` still running.
pub fn job_result(job: &Value) -> Option<bool> {
    if job["status"]["succeeded"].as_i64().unwrap_or(0) > 0 {
        return Some(true);
    }
    let failed = job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Failed" && c["status"] == "True");
    failed.then_some(false)
}

/// The probe's state from its two Jobs (absent: `None`).
pub fn read(allowed: Option<&Value>, denied: Option<&Value>) -> ProbeState {
    match (allowed.map(job_result), denied.map(job_result)) {
        (None, _) => ProbeState::NotStarted,
        (Some(None), _) => ProbeState::Running(ALLOWED_JOB.into()),
        (Some(Some(false)), _) => ProbeState::Inconclusive(format!(
            "the pod the NetworkPolicy allows could not reach the server either (Job {NAMESPACE}/{ALLOWED_JOB} failed), so the probe shows nothing"
        )),
        (Some(Some(true)), None) | (Some(Some(true)), Some(None)) => {
            ProbeState::Running(DENIED_JOB.into())
        }
        (Some(Some(true)), Some(Some(true))) => ProbeState::Passed,
        (Some(Some(true)), Some(Some(false))) => ProbeState::Failed(format!(
            "a pod the NetworkPolicy denies reached the server (Job {NAMESPACE}/{DENIED_JOB} failed): the CNI does not enforce NetworkPolicies"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(name: &str, status: Value) -> Value {
        let mut j = job(name, "sha256:1");
        j["status"] = status;
        j
    }

    #[test]
    fn both_jobs_must_succeed_and_a_reached_server_fails() {
        let ok = json!({"succeeded": 1});
        let failed = json!({"failed": 4, "conditions": [{"type": "Failed", "status": "True"}]});
        let running = json!({"active": 1});
        assert_eq!(read(None, None), ProbeState::NotStarted);
        let allowed = with_status(ALLOWED_JOB, running.clone());
        assert_eq!(
            read(Some(&allowed), None),
            ProbeState::Running(ALLOWED_JOB.into())
        );
        let allowed = with_status(ALLOWED_JOB, ok.clone());
        assert_eq!(
            read(Some(&allowed), None),
            ProbeState::Running(DENIED_JOB.into())
        );
        let denied = with_status(DENIED_JOB, ok);
        assert_eq!(read(Some(&allowed), Some(&denied)), ProbeState::Passed);
        let denied = with_status(DENIED_JOB, failed.clone());
        assert!(
            matches!(read(Some(&allowed), Some(&denied)), ProbeState::Failed(m) if m.contains("does not enforce"))
        );
        let allowed = with_status(ALLOWED_JOB, failed);
        assert!(matches!(
            read(Some(&allowed), None),
            ProbeState::Inconclusive(_)
        ));
        // The denied Job inverts wget's exit code; the allowed one does not.
        assert!(job(DENIED_JOB, "d").to_string().contains("! wget"));
        assert!(!job(ALLOWED_JOB, "d").to_string().contains("! wget"));
        assert_eq!(
            job(ALLOWED_JOB, "d")["spec"]["template"]["metadata"]["labels"]["netpol-probe"],
            "allowed"
        );
    }
}
