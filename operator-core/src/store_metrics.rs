//! Gauges counted from a controller's cache at each scrape, instead of updated in a reconcile:
//! an object that is deleted stops counting at once (the controllers never reconcile an object
//! that is gone). `kaas_stack_rollouts`: the rollouts of the classes this operator serves, by
//! phase; `kaas_stack_releases_unusable`: this provider's `ClusterStack`s whose content could
//! not be fetched or verified, by the reason their `Ready` condition gives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use api::Catalog;
use api::v1beta1::{ClusterStack, ProviderClass, RolloutPhase, StackRollout};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// Encodes `counts` as the gauge family `name` (under the registry's prefix) with one label
/// `label`: what the collectors counting from a controller's cache write at each scrape.
fn encode_counts(
    mut encoder: DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    counts: BTreeMap<String, i64>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, count) in counts {
        ConstGauge::new(count).encode(family.encode_family(&vec![(label, value)])?)?;
    }
    Ok(())
}

/// Where the phases come from, once the rollout controller runs.
#[derive(Clone)]
pub(crate) struct Source {
    pub rollouts: Store<StackRollout>,
    pub classes: Store<ProviderClass>,
    pub controller_name: String,
}

/// The collector (cheap to clone; every clone reads the same source).
#[derive(Clone, Default)]
pub struct RolloutPhases {
    source: Arc<OnceLock<Source>>,
    /// Fixed counts instead of a source (docs/metrics.md's sample).
    fixed: Arc<Mutex<Option<BTreeMap<String, i64>>>>,
}

impl std::fmt::Debug for RolloutPhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutPhases").finish_non_exhaustive()
    }
}

impl RolloutPhases {
    /// Reads from `source` from now on.
    pub(crate) fn set_source(&self, source: Source) {
        let _ = self.source.set(source);
    }

    /// One Halted rollout, for the documentation sample.
    pub(crate) fn sample(&self) {
        *self.fixed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some([(RolloutPhase::Halted.as_str().to_string(), 1)].into());
    }

    /// Rollouts of the served classes by phase; every phase appears (0 when none).
    fn counts(&self) -> Option<BTreeMap<String, i64>> {
        if let Some(fixed) = self.fixed.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(fixed);
        }
        let source = self.source.get()?;
        let mut counts: BTreeMap<String, i64> = RolloutPhase::ALL
            .iter()
            .map(|p| (p.as_str().to_string(), 0))
            .collect();
        let catalog = Catalog {
            classes: source.classes.state(),
            ..Default::default()
        };
        for rollout in source.rollouts.state() {
            let served = catalog
                .class_for(rollout.spec.provider_class_name.as_deref())
                .is_some_and(|c| c.spec.controller == source.controller_name);
            let phase = rollout.status.as_ref().and_then(|s| s.phase.as_deref());
            if let (true, Some(phase)) = (served, phase.and_then(RolloutPhase::parse)) {
                *counts.entry(phase.as_str().to_string()).or_default() += 1;
            }
        }
        Some(counts)
    }
}

impl Collector for RolloutPhases {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.counts() {
            Some(counts) => encode_counts(
                encoder,
                "stack_rollouts",
                "StackRollouts of the classes this operator serves, by phase",
                "phase",
                counts,
            ),
            None => Ok(()),
        }
    }
}

/// Reasons beyond this many are counted as `other` (the label stays bounded whatever a status
/// says).
const MAX_REASONS: usize = 32;

/// The collector (clones read the same source).
#[derive(Clone, Default)]
pub struct UnusableStacks {
    source: Arc<OnceLock<(Store<DeserializeGuard<ClusterStack>>, String)>>,
    fixed: Arc<Mutex<Option<BTreeMap<String, i64>>>>,
}

impl std::fmt::Debug for UnusableStacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnusableStacks").finish_non_exhaustive()
    }
}

impl UnusableStacks {
    /// Reads `provider`'s stacks from `store` from now on.
    pub(crate) fn set_source(&self, store: Store<DeserializeGuard<ClusterStack>>, provider: &str) {
        let _ = self.source.set((store, provider.to_string()));
    }

    /// One release whose signature did not verify, for the documentation sample.
    pub(crate) fn sample(&self) {
        *self.fixed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some([("SignatureInvalid".to_string(), 1)].into());
    }

    fn counts(&self) -> Option<BTreeMap<String, i64>> {
        if let Some(fixed) = self.fixed.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(fixed);
        }
        let (store, provider) = self.source.get()?;
        let mut counts = BTreeMap::new();
        for guarded in store.state() {
            let Ok(stack) = &guarded.0 else { continue };
            if &stack.spec.provider != provider {
                continue;
            }
            let ready = stack
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            if let Some(c) = ready.filter(|c| c.status == "False") {
                let reason = if counts.len() < MAX_REASONS || counts.contains_key(&c.reason) {
                    c.reason.clone()
                } else {
                    "other".to_string()
                };
                *counts.entry(reason).or_default() += 1;
            }
        }
        Some(counts)
    }
}

impl Collector for UnusableStacks {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.counts() {
            Some(counts) => encode_counts(
                encoder,
                "stack_releases_unusable",
                "ClusterStacks of this provider whose content could not be fetched or verified, by reason",
                "reason",
                counts,
            ),
            None => Ok(()),
        }
    }
}
