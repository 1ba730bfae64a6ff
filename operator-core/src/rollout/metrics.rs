//! `kaas_stack_rollouts`: the rollouts of the classes this operator serves, by phase, counted
//! from the rollout controller's cache at each scrape. Counting at scrape time (instead of
//! updating a gauge in the reconcile) keeps a deleted rollout from being counted forever: the
//! controller never reconciles a rollout that is gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use api::Catalog;
use api::v1beta1::{ProviderClass, RolloutPhase, StackRollout};
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

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
            Some(counts) => crate::metrics::encode_counts(
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
