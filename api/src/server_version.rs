//! The oldest management cluster this project supports, and the check every binary makes
//! against the API server it connects to before doing anything else.
//!
//! Kubernetes 1.33 is the floor: the binaries are built against its API types (`k8s-openapi`'s
//! `v1_33`, also kube-rs 5's oldest tested release), and the manifests in `deploy/` rely on what
//! API servers serve from then on: CEL validation rules in the CRDs (with `fieldPath` and the
//! IP/CIDR library), `matchConditions` on the webhook registrations, `events.k8s.io/v1` Events
//! about cluster-scoped objects, and `policy/v1` PodDisruptionBudgets. On an older server the
//! CRDs would install with their rules silently ignored; a clear refusal at start-up is better.

use std::fmt;

/// The oldest Kubernetes minor version (of major version 1) a management cluster may run.
pub const MIN_MINOR: u64 = 33;

/// The oldest supported version as people write it.
pub const MIN_VERSION: &str = "1.33";

/// An API server older than [`MIN_VERSION`], or one whose version could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Unsupported {
    /// The version the server reported (its `gitVersion`, or major.minor).
    pub found: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the management cluster's API server runs Kubernetes {}; this release of kaas needs \
             {MIN_VERSION} or newer (CEL rules in its CRDs, matchConditions on its webhooks, \
             events.k8s.io/v1 Events); upgrade the management cluster",
            self.found
        )
    }
}

/// Checks the `major` and `minor` fields of the server's `/version` answer (`gitVersion` only
/// names the version in the error). Providers append a `+` to the minor (`"33+"`): only its
/// leading digits count.
pub fn check(major: &str, minor: &str, git_version: &str) -> Result<(), Unsupported> {
    let digits = |s: &str| -> Option<u64> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let found = || Unsupported {
        found: if git_version.is_empty() {
            format!("{major}.{minor}")
        } else {
            git_version.to_string()
        },
    };
    match (digits(major), digits(minor)) {
        (Some(1), Some(m)) if m >= MIN_MINOR => Ok(()),
        (Some(ma), Some(_)) if ma > 1 => Ok(()),
        _ => Err(found()),
    }
}

/// Asks the server behind `client` for its version and [`check`]s it (feature `runtime`).
#[cfg(feature = "runtime")]
pub async fn require_supported(client: &kube::Client) -> Result<String, RequireError> {
    let info = client
        .apiserver_version()
        .await
        .map_err(RequireError::Unreachable)?;
    check(&info.major, &info.minor, &info.git_version)?;
    Ok(info.git_version)
}

/// Why [`require_supported`] refused to go on.
#[cfg(feature = "runtime")]
#[derive(Debug, thiserror::Error)]
pub enum RequireError {
    /// `/version` could not be read.
    #[error("reading the API server's version: {0}")]
    Unreachable(#[source] kube::Error),
    /// The server is older than the supported minimum.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_and_newer_pass_older_are_named() {
        assert!(check("1", "33", "v1.33.0").is_ok());
        assert!(check("1", "37", "v1.37.2").is_ok());
        assert!(check("1", "34+", "v1.34.1-gke.100").is_ok());
        let err = check("1", "20", "v1.20.2").unwrap_err();
        assert_eq!(err.found, "v1.20.2");
        let text = err.to_string();
        assert!(
            text.contains("v1.20.2") && text.contains("1.33 or newer"),
            "{text}"
        );
        assert!(
            check("1", "32+", "")
                .unwrap_err()
                .to_string()
                .contains("1.32+")
        );
        assert!(check("", "", "").is_err());
        assert!(check("0", "99", "v0.99.0").is_err());
    }
}
