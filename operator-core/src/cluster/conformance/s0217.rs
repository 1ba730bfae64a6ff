//! scs-0217 v1, security hardening, checked on what the operator renders for the cluster (the
//! `KubeadmControlPlane` and every pool's `KubeadmConfigTemplate`): kubeadm's secure defaults
//! (kubelet anonymous auth off, webhook authorization, read-only port off; API server
//! authorization Node,RBAC with NodeRestriction; etcd over TLS) must not be overridden by the
//! stack's flags, and Pod Security Admission must be enforced cluster-wide at `baseline` or
//! stricter through the API server's admission configuration. Reading the running kubelets'
//! configuration needs real nodes (docs/standards.md).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Evidence, Finding, Outcome};

/// The standard's id.
pub const ID: &str = "scs-0217-v1";

/// Flags in Cluster API's v1beta2 list form (`[{name, value}]`) at `pointer` of `object`.
fn flags(object: &Value, pointer: &str) -> BTreeMap<String, String> {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a["name"].as_str()?.to_string(),
                a["value"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn list(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).collect()
}

/// The Pod Security level enforced by default in the admission configuration file `path`
/// carried in the control plane's `files`.
fn enforced_level(control_plane: &Value, path: &str) -> Option<String> {
    let content = control_plane
        .pointer("/spec/kubeadmConfigSpec/files")?
        .as_array()?
        .iter()
        .find(|f| f["path"] == path)?["content"]
        .as_str()?;
    let config: Value = serde_saphyr::from_str(content).ok()?;
    config["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "PodSecurity")?
        .pointer("/configuration/defaults/enforce")?
        .as_str()
        .map(str::to_string)
}

pub(super) fn check(e: &Evidence<'_>) -> Finding {
    check_rendered(e.control_plane, &e.bootstraps)
}

/// The check over the rendered control plane and pool templates.
pub(super) fn check_rendered(control_plane: Option<&Value>, bootstraps: &[&Value]) -> Finding {
    let Some(cp) = control_plane else {
        return Finding::new(
            ID,
            Outcome::Unknown,
            "the control plane is not rendered yet",
        );
    };
    let mut problems = Vec::new();
    let kubelets = [
        (
            "the control plane",
            flags(
                cp,
                "/spec/kubeadmConfigSpec/initConfiguration/nodeRegistration/kubeletExtraArgs",
            ),
        ),
        (
            "the control plane (join)",
            flags(
                cp,
                "/spec/kubeadmConfigSpec/joinConfiguration/nodeRegistration/kubeletExtraArgs",
            ),
        ),
    ]
    .into_iter()
    .chain(bootstraps.iter().map(|b| {
        (
            "a worker pool",
            flags(
                b,
                "/spec/template/spec/joinConfiguration/nodeRegistration/kubeletExtraArgs",
            ),
        )
    }));
    for (whose, args) in kubelets {
        if args.get("anonymous-auth").is_some_and(|v| v == "true") {
            problems.push(format!(
                "kubelet anonymous auth is on on {whose} (kubeletExtraArgs anonymous-auth=true)"
            ));
        }
        if args
            .get("authorization-mode")
            .is_some_and(|v| v != "Webhook")
        {
            problems.push(format!(
                "the kubelet of {whose} does not use webhook authorization (authorization-mode={})",
                args["authorization-mode"]
            ));
        }
        if args.get("read-only-port").is_some_and(|v| v != "0") {
            problems.push(format!(
                "the kubelet's read-only port is open on {whose} (read-only-port={})",
                args["read-only-port"]
            ));
        }
    }
    let api = flags(
        cp,
        "/spec/kubeadmConfigSpec/clusterConfiguration/apiServer/extraArgs",
    );
    if let Some(mode) = api.get("authorization-mode") {
        let modes = list(mode);
        if !(modes.contains(&"Node") && modes.contains(&"RBAC")) || modes.contains(&"AlwaysAllow") {
            problems.push(format!(
                "the API server's authorization-mode is {mode}, not Node,RBAC"
            ));
        }
    }
    if let Some(enabled) = api.get("enable-admission-plugins")
        && !list(enabled).contains(&"NodeRestriction")
    {
        problems.push(format!(
            "enable-admission-plugins={enabled} leaves out NodeRestriction"
        ));
    }
    if let Some(disabled) = api.get("disable-admission-plugins") {
        for plugin in ["NodeRestriction", "PodSecurity"] {
            if list(disabled).contains(&plugin) {
                problems.push(format!("disable-admission-plugins turns {plugin} off"));
            }
        }
    }
    if api
        .get("etcd-servers")
        .is_some_and(|s| s.contains("http://"))
    {
        problems.push("the API server talks to etcd without TLS (etcd-servers http://)".into());
    }
    let level = api
        .get("admission-control-config-file")
        .and_then(|path| enforced_level(cp, path));
    match level.as_deref() {
        Some("baseline" | "restricted") => {}
        Some(other) => problems.push(format!("Pod Security Admission enforces only {other:?}; baseline or stricter is required (kubeadm.podSecurity.enforce)")),
        None => problems.push("Pod Security Admission is not enforced cluster-wide (kubeadm.podSecurity.enforce)".into()),
    }
    if problems.is_empty() {
        Finding::new(
            ID,
            Outcome::Pass,
            format!(
                "kubelets: anonymous auth off, webhook authorization, read-only port off; API server: Node,RBAC, NodeRestriction, Pod Security enforce={}; etcd over TLS",
                level.unwrap_or_default()
            ),
        )
    } else {
        Finding::new(ID, Outcome::Fail, problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn control_plane(api: Value, kubelet: Value, enforce: &str) -> Value {
        json!({"spec": {"kubeadmConfigSpec": {
            "clusterConfiguration": {"apiServer": {"extraArgs": api}},
            "initConfiguration": {"nodeRegistration": {"kubeletExtraArgs": kubelet}},
            "files": [{"path": "/etc/kubernetes/kaas/admission.yaml", "content": format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n  - name: PodSecurity\n    configuration:\n      apiVersion: pod-security.admission.config.k8s.io/v1\n      kind: PodSecurityConfiguration\n      defaults: {{enforce: {enforce}}}\n")}],
        }}})
    }

    fn psa() -> Value {
        json!([{"name": "admission-control-config-file", "value": "/etc/kubernetes/kaas/admission.yaml"}])
    }

    #[test]
    fn kubeadm_defaults_with_pod_security_pass_and_each_override_is_named() {
        let good = control_plane(
            psa(),
            json!([{"name": "cloud-provider", "value": "external"}]),
            "baseline",
        );
        let f = check_rendered(Some(&good), &[]);
        assert_eq!(f.outcome, Outcome::Pass, "{f:?}");
        assert!(f.message.contains("enforce=baseline"));

        let anonymous = control_plane(
            psa(),
            json!([{"name": "anonymous-auth", "value": "true"}]),
            "baseline",
        );
        let f = check_rendered(Some(&anonymous), &[]);
        assert_eq!(f.outcome, Outcome::Fail);
        assert!(
            f.message
                .contains("kubelet anonymous auth is on on the control plane"),
            "{f:?}"
        );

        let pool = json!({"spec": {"template": {"spec": {"joinConfiguration": {"nodeRegistration": {"kubeletExtraArgs": [{"name": "read-only-port", "value": "10255"}]}}}}}});
        let f = check_rendered(Some(&good), &[&pool]);
        assert!(
            f.message
                .contains("read-only port is open on a worker pool"),
            "{f:?}"
        );

        let mut api = psa();
        api.as_array_mut()
            .unwrap()
            .push(json!({"name": "authorization-mode", "value": "AlwaysAllow"}));
        api.as_array_mut()
            .unwrap()
            .push(json!({"name": "disable-admission-plugins", "value": "PodSecurity"}));
        let f = check_rendered(Some(&control_plane(api, json!([]), "baseline")), &[]);
        assert!(
            f.message.contains("authorization-mode is AlwaysAllow")
                && f.message.contains("turns PodSecurity off"),
            "{f:?}"
        );

        let f = check_rendered(Some(&control_plane(psa(), json!([]), "privileged")), &[]);
        assert!(f.message.contains("enforces only \"privileged\""), "{f:?}");
        let f = check_rendered(Some(&control_plane(json!([]), json!([]), "baseline")), &[]);
        assert!(f.message.contains("not enforced cluster-wide"), "{f:?}");
        assert_eq!(check_rendered(None, &[]).outcome, Outcome::Unknown);
    }
}
