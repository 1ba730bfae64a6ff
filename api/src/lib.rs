//! The `kaas.scs.community` API: the one crate every operator, the webhook server and the CLI
//! share, so that they agree on types, conversion, validation and defaulting.
//!
//! - [`v1beta1`] is the storage version; [`v1alpha1`] is the older, flatter `KaasCluster` shape.
//!   Conversion between the two lives in [`conversion`] and is lossless in both directions.
//! - [`validation`] and [`defaulting`] are pure functions over the objects and a [`Catalog`] (a
//!   snapshot of the classes, stacks and clusters the caller knows about): the webhook server
//!   and the operators call the very same functions, so they cannot disagree. An update is
//!   judged against the [`Previous`] state: the few stored fields those rules read.
//! - [`install`] is the install API (`operator.kaas.scs.community`): `KaasOperator` and the
//!   bundles of each provider operator's releases.
//! - [`crds`] builds the CustomResourceDefinitions from the Rust types (written to
//!   `deploy/crds/` by `make manifests`).

// kube-derive's repeated `printcolumn(type_ = ...)` arguments trip this lint.
#![allow(clippy::duplicated_attributes)]

#[macro_use]
mod states;

#[cfg(feature = "runtime")]
pub mod cache;
pub mod catalog;
pub mod conversion;
pub mod crds;
pub mod defaulting;
pub mod install;
pub mod limits;
pub mod net;
pub mod previous;
pub mod release_id;
pub mod selector;
pub mod server_version;
pub mod signing_key;
pub mod tenancy;
pub mod v1alpha1;
pub mod v1beta1;
pub mod validation;
pub mod version;

mod schema;

pub use catalog::Catalog;
pub use previous::Previous;
pub use release_id::ReleaseId;
pub use validation::{FieldError, ValidationErrors};

/// The API group of every kind in this crate.
pub const GROUP: &str = "kaas.scs.community";

/// The annotation that marks the `ProviderClass` used when a `KaasCluster` names none.
pub const DEFAULT_CLASS_ANNOTATION: &str = "providerclass.kaas.scs.community/is-default-class";

/// The prefix of every controller name this project's operators answer to by default.
pub const CONTROLLER_PREFIX: &str = "kaas.scs.community/";
