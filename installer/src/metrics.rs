//! The installer's Prometheus metrics, under `kaas_installer_`: reconciles by result and, per
//! provider (a label bounded by the bundles' providers), whether its operator is Ready.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
        Metrics {
            registry,
            reconciles,
            ready,
        }
    }
}

impl Metrics {
    /// Counts one reconcile.
    pub fn reconciled(&self, ok: bool) {
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
        out
    }
}
