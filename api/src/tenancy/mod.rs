//! The rules of a [`TenantPolicy`], pure, for kaas-webhooks at admission and for anyone who
//! shows usage: which policies govern a namespace, what a cluster uses (its [`Footprint`]: the
//! nodes it asks for and, by its class's machine type catalogue, their vCPUs, memory and
//! GPUs), whether a cluster uses only what is allowed, and whether a change stays within the
//! limits. Every refusal names the field or the limit, the usage and what was asked.

mod footprint;
pub mod hold;
mod lifetime;
#[cfg(test)]
mod tests;
mod usage;

use std::collections::BTreeMap;
use std::fmt;

pub use footprint::{
    Footprint, PoolSize, QUANTITY, Resource, Sized, cluster_footprint, footprint, memory_mib,
    memory_quantity,
};
pub use lifetime::{DEFAULT_WARN_SECONDS, Lifetimes, lifetimes};
pub use usage::{RESERVATION_SECONDS, Recount, Standing, reservation, standing, status};

use crate::Previous;
use crate::v1beta1::{KaasClusterSpec, TenantPolicy};

/// The policies that govern a namespace with `labels`: those whose selector matches, else
/// the default ones. In name order.
pub fn governing<'a>(
    policies: impl IntoIterator<Item = &'a TenantPolicy>,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a TenantPolicy> {
    let mut selecting = Vec::new();
    let mut defaults = Vec::new();
    for p in policies {
        if let Some(selector) = &p.spec.namespace_selector
            && crate::selector::matches(selector, labels)
        {
            selecting.push(p);
        } else if p.spec.default == Some(true) {
            defaults.push(p);
        }
    }
    let mut out = if selecting.is_empty() {
        defaults
    } else {
        selecting
    };
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// The `spec.providerConfig` fields that name where machines run, in the shipped providers:
/// each a string or a list of strings.
pub const FAILURE_DOMAIN_FIELDS: [&str; 3] = [
    "region",
    "controlPlaneRegions",
    "controlPlaneAvailabilityZones",
];

/// Each place `config` names, with its field.
fn failure_domains(config: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(config) = config else {
        return out;
    };
    for key in FAILURE_DOMAIN_FIELDS {
        match &config[key] {
            serde_json::Value::String(s) => {
                out.push((format!("spec.providerConfig.{key}"), s.clone()))
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = item.as_str() {
                        out.push((format!("spec.providerConfig.{key}[{i}]"), s.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn policy_name(policy: &TenantPolicy) -> &str {
    policy.metadata.name.as_deref().unwrap_or_default()
}

/// Whether the cluster `spec` (of class `class_name`, in `namespace`) uses only what
/// `policy` allows. `old`, on an update, is the stored cluster: what it already uses stays
/// (a policy tightened later never forces a change).
pub fn check_allowed(
    policy: &TenantPolicy,
    namespace: &str,
    class_name: &str,
    spec: &KaasClusterSpec,
    old: Option<&Previous>,
) -> Result<(), Refusal> {
    let a = &policy.spec.allowed;
    let name = policy_name(policy);
    let refuse = |field: &str, what: String, allowed: &[String]| {
        Refusal(format!(
            "{field}: {what} is not allowed in namespace {namespace} by TenantPolicy {name} (allowed: {})",
            allowed.join(", ")
        ))
    };
    if !a.provider_classes.is_empty()
        && !a.provider_classes.iter().any(|c| c == class_name)
        && old.is_none()
    {
        return Err(refuse(
            "spec.providerClassName",
            format!("class {class_name:?}"),
            &a.provider_classes,
        ));
    }
    if !a.cluster_stacks.is_empty()
        && !a.cluster_stacks.contains(&spec.cluster_stack.name)
        && old.is_none_or(|o| o.cluster_stack.name != spec.cluster_stack.name)
    {
        return Err(refuse(
            "spec.clusterStack.name",
            format!("cluster stack {:?}", spec.cluster_stack.name),
            &a.cluster_stacks,
        ));
    }
    if let Some(version) = &spec.kubernetes_version
        && !a.kubernetes_minors.is_empty()
        && old.is_none_or(|o| o.kubernetes_version.as_ref() != Some(version))
    {
        let minor = version
            .trim_start_matches('v')
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        if !a.kubernetes_minors.contains(&minor) {
            return Err(refuse(
                "spec.kubernetesVersion",
                format!("Kubernetes {minor}"),
                &a.kubernetes_minors,
            ));
        }
    }
    if let Some(types) = a.machine_types.get(class_name) {
        let stored: Vec<&str> = old
            .map(|o| {
                o.pools
                    .iter()
                    .map(|p| p.machine_type.as_str())
                    .chain(o.control_plane.machine_type.as_deref())
                    .collect()
            })
            .unwrap_or_default();
        let named = spec
            .control_plane
            .machine_type
            .iter()
            .map(|t| ("spec.controlPlane.machineType".to_string(), t.as_str()))
            .chain(spec.workers.iter().enumerate().map(|(i, w)| {
                (
                    format!("spec.workers[{i}].machineType"),
                    w.machine_type.as_str(),
                )
            }));
        for (field, t) in named {
            if !types.iter().any(|x| x == t) && !stored.contains(&t) {
                return Err(refuse(&field, format!("machine type {t:?}"), types));
            }
        }
    }
    if !a.failure_domains.is_empty() {
        for (field, place) in failure_domains(spec.provider_config.as_ref()) {
            let stored = old.is_some_and(|o| {
                failure_domains(o.provider_config.as_ref())
                    .iter()
                    .any(|(_, p)| *p == place)
            });
            if !a.failure_domains.contains(&place) && !stored {
                return Err(refuse(
                    &field,
                    format!("failure domain {place:?}"),
                    &a.failure_domains,
                ));
            }
        }
    }
    let was = old.map(|o| o.set).unwrap_or_default();
    let flags = [
        (
            a.registry_mirrors,
            "spec.registryMirrors",
            !spec.registry_mirrors.is_empty() && !was.registry_mirrors,
        ),
        (
            a.authentication,
            "spec.authentication",
            spec.authentication.is_some() && !was.authentication,
        ),
        (
            a.automatic_upgrades,
            "spec.maintenance.autoUpgrade",
            spec.maintenance
                .as_ref()
                .is_some_and(|m| m.auto_upgrade.is_some())
                && !was.auto_upgrade,
        ),
    ];
    for (allowed, field, newly_set) in flags {
        if allowed == Some(false) && newly_set {
            return Err(Refusal(format!(
                "{field}: may not be set in namespace {namespace} (TenantPolicy {name})"
            )));
        }
    }
    if let Some(max) = policy.spec.limits.node_pools_per_cluster {
        let pools = spec.workers.len() as i64;
        let before = old.map_or(0, |o| o.pools.len() as i64);
        if pools > max && pools > before {
            return Err(Refusal(format!(
                "spec.workers: {pools} node pools, TenantPolicy {name} allows {max} per cluster in namespace {namespace}"
            )));
        }
    }
    Ok(())
}

/// The field manager of the versions automatic upgrades set (the operators' maintenance).
pub const AUTOMATIC_UPGRADE_MANAGER: &str = "kaas-maintenance";

/// Whether an update written by field manager `manager` may move the cluster's stack version:
/// an automatic upgrade ([`AUTOMATIC_UPGRADE_MANAGER`]) is refused where `policy` does not
/// allow automatic upgrades, also for a cluster that set `spec.maintenance.autoUpgrade` before
/// the policy said so (the setting stays; the cluster is not moved). Its owner can still move
/// it.
pub fn check_automatic_upgrade(
    policy: &TenantPolicy,
    namespace: &str,
    manager: Option<&str>,
    spec: &KaasClusterSpec,
    old: Option<&Previous>,
) -> Result<(), Refusal> {
    let Some(old) = old else {
        return Ok(());
    };
    let from = old.cluster_stack.version.as_deref().unwrap_or("?");
    let to = spec.cluster_stack.version.as_deref().unwrap_or("?");
    if manager != Some(AUTOMATIC_UPGRADE_MANAGER)
        || policy.spec.allowed.automatic_upgrades != Some(false)
        || from == to
    {
        return Ok(());
    }
    Err(Refusal(format!(
        "spec.clusterStack.version: automatic upgrades are not allowed in namespace {namespace} (TenantPolicy {}); the move from {from} to {to} is left to the cluster's owner",
        policy_name(policy)
    )))
}

/// Whether `delta` fits `policy` on top of `used` (what the namespaces it governs use,
/// reservations included). Only what grows is checked: a decrease is always allowed.
/// `uncounted` names machine types whose resources could not be counted.
pub fn check_limits(
    policy: &TenantPolicy,
    namespace: &str,
    used: &Footprint,
    delta: &Footprint,
    uncounted: &[(String, String)],
) -> Result<(), Refusal> {
    let name = policy_name(policy);
    for r in Resource::ALL {
        let Some(limit) = r.limit(policy) else {
            continue;
        };
        let more = r.of(delta);
        if more <= 0 {
            continue;
        }
        if r.by_machine_type()
            && let Some((field, t)) = uncounted.first()
        {
            return Err(Refusal(format!(
                "{field}: machine type {t:?} is not in its ProviderClass's machineTypes, so its {} cannot be counted against TenantPolicy {name}",
                r.unit().trim_start_matches("of ")
            )));
        }
        let now = r.of(used);
        if now.saturating_add(more) > limit {
            return Err(Refusal(format!(
                "namespace {namespace} (TenantPolicy {name}) uses {} of {} {}; this change asks for {} more",
                r.amount(now),
                r.amount(limit),
                r.unit(),
                r.amount(more)
            )));
        }
    }
    Ok(())
}
