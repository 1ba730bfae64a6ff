//! The kubeadm part of the rendering (pure): the control plane's `kubeadmConfigSpec` and a
//! pool's bootstrap template from the stack's kubeadm settings, the provider's kubelet flags
//! and the cluster's OIDC settings, in the shape Cluster API v1beta2 accepts: flags as
//! `[{name, value}]` lists with each name once, and nothing empty (the CRDs require at least
//! one property of `clusterConfiguration`, `nodeRegistration` and a bootstrap template, and
//! at least one item of an argument list).

use std::collections::BTreeMap;

use api::v1beta1::{Authentication, Oidc, WorkerPool};
use kaas_stack::format::{Kubeadm, PodSecurity};
use serde_json::{Map, Value, json};

/// The API server flags a cluster's `spec.oidc` sets (and replaces in a stack).
pub const OIDC_FLAG_PREFIX: &str = "oidc-";

/// The control plane's `kubeadmConfigSpec`, `None` when it has nothing to say.
pub(super) fn control_plane_config(
    kubeadm: &Kubeadm,
    kubelet_args: &BTreeMap<String, String>,
    oidc: Option<&Oidc>,
    authentication: Option<&str>,
    node_files: &[Value],
) -> Option<Value> {
    let mut cluster_configuration = Map::new();
    let mut api_server = match authentication {
        // The structured configuration replaces every `--oidc-*` flag (the API server takes
        // one or the other); `spec.oidc` is one of its issuers.
        Some(_) => {
            let mut args = api_server_args(&kubeadm.api_server_extra_args, None);
            args.retain(|a| {
                a["name"].as_str().is_none_or(|n| {
                    !n.starts_with(OIDC_FLAG_PREFIX) && n != "authentication-config"
                })
            });
            args.push(json!({"name": "authentication-config", "value": AUTHENTICATION_FILE}));
            args
        }
        None => api_server_args(&kubeadm.api_server_extra_args, oidc),
    };
    if kubeadm.pod_security.is_some() {
        api_server.retain(|a| a["name"] != "admission-control-config-file");
        api_server.push(json!({"name": "admission-control-config-file", "value": ADMISSION_FILE}));
    }
    let components = [
        ("apiServer", api_server),
        (
            "controllerManager",
            args_list(&kubeadm.controller_manager_extra_args),
        ),
        ("scheduler", args_list(&kubeadm.scheduler_extra_args)),
    ];
    for (component, args) in components {
        if !args.is_empty() {
            cluster_configuration.insert(component.into(), json!({"extraArgs": args}));
        }
    }
    if let Some(api) = cluster_configuration.get_mut("apiServer")
        && (kubeadm.pod_security.is_some() || authentication.is_some())
    {
        // The name stays what it was before the folder held more than the admission
        // configuration: a new name would roll every control plane for nothing.
        api["extraVolumes"] = json!([{
            "name": "kaas-admission",
            "hostPath": ADMISSION_DIR,
            "mountPath": ADMISSION_DIR,
            "readOnly": true,
            "pathType": "DirectoryOrCreate",
        }]);
    }
    let mut spec = Map::new();
    let mut files = Vec::new();
    if let Some(ps) = &kubeadm.pod_security {
        files.push(json!({
            "path": ADMISSION_FILE,
            "owner": "root:root",
            "permissions": "0644",
            "content": admission_configuration(ps),
        }));
    }
    if let Some(content) = authentication {
        files.push(json!({
            "path": AUTHENTICATION_FILE,
            "owner": "root:root",
            "permissions": "0644",
            "content": content,
        }));
    }
    files.extend_from_slice(node_files);
    if !files.is_empty() {
        spec.insert("files".into(), Value::Array(files));
    }
    if !cluster_configuration.is_empty() {
        spec.insert(
            "clusterConfiguration".into(),
            Value::Object(cluster_configuration),
        );
    }
    if let Some(registration) = node_registration(kubelet_args, None) {
        spec.insert(
            "initConfiguration".into(),
            json!({"nodeRegistration": registration}),
        );
        spec.insert(
            "joinConfiguration".into(),
            json!({"nodeRegistration": registration}),
        );
    }
    commands(&mut spec, kubeadm);
    (!spec.is_empty()).then_some(Value::Object(spec))
}

/// Where the API server's admission configuration lies on control plane nodes.
pub const ADMISSION_DIR: &str = "/etc/kubernetes/kaas";
/// The admission configuration file.
pub const ADMISSION_FILE: &str = "/etc/kubernetes/kaas/admission.yaml";

/// The API server's structured authentication file.
pub const AUTHENTICATION_FILE: &str = "/etc/kubernetes/kaas/authentication.yaml";

/// The API server's `AuthenticationConfiguration` with `auth`'s issuers and, when set, the
/// cluster's `spec.oidc` as one more (its client ID the audience); `apiserver.config.k8s.io/v1`
/// from Kubernetes 1.34, `v1beta1` before. YAML is JSON, so the file is written as JSON.
pub fn authentication_configuration(
    auth: &Authentication,
    oidc: Option<&Oidc>,
    kubernetes_version: &str,
) -> String {
    let minor = kubernetes_version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(0);
    let api_version = if minor >= 34 {
        "apiserver.config.k8s.io/v1"
    } else {
        "apiserver.config.k8s.io/v1beta1"
    };
    let mapping = |claim: &str, prefix: &Option<String>| json!({"claim": claim, "prefix": prefix.clone().unwrap_or_default()});
    let mut jwt: Vec<Value> = auth
        .jwt
        .iter()
        .map(|j| {
            let mut issuer = json!({"url": j.issuer.url, "audiences": j.issuer.audiences});
            // kube-apiserver refuses several audiences without it (a token needs one of them).
            if j.issuer.audiences.len() > 1 {
                issuer["audienceMatchPolicy"] = "MatchAny".into();
            }
            if let Some(ca) = &j.issuer.certificate_authority {
                issuer["certificateAuthority"] = ca.clone().into();
            }
            let mut claims = json!({"username": mapping(&j.claim_mappings.username.claim, &j.claim_mappings.username.prefix)});
            if let Some(g) = &j.claim_mappings.groups {
                claims["groups"] = mapping(&g.claim, &g.prefix);
            }
            json!({"issuer": issuer, "claimMappings": claims})
        })
        .collect();
    if let Some(o) = oidc {
        let username = o.username_claim.clone().unwrap_or_else(|| "sub".into());
        let mut claims = json!({"username": mapping(&username, &o.username_prefix)});
        if let Some(g) = &o.groups_claim {
            claims["groups"] = mapping(g, &o.groups_prefix);
        }
        jwt.push(json!({
            "issuer": {"url": o.issuer_url, "audiences": [o.client_id]},
            "claimMappings": claims,
        }));
    }
    let config = json!({
        "apiVersion": api_version,
        "kind": "AuthenticationConfiguration",
        "jwt": jwt,
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// The API server's `AdmissionConfiguration` making `ps` the cluster-wide Pod Security
/// defaults (levels left out are `privileged`, Kubernetes' own default).
pub fn admission_configuration(ps: &PodSecurity) -> String {
    let level = |l: &Option<String>| l.clone().unwrap_or_else(|| "privileged".into());
    let mut namespaces = ps.exempt_namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        enforce: {}
        enforce-version: latest
        audit: {}
        audit-version: latest
        warn: {}
        warn-version: latest
      exemptions:
        usernames: []
        runtimeClasses: []
        namespaces: [{}]
",
        level(&ps.enforce),
        level(&ps.audit),
        level(&ps.warn),
        namespaces.join(", ")
    )
}

/// `spec.template` of a pool's `KubeadmConfigTemplate`: its kubelet flags (with the pool's
/// node labels) and taints. One with nothing to configure carries `labels` in its metadata
/// (the template must have a property).
pub(super) fn pool_bootstrap(
    kubeadm: &Kubeadm,
    kubelet_args: &BTreeMap<String, String>,
    pool: &WorkerPool,
    labels: Value,
    node_files: &[Value],
) -> Value {
    let mut args = kubelet_args.clone();
    if !pool.labels.is_empty() {
        let node_labels: Vec<String> = pool
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        args.insert("node-labels".into(), node_labels.join(","));
    }
    // Taints Cluster API propagates (`taintPropagation`) are the MachineDeployment's, not
    // kubeadm's.
    let taints = (!pool.taints.is_empty() && pool.taint_propagation.is_none())
        .then(|| serde_json::to_value(&pool.taints).unwrap_or_default());
    let mut spec = Map::new();
    if let Some(registration) = node_registration(&args, taints) {
        spec.insert(
            "joinConfiguration".into(),
            json!({"nodeRegistration": registration}),
        );
    }
    commands(&mut spec, kubeadm);
    if !node_files.is_empty() {
        spec.insert("files".into(), Value::Array(node_files.to_vec()));
    }
    if spec.is_empty() {
        json!({"metadata": {"labels": labels}})
    } else {
        json!({"spec": spec})
    }
}

/// The API server's flags: the stack's, and a cluster's OIDC settings in place of the
/// stack's `oidc-*` flags (Cluster API refuses two flags of one name). The stack's other flags
/// keep their order, so a cluster that adds OIDC rolls its control plane only for that.
fn api_server_args(stack: &BTreeMap<String, String>, oidc: Option<&Oidc>) -> Vec<Value> {
    let Some(oidc) = oidc else {
        return args_list(stack);
    };
    let mut args: Vec<Value> = stack
        .iter()
        .filter(|(k, _)| !k.starts_with(OIDC_FLAG_PREFIX))
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    args.push(json!({"name": "oidc-issuer-url", "value": oidc.issuer_url}));
    args.push(json!({"name": "oidc-client-id", "value": oidc.client_id}));
    let optional = [
        ("oidc-username-claim", &oidc.username_claim),
        ("oidc-groups-claim", &oidc.groups_claim),
        ("oidc-username-prefix", &oidc.username_prefix),
        ("oidc-groups-prefix", &oidc.groups_prefix),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            args.push(json!({"name": k, "value": v}));
        }
    }
    args
}

/// `nodeRegistration` with the kubelet's flags and the taints, `None` when it has neither.
fn node_registration(
    kubelet_args: &BTreeMap<String, String>,
    taints: Option<Value>,
) -> Option<Value> {
    let mut registration = Map::new();
    if !kubelet_args.is_empty() {
        registration.insert(
            "kubeletExtraArgs".into(),
            Value::Array(args_list(kubelet_args)),
        );
    }
    if let Some(taints) = taints {
        registration.insert("taints".into(), taints);
    }
    (!registration.is_empty()).then_some(Value::Object(registration))
}

/// Flags as Cluster API v1beta2 lists them: `[{name, value}]`.
fn args_list(args: &BTreeMap<String, String>) -> Vec<Value> {
    args.iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect()
}

/// The stack's commands around kubeadm.
fn commands(spec: &mut Map<String, Value>, kubeadm: &Kubeadm) {
    if !kubeadm.pre_kubeadm_commands.is_empty() {
        spec.insert(
            "preKubeadmCommands".into(),
            json!(kubeadm.pre_kubeadm_commands),
        );
    }
    if !kubeadm.post_kubeadm_commands.is_empty() {
        spec.insert(
            "postKubeadmCommands".into(),
            json!(kubeadm.post_kubeadm_commands),
        );
    }
}
