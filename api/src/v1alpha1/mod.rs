//! API version `v1alpha1`: the older, flatter `KaasCluster` shape, still served. Objects are
//! stored as `v1beta1`; see [`crate::conversion`] for how the two map onto each other.

mod kaas_cluster;

pub use kaas_cluster::*;
