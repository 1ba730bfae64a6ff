//! Trust boundary of the add-ons step: how a workload cluster is reached.
//!
//! The `<cluster>-kubeconfig` Secret lives in the tenant's namespace, so a tenant can write it.
//! A kubeconfig taken as it stands can make its client read a local file (the operator's own
//! service-account token) and send it to a server of the writer's choosing, or run a program.
//! So a client is built only from what Cluster API writes, and only from inline material:
//!
//! - the Secret has Cluster API's type and cluster-name label and is owned by the `Cluster` or
//!   the `KubeadmControlPlane` the operator created (Cluster API's control plane controller
//!   owns it; matched by uid);
//! - its server is the control plane endpoint the `Cluster` reports;
//! - credentials are inline: CA data, client certificate and key data, or a token. Files,
//!   programs (`exec`), auth plugins, basic auth, impersonation, proxies and skipped TLS
//!   verification are refused.
//!
//! A refusal names the field, never its value: messages go into the cluster's status.

use k8s_openapi::api::core::v1::Secret;
use kube::config::{AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo};
use kube::config::{NamedCluster, NamedContext};

use crate::owned::Owned;

/// The type Cluster API gives the Secrets it writes.
pub const SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
/// The label Cluster API puts on a cluster's Secrets: the cluster's name.
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// The most a kubeconfig may weigh (Cluster API's are a few KB).
pub const MAX_KUBECONFIG: usize = 64 * 1024;

/// Connect, read and write timeouts of a workload cluster client: a workload API server that
/// accepts and never answers must not hold a reconcile.
pub const WORKLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What the kubeconfig Secret of a cluster must match, from the Cluster API objects the
/// operator created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The cluster's name (the `Cluster`'s, the Secret's label).
    pub cluster: String,
    /// Uids the Secret may be owned by: the `Cluster`'s and the `KubeadmControlPlane`'s.
    pub owners: Vec<String>,
    /// The control plane endpoint's host, as the `Cluster` reports it.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl Expected {
    /// What the Secret of cluster `name` must match, from its observed Cluster API `Cluster`
    /// and control plane, or `None` while Cluster API has not reported the control plane
    /// endpoint.
    pub fn from_observed(
        name: &str,
        cluster: Option<&Owned>,
        control_plane: Option<&Owned>,
    ) -> Option<Expected> {
        let cluster = cluster?;
        let (host, port) = cluster.control_plane_endpoint()?;
        let owners = [Some(cluster), control_plane]
            .into_iter()
            .flatten()
            .filter_map(|o| o.metadata.uid.clone())
            .collect();
        Some(Expected {
            cluster: name.to_string(),
            owners,
            host: host.to_string(),
            port,
        })
    }

    /// The endpoint as a URL, for messages.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// Why a kubeconfig Secret is not used. Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not of Cluster API's Secret type.
    #[error("Secret {secret} is not of type {SECRET_TYPE}, so Cluster API did not write it")]
    Type {
        /// The Secret's name.
        secret: String,
    },
    /// Not labelled with this cluster's name.
    #[error("Secret {secret} is not labelled {CLUSTER_NAME_LABEL}={cluster}")]
    Label {
        /// The Secret's name.
        secret: String,
        /// The cluster it should be labelled with.
        cluster: String,
    },
    /// Not owned by the cluster's `Cluster` or control plane.
    #[error(
        "Secret {secret} is not owned by the Cluster or KubeadmControlPlane {cluster} the operator created"
    )]
    Owner {
        /// The Secret's name.
        secret: String,
        /// The cluster's name.
        cluster: String,
    },
    /// The kubeconfig cannot be read at all.
    #[error("Secret {secret}: {why}")]
    Unreadable {
        /// The Secret's name.
        secret: String,
        /// What is wrong (no value quoted).
        why: String,
    },
    /// The kubeconfig asks for something a workload cluster client may not do.
    #[error("Secret {secret}: kubeconfig field {field} is refused: {why}")]
    Field {
        /// The Secret's name.
        secret: String,
        /// The field (`users[0].user.exec`).
        field: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// The kubeconfig points at another server than the cluster's control plane endpoint.
    #[error(
        "Secret {secret}: kubeconfig server {server} is not the control plane endpoint {endpoint} the Cluster reports"
    )]
    Server {
        /// The Secret's name.
        secret: String,
        /// The server the kubeconfig names (not secret: an address).
        server: String,
        /// The endpoint.
        endpoint: String,
    },
}

/// Checks the kubeconfig Secret of a cluster against what Cluster API wrote and returns a
/// kubeconfig holding only the accepted, inline parts of its current context.
pub fn check(secret: &Secret, expected: &Expected) -> Result<Kubeconfig, Refused> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return Err(Refused::Type { secret: name });
    }
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CLUSTER_NAME_LABEL))
        .is_some_and(|v| *v == expected.cluster);
    if !labelled {
        return Err(Refused::Label {
            secret: name,
            cluster: expected.cluster.clone(),
        });
    }
    let owned = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| expected.owners.contains(&o.uid));
    if !owned {
        return Err(Refused::Owner {
            secret: name,
            cluster: expected.cluster.clone(),
        });
    }
    let unreadable = |why: &str| Refused::Unreadable {
        secret: name.clone(),
        why: why.to_string(),
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .ok_or_else(|| unreadable("has no key \"value\""))?;
    if bytes.0.len() > MAX_KUBECONFIG {
        return Err(unreadable(&format!(
            "value is larger than {MAX_KUBECONFIG} bytes"
        )));
    }
    let text = std::str::from_utf8(&bytes.0).map_err(|_| unreadable("value is not text"))?;
    // The parser's message may quote the text around the error, key data included: say only
    // that it failed.
    let kubeconfig =
        Kubeconfig::from_yaml(text).map_err(|_| unreadable("value is not a valid kubeconfig"))?;
    sanitize(&kubeconfig, &name, expected)
}

/// The accepted parts of `kubeconfig`'s current context, or what is refused.
fn sanitize(
    kubeconfig: &Kubeconfig,
    secret: &str,
    expected: &Expected,
) -> Result<Kubeconfig, Refused> {
    let field = |field: String, why: &'static str| Refused::Field {
        secret: secret.to_string(),
        field,
        why,
    };
    let unreadable = |why: String| Refused::Unreadable {
        secret: secret.to_string(),
        why,
    };
    let context_name = match (&kubeconfig.current_context, kubeconfig.contexts.as_slice()) {
        (Some(c), _) => c.clone(),
        (None, [only]) => only.name.clone(),
        (None, _) => return Err(unreadable("kubeconfig names no current-context".into())),
    };
    let (ci, context) = kubeconfig
        .contexts
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == context_name)
        .and_then(|(i, c)| c.context.as_ref().map(|c| (i, c)))
        .ok_or_else(|| {
            unreadable("kubeconfig's current-context is not among its contexts".into())
        })?;
    let (ki, cluster) = kubeconfig
        .clusters
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == context.cluster)
        .and_then(|(i, c)| c.cluster.as_ref().map(|c| (i, c)))
        .ok_or_else(|| {
            unreadable(format!(
                "contexts[{ci}].context.cluster is not among its clusters"
            ))
        })?;
    let user_name = context.user.clone().unwrap_or_default();
    let (ui, user) = kubeconfig
        .auth_infos
        .iter()
        .enumerate()
        .find(|(_, u)| u.name == user_name)
        .and_then(|(i, u)| u.auth_info.as_ref().map(|u| (i, u)))
        .ok_or_else(|| {
            unreadable(format!(
                "contexts[{ci}].context.user is not among its users"
            ))
        })?;

    let c = |f: &str| format!("clusters[{ki}].cluster.{f}");
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(field(c("insecure-skip-tls-verify"), "TLS must be verified"));
    }
    if cluster.certificate_authority.is_some() {
        return Err(field(
            c("certificate-authority"),
            "files are not read; inline CA data only",
        ));
    }
    if cluster.proxy_url.is_some() {
        return Err(field(c("proxy-url"), "the operator connects directly"));
    }
    if cluster.certificate_authority_data.is_none() {
        return Err(field(
            c("certificate-authority-data"),
            "the cluster's CA must be given inline",
        ));
    }
    let server = cluster.server.clone().unwrap_or_default();
    if !same_endpoint(&server, expected) {
        return Err(Refused::Server {
            secret: secret.to_string(),
            server: shown_server(&server),
            endpoint: expected.endpoint(),
        });
    }

    let u = |f: &str| format!("users[{ui}].user.{f}");
    let refused: [(bool, &str, &'static str); 9] = [
        (user.exec.is_some(), "exec", "no program is run"),
        (
            user.auth_provider.is_some(),
            "auth-provider",
            "auth plugins are not used",
        ),
        (
            user.token_file.is_some(),
            "tokenFile",
            "files are not read; an inline token only",
        ),
        (
            user.client_certificate.is_some(),
            "client-certificate",
            "files are not read; inline data only",
        ),
        (
            user.client_key.is_some(),
            "client-key",
            "files are not read; inline data only",
        ),
        (
            user.username.is_some() || user.password.is_some(),
            "username",
            "basic authentication is not used",
        ),
        (
            user.impersonate.is_some() || user.impersonate_uid.is_some(),
            "as",
            "impersonation is not used",
        ),
        (
            user.impersonate_groups.is_some(),
            "as-groups",
            "impersonation is not used",
        ),
        (
            user.impersonate_user_extra.is_some(),
            "as-user-extra",
            "impersonation is not used",
        ),
    ];
    if let Some((_, f, why)) = refused.iter().find(|(bad, _, _)| *bad) {
        return Err(field(u(f), why));
    }
    let certificate = user.client_certificate_data.is_some() && user.client_key_data.is_some();
    if user.token.is_none() && !certificate {
        return Err(unreadable(format!(
            "users[{ui}].user holds no inline credentials (client certificate and key data, or a token)"
        )));
    }

    Ok(Kubeconfig {
        clusters: vec![NamedCluster {
            name: "workload".into(),
            cluster: Some(Cluster {
                server: Some(server),
                certificate_authority_data: cluster.certificate_authority_data.clone(),
                tls_server_name: cluster.tls_server_name.clone(),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "workload".into(),
            auth_info: Some(AuthInfo {
                token: user.token.clone(),
                client_certificate_data: user.client_certificate_data.clone(),
                client_key_data: user.client_key_data.clone(),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: "workload".into(),
            context: Some(Context {
                cluster: "workload".into(),
                user: Some("workload".into()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some("workload".into()),
        ..Kubeconfig::default()
    })
}

/// Whether `server` is `https://` the expected host and port (no path beyond `/`).
fn same_endpoint(server: &str, expected: &Expected) -> bool {
    let Ok(uri) = server.parse::<http::Uri>() else {
        return false;
    };
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    uri.scheme_str() == Some("https")
        && host.is_some_and(|h| h.eq_ignore_ascii_case(&expected.host))
        && uri.port_u16().unwrap_or(443) == expected.port
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
}

/// The server for a message: scheme, host and port only (a URL may carry credentials).
fn shown_server(server: &str) -> String {
    match server.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority()
                .map(|a| a
                    .as_str()
                    .rsplit('@')
                    .next()
                    .unwrap_or_default()
                    .to_string())
                .unwrap_or_default()
        ),
        Err(_) => "(not a URL)".into(),
    }
}

/// A client configuration from a kubeconfig [`check`] accepted, with timeouts.
pub async fn config(accepted: Kubeconfig) -> Result<kube::Config, String> {
    let mut config = kube::Config::from_custom_kubeconfig(accepted, &KubeConfigOptions::default())
        .await
        // kube's messages about inline data name what failed to decode, not the data.
        .map_err(|e| format!("kubeconfig cannot be used: {}", first_line(&e.to_string())))?;
    config.connect_timeout = Some(WORKLOAD_TIMEOUT);
    config.read_timeout = Some(WORKLOAD_TIMEOUT);
    config.write_timeout = Some(WORKLOAD_TIMEOUT);
    config.proxy_url = None;
    Ok(config)
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::{Value, json};

    const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t";

    fn expected() -> Expected {
        Expected {
            cluster: "dev".into(),
            owners: vec!["uid-kcp".into()],
            host: "10.0.0.5".into(),
            port: 6443,
        }
    }

    fn kubeconfig(cluster: Value, user: Value) -> String {
        json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "dev", "cluster": cluster}],
            "users": [{"name": "dev-admin", "user": user}],
            "contexts": [{"name": "dev-admin@dev", "context": {"cluster": "dev", "user": "dev-admin"}}],
            "current-context": "dev-admin@dev",
        })
        .to_string()
    }

    fn good_cluster() -> Value {
        json!({"server": "https://10.0.0.5:6443", "certificate-authority-data": CA})
    }

    fn secret(value: &str) -> Secret {
        serde_json::from_value(json!({
            "metadata": {
                "name": "dev-kubeconfig",
                "labels": {CLUSTER_NAME_LABEL: "dev"},
                "ownerReferences": [{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
                    "kind": "KubeadmControlPlane", "name": "dev", "uid": "uid-kcp", "controller": true}],
            },
            "type": SECRET_TYPE,
            "data": {"value": ByteString(value.as_bytes().to_vec())},
        }))
        .unwrap()
    }

    #[test]
    fn cluster_apis_kubeconfig_is_accepted_with_only_its_inline_parts() {
        let text = kubeconfig(good_cluster(), json!({"token": "t0ken"}));
        let accepted = check(&secret(&text), &expected()).expect("accepted");
        let cluster = accepted.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.5:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some(CA));
        let user = accepted.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
        assert!(user.exec.is_none() && user.token_file.is_none());
    }

    #[test]
    fn files_programs_plugins_proxies_and_skipped_tls_are_refused_by_field() {
        let cases = [
            (
                json!({"server": "https://10.0.0.5:6443", "certificate-authority": "/etc/ca"}),
                json!({"token": "t"}),
                "clusters[0].cluster.certificate-authority",
            ),
            (
                json!({"server": "https://10.0.0.5:6443", "insecure-skip-tls-verify": true}),
                json!({"token": "t"}),
                "clusters[0].cluster.insecure-skip-tls-verify",
            ),
            (
                json!({"server": "https://10.0.0.5:6443", "certificate-authority-data": CA, "proxy-url": "http://evil:3128"}),
                json!({"token": "t"}),
                "clusters[0].cluster.proxy-url",
            ),
            (
                good_cluster(),
                json!({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}),
                "users[0].user.tokenFile",
            ),
            (
                good_cluster(),
                json!({"exec": {"command": "sh", "args": ["-c", "id"], "apiVersion": "client.authentication.k8s.io/v1"}}),
                "users[0].user.exec",
            ),
            (
                good_cluster(),
                json!({"auth-provider": {"name": "oidc", "config": {}}}),
                "users[0].user.auth-provider",
            ),
            (
                good_cluster(),
                json!({"client-certificate": "/etc/cert", "client-key-data": "a2V5"}),
                "users[0].user.client-certificate",
            ),
            (
                good_cluster(),
                json!({"token": "t", "as": "system:admin"}),
                "users[0].user.as",
            ),
        ];
        for (cluster, user, field) in cases {
            let err = check(&secret(&kubeconfig(cluster, user)), &expected()).unwrap_err();
            assert!(
                matches!(&err, Refused::Field { field: f, .. } if f == field),
                "{field}: {err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn another_server_than_the_endpoint_is_refused() {
        for server in [
            "https://evil.example:6443",
            "https://10.0.0.5:6444",
            "http://10.0.0.5:6443",
            "https://10.0.0.5:6443/proxy",
        ] {
            let cluster = json!({"server": server, "certificate-authority-data": CA});
            let err = check(
                &secret(&kubeconfig(cluster, json!({"token": "t"}))),
                &expected(),
            )
            .unwrap_err();
            assert!(matches!(err, Refused::Server { .. }), "{server}: {err}");
            assert!(err.to_string().contains("https://10.0.0.5:6443"), "{err}");
        }
    }

    #[test]
    fn a_secret_cluster_api_did_not_write_is_refused() {
        let text = kubeconfig(good_cluster(), json!({"token": "t"}));
        let mut s = secret(&text);
        s.type_ = Some("Opaque".into());
        assert!(matches!(check(&s, &expected()), Err(Refused::Type { .. })));
        let mut s = secret(&text);
        s.metadata.labels = None;
        assert!(matches!(check(&s, &expected()), Err(Refused::Label { .. })));
        let mut s = secret(&text);
        s.metadata.owner_references = None;
        assert!(matches!(check(&s, &expected()), Err(Refused::Owner { .. })));
    }

    #[test]
    fn a_broken_kubeconfig_is_refused_without_quoting_it() {
        let text = "users:\n- name: a\n  user:\n    client-key-data: SECRETKEYMATERIAL\n  : [\n";
        let err = check(&secret(text), &expected()).unwrap_err();
        assert!(!err.to_string().contains("SECRETKEYMATERIAL"), "{err}");
        assert!(err.to_string().contains("not a valid kubeconfig"), "{err}");
        let big = "a".repeat(MAX_KUBECONFIG + 1);
        assert!(
            check(&secret(&big), &expected())
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
    }

    #[test]
    fn the_endpoint_comes_from_the_cluster_once_reported() {
        let owned = |v| serde_json::from_value::<Owned>(v).unwrap();
        assert_eq!(Expected::from_observed("dev", None, None), None);
        let cluster = owned(json!({"metadata": {"uid": "uid-c"}, "spec": {}}));
        assert_eq!(Expected::from_observed("dev", Some(&cluster), None), None);
        let cluster = owned(json!({"metadata": {"uid": "uid-c"},
            "spec": {"controlPlaneEndpoint": {"host": "::1", "port": 6443}}}));
        let control_plane = owned(json!({"metadata": {"uid": "uid-kcp"}}));
        let e = Expected::from_observed("dev", Some(&cluster), Some(&control_plane)).unwrap();
        assert_eq!(e.owners, ["uid-c", "uid-kcp"]);
        assert_eq!(e.endpoint(), "https://[::1]:6443");
    }
}
