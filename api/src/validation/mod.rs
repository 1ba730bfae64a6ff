//! Validation shared by the webhook server and the operators: pure functions that return every
//! problem at once, each with the path of the field it is about
//! (`spec.workers[1].replicas: must be >= 0`).

mod cluster_stack;
mod field;
mod kaas_cluster;
mod kaas_operator;
mod names;
mod provider_class;
mod stack_rollout;

pub use crate::limits::*;
pub use cluster_stack::{validate_cluster_stack, validate_cluster_stack_delete};
pub use field::{FieldError, FieldErrorKind, ValidationErrors};
pub use kaas_cluster::{
    SERVICE_ACCOUNT_ISSUER, registry_mirror_problems, validate_kaas_cluster,
    validate_kaas_cluster_spec,
};
pub use kaas_operator::{validate_kaas_operator, validate_kaas_operator_delete};
pub use names::{is_dns_label, is_dns_subdomain, is_label_value, is_qualified_name};
pub use provider_class::{validate_provider_class, validate_provider_class_delete};
pub use stack_rollout::{CLUSTER_TIMEOUT_SECONDS, validate_stack_rollout_spec};
