//! A policy's usage as its status shows it (pure): what the clusters of the namespaces it
//! governs use, plus the reservations of admitted changes that do not show yet; the holds of
//! kaas-webhooks replicas are kept until they expire.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::lifetime::{earliest, lifetimes};
use super::{Footprint, Resource, cluster_footprint, governing};
use crate::Catalog;
use crate::v1beta1::{
    Expiring, KaasCluster, NamespaceUsage, Reservation, TenantPolicy, TenantPolicyStatus,
};

/// How long a reservation waits for its change to show before it is dropped: a request
/// refused later in the API server's chain frees what it reserved after this.
pub const RESERVATION_SECONDS: i64 = 30;

/// What a recount of `policy` gives: its status, and what its lifetime asks for now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recount {
    /// The status it should show.
    pub status: TenantPolicyStatus,
    /// Clusters warned now that their lifetime ends.
    pub warn: Vec<Expiring>,
    /// Clusters to delete now: warned before, past their end.
    pub delete: Vec<Expiring>,
    /// When a recount next has something to do on its own (a warning, a deletion, a
    /// reservation that expires), if ever.
    pub next: Option<Time>,
}

/// The status `policy` should show at `now`: what the clusters of the namespaces it governs
/// use (`clusters` and `namespaces`' labels as last seen, `policies` all there are), plus its
/// reservations whose change does not show yet and that have not expired.
pub fn status<'a>(
    policy: &TenantPolicy,
    policies: &[&TenantPolicy],
    clusters: impl IntoIterator<Item = &'a KaasCluster>,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    catalog: &Catalog,
    now: &Time,
) -> Recount {
    let empty = BTreeMap::new();
    let name = policy.metadata.name.as_deref();
    let mut by_namespace: BTreeMap<String, Footprint> = BTreeMap::new();
    let mut seen: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut governed = Vec::new();
    // Whether the policy governs a namespace, decided once per namespace.
    let mut governs: BTreeMap<&str, bool> = BTreeMap::new();
    for cluster in clusters {
        let Some(ns) = cluster.metadata.namespace.as_deref() else {
            continue;
        };
        let yes = *governs.entry(ns).or_insert_with(|| {
            let labels = namespaces.get(ns).unwrap_or(&empty);
            governing(policies.iter().copied(), labels)
                .iter()
                .any(|p| p.metadata.name.as_deref() == name)
        });
        if !yes {
            continue;
        }
        governed.push(cluster);
        let f = cluster_footprint(cluster, catalog).footprint;
        let entry = by_namespace.entry(ns.to_string()).or_default();
        *entry = *entry + f;
        seen.insert(
            (
                ns.to_string(),
                cluster.metadata.name.clone().unwrap_or_default(),
            ),
            cluster.metadata.generation.unwrap_or(1),
        );
    }
    let previous = policy.status.clone().unwrap_or_default();
    // A reservation is done once its cluster shows the change (its generation, or a later
    // one), or once it expired.
    let reservations: Vec<Reservation> = previous
        .reservations
        .into_iter()
        .filter(|r| {
            let shown = seen
                .get(&(r.namespace.clone(), r.name.clone()))
                .is_some_and(|g| *g >= r.generation);
            !shown && r.expires.0 > now.0
        })
        .collect();
    let used = by_namespace
        .values()
        .copied()
        .chain(reservations.iter().map(|r| Footprint::of_usage(&r.delta)))
        .fold(Footprint::default(), |a, b| a + b);
    let conditions = vec![within_limits(policy, &used, &previous.conditions, now)];
    let holds: Vec<_> = previous
        .holds
        .into_iter()
        .filter(|h| h.expires.0 > now.0)
        .collect();
    let lifetimes = lifetimes(
        policy.spec.lifetime.as_ref(),
        governed,
        &previous.expiring,
        now,
    );
    let status = TenantPolicyStatus {
        conditions,
        expiring: lifetimes.expiring,
        used: used.usage(),
        namespaces: by_namespace
            .into_iter()
            .map(|(namespace, f)| NamespaceUsage {
                namespace,
                used: f.usage(),
            })
            .collect(),
        reservations,
        holds,
    };
    let next = status
        .reservations
        .iter()
        .map(|r| &r.expires)
        .chain(status.holds.iter().map(|h| &h.expires))
        .fold(lifetimes.next, earliest);
    Recount {
        status,
        warn: lifetimes.warn,
        delete: lifetimes.delete,
        next,
    }
}

/// Where a policy stands for the clusters of a namespace its status lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The policy.
    pub policy: String,
    /// What is over its limits (its `WithinLimits` message), when something is.
    pub over: Option<String>,
}

impl Standing {
    /// What the standing of `policy`'s clusters depends on: the namespaces its status lists,
    /// and what is over.
    pub fn key(policy: &TenantPolicy) -> (Vec<String>, Option<String>) {
        let Some(status) = policy.status.as_ref() else {
            return (Vec::new(), None);
        };
        (
            status
                .namespaces
                .iter()
                .map(|n| n.namespace.clone())
                .collect(),
            over(status),
        )
    }
}

fn over(status: &TenantPolicyStatus) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "WithinLimits" && c.status == "False")
        .map(|c| c.message.clone())
}

/// The standing of each of `policies` whose status lists `namespace`, in name order.
pub fn standing<'a>(
    policies: impl IntoIterator<Item = &'a TenantPolicy>,
    namespace: &str,
) -> Vec<Standing> {
    let mut out: Vec<Standing> = policies
        .into_iter()
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            status
                .namespaces
                .iter()
                .any(|n| n.namespace == namespace)
                .then(|| Standing {
                    policy: p.metadata.name.clone().unwrap_or_default(),
                    over: over(status),
                })
        })
        .collect();
    out.sort_by(|a, b| a.policy.cmp(&b.policy));
    out
}

/// `WithinLimits`: whether `used` passes none of `policy`'s limits; the transition time kept
/// while the status stays.
fn within_limits(
    policy: &TenantPolicy,
    used: &Footprint,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let over: Vec<String> = Resource::ALL
        .iter()
        .filter_map(|r| {
            let limit = r.limit(policy)?;
            let n = r.of(used);
            (n > limit).then(|| format!("{} of {} {}", r.amount(n), r.amount(limit), r.unit()))
        })
        .collect();
    let (status, reason, message) = if over.is_empty() {
        ("True", "WithinLimits", "every limit holds".to_string())
    } else {
        (
            "False",
            "OverLimit",
            format!(
                "uses {}: growth is refused, nothing that exists is changed",
                over.join(", ")
            ),
        )
    };
    let kept = previous
        .iter()
        .find(|c| c.type_ == "WithinLimits" && c.status == status)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: "WithinLimits".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: policy.metadata.generation,
        last_transition_time: kept.unwrap_or_else(|| now.clone()),
    }
}

/// The reservation of a change of cluster `namespace/name` that adds `delta` (only what
/// grows is reserved) and brings the cluster to `target` at `generation`, expiring
/// [`RESERVATION_SECONDS`] after `now`.
pub fn reservation(
    namespace: &str,
    name: &str,
    delta: &Footprint,
    target: &Footprint,
    generation: i64,
    now: &Time,
) -> Reservation {
    Reservation {
        namespace: namespace.to_string(),
        name: name.to_string(),
        delta: delta.growth().usage(),
        target: target.usage(),
        generation,
        expires: super::hold::after(now, RESERVATION_SECONDS),
    }
}
