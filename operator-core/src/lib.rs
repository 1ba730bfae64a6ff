//! `operator-core`: everything a KaaS provider operator does that does not depend on the
//! provider. A provider implements [`Provider`] and calls [`run`].
//!
//! The reconcile pipeline ([`reconcile`]) plans a `KaasCluster` ([`plan`]: defaulting, the
//! `api` crate's shared validation, its stack release and version ([`resolve`]), the upgrade
//! step ([`upgrade`])), fetches the releases, asks the provider for node images and
//! infrastructure, builds the Cluster API objects ([`render`]), applies them ([`apply`]) and
//! writes the status ([`status`]). Plan, render and status are pure.

pub mod addons;
pub mod apply;
pub mod build;
pub(crate) mod certificates;
pub mod cli;
pub(crate) mod compliance;
pub mod conformance;
pub(crate) mod credentials;
mod error;
#[cfg(feature = "golden")]
pub mod golden;
pub mod kinds;
pub(crate) mod maintenance;
pub(crate) mod metrics;
pub mod offline;
pub mod owned;
pub mod plan;
mod provider;
pub(crate) mod reconcile;
pub mod render;
pub mod resolve;
pub mod rollout;
pub mod runtime;
pub mod settings;
pub mod stacks;
pub mod status;
pub mod upgrade;
pub mod workload_access;
pub mod workload_reads;

pub use error::Error;
pub use kinds::{Kind, Naming, Wave};
pub use provider::{
    ClusterContext, Extra, Infrastructure, InfrastructureKinds, NodeImages, Provider, ProviderError,
};
pub use runtime::run;
