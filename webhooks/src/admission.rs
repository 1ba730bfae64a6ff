//! `/mutate` and `/validate`: dispatch by kind and operation to the `api` crate's defaulting
//! and validation, the very functions the operators call. Decisions are pure over a catalog
//! snapshot; a decision that hinges on an object the cache has not seen yet is taken again
//! once the cache moves (bounded well inside the API server's 3 s timeout).

use std::borrow::Cow;
use std::time::Duration;

use api::defaulting::{default_cluster_stack, default_kaas_cluster, default_kaas_cluster_update};
use api::install::v1alpha1::KaasOperator;
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass, StackRollout};
use api::validation::{
    validate_cluster_stack, validate_cluster_stack_delete, validate_kaas_cluster,
    validate_kaas_operator, validate_kaas_operator_delete, validate_provider_class,
    validate_provider_class_delete,
};
use api::{Catalog, GROUP, Previous};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cache::CatalogCache;
use crate::request::{AdmittedCluster, Object, Request};
use crate::review::{ADMISSION_V1, Verdict};

/// How long a request that refers to an unseen object waits for the cache.
pub const CACHE_GRACE: Duration = Duration::from_millis(1500);

/// Which admission endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Defaulting.
    Mutate,
    /// Validation.
    Validate,
}

impl Endpoint {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// What a request was, for metrics: every value is from a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Labels {
    /// KaasCluster, ProviderClass, ClusterStack, StackRollout, KaasOperator or other.
    pub kind: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT or other.
    pub operation: &'static str,
    /// allowed, patched, denied or malformed.
    pub outcome: &'static str,
    /// Why a denied request was refused (see [`refusal_reason`]); `None` when allowed.
    pub reason: Option<&'static str>,
}

/// A refusal's reason from its code, a fixed set: invalid (422: a field breaks a rule),
/// forbidden (403: a TenantPolicy or an automatic upgrade it does not allow), bad_request
/// (400: unreadable or unknown), conflict (409), failed (500 and anything else: this server
/// could not decide, e.g. a TenantPolicy status write failed).
pub fn refusal_reason(code: u16) -> &'static str {
    match code {
        422 => "invalid",
        403 => "forbidden",
        400 => "bad_request",
        409 => "conflict",
        _ => "failed",
    }
}

/// The HTTP answer to one admission call.
#[derive(Debug)]
pub struct Answer {
    /// 200 for any review answered; 400 when the body was no review.
    pub status: u16,
    /// The `AdmissionReview` response.
    pub body: Value,
    /// For metrics.
    pub labels: Labels,
}

/// A verdict and whether it depended on an object the catalog lacked.
struct Decision {
    verdict: Verdict,
    missing_reference: bool,
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Decision {
            verdict,
            missing_reference: false,
        }
    }
}

/// Answers one AdmissionReview body.
pub async fn admit(endpoint: Endpoint, body: &[u8], cache: &CatalogCache) -> Answer {
    let review = match crate::request::parse(body) {
        Ok(r) => r,
        Err(e) => return malformed(format!("body is not an AdmissionReview: {e}")),
    };
    if let Some(kind) = review.kind.as_deref().filter(|k| *k != "AdmissionReview") {
        return malformed(format!("kind: expected AdmissionReview, got {kind:?}"));
    }
    let api_version = review
        .api_version
        .as_deref()
        .filter(|v| v.starts_with("admission.k8s.io/"))
        .unwrap_or(ADMISSION_V1)
        .to_string();
    let Some(request) = review.request else {
        return malformed("request: required".to_string());
    };
    let kind = kind_label(&request);
    let operation = match &*request.operation {
        "CREATE" => "CREATE",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        _ => "other",
    };

    let with_clusters = operation == "DELETE";
    let mut decision = decide(endpoint, &request, kind, &cache.snapshot(with_clusters));
    // Deleting a class, stack or operator is allowed only when no cluster uses it; a cluster
    // created a moment ago may not be in the cache yet. Such deletions are rare: an allowed
    // one waits for the cache to change or settle and is decided again on what it then holds.
    let guarded_delete = with_clusters
        && decision.verdict.allowed
        && matches!(kind, "ProviderClass" | "ClusterStack" | "KaasOperator");
    let again = if guarded_delete {
        // Decided again whether or not the cache changed meanwhile.
        cache.changed_within(CACHE_GRACE).await;
        true
    } else {
        decision.missing_reference && cache.changed_within(CACHE_GRACE).await
    };
    if again {
        decision = decide(endpoint, &request, kind, &cache.snapshot(with_clusters));
    }
    let verdict = rollout_bound(decision.verdict, &request, kind, cache);
    let verdict = match endpoint {
        Endpoint::Validate => crate::tenancy::admit(verdict, &request, cache).await,
        Endpoint::Mutate => verdict,
    };
    let outcome = match (&verdict.allowed, &verdict.patch) {
        (false, _) => "denied",
        (true, Some(_)) => "patched",
        (true, None) => "allowed",
    };
    let reason = (!verdict.allowed).then(|| refusal_reason(verdict.code));
    Answer {
        status: 200,
        body: verdict.into_review(&api_version, &request.uid),
        labels: Labels {
            kind,
            operation,
            outcome,
            reason,
        },
    }
}

fn malformed(message: String) -> Answer {
    Answer {
        status: 400,
        body: Verdict::deny(400, message).into_review(ADMISSION_V1, ""),
        labels: Labels {
            kind: "other",
            operation: "other",
            outcome: "malformed",
            reason: Some("bad_request"),
        },
    }
}

fn kind_label(request: &Request<'_>) -> &'static str {
    match (&*request.kind.group, &*request.kind.kind) {
        (GROUP, "KaasCluster") => "KaasCluster",
        (GROUP, "ProviderClass") => "ProviderClass",
        (GROUP, "ClusterStack") => "ClusterStack",
        (GROUP, "StackRollout") => "StackRollout",
        (api::install::GROUP, "KaasOperator") => "KaasOperator",
        _ => "other",
    }
}

/// The pure decision for one request against one catalog snapshot.
fn decide(
    endpoint: Endpoint,
    req: &Request<'_>,
    kind: &'static str,
    catalog: &Catalog,
) -> Decision {
    if kind == "other" {
        return Verdict::deny(
            400,
            format!(
                "{}/{} {} is not served by kaas-webhooks",
                req.kind.group, req.kind.version, req.kind.kind
            ),
        )
        .into();
    }
    let admitted = if kind == "KaasOperator" {
        "v1alpha1"
    } else {
        "v1beta1"
    };
    if req.kind.version != admitted {
        return Verdict::deny(
            400,
            format!(
                "version {} is not admitted directly: register the webhook for {admitted} with matchPolicy Equivalent",
                req.kind.version
            ),
        )
        .into();
    }
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return Verdict::allow().into();
    }
    let result = match (endpoint, &*req.operation) {
        (_, "CONNECT") => Ok(Verdict::allow().into()),
        (Endpoint::Mutate, "DELETE") => Ok(Verdict::allow().into()),
        (Endpoint::Mutate, "CREATE" | "UPDATE") => Ok(mutate(req, kind, catalog)),
        (Endpoint::Validate, "CREATE" | "UPDATE" | "DELETE") => validate(req, kind, catalog),
        (_, op) => Ok(Verdict::deny(400, format!("operation {op:?} is not known")).into()),
    };
    result.unwrap_or_else(|verdict| verdict.into())
}

/// The typed form of a raw `request.object` (or `request.oldObject`), or a denial naming it.
fn typed<T: for<'de> Deserialize<'de>>(
    value: Option<&RawValue>,
    field: &str,
) -> Result<T, Verdict> {
    let value = value.ok_or_else(|| Verdict::deny(400, format!("{field}: required")))?;
    serde_json::from_str(value.get()).map_err(|e| Verdict::deny(400, format!("{field}: {e}")))
}

/// `request.object` as the `KaasCluster` the rules need: read in the first pass, or now.
fn cluster<'a>(
    object: Option<&'a Object<'_>>,
    field: &str,
) -> Result<Cow<'a, KaasCluster>, Verdict> {
    match object {
        Some(Object::Cluster(cluster)) => Ok(Cow::Borrowed(&**cluster)),
        other => typed::<AdmittedCluster>(other.and_then(Object::raw), field)
            .map(|c| Cow::Owned(c.into())),
    }
}

/// `request.oldObject` as far as an update is judged against it: read in the first pass, or
/// now.
fn previous<'a>(object: Option<&'a Object<'_>>, field: &str) -> Result<Cow<'a, Previous>, Verdict> {
    match object {
        Some(Object::Previous(previous)) => Ok(Cow::Borrowed(&**previous)),
        other => typed(other.and_then(Object::raw), field).map(Cow::Owned),
    }
}

/// The raw `request.object` (or `oldObject`) of a kind the first pass does not read.
fn raw<'a>(object: Option<&Object<'a>>) -> Option<&'a RawValue> {
    object.and_then(Object::raw)
}

/// Defaulting. An object of the wrong shape is left alone: the API server's schema check,
/// which runs after mutation, names the bad field better than a parse error would. The
/// answer replaces `/spec` as a whole, and only when defaulting changed something.
fn mutate(req: &Request<'_>, kind: &str, catalog: &Catalog) -> Decision {
    let old = req
        .old_object
        .as_ref()
        .filter(|_| req.operation == "UPDATE");
    match kind {
        "KaasCluster" => {
            let Ok(cluster) = cluster(req.object.as_ref(), "request.object") else {
                return Verdict::allow().into();
            };
            if cluster.metadata.deletion_timestamp.is_some() {
                return Verdict::allow().into();
            }
            let mut defaulted = KaasCluster::clone(&cluster);
            match old.and_then(|o| previous(Some(o), "request.oldObject").ok()) {
                Some(old) => default_kaas_cluster_update(&mut defaulted.spec, &old, catalog),
                None => default_kaas_cluster(&mut defaulted.spec, catalog),
            }
            Decision {
                missing_reference: !references_resolve(&defaulted, catalog),
                verdict: spec_patch(&cluster.spec, &defaulted.spec),
            }
        }
        "ClusterStack" => {
            let Ok(stack) = typed::<ClusterStack>(raw(req.object.as_ref()), "request.object")
            else {
                return Verdict::allow().into();
            };
            let mut spec = stack.spec.clone();
            default_cluster_stack(&mut spec);
            spec_patch(&stack.spec, &spec).into()
        }
        _ => Verdict::allow().into(),
    }
}

/// A StackRollout created in a namespace that already holds the bound is refused, as a quota
/// would: every rollout costs the operators a reconcile per change of the namespace's
/// clusters. The bound is kaas-webhooks' own, or a governing `TenantPolicy`'s
/// `limits.stackRolloutsPerNamespace` when lower. Counted in the cache, so creates racing each
/// other can pass it by those in flight.
fn rollout_bound(verdict: Verdict, req: &Request<'_>, kind: &str, cache: &CatalogCache) -> Verdict {
    if !verdict.allowed || kind != "StackRollout" || req.operation != "CREATE" {
        return verdict;
    }
    let (namespace, name) = (&*req.namespace, &*req.name);
    let held = cache.rollouts_besides(namespace, name);
    let own = cache.rollout_bound();
    if held >= own {
        return Verdict::deny(
            403,
            format!(
                "StackRollout: namespace {namespace:?} already holds {own} StackRollouts, the most kaas-webhooks admits (--max-rollouts-per-namespace); delete completed ones first"
            ),
        );
    }
    let policies = cache.policies();
    let labels = cache.labels_of(namespace);
    for p in api::tenancy::governing(policies.iter().map(|p| &**p), &labels) {
        if let Some(max) = p.spec.limits.stack_rollouts_per_namespace
            && held as i64 >= max
        {
            return Verdict::deny(
                403,
                format!(
                    "StackRollout: namespace {namespace} holds {held} StackRollouts, TenantPolicy {} allows {max}; delete completed ones first",
                    p.metadata.name.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    verdict
}

fn spec_patch<S: PartialEq + serde::Serialize>(before: &S, after: &S) -> Verdict {
    if before == after {
        return Verdict::allow();
    }
    Verdict::with_spec(after)
}

/// Whether defaulting could resolve everything a cluster refers to.
fn references_resolve(cluster: &KaasCluster, catalog: &Catalog) -> bool {
    let spec = &cluster.spec;
    let Some(provider) = catalog.provider_of(cluster) else {
        return false;
    };
    spec.cluster_stack.version.as_deref().is_some_and(|v| {
        catalog
            .release(provider, &spec.cluster_stack.name, v)
            .is_some()
    })
}

fn validate(req: &Request<'_>, kind: &str, catalog: &Catalog) -> Result<Decision, Verdict> {
    let (new, old) = (req.object.as_ref(), req.old_object.as_ref());
    let result = match (kind, &*req.operation) {
        ("KaasCluster", "DELETE") => Ok(()),
        ("KaasCluster", _) => {
            let new = cluster(new, "request.object")?;
            if new.metadata.deletion_timestamp.is_some() {
                // Only finalizers change on an object being deleted: never block that.
                return Ok(Verdict::allow().into());
            }
            let old = old
                .map(|o| previous(Some(o), "request.oldObject"))
                .transpose()?;
            validate_kaas_cluster(&new, old.as_deref(), catalog)
        }
        ("ProviderClass", "DELETE") => {
            validate_provider_class_delete(&typed(raw(old), "request.oldObject")?, catalog)
        }
        ("ProviderClass", _) => {
            let new: ProviderClass = typed(raw(new), "request.object")?;
            if new.metadata.deletion_timestamp.is_some() {
                return Ok(Verdict::allow().into());
            }
            let old: Option<ProviderClass> = old
                .map(|o| typed(o.raw(), "request.oldObject"))
                .transpose()?;
            validate_provider_class(&new, old.as_ref(), catalog)
        }
        ("ClusterStack", "DELETE") => {
            validate_cluster_stack_delete(&typed(raw(old), "request.oldObject")?, catalog)
        }
        ("ClusterStack", _) => {
            let new: ClusterStack = typed(raw(new), "request.object")?;
            if new.metadata.deletion_timestamp.is_some() {
                return Ok(Verdict::allow().into());
            }
            let old: Option<ClusterStack> = old
                .map(|o| typed(o.raw(), "request.oldObject"))
                .transpose()?;
            validate_cluster_stack(&new, old.as_ref(), catalog)
        }
        ("StackRollout", "DELETE") => Ok(()),
        ("StackRollout", _) => {
            let new: StackRollout = typed(raw(new), "request.object")?;
            api::validation::validate_stack_rollout_spec(&new.spec).into_result()
        }
        ("KaasOperator", "DELETE") => {
            validate_kaas_operator_delete(&typed(raw(old), "request.oldObject")?, catalog)
        }
        ("KaasOperator", _) => {
            let new: KaasOperator = typed(raw(new), "request.object")?;
            if new.metadata.deletion_timestamp.is_some() {
                return Ok(Verdict::allow().into());
            }
            let old: Option<KaasOperator> = old
                .map(|o| typed(o.raw(), "request.oldObject"))
                .transpose()?;
            validate_kaas_operator(&new, old.as_ref(), catalog)
        }
        _ => Ok(()),
    };
    Ok(match result {
        Ok(()) => Verdict::allow().into(),
        Err(errors) => Decision {
            missing_reference: errors.has_missing_reference(),
            verdict: Verdict::invalid(kind, &errors),
        },
    })
}
