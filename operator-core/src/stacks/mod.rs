//! Stack releases as the operator knows them: the content behind each `ClusterStack` of its
//! provider, fetched once (from its source, or from the stacks built into the binary), checked
//! against what the object claims, and kept in memory ([`releases`]); the stack controller
//! that reports the result in the object's `Ready` condition and `contentDigest`
//! ([`controller`]); and the objects for shipped and discovered releases ([`discovery`]).
//! Cluster reconciles read the content from [`Releases::get`], which fetches on a miss so a
//! restarted operator needs no ordering.
//!
//! A `ClusterStack` without a source that is not a shipped release is a *bare* release: its
//! object is all there is (versions, node images), with no add-ons and no kubeadm settings.

mod controller;
mod discovery;
mod releases;

pub use controller::{StackContext, reconcile_stack, stack_error_policy};
pub use discovery::{discover, install, object_for};
pub use releases::{Releases, StackError, fill_node_images, mismatches, offline_release};
