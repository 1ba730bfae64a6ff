//! Capacity a kaas-webhooks replica holds in a policy's status (pure). Writing the policy
//! for every admitted request would add one API round trip to each; instead a replica that
//! writes anyway (for a request its hold does not cover) sets aside a share of what is left
//! of each limit, and admits later requests from it in memory. What it admits is written
//! later as reservations, the hold shrinking by as much in the same write, so the status
//! always counts it; a hold is returned when its replica is idle and dropped when it expires
//! (the replica stopped), and every limit is checked against the usage plus every hold.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Footprint, Resource};
use crate::v1beta1::{Hold, TenantPolicy, TenantPolicyStatus};

/// How long a written hold lasts unless its replica renews it.
pub const HOLD_SECONDS: i64 = 30;

/// How long a hold must still last for its replica to admit from it: the API server stores
/// an admitted object well within this, so a replica that stops right after answering
/// leaves its hold in place until the object counts on its own.
pub const HOLD_MARGIN_SECONDS: i64 = 15;

/// The share of what is left of a limit a replica sets aside when it writes: one in this.
pub const SHARE: i64 = 4;

/// `now` plus `seconds`.
pub fn after(now: &Time, seconds: i64) -> Time {
    Time(
        now.0
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
            .unwrap_or(now.0),
    )
}

/// The resources `policy` limits.
pub fn limited(policy: &TenantPolicy) -> Vec<Resource> {
    Resource::ALL
        .into_iter()
        .filter(|r| r.limit(policy).is_some())
        .collect()
}

/// What the holds of `status` other than `holder`'s, not expired at `now`, hold together.
pub fn held_by_others(status: &TenantPolicyStatus, holder: &str, now: &Time) -> Footprint {
    status
        .holds
        .iter()
        .filter(|h| h.holder != holder && h.expires.0 > now.0)
        .fold(Footprint::default(), |a, h| {
            a + Footprint::of_usage(&h.held)
        })
}

/// What is counted against the limits: the usage and every hold not expired at `now`.
pub fn committed(status: &TenantPolicyStatus, now: &Time) -> Footprint {
    Footprint::of_usage(&status.used) + held_by_others(status, "", now)
}

/// What a replica may set aside when `committed` is counted against `policy`: a [`SHARE`]
/// of what is left of each limit; nothing of what the policy does not limit.
pub fn spare(policy: &TenantPolicy, committed: &Footprint) -> Footprint {
    let mut out = Footprint::default();
    for r in limited(policy) {
        let left = r
            .limit(policy)
            .unwrap_or_default()
            .saturating_sub(r.of(committed));
        r.set(&mut out, (left / SHARE).max(0));
    }
    out
}

/// `f` in the resources of `limited` only.
pub fn only(limited: &[Resource], f: &Footprint) -> Footprint {
    let mut out = Footprint::default();
    for r in limited {
        r.set(&mut out, r.of(f));
    }
    out
}

/// Whether `held` covers `growth` in every resource of `limited`.
pub fn covers(limited: &[Resource], held: &Footprint, growth: &Footprint) -> bool {
    limited.iter().all(|r| r.of(held) >= r.of(growth))
}

/// `holds` with `holder`'s set to `held` until `expires` (gone when it holds nothing), and
/// those expired at `now` dropped.
pub fn set_hold(holds: &mut Vec<Hold>, holder: &str, held: &Footprint, expires: &Time, now: &Time) {
    holds.retain(|h| h.holder != holder && h.expires.0 > now.0);
    if held.grows_nothing() {
        return;
    }
    holds.push(Hold {
        holder: holder.to_string(),
        held: held.usage(),
        expires: expires.clone(),
    });
    holds.sort_by(|a, b| a.holder.cmp(&b.holder));
}
