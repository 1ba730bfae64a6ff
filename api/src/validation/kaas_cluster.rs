//! `KaasCluster` rules: the spec on its own, its references (class, stack, Kubernetes version)
//! against the [`Catalog`], and what may change on update.

use std::collections::HashSet;

use kube::ResourceExt;

use super::names::{is_dns_label, is_dns_subdomain, is_label_value, is_qualified_name};
use super::{FieldError, ValidationErrors};
use crate::limits::*;
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
    if let Some(t) = &spec.control_plane.machine_type
        && (t.is_empty() || t.len() > MAX_MACHINE_TYPE)
    {
        errs.add(
            "spec.controlPlane.machineType",
            format!("must be 1 to {MAX_MACHINE_TYPE} bytes"),
        );
    }
    validate_workers(spec, &mut errs);
    validate_network(&spec.network, &mut errs);
    if let Some(oidc) = &spec.oidc {
        validate_oidc(oidc, &mut errs);
    }
    if let Some(auth) = &spec.authentication {
        validate_authentication(spec, auth, &mut errs);
    }
    if let Some(m) = &spec.maintenance {
        validate_maintenance(m, &mut errs);
    }
    for (field, message) in registry_mirror_problems("spec.registryMirrors", &spec.registry_mirrors)
    {
        errs.add(field, message);
    }
    if let Some(days) = spec.control_plane.certificates_expiry_days
        && !(MIN_CERTIFICATES_EXPIRY_DAYS..=MAX_CERTIFICATES_EXPIRY_DAYS).contains(&days)
    {
        errs.add(
            "spec.controlPlane.certificatesExpiryDays",
            format!(
                "must be from {MIN_CERTIFICATES_EXPIRY_DAYS} (Cluster API's minimum) to {MAX_CERTIFICATES_EXPIRY_DAYS} (kubeadm's certificates last a year)"
            ),
        );
    }
    if spec.addons.len() > MAX_ADDON_OVERRIDES {
        errs.add(
            "spec.addons",
            format!("at most {MAX_ADDON_OVERRIDES} add-ons"),
        );
    }
    let mut seen = HashSet::new();
    for (i, addon) in spec.addons.iter().enumerate().take(MAX_ADDON_OVERRIDES) {
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

/// The days a maintenance window names.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A maintenance window: a policy of `patch` or `minor`, known unique days, `HH:MM`, 30 to
/// 1,440 minutes, a time zone the time zone database knows.
fn validate_maintenance(m: &crate::v1beta1::Maintenance, errs: &mut ValidationErrors) {
    if let Some(p) = m.auto_upgrade.as_deref()
        && p != "patch"
        && p != "minor"
    {
        errs.add(
            "spec.maintenance.autoUpgrade",
            format!("{p:?} must be patch or minor"),
        );
    }
    let w = &m.window;
    let mut seen = HashSet::new();
    for (i, d) in w.days.iter().enumerate() {
        if !WEEKDAYS.contains(&d.as_str()) || !seen.insert(d) {
            errs.add(
                format!("spec.maintenance.window.days[{i}]"),
                format!("{d:?} must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, each once"),
            );
        }
    }
    let hhmm = w.start.split_once(':').and_then(|(h, m)| {
        (h.len() == 2 && m.len() == 2)
            .then(|| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
            .flatten()
    });
    if hhmm.is_none_or(|(h, m)| h > 23 || m > 59) {
        errs.add(
            "spec.maintenance.window.start",
            format!("{:?} must be a time of day as HH:MM", w.start),
        );
    }
    if !(30..=1440).contains(&w.duration_minutes) {
        errs.add(
            "spec.maintenance.window.durationMinutes",
            "must be 30 to 1440 (a day)",
        );
    }
    if let Some(tz) = w.time_zone.as_deref()
        && (tz.len() > 64 || jiff::tz::TimeZone::get(tz).is_err())
    {
        errs.add(
            "spec.maintenance.window.timeZone",
            format!("{tz:?} is not a time zone of the IANA database (such as Europe/Berlin)"),
        );
    }
}

/// What is wrong with registry mirrors at `path` (a cluster's or a stack's), as (field,
/// message): a registry that is not a host with an optional port (or `_default`), listed
/// twice, no or too many endpoints, an endpoint that is not an `http(s)://` URL with a host,
/// a CA that is not PEM certificates. Registry names become file paths on every node, so
/// nothing but a host name gets through.
pub fn registry_mirror_problems(
    path: &str,
    mirrors: &[crate::v1beta1::RegistryMirror],
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if mirrors.len() > MAX_REGISTRY_MIRRORS {
        problems.push((
            path.to_string(),
            format!("at most {MAX_REGISTRY_MIRRORS} registries"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, m) in mirrors.iter().enumerate() {
        let at = |field: &str| format!("{path}[{i}].{field}");
        if !is_registry_host(&m.registry) {
            problems.push((
                at("registry"),
                format!(
                    "{:?} must be a registry host (letters, digits, '-' and '.', an optional :port) or _default",
                    m.registry
                ),
            ));
        } else if !seen.insert(m.registry.as_str()) {
            problems.push((at("registry"), format!("{:?} is listed twice", m.registry)));
        }
        if m.endpoints.is_empty() || m.endpoints.len() > MAX_MIRROR_ENDPOINTS {
            problems.push((
                at("endpoints"),
                format!("must name 1 to {MAX_MIRROR_ENDPOINTS} mirrors"),
            ));
        }
        for (e, url) in m.endpoints.iter().enumerate() {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let host = rest.map(|r| r.split('/').next().unwrap_or_default());
            if host.is_none_or(|h| !is_registry_host(h) || h == "_default")
                || url.len() > 512
                || url.contains(|c: char| {
                    c.is_whitespace() || c == '"' || c == '\\' || c.is_control()
                })
            {
                problems.push((
                    at(&format!("endpoints[{e}]")),
                    format!("{url:?} must be an http:// or https:// URL with a host"),
                ));
            }
        }
        if let Some(ca) = &m.certificate_authority
            && let Err(e) = crate::signing_key::pem_blocks(ca, "CERTIFICATE")
        {
            problems.push((at("certificateAuthority"), e));
        }
    }
    problems
}

/// `host` or `host:port` made of DNS characters, or `_default`.
fn is_registry_host(s: &str) -> bool {
    if s == "_default" {
        return true;
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// `spec.oidc`: an issuer URL as `jwt` issuers have, a client ID, claims and prefixes of at
/// most [`MAX_CLAIM_TEXT`] bytes (they become API server flags on every control plane node).
fn validate_oidc(oidc: &crate::v1beta1::Oidc, errs: &mut ValidationErrors) {
    if let Some(problem) = issuer_problem(&oidc.issuer_url) {
        errs.add("spec.oidc.issuerURL", problem);
    } else if oidc.issuer_url.len() > MAX_CLAIM_TEXT {
        errs.add(
            "spec.oidc.issuerURL",
            format!("at most {MAX_CLAIM_TEXT} bytes"),
        );
    }
    if oidc.client_id.is_empty() || oidc.client_id.len() > MAX_CLAIM_TEXT {
        errs.add(
            "spec.oidc.clientID",
            format!("must be 1 to {MAX_CLAIM_TEXT} bytes"),
        );
    }
    for (field, value, may_be_empty) in [
        ("spec.oidc.usernameClaim", &oidc.username_claim, false),
        ("spec.oidc.groupsClaim", &oidc.groups_claim, false),
        ("spec.oidc.usernamePrefix", &oidc.username_prefix, true),
        ("spec.oidc.groupsPrefix", &oidc.groups_prefix, true),
    ] {
        if let Some(v) = value
            && ((v.is_empty() && !may_be_empty) || v.len() > MAX_CLAIM_TEXT)
        {
            errs.add(
                field,
                format!("must be at most {MAX_CLAIM_TEXT} bytes, and not empty for a claim"),
            );
        }
    }
}

/// The service account issuer kubeadm gives a cluster's API server: kube-apiserver refuses a
/// JWT issuer with the same URL (its own tokens' issuer).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What is wrong with an issuer URL, as kube-apiserver judges it: not `https://` with a host,
/// a user name or password in it, a query or fragment, or the cluster's own service account
/// issuer.
fn issuer_problem(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://");
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        Some(format!("{url:?} must be an https:// URL with a host"))
    } else if url.contains(['?', '#']) {
        Some("must not contain a query or fragment".into())
    } else if authority.is_some_and(|a| a.contains('@')) {
        Some("must not contain a user name or password".into())
    } else if url == SERVICE_ACCOUNT_ISSUER {
        Some(format!(
            "{url:?} is the cluster's own service account issuer; kube-apiserver refuses it here"
        ))
    } else {
        None
    }
}

/// Structured authentication: Kubernetes 1.30 or newer, at most 16 issuers each once (with
/// `spec.oidc`'s), audiences, PEM CAs, claims; each bad field named.
fn validate_authentication(
    spec: &KaasClusterSpec,
    auth: &crate::v1beta1::Authentication,
    errs: &mut ValidationErrors,
) {
    if let Some(v) = spec.kubernetes_version.as_deref()
        && let Some(minor) = v.split('.').nth(1).and_then(|m| m.parse::<u64>().ok())
        && v.starts_with("1.")
        && minor < 30
    {
        errs.add(
            "spec.authentication",
            format!("needs Kubernetes 1.30 or newer (the cluster asks for {v}); use spec.oidc"),
        );
    }
    if auth.jwt.is_empty() {
        errs.add("spec.authentication.jwt", "must name at least one issuer");
    }
    if auth.jwt.len() > MAX_JWT_ISSUERS {
        errs.add(
            "spec.authentication.jwt",
            format!("at most {MAX_JWT_ISSUERS} issuers"),
        );
    }
    let mut urls: HashSet<&str> = spec.oidc.iter().map(|o| o.issuer_url.as_str()).collect();
    for (i, jwt) in auth.jwt.iter().enumerate() {
        let at = |field: &str| format!("spec.authentication.jwt[{i}].{field}");
        if let Some(problem) = issuer_problem(&jwt.issuer.url) {
            errs.add(at("issuer.url"), problem);
        } else if !urls.insert(jwt.issuer.url.as_str()) {
            errs.add(
                at("issuer.url"),
                format!(
                    "{:?} is trusted twice (here or in spec.oidc)",
                    jwt.issuer.url
                ),
            );
        }
        if jwt.issuer.audiences.is_empty() || jwt.issuer.audiences.len() > MAX_AUDIENCES {
            errs.add(
                at("issuer.audiences"),
                format!("must name 1 to {MAX_AUDIENCES} audiences"),
            );
        }
        let mut audiences = HashSet::new();
        for (a, audience) in jwt.issuer.audiences.iter().enumerate().take(MAX_AUDIENCES) {
            if audience.is_empty() || audience.len() > MAX_CLAIM_TEXT || !audiences.insert(audience)
            {
                errs.add(
                    at(&format!("issuer.audiences[{a}]")),
                    format!("must be non-empty, at most {MAX_CLAIM_TEXT} bytes, and listed once"),
                );
            }
        }
        if jwt.issuer.url.len() > MAX_CLAIM_TEXT {
            errs.add(at("issuer.url"), format!("at most {MAX_CLAIM_TEXT} bytes"));
        }
        let mappings = [
            ("claimMappings.username", Some(&jwt.claim_mappings.username)),
            ("claimMappings.groups", jwt.claim_mappings.groups.as_ref()),
        ];
        for (field, mapping) in mappings {
            if let Some(m) = mapping
                && (m.claim.len() > MAX_CLAIM_TEXT
                    || m.prefix.as_ref().is_some_and(|p| p.len() > MAX_CLAIM_TEXT))
            {
                errs.add(
                    at(field),
                    format!("a claim or prefix of at most {MAX_CLAIM_TEXT} bytes"),
                );
            }
        }
        if let Some(ca) = &jwt.issuer.certificate_authority
            && let Err(e) = crate::signing_key::pem_blocks(ca, "CERTIFICATE")
        {
            errs.add(at("issuer.certificateAuthority"), e);
        }
        if jwt.claim_mappings.username.claim.is_empty() {
            errs.add(at("claimMappings.username.claim"), "must not be empty");
        }
        if jwt
            .claim_mappings
            .groups
            .as_ref()
            .is_some_and(|g| g.claim.is_empty())
        {
            errs.add(at("claimMappings.groups.claim"), "must not be empty");
        }
    }
}

fn validate_workers(spec: &KaasClusterSpec, errs: &mut ValidationErrors) {
    if spec.workers.len() > MAX_POOLS {
        errs.add("spec.workers", format!("at most {MAX_POOLS} pools"));
    }
    let mut names = HashSet::new();
    for (i, pool) in spec.workers.iter().enumerate().take(MAX_POOLS) {
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
        if pool.machine_type.is_empty() || pool.machine_type.len() > MAX_MACHINE_TYPE {
            errs.add(
                at("machineType"),
                format!("must be 1 to {MAX_MACHINE_TYPE} bytes"),
            );
        }
        if pool.labels.len() > MAX_LABELS {
            errs.add(at("labels"), format!("at most {MAX_LABELS} labels"));
        }
        if pool.taints.len() > MAX_TAINTS {
            errs.add(at("taints"), format!("at most {MAX_TAINTS} taints"));
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
