//! The webhook server's Prometheus metrics, under `kaas_webhook_`: requests by endpoint, kind,
//! operation and outcome; refusals by reason; latency by endpoint; certificate reloads. Every label value comes
//! from a fixed set, never from an object's name. Besides, what each `TenantPolicy` allows
//! and what its namespaces use (`kaas_tenant_limit`, `kaas_tenant_usage`), labelled by the
//! policy (cluster-scoped objects only the provider writes, a handful) and the resource.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of `kaas_webhook_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// mutate, validate, convert.
    pub endpoint: &'static str,
    /// KaasCluster, ProviderClass, ClusterStack, StackRollout, KaasOperator or other.
    pub kind: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT, other; convert for conversions.
    pub operation: &'static str,
    /// allowed, patched, denied, converted, failed, malformed.
    pub outcome: &'static str,
}

/// Labels of `kaas_webhook_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// mutate, validate.
    pub endpoint: &'static str,
    /// As in [`RequestLabels`].
    pub kind: &'static str,
    /// invalid, forbidden, bad_request, conflict, failed (`admission::refusal_reason`).
    pub reason: &'static str,
}

/// Labels of `kaas_webhook_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// mutate, validate, convert.
    pub endpoint: &'static str,
}

/// Labels of `kaas_webhook_certificate_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// success or failure.
    pub result: &'static str,
}

/// Labels of `kaas_tenant_usage` and `kaas_tenant_limit`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The `TenantPolicy`.
    pub policy: String,
    /// clusters, controlPlaneNodes, workerNodes, cpu, memory (bytes) or gpus.
    pub resource: &'static str,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// The registry and every metric in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Admission requests refused, by reason.
    refusals: Family<RefusalLabels, Counter>,
    /// Time to answer, from body read to response built.
    pub duration: HistogramFamily,
    /// Certificate reloads.
    pub reloads: Family<ReloadLabels, Counter>,
    /// What each tenant policy's namespaces use.
    pub tenant_usage: Family<TenantLabels, Gauge>,
    /// Each tenant policy's limits.
    pub tenant_limit: Family<TenantLabels, Gauge>,
    /// The policies with series.
    tenants: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kaas");
        let tenant_usage = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_usage",
            "What the namespaces a TenantPolicy governs use, reservations included (memory in bytes)",
            tenant_usage.clone(),
        );
        let tenant_limit = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_limit",
            "A TenantPolicy's limit (memory in bytes); no series when unlimited",
            tenant_limit.clone(),
        );
        let sub = registry.sub_registry_with_prefix("webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        sub.register(
            "requests",
            "Admission and conversion requests answered",
            requests.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        sub.register(
            "refusals",
            "Admission requests refused, by reason (invalid, forbidden, bad_request, conflict, failed)",
            refusals.clone(),
        );
        let duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        sub.register_with_unit(
            "request_duration",
            "Time to answer a request",
            Unit::Seconds,
            duration.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        sub.register(
            "certificate_reloads",
            "Serving certificate reloads after the files changed",
            reloads.clone(),
        );
        Metrics {
            registry,
            requests,
            refusals,
            duration,
            reloads,
            tenant_usage,
            tenant_limit,
            tenants: Default::default(),
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        kaas_listener::process::with_process_metrics(out)
    }

    /// Counts one refused admission request.
    pub fn refused(&self, endpoint: &'static str, kind: &'static str, reason: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                endpoint,
                kind,
                reason,
            })
            .inc();
    }

    /// Records one answered request.
    pub fn observe(&self, labels: RequestLabels, seconds: f64) {
        self.duration
            .get_or_create(&EndpointLabels {
                endpoint: labels.endpoint,
            })
            .observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// Shows `policy`'s usage and limits.
    pub fn set_tenant(&self, policy: &api::v1beta1::TenantPolicy) {
        use api::tenancy::{Footprint, Resource};
        let name = policy.metadata.name.clone().unwrap_or_default();
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone());
        let used = policy
            .status
            .as_ref()
            .map(|s| Footprint::of_usage(&s.used))
            .unwrap_or_default();
        let scale = |r: Resource, v: i64| {
            if r == Resource::Memory {
                v.saturating_mul(1 << 20)
            } else {
                v
            }
        };
        for r in Resource::ALL {
            let labels = TenantLabels {
                policy: name.clone(),
                resource: r.field(),
            };
            self.tenant_usage
                .get_or_create(&labels)
                .set(scale(r, r.of(&used)));
            match r.limit(policy) {
                Some(limit) => {
                    self.tenant_limit
                        .get_or_create(&labels)
                        .set(scale(r, limit));
                }
                None => {
                    self.tenant_limit.remove(&labels);
                }
            }
        }
    }

    /// Drops the series of policies that are gone.
    pub fn keep_tenants(&self, policies: &[std::sync::Arc<api::v1beta1::TenantPolicy>]) {
        let names: std::collections::BTreeSet<String> = policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let mut shown = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        for gone in shown.difference(&names) {
            for r in api::tenancy::Resource::ALL {
                let labels = TenantLabels {
                    policy: gone.clone(),
                    resource: r.field(),
                };
                self.tenant_usage.remove(&labels);
                self.tenant_limit.remove(&labels);
            }
        }
        shown.retain(|n| names.contains(n));
    }
}

/// Every metric of a fresh webhook registry with one series each, in the classic text format:
/// what docs/metrics.md is generated from.
pub fn sample() -> String {
    let metrics = Metrics::default();
    metrics.observe(
        RequestLabels {
            endpoint: "validate",
            kind: "KaasCluster",
            operation: "CREATE",
            outcome: "denied",
        },
        0.001,
    );
    metrics.refused("validate", "KaasCluster", "invalid");
    metrics
        .reloads
        .get_or_create(&ReloadLabels { result: "success" })
        .inc();
    let labels = TenantLabels {
        policy: "tenant-a".into(),
        resource: "clusters",
    };
    metrics.tenant_usage.get_or_create(&labels).set(1);
    metrics.tenant_limit.get_or_create(&labels).set(5);
    kaas_listener::exposition::classic(&metrics.encode())
}
