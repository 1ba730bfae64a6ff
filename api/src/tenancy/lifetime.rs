//! Cluster lifetimes (pure): which clusters of a policy's namespaces are warned now, and
//! which, warned before and past their end, are deleted. A cluster is deleted only after a
//! warning the policy's status recorded, at least `warnSeconds` before, and only while the
//! policy still governs its namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use crate::v1beta1::{Expiring, KaasCluster, Lifetime};

/// How long before its end a cluster is warned when the policy does not say.
pub const DEFAULT_WARN_SECONDS: i64 = 86_400;

/// What the lifetime asks for now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lifetimes {
    /// The warned clusters the status records from now on.
    pub expiring: Vec<Expiring>,
    /// Clusters warned now (an Event each).
    pub warn: Vec<Expiring>,
    /// Clusters to delete now: warned before, past their end, still governed.
    pub delete: Vec<Expiring>,
    /// When the lifetime next asks for something (a warning or a deletion), if ever.
    pub next: Option<Time>,
}

/// `lifetime` over the `governed` clusters, with the warnings `previous` recorded, at `now`.
pub fn lifetimes<'a>(
    lifetime: Option<&Lifetime>,
    governed: impl IntoIterator<Item = &'a KaasCluster>,
    previous: &[Expiring],
    now: &Time,
) -> Lifetimes {
    let mut out = Lifetimes::default();
    let Some(lifetime) = lifetime else {
        return out;
    };
    let warn_before = SignedDuration::from_secs(
        lifetime
            .warn_seconds
            .unwrap_or(DEFAULT_WARN_SECONDS)
            .clamp(0, 2_592_000),
    );
    let span = SignedDuration::from_secs(lifetime.seconds.max(0));
    let add = |t: &Time, d: SignedDuration| Time(t.0.checked_add(d).unwrap_or(t.0));
    for cluster in governed {
        let (Some(uid), Some(created)) = (
            cluster.metadata.uid.as_deref(),
            cluster.metadata.creation_timestamp.as_ref(),
        ) else {
            continue;
        };
        if cluster.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(warned) = previous.iter().find(|e| e.uid == uid) {
            if warned.delete_at.0 <= now.0 {
                out.delete.push(warned.clone());
            } else {
                out.next = earliest(out.next.take(), &warned.delete_at);
            }
            out.expiring.push(warned.clone());
            continue;
        }
        let end = add(created, span);
        let warn_at = Time(end.0.checked_sub(warn_before).unwrap_or(end.0));
        if warn_at.0 > now.0 {
            out.next = earliest(out.next.take(), &warn_at);
        } else {
            let notice = add(now, warn_before);
            let e = Expiring {
                namespace: cluster.metadata.namespace.clone().unwrap_or_default(),
                name: cluster.metadata.name.clone().unwrap_or_default(),
                uid: uid.to_string(),
                warned: now.clone(),
                delete_at: if end.0 > notice.0 { end } else { notice },
            };
            out.next = earliest(out.next.take(), &e.delete_at);
            out.warn.push(e.clone());
            out.expiring.push(e);
        }
    }
    out
}

/// The earlier of `a` and `b`.
pub fn earliest(a: Option<Time>, b: &Time) -> Option<Time> {
    match a {
        Some(a) if a.0 <= b.0 => Some(a),
        _ => Some(b.clone()),
    }
}
