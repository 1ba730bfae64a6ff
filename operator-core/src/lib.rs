//! `operator-core`: everything a KaaS provider operator does that does not depend on the
//! provider. A provider implements [`Provider`] and calls [`run`].
//!
//! The reconcile pipeline ([`reconcile`]) plans a `KaasCluster` ([`plan`]: defaulting, the
//! `api` crate's shared validation, its stack release and version ([`resolve`]), the upgrade
//! step ([`upgrade`])), fetches the releases, asks the provider for node images and
//! infrastructure, builds the Cluster API objects ([`render`]), applies them ([`apply`]) and
//! writes the status ([`status`]). Plan, render and status are pure.

pub mod addons;
pub mod admin;
pub mod apply;
pub mod cli;
pub mod compliance;
pub mod conformance;
pub mod credentials;
pub mod desired;
pub mod error;
pub mod golden;
pub mod maintenance;
pub mod metrics;
pub mod offline;
pub mod owned;
pub mod plan;
pub mod provider;
pub mod reconcile;
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
pub use provider::{
    ClusterContext, Infrastructure, InfrastructureKinds, NodeImages, Provider, ProviderError,
};
pub use runtime::run;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
