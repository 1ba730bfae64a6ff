//! The operator's Prometheus metrics, under `kaas_`: reconciles by result, errors by category,
//! durations, the reconcile queue's depth, whether this replica leads, clusters by phase,
//! rollouts by phase, and per cluster: its info, whether it is Ready, the upgrade stage it is
//! in and when its control plane certificates expire. Counters and histograms carry no object
//! names; only the per-cluster gauges name their cluster, by design (one series each per
//! cluster; alerts need to say which). docs/metrics.md lists them all.

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

/// `namespace`, `name`: one cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One cluster's upgrade stage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `PreUpgrade`, `ControlPlane`, `Workers` or `PostUpgrade`.
    pub stage: String,
}

/// What the per-cluster series say about one cluster (see [`Metrics::set_cluster`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSeries {
    /// `status.phase`.
    pub phase: Option<String>,
    /// Its `Ready` condition is True.
    pub ready: bool,
    /// The upgrade stage in progress.
    pub upgrade_stage: Option<String>,
    /// When the earliest control plane certificate expires (Unix seconds).
    pub certificates_expiry: Option<i64>,
    /// Its info series.
    pub info: InfoLabels,
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
    /// 1 while this replica leads (and reconciles).
    pub leader: Gauge,
    /// Clusters waiting for a reconcile (triggered, not yet started).
    queue_depth: Gauge,
    /// Per cluster: 1 when Ready, else 0.
    ready: Family<ClusterLabels, Gauge>,
    /// Per cluster in an upgrade: 1 for the stage it is in.
    upgrade_stage: Family<StageLabels, Gauge>,
    /// Per cluster: when its earliest control plane certificate expires.
    certificates_expiry: Family<ClusterLabels, Gauge>,
    /// Rollouts of the classes this operator serves, by phase (read at each scrape).
    rollouts: crate::store_metrics::RolloutPhases,
    /// Stack releases that could not be fetched or verified (read at each scrape).
    stacks: crate::store_metrics::UnusableStacks,
    standard_keys: Mutex<std::collections::HashMap<(String, String), Vec<StandardLabels>>>,
    clusters_seen: Mutex<std::collections::HashMap<(String, String), ClusterSeries>>,
    queued: Mutex<std::collections::HashSet<(String, String)>>,
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
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles",
            leader.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "reconcile_queue_depth",
            "KaasClusters waiting for a reconcile (triggered, not yet started)",
            queue_depth.clone(),
        );
        let ready = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "cluster_ready",
            "1 when the KaasCluster's Ready condition is True, else 0",
            ready.clone(),
        );
        let upgrade_stage = Family::<StageLabels, Gauge>::default();
        registry.register(
            "cluster_upgrade_stage",
            "1 for the upgrade stage a KaasCluster is in; no series outside an upgrade",
            upgrade_stage.clone(),
        );
        let certificates_expiry = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "cluster_certificates_expiry_timestamp_seconds",
            "When the KaasCluster's earliest control plane certificate expires (Unix time)",
            certificates_expiry.clone(),
        );
        let rollouts = crate::store_metrics::RolloutPhases::default();
        registry.register_collector(Box::new(rollouts.clone()));
        let stacks = crate::store_metrics::UnusableStacks::default();
        registry.register_collector(Box::new(stacks.clone()));
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
            leader,
            queue_depth,
            ready,
            upgrade_stage,
            certificates_expiry,
            rollouts,
            stacks,
            standard_keys: Mutex::default(),
            clusters_seen: Mutex::default(),
            queued: Mutex::default(),
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        kaas_listener::process::with_process_metrics(out)
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

    /// Records a cluster's per-cluster series, replacing what was recorded for it before;
    /// `None` (the cluster is gone) removes them.
    pub fn set_cluster(&self, key: (String, String), series: Option<ClusterSeries>) {
        let mut seen = self.clusters_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&key) == series.as_ref() {
            return;
        }
        let labels = ClusterLabels {
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        let stage_labels = |stage: &str| StageLabels {
            namespace: key.0.clone(),
            name: key.1.clone(),
            stage: stage.to_string(),
        };
        if let Some(old) = seen.remove(&key) {
            if let Some(phase) = old.phase {
                self.clusters.get_or_create(&PhaseLabels { phase }).dec();
            }
            if let Some(stage) = &old.upgrade_stage {
                self.upgrade_stage.remove(&stage_labels(stage));
            }
            self.info.remove(&old.info);
            self.ready.remove(&labels);
            self.certificates_expiry.remove(&labels);
        }
        let Some(series) = series else {
            return;
        };
        if let Some(phase) = &series.phase {
            self.clusters
                .get_or_create(&PhaseLabels {
                    phase: phase.clone(),
                })
                .inc();
        }
        if let Some(stage) = &series.upgrade_stage {
            self.upgrade_stage
                .get_or_create(&stage_labels(stage))
                .set(1);
        }
        if let Some(at) = series.certificates_expiry {
            self.certificates_expiry.get_or_create(&labels).set(at);
        }
        self.ready
            .get_or_create(&labels)
            .set(i64::from(series.ready));
        self.info.get_or_create(&series.info).set(1);
        seen.insert(key, series);
    }

    /// A reconcile of the cluster `key` was asked for.
    pub fn queued(&self, key: (String, String)) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.insert(key);
        self.queue_depth.set(queued.len() as i64);
    }

    /// The reconcile of the cluster `key` started.
    pub fn started(&self, key: &(String, String)) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.remove(key);
        self.queue_depth.set(queued.len() as i64);
    }

    /// Where the unusable stack releases are read from, once the stack controller runs.
    pub(crate) fn stacks(&self) -> &crate::store_metrics::UnusableStacks {
        &self.stacks
    }

    /// Where the rollout phases are read from, once the rollout controller runs.
    pub(crate) fn rollouts(&self) -> &crate::store_metrics::RolloutPhases {
        &self.rollouts
    }
}

/// Every metric of a fresh operator registry with one series each, encoded in the classic text
/// format: what docs/metrics.md is generated from.
pub fn sample() -> String {
    let metrics = Metrics::default();
    metrics
        .reconciles
        .get_or_create(&ResultLabels { result: "success" })
        .inc();
    metrics
        .errors
        .get_or_create(&CategoryLabels {
            category: "conflict",
        })
        .inc();
    metrics.duration.observe(0.1);
    metrics.writes.inc();
    metrics.addon_writes.inc();
    metrics.leader.set(1);
    metrics.queued(("ns".into(), "a".into()));
    let info = InfoLabels {
        namespace: "ns".into(),
        name: "a".into(),
        stack: "docker-scs".into(),
        stack_version: "1-35-v1".into(),
        kubernetes_version: "v1.35.1".into(),
    };
    metrics.set_cluster(
        ("ns".into(), "a".into()),
        Some(ClusterSeries {
            phase: Some("Upgrading".into()),
            ready: true,
            upgrade_stage: Some("ControlPlane".into()),
            certificates_expiry: Some(1_800_000_000),
            info,
        }),
    );
    metrics.set_standards(
        ("ns".into(), "a".into()),
        vec![("scs-0210-v2".into(), "Pass".into())],
    );
    metrics.rollouts.sample();
    metrics.stacks.sample();
    kaas_listener::exposition::classic(&metrics.encode())
}
