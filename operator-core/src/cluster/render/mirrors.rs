//! Registry mirrors as containerd reads them: one `hosts.toml` per registry under
//! `/etc/containerd/certs.d` (the node images' `config_path`; containerd reads it at every
//! pull, so no restart), and the mirrors' CA next to it. The same files go to the control
//! plane's and every pool's kubeadm configuration. Registry names and endpoints were checked
//! (host names, URLs without quotes), so they are safe as paths and TOML strings.

use api::v1beta1::RegistryMirror;
use serde_json::{Value, json};

/// Where containerd looks for per-registry host configuration.
pub const CERTS_DIR: &str = "/etc/containerd/certs.d";

/// The kubeadm `files` entries for `mirrors`: each registry's `hosts.toml` (and `ca.crt`).
pub fn containerd_files(mirrors: &[RegistryMirror]) -> Vec<Value> {
    let mut files = Vec::new();
    for m in mirrors {
        let dir = format!("{CERTS_DIR}/{}", m.registry);
        let ca = m.certificate_authority.as_ref().map(|pem| {
            let path = format!("{dir}/ca.crt");
            files.push(file(&path, pem));
            path
        });
        files.push(file(
            &format!("{dir}/hosts.toml"),
            &hosts_toml(m, ca.as_deref()),
        ));
    }
    files
}

/// containerd's `hosts.toml` for one registry: the upstream server (none for `_default`),
/// then each mirror in order, for pulls and tag resolution.
pub fn hosts_toml(m: &RegistryMirror, ca: Option<&str>) -> String {
    let mut out =
        String::from("# Written by the kaas operator from the cluster's registry mirrors.\n");
    match m.registry.as_str() {
        "_default" => {}
        "docker.io" => out.push_str("server = \"https://registry-1.docker.io\"\n"),
        registry => out.push_str(&format!("server = \"https://{registry}\"\n")),
    }
    for endpoint in &m.endpoints {
        out.push_str(&format!(
            "\n[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ));
        if let Some(ca) = ca {
            out.push_str(&format!("  ca = \"{ca}\"\n"));
        }
    }
    out
}

fn file(path: &str, content: &str) -> Value {
    json!({"path": path, "owner": "root:root", "permissions": "0644", "content": content})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(registry: &str, endpoints: &[&str], ca: Option<&str>) -> RegistryMirror {
        RegistryMirror {
            registry: registry.into(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            certificate_authority: ca.map(Into::into),
        }
    }

    #[test]
    fn docker_hub_falls_back_to_its_real_host_after_the_mirrors() {
        let toml = hosts_toml(
            &mirror(
                "docker.io",
                &["https://a.example", "http://b.example:5000"],
                None,
            ),
            None,
        );
        assert_eq!(
            toml,
            "# Written by the kaas operator from the cluster's registry mirrors.\n\
             server = \"https://registry-1.docker.io\"\n\n\
             [host.\"https://a.example\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n\
             [host.\"http://b.example:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
    }

    #[test]
    fn a_ca_is_written_beside_and_named_by_every_mirror() {
        let files = containerd_files(&[
            mirror("quay.io", &["https://m.example"], Some("PEM")),
            mirror("_default", &["https://all.example"], None),
        ]);
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/etc/containerd/certs.d/quay.io/ca.crt",
                "/etc/containerd/certs.d/quay.io/hosts.toml",
                "/etc/containerd/certs.d/_default/hosts.toml",
            ]
        );
        let quay = files[1]["content"].as_str().unwrap();
        assert!(quay.contains("server = \"https://quay.io\""));
        assert!(quay.contains("ca = \"/etc/containerd/certs.d/quay.io/ca.crt\""));
        assert!(!files[2]["content"].as_str().unwrap().contains("server ="));
    }
}
