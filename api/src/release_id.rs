//! The identity of a cluster stack release: provider, stack name and version. A
//! `ClusterStack` object and the `stack.yaml` of its content each carry one
//! (`ClusterStackSpec::id`, the stack crate's `StackFile::id`); comparing two releases is
//! comparing their identities.

use std::fmt;

/// Which release: `docker/scs 1.0.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseId {
    /// The provider it is built for.
    pub provider: String,
    /// The stack's name.
    pub name: String,
    /// The release's version.
    pub version: String,
}

impl ReleaseId {
    /// The identity of `provider`/`name` `version`.
    pub fn new(provider: &str, name: &str, version: &str) -> Self {
        ReleaseId {
            provider: provider.to_string(),
            name: name.to_string(),
            version: version.to_string(),
        }
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.provider, self.name, self.version)
    }
}
