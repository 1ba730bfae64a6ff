//! `ClusterStack` rules: a release is a semantic version with full Kubernetes versions and a
//! pinned source; it never changes once published and cannot be deleted while in use.

use std::collections::HashSet;

use kube::ResourceExt;

use super::ValidationErrors;
use super::names::is_dns_label;
use super::provider_class::in_use_message;
use crate::Catalog;
use crate::v1beta1::ClusterStack;
use crate::version::KubeVersion;

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every rule for a `ClusterStack` being created (`old` is `None`) or updated.
pub fn validate_cluster_stack(
    stack: &ClusterStack,
    old: Option<&ClusterStack>,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let spec = &stack.spec;
    if !is_dns_label(&spec.provider) {
        errs.add(
            "spec.provider",
            format!("{:?} must be a DNS label such as openstack", spec.provider),
        );
    }
    if !is_dns_label(&spec.name) {
        errs.add("spec.name", format!("{:?} must be a DNS label", spec.name));
    }
    let version = match semver::Version::parse(&spec.version) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.add(
                "spec.version",
                format!("{:?} is not a semantic version: {e}", spec.version),
            );
            None
        }
    };
    if spec.kubernetes_versions.is_empty() {
        errs.add(
            "spec.kubernetesVersions",
            "at least one version is required",
        );
    }
    let mut seen = HashSet::new();
    for (i, v) in spec.kubernetes_versions.iter().enumerate() {
        let path = format!("spec.kubernetesVersions[{i}]");
        if KubeVersion::parse_full(v).is_err() {
            errs.add(
                path,
                format!("{v:?} must be a full version MAJOR.MINOR.PATCH such as 1.31.4"),
            );
        } else if !seen.insert(v) {
            errs.add(path, format!("duplicate version {v:?}"));
        }
    }
    for (i, v) in spec.upgrade_from.iter().enumerate() {
        let path = format!("spec.upgradeFrom[{i}]");
        match semver::Version::parse(v) {
            Err(e) => errs.add(path, format!("{v:?} is not a semantic version: {e}")),
            Ok(from) => {
                if version.as_ref().is_some_and(|to| &from >= to) {
                    errs.add(path, format!("{v} must be older than spec.version"));
                }
            }
        }
    }
    for (i, image) in spec.node_images.iter().enumerate() {
        let path = format!("spec.nodeImages[{i}]");
        if !spec.kubernetes_versions.contains(&image.kubernetes_version) {
            errs.add(
                format!("{path}.kubernetesVersion"),
                format!(
                    "{:?} is not one of spec.kubernetesVersions",
                    image.kubernetes_version
                ),
            );
        }
        if image.name.is_empty() {
            errs.add(format!("{path}.name"), "must not be empty");
        }
        if let Some(c) = &image.checksum
            && !c.strip_prefix("sha256:").is_some_and(|h| is_hex(h, 64))
        {
            errs.add(
                format!("{path}.checksum"),
                "must be sha256: and 64 hex digits",
            );
        }
        if image
            .url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            errs.add(format!("{path}.url"), "must be an http:// or https:// URL");
        }
    }
    if let Some(source) = &spec.source {
        let set = [
            source.local.is_some(),
            source.http.is_some(),
            source.oci.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            errs.add(
                "spec.source",
                "exactly one of local, http and oci must be set",
            );
        }
        if let Some(local) = &source.local
            && !local.path.starts_with('/')
        {
            errs.add("spec.source.local.path", "must be an absolute path");
        }
        if let Some(http) = &source.http {
            if !(http.url.starts_with("https://") || http.url.starts_with("http://")) {
                errs.add("spec.source.http.url", "must be an http:// or https:// URL");
            }
            if !is_hex(&http.sha256, 64) {
                errs.add("spec.source.http.sha256", "must be 64 lowercase hex digits");
            }
        }
        if let Some(oci) = &source.oci {
            if oci.repository.is_empty() || oci.repository.contains(['@', ' ']) {
                errs.add(
                    "spec.source.oci.repository",
                    "must be a repository such as registry.example.com/stacks/scs",
                );
            }
            if !oci
                .digest
                .strip_prefix("sha256:")
                .is_some_and(|h| is_hex(h, 64))
            {
                errs.add(
                    "spec.source.oci.digest",
                    "must be sha256: and 64 hex digits",
                );
            }
            if let Some(key) = &oci.public_key
                && let Err(e) = crate::signing_key::p256_point(key)
            {
                errs.add("spec.source.oci.publicKey", e);
            }
        }
    }
    match old {
        Some(old) if old.spec != stack.spec => errs.forbidden(
            "spec",
            "is immutable once created: publish a new release with a new version instead",
        ),
        Some(_) => {}
        None => {
            let name = stack.name_any();
            if let Some(other) = catalog
                .release(&spec.provider, &spec.name, &spec.version)
                .filter(|o| o.name_any() != name)
            {
                errs.forbidden(
                    "spec.version",
                    format!(
                        "ClusterStack {:?} already publishes {} {} for provider {}",
                        other.name_any(),
                        spec.name,
                        spec.version,
                        spec.provider
                    ),
                );
            }
        }
    }
    errs.into_result()
}

/// Refuses deleting a release that a `KaasCluster` asks for or still runs.
pub fn validate_cluster_stack_delete(
    stack: &ClusterStack,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let users: Vec<String> = catalog
        .clusters
        .iter()
        .filter(|c| {
            c.spec.cluster_stack.name == stack.spec.name
                && catalog.provider_of(c) == Some(stack.spec.provider.as_str())
                && (c.spec.cluster_stack.version.as_deref() == Some(stack.spec.version.as_str())
                    || c.status
                        .as_ref()
                        .and_then(|s| s.cluster_stack_version.as_deref())
                        == Some(stack.spec.version.as_str()))
        })
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    let mut errs = ValidationErrors::default();
    if !users.is_empty() {
        errs.forbidden(
            "metadata.name",
            in_use_message("ClusterStack", &stack.name_any(), &users),
        );
    }
    errs.into_result()
}
