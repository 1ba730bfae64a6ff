//! Cluster stacks: the released bundles of node images, kubeadm settings and add-ons a
//! provider's clusters are built from. This crate is the one place that reads them, for the
//! operators and the command-line tool alike:
//!
//! - [`format`]: the shape of `stack.yaml`;
//! - [`release`]: a loaded release (its file plus its templates) and its content digest;
//!   [`load`]: reading one from its files, composed and checked;
//! - [`check`]: what makes a release valid, every problem named by file and field;
//! - [`compose`]: a provider overlay on a base stack → the effective release;
//! - [`compliance`]: whether a provider's release still has every component of its base;
//! - [`changelog`]: what changed between two releases, line by line (the release bot's);
//! - [`values`]: variables with a type and bounds, and per-cluster overrides checked against them;
//! - [`template`]: add-on manifests rendered in process over a cluster's values;
//! - [`archive`]: a release as a reproducible `.tar.gz`;
//! - [`source`]: fetching from a folder, an HTTP(S) tarball or an OCI artifact, cached by
//!   content hash; [`builtin`]: the stacks shipped inside the binaries (their files in
//!   `shipped`);
//! - [`sandbox`]: the worker processes the operators render templates in (installed into
//!   [`template`] as its [`template::Isolation`]).
//!
//! Modules depend downward only: format, values, release; compose; template; check; load,
//! shipped; builtin, source, compliance, changelog, sandbox.

pub mod archive;
pub mod builtin;
pub mod changelog;
pub mod check;
pub mod compliance;
pub mod compose;
pub mod format;
pub mod load;
pub mod release;
pub mod sandbox;
mod shipped;
pub mod signature;
pub mod source;
pub mod template;
pub mod values;

mod error;

pub use error::{Error, Problem};
pub use format::{Addon, Health, StackFile, Stage};
pub use release::Release;
pub use template::{ClusterValues, RenderedAddon};
