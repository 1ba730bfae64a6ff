//! The installer's Prometheus metrics, under `kaas_installer_`: reconciles by result, their
//! duration, the queue's depth, whether this replica leads and, per provider (a label bounded by the bundles'
//! providers), whether its operator is Ready. docs/metrics.md lists them all.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// `result`: success or error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `provider`: one of the bundles' providers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

/// Every metric of the installer.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    ready: Family<ProviderLabels, Gauge>,
    duration: Histogram,
    /// 1 while this replica holds the leader Lease and reconciles.
    pub leader: Gauge,
    queue_depth: Gauge,
    queued: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kaas_installer");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconcile",
            "KaasOperator reconciles by result",
            reconciles.clone(),
        );
        let ready = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "operator_ready",
            "1 when the provider's KaasOperator is Ready",
            ready.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one KaasOperator reconcile",
            Unit::Seconds,
            duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles",
            leader.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "reconcile_queue_depth",
            "KaasOperators waiting for a reconcile (triggered, not yet started)",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            reconciles,
            ready,
            duration,
            leader,
            queue_depth,
            queued: Default::default(),
        }
    }
}

impl Metrics {
    /// A reconcile of KaasOperator `name` was asked for.
    pub fn queued(&self, name: &str) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.insert(name.to_string());
        self.queue_depth.set(queued.len() as i64);
    }

    /// The reconcile of KaasOperator `name` started.
    pub fn started(&self, name: &str) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.remove(name);
        self.queue_depth.set(queued.len() as i64);
    }

    /// Counts one reconcile that took `seconds`.
    pub fn reconciled(&self, ok: bool, seconds: f64) {
        self.duration.observe(seconds);
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Records whether `provider`'s operator is Ready; providers without a bundle are not
    /// recorded (the label stays bounded).
    pub fn set_ready(&self, provider: &str, ready: bool) {
        if let Some(provider) = api::install::bundles::providers()
            .into_iter()
            .find(|p| *p == provider)
        {
            self.ready
                .get_or_create(&ProviderLabels { provider })
                .set(i64::from(ready));
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        kaas_listener::process::with_process_metrics(out)
    }
}

/// Every metric of a fresh installer registry with one series each, in the classic text format:
/// what docs/metrics.md is generated from.
pub fn sample() -> String {
    let metrics = Metrics::default();
    metrics.reconciled(true, 0.1);
    metrics.set_ready("docker", true);
    metrics.leader.set(1);
    metrics.queued("docker");
    kaas_listener::exposition::classic(&metrics.encode())
}
