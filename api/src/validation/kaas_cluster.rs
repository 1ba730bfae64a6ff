//! `KaasCluster` rules: the spec on its own, its references (class, stack, Kubernetes version)
//! against the [`Catalog`], and what may change on update.

use std::collections::HashSet;

use kube::ResourceExt;

use super::names::{is_dns_label, is_dns_subdomain, is_label_value, is_qualified_name};
use super::{FieldError, ValidationErrors};
use crate::net::Cidr;
use crate::v1beta1::{KaasCluster, KaasClusterSpec, Network};
use crate::version::KubeVersion;
use crate::{Catalog, Previous};

/// Rules that need nothing but the spec itself.
pub fn validate_kaas_cluster_spec(spec: &KaasClusterSpec) -> Vec<FieldError> {
    let mut errs = ValidationErrors::default();
    if let Some(class) = &spec.provider_class_name
        && !is_dns_subdomain(class)
    {
        errs.add(
            "spec.providerClassName",
            format!("{class:?} is not a valid object name (lowercase DNS subdomain)"),
        );
    }
    if !is_dns_label(&spec.cluster_stack.name) {
        errs.add(
            "spec.clusterStack.name",
            format!(
                "{:?} must be a DNS label (lowercase letters, digits, '-')",
                spec.cluster_stack.name
            ),
        );
    }
    if let Some(v) = &spec.cluster_stack.version
        && let Err(e) = semver::Version::parse(v)
    {
        errs.add(
            "spec.clusterStack.version",
            format!("{v:?} is not a semantic version: {e}"),
        );
    }
    if let Some(v) = &spec.kubernetes_version
        && let Err(e) = KubeVersion::parse(v)
    {
        errs.add("spec.kubernetesVersion", format!("{v:?} {e}"));
    }
    if let Some(r) = spec.control_plane.replicas
        && ![1, 3, 5].contains(&r)
    {
        errs.add(
            "spec.controlPlane.replicas",
            format!("must be 1, 3 or 5 (an odd etcd quorum), not {r}"),
        );
    }
    if spec.control_plane.machine_type.as_deref() == Some("") {
        errs.add("spec.controlPlane.machineType", "must not be empty");
    }
    validate_workers(spec, &mut errs);
    validate_network(&spec.network, &mut errs);
    if let Some(oidc) = &spec.oidc {
        let rest = oidc.issuer_url.strip_prefix("https://");
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            errs.add(
                "spec.oidc.issuerURL",
                format!("{:?} must be an https:// URL with a host", oidc.issuer_url),
            );
        } else if oidc.issuer_url.contains(['?', '#']) {
            errs.add(
                "spec.oidc.issuerURL",
                "must not contain a query or fragment",
            );
        }
        if oidc.client_id.is_empty() {
            errs.add("spec.oidc.clientID", "must not be empty");
        }
    }
    let mut seen = HashSet::new();
    for (i, addon) in spec.addons.iter().enumerate() {
        // Paths are only formatted for a field in error: a valid spec allocates none.
        let at = |field: &str| format!("spec.addons[{i}].{field}");
        if !is_dns_label(&addon.name) {
            errs.add(at("name"), format!("{:?} must be a DNS label", addon.name));
        } else if !seen.insert(addon.name.as_str()) {
            errs.add(at("name"), format!("duplicate add-on {:?}", addon.name));
        }
        if addon.values.as_ref().is_some_and(|v| !v.is_object()) {
            errs.add(at("values"), "must be an object");
        }
    }
    if spec
        .provider_config
        .as_ref()
        .is_some_and(|v| !v.is_object())
    {
        errs.add("spec.providerConfig", "must be an object");
    }
    errs.0
}

fn validate_workers(spec: &KaasClusterSpec, errs: &mut ValidationErrors) {
    let mut names = HashSet::new();
    for (i, pool) in spec.workers.iter().enumerate() {
        // Paths are only formatted for a field in error: a valid spec allocates none.
        let at = |field: &str| format!("spec.workers[{i}].{field}");
        if !is_dns_label(&pool.name) {
            errs.add(
                at("name"),
                format!(
                    "{:?} must be a DNS label (lowercase letters, digits, '-', at most 63)",
                    pool.name
                ),
            );
        } else if !names.insert(pool.name.as_str()) {
            errs.add(at("name"), format!("duplicate pool name {:?}", pool.name));
        }
        if pool.replicas < 0 {
            errs.add(at("replicas"), "must be >= 0");
        }
        if pool.machine_type.is_empty() {
            errs.add(at("machineType"), "must not be empty");
        }
        if let Some(min) = pool.min_replicas {
            if min < 0 {
                errs.add(at("minReplicas"), "must be >= 0");
            } else if pool.replicas < min {
                errs.add(at("replicas"), format!("must be >= minReplicas ({min})"));
            }
        }
        if let Some(max) = pool.max_replicas {
            if max < 1 {
                errs.add(at("maxReplicas"), "must be >= 1");
            } else if pool.replicas > max {
                errs.add(at("replicas"), format!("must be <= maxReplicas ({max})"));
            }
            if let Some(min) = pool.min_replicas
                && min > max
            {
                errs.add(at("maxReplicas"), format!("must be >= minReplicas ({min})"));
            }
        }
        for key in pool.labels.keys() {
            if !is_qualified_name(key) {
                errs.add(
                    at(&format!("labels[{key}]")),
                    "key must be a qualified name such as example.com/role",
                );
            }
        }
        for (key, value) in &pool.labels {
            if !is_label_value(value) {
                errs.add(
                    at(&format!("labels[{key}]")),
                    format!("{value:?} is not a valid label value"),
                );
            }
        }
        for (t, taint) in pool.taints.iter().enumerate() {
            if !is_qualified_name(&taint.key) {
                errs.add(
                    at(&format!("taints[{t}].key")),
                    format!("{:?} must be a qualified name", taint.key),
                );
            }
            if let Some(v) = &taint.value
                && !is_label_value(v)
            {
                errs.add(
                    at(&format!("taints[{t}].value")),
                    format!("{v:?} is not a valid taint value"),
                );
            }
        }
        if let Some(rollout) = &pool.rollout {
            validate_rollout(rollout, &at, errs);
        }
    }
}

/// A pool's rollout settings, each bad field named.
fn validate_rollout(
    rollout: &crate::v1beta1::PoolRollout,
    at: &dyn Fn(&str) -> String,
    errs: &mut ValidationErrors,
) {
    use crate::v1beta1::RolloutStrategy;
    for (field, value) in [
        ("rollout.maxSurge", &rollout.max_surge),
        ("rollout.maxUnavailable", &rollout.max_unavailable),
    ] {
        if let Some(problem) = value.as_ref().and_then(|v| v.problem()) {
            errs.add(at(field), problem);
        }
        if value.is_some() && rollout.strategy == Some(RolloutStrategy::OnDelete) {
            errs.add(at(field), "applies only to the RollingUpdate strategy");
        }
    }
    if rollout.max_surge.as_ref().is_some_and(|v| v.is_zero())
        && rollout
            .max_unavailable
            .as_ref()
            .is_some_and(|v| v.is_zero())
    {
        errs.add(
            at("rollout.maxUnavailable"),
            "maxSurge and maxUnavailable cannot both be 0: the rollout could never replace a machine",
        );
    }
    if rollout.node_drain_timeout_seconds.is_some_and(|s| s < 0) {
        errs.add(at("rollout.nodeDrainTimeoutSeconds"), "must be >= 0");
    }
}

fn validate_network(net: &Network, errs: &mut ValidationErrors) {
    // (field, index, network) of every network parsed so far; paths are formatted on error.
    let mut parsed: Vec<(&str, usize, Cidr)> = Vec::new();
    for (list, field) in [
        (&net.pod_cidrs, "spec.network.podCIDRs"),
        (&net.service_cidrs, "spec.network.serviceCIDRs"),
    ] {
        if list.is_empty() {
            errs.add(field, "at least one network is required");
        }
        let (mut v4, mut v6) = (0, 0);
        for (i, raw) in list.iter().enumerate() {
            match Cidr::parse(raw) {
                Ok(cidr) => {
                    if cidr.is_ipv4() {
                        v4 += 1;
                    } else {
                        v6 += 1;
                    }
                    for (other_field, j, other) in &parsed {
                        if cidr.overlaps(other) {
                            errs.add(
                                format!("{field}[{i}]"),
                                format!("{cidr} overlaps {other_field}[{j}] ({other})"),
                            );
                        }
                    }
                    parsed.push((field, i, cidr));
                }
                Err(e) => errs.add(format!("{field}[{i}]"), format!("{raw:?}: {e}")),
            }
        }
        if v4 > 1 || v6 > 1 {
            errs.add(field, "at most one IPv4 and one IPv6 network");
        }
    }
    if let Some(mtu) = net.mtu
        && !(1280..=9000).contains(&mtu)
    {
        errs.add(
            "spec.network.mtu",
            format!("must be 1280 to 9000, not {mtu}"),
        );
    }
}

/// Every rule for a `KaasCluster` being created (`old` is `None`) or updated from `old`: the
/// spec, the references against `catalog`, and what may change.
pub fn validate_kaas_cluster(
    cluster: &KaasCluster,
    old: Option<&Previous>,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let name = cluster.name_any();
    if !is_dns_label(&name) {
        errs.add(
            "metadata.name",
            format!("{name:?} must be a DNS label (it names the Cluster API objects)"),
        );
    }
    errs.0.extend(validate_kaas_cluster_spec(&cluster.spec));
    validate_references(&cluster.spec, catalog, &mut errs);
    if let Some(old) = old {
        validate_update(cluster, old, catalog, &mut errs);
    }
    errs.into_result()
}

fn validate_references(spec: &KaasClusterSpec, catalog: &Catalog, errs: &mut ValidationErrors) {
    let Some(class_name) = &spec.provider_class_name else {
        errs.not_found(
            "spec.providerClassName",
            "required: no ProviderClass is annotated as the default",
        );
        return;
    };
    let Some(class) = catalog.class(class_name) else {
        errs.not_found(
            "spec.providerClassName",
            format!("ProviderClass {class_name:?} not found"),
        );
        return;
    };
    let provider = class.spec.provider();
    let stack_name = &spec.cluster_stack.name;
    let Some(version) = &spec.cluster_stack.version else {
        errs.not_found(
            "spec.clusterStack.version",
            format!("required: no ready release of stack {stack_name:?} for provider {provider:?}"),
        );
        return;
    };
    let Some(stack) = catalog.release(provider, stack_name, version) else {
        errs.not_found(
            "spec.clusterStack.version",
            format!("ClusterStack {stack_name:?} {version} for provider {provider:?} not found"),
        );
        return;
    };
    match spec.kubernetes_version.as_deref().map(KubeVersion::parse) {
        None => errs.add("spec.kubernetesVersion", "required"),
        Some(Err(_)) => {} // reported by the spec rules
        Some(Ok(wanted)) => {
            if crate::version::newest_match(&wanted, &stack.spec.kubernetes_versions).is_none() {
                errs.add(
                    "spec.kubernetesVersion",
                    format!(
                        "{wanted} is not supported by stack {stack_name:?} {version} (supports {})",
                        stack.spec.kubernetes_versions.join(", ")
                    ),
                );
            }
        }
    }
}

fn validate_update(
    new: &KaasCluster,
    old: &Previous,
    catalog: &Catalog,
    errs: &mut ValidationErrors,
) {
    if new.spec.provider_class_name != old.provider_class_name {
        errs.forbidden("spec.providerClassName", "is immutable");
    }
    if new.spec.network != old.network {
        errs.forbidden("spec.network", "is immutable");
    }
    if new.spec.cluster_stack.name != old.cluster_stack.name {
        errs.forbidden("spec.clusterStack.name", "is immutable");
    }
    validate_version_change(new, old, errs);

    let (Some(from), Some(to)) = (&old.cluster_stack.version, &new.spec.cluster_stack.version)
    else {
        return;
    };
    if from == to || new.spec.cluster_stack.name != old.cluster_stack.name {
        return;
    }
    let Some(provider) = catalog.provider_of(new) else {
        return;
    };
    let Some(target) = catalog.release(provider, &new.spec.cluster_stack.name, to) else {
        return; // reported by the reference rules
    };
    if !target.spec.upgrade_from.iter().any(|v| v == from) {
        let edges = if target.spec.upgrade_from.is_empty() {
            "none".to_string()
        } else {
            target.spec.upgrade_from.join(", ")
        };
        errs.forbidden(
            "spec.clusterStack.version",
            format!("stack {to} does not declare an upgrade from {from} (upgradeFrom: {edges})"),
        );
    }
}

fn validate_version_change(new: &KaasCluster, old: &Previous, errs: &mut ValidationErrors) {
    let parse = |v: Option<&String>| v.and_then(|v| KubeVersion::parse(v).ok());
    let Some(to) = parse(new.spec.kubernetes_version.as_ref()) else {
        return;
    };
    // What runs now is the floor when it is known; otherwise what was asked before.
    let running = parse(old.running_version.as_ref());
    let Some(from) = running.or(parse(old.kubernetes_version.as_ref())) else {
        return;
    };
    if to.major != from.major {
        errs.forbidden(
            "spec.kubernetesVersion",
            format!("may not change the major version ({from} to {to})"),
        );
    } else if to.cmp_loose(&from).is_lt() {
        errs.forbidden(
            "spec.kubernetesVersion",
            format!("may not go down from {from} to {to}"),
        );
    } else if to.minor > from.minor + 1 {
        errs.forbidden(
            "spec.kubernetesVersion",
            format!(
                "may move at most one minor version per change ({from} to {to} skips {}.{})",
                from.major,
                from.minor + 1
            ),
        );
    }
}
