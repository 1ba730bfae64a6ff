//! Whether a `KaasOperator` may be installed (or moved to another version) now: a bundle for
//! that provider and version exists; the CRDs it reads are served at the versions it needs;
//! a downgrade does not cross a change of a CRD's storage version. Pure: the caller reads
//! what the API server serves.

use std::collections::BTreeMap;

use api::install::bundles::{self, Bundle, CrdVersion};

/// The CRDs the API server has, by name, with their served versions.
#[derive(Debug, Clone, Default)]
pub struct Served(pub BTreeMap<String, Vec<String>>);

impl Served {
    fn serves(&self, need: &CrdVersion) -> bool {
        self.0
            .get(need.name)
            .is_some_and(|versions| versions.iter().any(|v| v == need.version))
    }
}

/// What the preflight needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `spec.provider`.
    pub provider: &'a str,
    /// `spec.version`.
    pub version: &'a str,
    /// The version installed now, if any.
    pub installed: Option<&'a str>,
    /// Whether the installer brings Cluster API too (then its CRDs come later).
    pub installs_cluster_api: bool,
    /// `spec.image.repository`, when it replaces the bundle's.
    pub image_repository: Option<&'a str>,
    /// The repositories (prefixes) the installer lets a `KaasOperator` name
    /// (`--allowed-image-repository`); none: only the bundle's own.
    pub allowed_repositories: &'a [String],
}

/// Whether `repository` lies under one of `allowed` (a prefix ending at a path boundary).
pub fn repository_allowed(repository: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        repository == prefix
            || repository
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Checks `request` against what is `served`; the bundle to install, or every reason not to.
pub fn check(request: Request<'_>, served: &Served) -> Result<&'static Bundle, Vec<String>> {
    let Some(target) = bundles::find(request.provider, request.version) else {
        return Err(vec![format!(
            "no bundle of the {} operator at version {} (this installer has {})",
            request.provider,
            request.version,
            bundles::versions(request.provider).join(", ")
        )]);
    };
    let mut problems = Vec::new();
    // The operator runs with its service account (it reads every tenant's kubeconfig
    // Secret): which image that is, the installer's policy says, not whoever writes the
    // KaasOperator.
    if let Some(repository) = request.image_repository
        && repository != target.image_repository
        && !repository_allowed(repository, request.allowed_repositories)
    {
        problems.push(format!(
            "spec.image.repository {repository:?} is not allowed by the installer (--allowed-image-repository: {})",
            if request.allowed_repositories.is_empty() {
                format!("none, only the bundle's own {}", target.image_repository)
            } else {
                request.allowed_repositories.join(", ")
            }
        ));
    }
    let mut needs: Vec<&CrdVersion> = target.kaas_crds.iter().collect();
    if !request.installs_cluster_api {
        needs.extend(target.cluster_api_crds);
    }
    for need in needs {
        if !served.serves(need) {
            problems.push(format!(
                "CRD {} is not served at {} (needed by {} {})",
                need.name, need.version, target.provider, target.version
            ));
        }
    }
    if let Some(from) = request
        .installed
        .and_then(|v| bundles::find(request.provider, v))
    {
        problems.extend(storage_downgrade(from, target));
    }
    if problems.is_empty() {
        Ok(target)
    } else {
        Err(problems)
    }
}

/// Moving from `from` down to `to` while a CRD's storage version differs: objects stored at
/// the newer version may be unreadable for the older operator.
pub fn storage_downgrade(from: &Bundle, to: &Bundle) -> Vec<String> {
    let parse = |v: &str| semver::Version::parse(v).ok();
    if parse(to.version) >= parse(from.version) {
        return Vec::new();
    }
    from.storage
        .iter()
        .filter_map(|stored| {
            let older = to.storage.iter().find(|s| s.name == stored.name);
            (older.map(|s| s.version) != Some(stored.version)).then(|| {
                format!(
                    "downgrade from {} to {} crosses a storage change of {} ({} -> {})",
                    from.version,
                    to.version,
                    stored.name,
                    stored.version,
                    older.map_or("none", |s| s.version)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(bundle: &Bundle, with_capi: bool) -> Served {
        let mut s = Served::default();
        let capi: &[CrdVersion] = if with_capi {
            bundle.cluster_api_crds
        } else {
            &[]
        };
        for c in bundle.kaas_crds.iter().chain(capi) {
            s.0.entry(c.name.into()).or_default().push(c.version.into());
        }
        s
    }

    #[test]
    fn an_unknown_version_is_refused_naming_the_known_ones() {
        let r = Request {
            provider: "docker",
            version: "9.0.0",
            installed: None,
            installs_cluster_api: false,
            image_repository: None,
            allowed_repositories: &[],
        };
        let err = check(r, &Served::default()).unwrap_err();
        assert!(err[0].contains("0.1.0"), "{err:?}");
    }

    #[test]
    fn the_crds_must_be_served_at_the_needed_versions() {
        let bundle = bundles::find("docker", bundles::CURRENT).unwrap();
        let r = Request {
            provider: "docker",
            version: bundles::CURRENT,
            installed: None,
            installs_cluster_api: false,
            image_repository: None,
            allowed_repositories: &[],
        };
        assert!(check(r, &served(bundle, true)).is_ok());
        // Without Cluster API's CRDs: refused, unless the installer brings Cluster API.
        let err = check(r, &served(bundle, false)).unwrap_err();
        assert!(
            err.iter().any(|e| e.contains("devclusters.infrastructure")),
            "{err:?}"
        );
        let with_capi = Request {
            installs_cluster_api: true,
            ..r
        };
        assert!(check(with_capi, &served(bundle, false)).is_ok());
        // A CRD served only at an older version does not count.
        let mut old = served(bundle, true);
        old.0
            .insert("clusters.cluster.x-k8s.io".into(), vec!["v1beta1".into()]);
        let err = check(r, &old).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(err[0].contains("clusters.cluster.x-k8s.io is not served at v1beta2"));
    }

    #[test]
    fn another_image_repository_needs_the_installers_policy() {
        let bundle = bundles::find("docker", bundles::CURRENT).unwrap();
        let served = served(bundle, true);
        let allowed = ["registry.example.com/mirror".to_string()];
        let r = |repository: &'static str, allowed: &'static [String]| Request {
            provider: "docker",
            version: bundles::CURRENT,
            installed: None,
            installs_cluster_api: false,
            image_repository: Some(repository),
            allowed_repositories: allowed,
        };
        // The bundle's own repository is always fine.
        assert!(check(r(bundle.image_repository, &[]), &served).is_ok());
        let err = check(r("evil.example.com/operator", &[]), &served).unwrap_err();
        assert!(
            err[0].contains("spec.image.repository \"evil.example.com/operator\"")
                && err[0].contains("only the bundle's own"),
            "{err:?}"
        );
        let allowed: &'static [String] = Box::leak(Box::new(allowed));
        assert!(
            check(
                r("registry.example.com/mirror/kaas-operator-docker", allowed),
                &served
            )
            .is_ok()
        );
        assert!(check(r("registry.example.com/mirror", allowed), &served).is_ok());
        // A prefix ends at a path boundary.
        assert!(check(r("registry.example.com/mirror-evil/x", allowed), &served).is_err());
    }

    #[test]
    fn a_downgrade_across_a_storage_change_is_refused_an_upgrade_is_not() {
        let new = Bundle {
            version: "0.3.0",
            storage: &[CrdVersion {
                name: "kaasclusters.kaas.scs.community",
                version: "v1",
            }],
            ..*bundles::find("docker", bundles::CURRENT).unwrap()
        };
        let old = bundles::find("docker", bundles::CURRENT).unwrap();
        let problems = storage_downgrade(&new, old);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("v1 -> v1beta1"), "{problems:?}");
        assert!(storage_downgrade(old, &new).is_empty());
        // The shipped bundles share their storage versions: moving between them either way
        // passes.
        let first = bundles::find("docker", "0.1.0").unwrap();
        assert!(storage_downgrade(old, first).is_empty());
    }
}
