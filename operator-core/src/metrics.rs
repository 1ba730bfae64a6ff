//! The operator's Prometheus metrics, under `kaas_`: reconciles by result, errors by category,
//! durations, clusters by phase, and one info series per cluster. Counters and histograms carry
//! no object names; only the per-cluster info gauge names its cluster, by design.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// `result`: success or error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// success, error.
    pub result: &'static str,
}

/// `category`: a bounded error category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    /// See `Error::category`.
    pub category: &'static str,
}

/// `phase`: a cluster phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Pending, Provisioning, Ready, Upgrading, Deleting, Failed.
    pub phase: String,
}

/// `standard`, `result`: an SCS standard's id (five) and a result (three).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StandardLabels {
    /// `scs-0210-v2`, ...
    pub standard: String,
    /// `Pass`, `Fail` or `Unknown`.
    pub result: String,
}

/// One cluster's info series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Stack name.
    pub stack: String,
    /// Stack version.
    pub stack_version: String,
    /// Full Kubernetes version.
    pub kubernetes_version: String,
}

/// Every metric of the operator.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles finished.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile errors.
    pub errors: Family<CategoryLabels, Counter>,
    /// Reconcile durations.
    pub duration: Histogram,
    /// Server-side applies and status writes sent.
    pub writes: Counter,
    /// Applies and deletes in workload clusters (add-ons).
    pub addon_writes: Counter,
    /// Clusters of this operator by phase.
    pub clusters: Family<PhaseLabels, Gauge>,
    /// Per-cluster info (value 1).
    pub info: Family<InfoLabels, Gauge>,
    /// Clusters of this operator by SCS standard and result.
    pub standards: Family<StandardLabels, Gauge>,
    standard_keys: Mutex<std::collections::HashMap<(String, String), Vec<StandardLabels>>>,
    info_keys: Mutex<std::collections::HashMap<(String, String), InfoLabels>>,
    phases: Mutex<std::collections::HashMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kaas");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles of KaasClusters",
            reconciles.clone(),
        );
        let errors = Family::<CategoryLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors by category",
            errors.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconcile",
            Unit::Seconds,
            duration.clone(),
        );
        let writes = Counter::default();
        registry.register(
            "operator_writes",
            "Server-side applies, patches and deletes the operator sent",
            writes.clone(),
        );
        let addon_writes = Counter::default();
        registry.register(
            "addon_writes",
            "Add-on applies and prunes sent to workload clusters",
            addon_writes.clone(),
        );
        let clusters = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "clusters",
            "KaasClusters served, by phase",
            clusters.clone(),
        );
        let info = Family::<InfoLabels, Gauge>::default();
        registry.register(
            "cluster_info",
            "One series per KaasCluster with its versions",
            info.clone(),
        );
        let standards = Family::<StandardLabels, Gauge>::default();
        registry.register(
            "cluster_standards",
            "KaasClusters served, by SCS standard and its result (Pass, Fail, Unknown)",
            standards.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            addon_writes,
            clusters,
            info,
            standards,
            standard_keys: Mutex::default(),
            info_keys: Mutex::default(),
            phases: Mutex::default(),
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records a cluster's standards results (`(id, result)`), replacing what was recorded
    /// for it before; none forgets the cluster.
    pub fn set_standards(&self, key: (String, String), results: Vec<(String, String)>) {
        let mut keys = self.standard_keys.lock().unwrap_or_else(|e| e.into_inner());
        for old in keys.remove(&key).unwrap_or_default() {
            self.standards.get_or_create(&old).dec();
        }
        let labels: Vec<StandardLabels> = results
            .into_iter()
            .map(|(standard, result)| StandardLabels { standard, result })
            .collect();
        for l in &labels {
            self.standards.get_or_create(l).inc();
        }
        if !labels.is_empty() {
            keys.insert(key, labels);
        }
    }

    /// Records a cluster's phase and info, replacing what was recorded for it before.
    pub fn set_cluster(
        &self,
        key: (String, String),
        phase: Option<String>,
        info: Option<InfoLabels>,
    ) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = phases.remove(&key) {
            self.clusters
                .get_or_create(&PhaseLabels { phase: old })
                .dec();
        }
        if let Some(phase) = phase {
            self.clusters
                .get_or_create(&PhaseLabels {
                    phase: phase.clone(),
                })
                .inc();
            phases.insert(key.clone(), phase);
        }
        let mut infos = self.info_keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = infos.remove(&key) {
            self.info.remove(&old);
        }
        if let Some(info) = info {
            self.info.get_or_create(&info).set(1);
            infos.insert(key, info);
        }
    }
}
