//! `kaas_stack_releases_unusable`: this provider's `ClusterStack`s whose content could not be
//! fetched or verified, by the reason their `Ready` condition gives, counted from the stack
//! controller's cache at each scrape (a deleted or repaired release stops counting at once).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use api::v1beta1::ClusterStack;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

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
            Some(counts) => crate::metrics::encode_counts(
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
