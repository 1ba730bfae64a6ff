//! `operator-core`: everything a KaaS provider operator does that does not depend on the
//! provider. A provider implements [`Provider`] and calls [`run`].
//!
//! One folder per controller: [`cluster`] (the `KaasCluster` controller: plan, gather, build,
//! apply, add-ons, status, each a module beside the others), [`stacks`] (the `ClusterStack`
//! controller and the releases it fetches) and [`rollout`] (the `StackRollout` planner and its
//! controller). Beside them what they share: [`kinds`] (the one table of the kinds the core
//! writes), [`apply`] (the writer and its records), [`owned`] (what the caches keep),
//! [`addons`], [`workload_access`] and [`workload_reads`] (reaching a workload cluster) and
//! [`offline`] (the build from files). [`runtime`] only wires them together.
//! `docs/architecture.md` walks through it.

pub mod addons;
pub mod apply;
pub(crate) mod certificates;
pub mod cli;
mod clock;
pub(crate) mod cluster;
mod error;
#[cfg(feature = "golden")]
pub mod golden;
pub mod kinds;
pub(crate) mod metrics;
mod store_metrics;
pub use metrics::sample as metrics_sample;
pub mod offline;
pub mod owned;
mod provider;
pub mod rollout;
pub mod runtime;
pub mod settings;
pub mod stacks;
pub mod workload_access;
pub mod workload_reads;

pub use cluster::{build, conformance, gather, plan, render, resolve, status, upgrade};
pub use error::Error;
pub use kinds::{Kind, Naming, Wave};
pub use provider::{
    ClusterContext, Extra, Infrastructure, InfrastructureKinds, NodeImages, Provider, ProviderError,
};
pub use runtime::run;
