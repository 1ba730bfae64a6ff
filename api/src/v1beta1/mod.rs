//! API version `v1beta1`: the storage version of every kind.

mod cluster_stack;
mod kaas_cluster;
mod provider_class;
mod stack_rollout;
mod states;
mod tenant_policy;

pub use cluster_stack::*;
pub use kaas_cluster::*;
pub use provider_class::*;
pub use stack_rollout::*;
pub use states::{ClusterCondition, ClusterPhase, RolloutClusterState, RolloutPhase};
pub use tenant_policy::*;
