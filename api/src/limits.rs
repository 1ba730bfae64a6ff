//! The bounds of what one object may hold: the schema of each served version states them
//! (the API server refuses past them before any webhook runs) and the shared validation
//! checks them, from these constants.

// A cluster.
/// The fewest days before expiry a certificate renewal may be asked for (Cluster API's).
pub const MIN_CERTIFICATES_EXPIRY_DAYS: i32 = 7;
/// The most (kubeadm's certificates are valid for a year).
pub const MAX_CERTIFICATES_EXPIRY_DAYS: i32 = 300;
/// The most audiences of one issuer.
pub const MAX_AUDIENCES: usize = 16;
/// The longest issuer URL, audience, claim or prefix (they go into a file on every control
/// plane node).
pub const MAX_CLAIM_TEXT: usize = 256;
/// The most JWT issuers a cluster may trust.
pub const MAX_JWT_ISSUERS: usize = 16;
/// The most worker pools of a cluster.
pub const MAX_POOLS: usize = 64;
/// The most labels of a pool.
pub const MAX_LABELS: usize = 64;
/// The most taints of a pool.
pub const MAX_TAINTS: usize = 32;
/// The most add-on overrides of a cluster.
pub const MAX_ADDON_OVERRIDES: usize = 64;
/// The longest machine type name.
pub const MAX_MACHINE_TYPE: usize = 256;
/// The most registries with mirrors, and the most mirrors of one registry.
pub const MAX_REGISTRY_MIRRORS: usize = 32;
/// The most endpoints of one registry.
pub const MAX_MIRROR_ENDPOINTS: usize = 8;

// A rollout.
/// The most waves of a rollout.
pub const MAX_WAVES: usize = 16;
/// The most clusters a wave upgrades at once.
pub const MAX_CONCURRENT: i32 = 100;
/// The longest soak (a week).
pub const MAX_SOAK_SECONDS: i64 = 7 * 24 * 3600;
