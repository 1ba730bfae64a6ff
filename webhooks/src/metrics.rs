//! The webhook server's Prometheus metrics, under `kaas_webhook_`: requests by endpoint, kind,
//! operation and outcome; latency by endpoint; certificate reloads. Every label value comes
//! from a fixed set, never from an object's name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// The registry and every metric in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to answer, from body read to response built.
    pub duration: HistogramFamily,
    /// Certificate reloads.
    pub reloads: Family<ReloadLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kaas");
        let sub = registry.sub_registry_with_prefix("webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        sub.register(
            "requests",
            "Admission and conversion requests answered",
            requests.clone(),
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
            duration,
            reloads,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
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
}
