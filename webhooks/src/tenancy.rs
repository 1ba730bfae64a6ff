//! Tenant policies at admission ([`admit`]) and their usage ([`keep_usage`]). A `KaasCluster`
//! create or update in a namespace some `TenantPolicy` governs must use only what the policy
//! allows and, where it grows, fit its limits. What it adds is counted in the policy's status
//! before it is allowed ([`crate::reserve`]): from this replica's hold, or written the way the
//! API server's quota admission does it (read the policy, check, write the new usage with the
//! read `resourceVersion`, on a conflict read again), batched per policy. Concurrent requests
//! therefore never pass a limit together. A reservation is dropped once the cache shows the
//! change, or when it expires (the request was refused later in the chain); [`keep_usage`]
//! recomputes each policy's usage from the clusters that exist.

use std::sync::Arc;
use std::time::Duration;

use api::Catalog;
use api::tenancy::{self, PoolSize, Recount, Refusal};
use api::v1beta1::{KaasCluster, TenantPolicy};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};

use crate::cache::CatalogCache;
use crate::request::{Object, Request};
use crate::reserve::{Outcome, Recounter, Reserver, Ticket};
use crate::review::Verdict;

/// How often the usage is recomputed when nothing changes (reservations expire).
const RESYNC: Duration = Duration::from_secs(10);

/// How long changes gather before the usage is recomputed: the status is written at most
/// about this often while clusters change.
const SETTLE: Duration = Duration::from_millis(500);

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The tenant policies' verdict on an allowed `KaasCluster` create or update: refused when
/// it uses what a governing policy does not allow or grows past a limit; else allowed, with
/// what it grows reserved in each policy (not for a dry run).
pub async fn admit(verdict: Verdict, req: &Request<'_>, cache: &CatalogCache) -> Verdict {
    if !verdict.allowed
        || !matches!(&*req.operation, "CREATE" | "UPDATE")
        || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
        || !req.kind.is_cluster()
    {
        return verdict;
    }
    let all = cache.policies();
    if all.is_empty() {
        return verdict;
    }
    let governing = tenancy::governing(all.iter().map(|p| &**p), &cache.labels_of(&req.namespace));
    if governing.is_empty() {
        return verdict;
    }
    let Some(Object::Cluster(cluster)) = req.object.as_ref() else {
        return verdict;
    };
    if cluster.metadata.deletion_timestamp.is_some() {
        return verdict;
    }
    let old = match req.old_object.as_ref() {
        Some(Object::Previous(p)) => Some(&**p),
        _ => None,
    };
    let catalog = cache.snapshot(false);
    match check(&governing, req, cluster, old, &catalog) {
        Err(refusal) => Verdict::deny(403, refusal.0),
        Ok(None) => verdict,
        Ok(Some(change)) => match cache.reserver().filter(|_| !req.dry_run) {
            // A dry run, or a cache with no client: checked, nothing reserved.
            None => match fits_now(&change, &governing, &req.namespace, cache.reserver()) {
                Ok(()) => verdict,
                Err(refusal) => Verdict::deny(403, refusal.0),
            },
            Some(reserver) => match reserve_all(reserver, &governing, change).await {
                Ok(()) => verdict,
                Err(Outcome::Refused(refusal)) => Verdict::deny(403, refusal.0),
                Err(Outcome::Failed(message)) => Verdict::deny(500, message),
            },
        },
    }
}

/// Whether `change` fits every policy by the usage its status shows and what other
/// replicas than `reserver`'s hold, as a real request would be checked (no reservation).
fn fits_now(
    change: &Ticket,
    policies: &[&TenantPolicy],
    namespace: &str,
    reserver: Option<&Reserver>,
) -> Result<(), Refusal> {
    let own = reserver.map_or("", Reserver::holder);
    for p in policies {
        let used = p
            .status
            .as_ref()
            .map(|s| {
                tenancy::Footprint::of_usage(&s.used)
                    + tenancy::hold::held_by_others(s, own, &now())
            })
            .unwrap_or_default();
        tenancy::check_limits(p, namespace, &used, &change.delta, &change.uncounted)?;
    }
    Ok(())
}

/// The pure part: what is allowed, and what the change adds (None when nothing grows that a
/// policy limits).
fn check(
    policies: &[&TenantPolicy],
    req: &Request<'_>,
    cluster: &KaasCluster,
    old: Option<&api::Previous>,
    catalog: &Catalog,
) -> Result<Option<Ticket>, Refusal> {
    let class = catalog.class_for(cluster.spec.provider_class_name.as_deref());
    let class_name = class
        .map(|c| c.name_any())
        .or_else(|| cluster.spec.provider_class_name.clone())
        .unwrap_or_default();
    for p in policies {
        tenancy::check_allowed(p, &req.namespace, &class_name, &cluster.spec, old)?;
        tenancy::check_automatic_upgrade(
            p,
            &req.namespace,
            req.field_manager.as_deref(),
            &cluster.spec,
            old,
        )?;
    }
    let new = tenancy::footprint(
        &cluster.spec.control_plane,
        &PoolSize::of(&cluster.spec),
        class,
    );
    let before = old
        .map(|o| tenancy::footprint(&o.control_plane, &o.pools, class).footprint)
        .unwrap_or_default();
    let delta = new.footprint - before;
    let limited = |p: &&TenantPolicy| {
        tenancy::Resource::ALL
            .iter()
            .any(|r| r.limit(p).is_some() && r.of(&delta) > 0)
    };
    if delta.grows_nothing() || !policies.iter().any(limited) {
        return Ok(None);
    }
    Ok(Some(Ticket {
        namespace: req.namespace.to_string(),
        name: req.name.to_string(),
        delta,
        target: new.footprint,
        generation: old.map_or(1, |o| o.generation.unwrap_or(0).saturating_add(1)),
        uncounted: new.uncounted,
    }))
}

/// Reserves `ticket` in each policy in turn; when one refuses, what the earlier ones
/// reserved is given back.
async fn reserve_all(
    reserver: &Reserver,
    policies: &[&TenantPolicy],
    ticket: Ticket,
) -> Result<(), Outcome> {
    let ticket = Arc::new(ticket);
    let mut done: Vec<String> = Vec::new();
    for p in policies {
        let name = p.name_any();
        match reserver.reserve(p, ticket.clone()).await {
            Ok(()) => done.push(name),
            Err(e) => {
                for name in done {
                    if let Err(e) = reserver.release(&name, ticket.clone()).await {
                        tracing::warn!(policy = %name, error = ?e, "could not give a reservation back; it expires");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Keeps every policy's status equal to what the clusters of its namespaces use plus its
/// pending reservations, and carries out its lifetime (warning Events, then deletions): after
/// each change the cache sees, when a reservation expires or a lifetime asks for something,
/// and at least every [`RESYNC`]. Runs until the process ends.
pub async fn keep_usage(cache: CatalogCache, metrics: std::sync::Arc<crate::metrics::Metrics>) {
    let (Some(client), Some(reserver)) = (cache.client().cloned(), cache.reserver()) else {
        return;
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kaas-webhooks".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    while !cache.is_ready() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        // The next time a recount has something to do on its own, within RESYNC.
        let mut wait = RESYNC;
        for policy in cache.policies() {
            let name = policy.name_any();
            match reserver.recount(&name, recounter(&cache)).await {
                Ok((p, recount)) => {
                    metrics.set_tenant(&p);
                    end_lifetimes(&client, &recorder, &name, &recount).await;
                    if let Some(next) = &recount.next {
                        let now = now();
                        let until = if next.0 > now.0 {
                            next.0.duration_since(now.0).unsigned_abs()
                        } else {
                            Duration::ZERO
                        };
                        wait = wait.min(until);
                    }
                }
                Err(e) => tracing::warn!(policy = %name, error = %e, "could not update usage"),
            }
        }
        metrics.keep_tenants(&cache.policies());
        cache.changed_within(wait).await;
        // Let a burst of changes settle into one pass (one status write for many).
        tokio::time::sleep(SETTLE).await;
    }
}

/// The recount of a policy over what `cache` holds now.
fn recounter(cache: &CatalogCache) -> Recounter {
    let policies = cache.policies();
    let clusters = cache.clusters();
    let namespaces = cache.namespace_labels();
    let catalog = cache.snapshot(false);
    Arc::new(move |policy: &TenantPolicy| {
        let refs: Vec<&TenantPolicy> = policies.iter().map(|p| &**p).collect();
        tenancy::status(
            policy,
            &refs,
            clusters.iter().map(|c| &**c),
            &namespaces,
            &catalog,
            &now(),
        )
    })
}

/// Warns the clusters `recount` says to (the status recording the warning is written), and
/// deletes those whose recorded warning ran out (by uid: a cluster created again under the
/// name is left alone).
async fn end_lifetimes(client: &Client, recorder: &Recorder, policy: &str, recount: &Recount) {
    for e in &recount.warn {
        let reference = ObjectReference {
            api_version: Some("kaas.scs.community/v1beta1".into()),
            kind: Some("KaasCluster".into()),
            namespace: Some(e.namespace.clone()),
            name: Some(e.name.clone()),
            uid: Some(e.uid.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "LifetimeEnding".into(),
            note: Some(format!(
                "TenantPolicy {policy} limits the lifetime of clusters in namespace {}: this cluster is deleted at {}",
                e.namespace, e.delete_at.0
            )),
            action: "Warn".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            tracing::warn!(cluster = %e.name, namespace = %e.namespace, error = %err, "could not publish the lifetime warning");
        }
        tracing::info!(cluster = %e.name, namespace = %e.namespace, delete_at = %e.delete_at.0, %policy, "lifetime ending: warned");
    }
    for e in &recount.delete {
        let api: Api<KaasCluster> = Api::namespaced(client.clone(), &e.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(e.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&e.name, &params).await {
            Ok(_) => {
                tracing::info!(cluster = %e.name, namespace = %e.namespace, %policy, "lifetime ended: deleted")
            }
            Err(kube::Error::Api(err)) if err.code == 404 || err.code == 409 => {}
            Err(err) => {
                tracing::warn!(cluster = %e.name, namespace = %e.namespace, error = %err, "could not delete at the end of its lifetime")
            }
        }
    }
}
