//! `kaas-installer`: installs, upgrades and removes the provider operators from `KaasOperator`
//! objects (group `operator.kaas.scs.community`), as the Cluster API operator installs Cluster
//! API providers. [`render`] turns a bundle and a `KaasOperator` into the operator's objects
//! (also `deploy/operators/`, through [`deploy`]); [`preflight`] decides whether a version may
//! be installed; [`status`] computes the conditions; [`controller`] does the API calls;
//! [`runtime`] wires it up with operator-core's runtime (flags, leader election, metrics,
//! probes). The binary is one call to [`runtime::run`].

pub mod controller;
pub mod deploy;
pub mod metrics;
pub mod preflight;
pub mod render;
pub mod runtime;
pub mod status;
