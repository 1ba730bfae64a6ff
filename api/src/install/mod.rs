//! The install API, group `operator.kaas.scs.community`: one `KaasOperator` object per provider
//! operator a management cluster runs, as the Cluster API operator's `InfrastructureProvider`
//! installs a Cluster API provider. [`v1alpha1`] holds the kind; [`bundles`] what each
//! provider's releases need (image, RBAC, flags, CRDs, Cluster API versions), the one table the
//! installer renders from and kaas-webhooks validates against. The rules both apply are
//! [`crate::validation::validate_kaas_operator`] and its delete counterpart.

pub mod bundles;
pub mod v1alpha1;

/// The API group of the install API.
pub const GROUP: &str = "operator.kaas.scs.community";

/// The namespace the installer puts operators in, as `deploy/` does.
pub const NAMESPACE: &str = "kaas-system";

/// The most `spec.stackSigningKeys` of a `KaasOperator`.
pub const MAX_SIGNING_KEYS: usize = 8;
