//! What each release of each provider operator needs, as data: its image, the RBAC its code
//! uses, the flags it takes, the CRDs (and versions) it reads and stores, and the Cluster API
//! providers its stacks need. `kaas-installer` renders a `KaasOperator` from it (and
//! `make manifests` renders `deploy/operators/` from the same bundles), kaas-webhooks refuses
//! versions, providers and flags it does not list. A release of this project adds its bundles
//! here; older ones stay, so an installed operator can be moved between them.

/// One RBAC rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// API groups (`""` is the core group).
    pub api_groups: &'static [&'static str],
    /// Resources.
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
}

/// A CRD served at a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrdVersion {
    /// `<plural>.<group>`.
    pub name: &'static str,
    /// The version.
    pub version: &'static str,
}

/// One Cluster API operator provider object: kind, name, namespace, version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapiProvider {
    /// `CoreProvider`, `BootstrapProvider`, `ControlPlaneProvider` or `InfrastructureProvider`.
    pub kind: &'static str,
    /// Its name, which is the provider's name for the Cluster API operator (`cluster-api`,
    /// `kubeadm`, `docker`).
    pub name: &'static str,
    /// The namespace the Cluster API operator installs that provider into.
    pub namespace: &'static str,
    /// The provider's release, such as `v1.14.0`.
    pub version: &'static str,
}

/// One release of one provider operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bundle {
    /// `docker`, `openstack`, `hetzner`.
    pub provider: &'static str,
    /// The release, a semantic version.
    pub version: &'static str,
    /// The image repository; the tag is the version.
    pub image_repository: &'static str,
    /// What every provider operator of this release does (cluster-scoped).
    pub operator_rules: &'static [Rule],
    /// The provider's own kinds.
    pub infrastructure_rules: &'static [Rule],
    /// Flags a `KaasOperator` may add (`spec.additionalArgs`).
    pub flags: &'static [&'static str],
    /// This project's CRDs, at the versions the operator reads.
    pub kaas_crds: &'static [CrdVersion],
    /// The storage version each of this project's CRDs has in this release.
    pub storage: &'static [CrdVersion],
    /// Cluster API's and the provider's CRDs, at the versions the operator writes.
    pub cluster_api_crds: &'static [CrdVersion],
    /// The Cluster API providers this release's stacks are built and tested with.
    pub cluster_api: [CapiProvider; 4],
}

/// This project's version: the newest bundles are this release's.
pub const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// The flags the installer sets itself on every operator; `spec.additionalArgs` may not.
pub const SET_BY_INSTALLER: &[&str] = &[
    "--leader-elect",
    "--leader-election-namespace",
    "--metrics-bind-address",
    "--metrics-insecure",
    "--health-probe-bind-address",
    "--log-json",
    "--install-shipped-stacks",
    "--stack-cache-dir",
    // From `spec.stackSigningKeys`, mounted from their ConfigMaps.
    "--stack-signing-key",
];

/// Flags of the 0.1 and 0.2 operators a `KaasOperator` may set (`--allow-local-stacks` is
/// not among them: it would let stacks read the pod's own files).
const FLAGS: &[&str] = &[
    "--controller-name",
    "--namespace",
    "--concurrency",
    "--stack-repository",
    "--stack-discovery-interval",
    "--plain-http-registry",
    "--addon-resync",
    "--reconcile-timeout",
    "--allowed-stack-sources",
    "--render-memory-mib",
    "--render-workers",
    "--stack-fetch-timeout",
];

/// What the 0.1 and 0.2 operators do, whatever the provider. Least privilege: explicit verbs
/// and resources, no wildcards, only what the code uses (e2e/tests/deploy.rs matches them
/// against the API server's audit log of a run, both ways). Secrets: only `get`, for Cluster
/// API's `<cluster>-kubeconfig` and the credentials a class names; never list or watch.
const OPERATOR_RULES: &[Rule] = &[
    rule(
        &["kaas.scs.community"],
        &["kaasclusters"],
        &["list", "watch", "patch"],
    ),
    rule(
        &["kaas.scs.community"],
        &["kaasclusters/status"],
        &["patch"],
    ),
    rule(
        &["kaas.scs.community"],
        &["providerclasses"],
        &["list", "watch"],
    ),
    // get and create: the shipped stacks (--install-shipped-stacks) and discovered releases.
    rule(
        &["kaas.scs.community"],
        &["clusterstacks"],
        &["get", "list", "watch", "create"],
    ),
    rule(
        &["kaas.scs.community"],
        &["clusterstacks/status"],
        &["patch"],
    ),
    // Rollouts: read, and their status written; the clusters they move are patched above.
    rule(
        &["kaas.scs.community"],
        &["stackrollouts"],
        &["list", "watch"],
    ),
    rule(
        &["kaas.scs.community"],
        &["stackrollouts/status"],
        &["patch"],
    ),
    // Tenant policies: where each stands is its clusters' `WithinTenantPolicy`.
    rule(
        &["kaas.scs.community"],
        &["tenantpolicies"],
        &["list", "watch"],
    ),
    rule(&[""], &["secrets"], &["get"]),
    // Metrics are served to scrapers whose token is valid and allowed `get` on /metrics.
    rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
    rule(
        &["authorization.k8s.io"],
        &["subjectaccessreviews"],
        &["create"],
    ),
    // Written with server-side apply (patch; an apply that creates is also authorized as
    // create), read from watches; get: a Cluster being deleted.
    rule(
        &["cluster.x-k8s.io"],
        &["clusters"],
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    rule(
        &["cluster.x-k8s.io"],
        &["machinedeployments"],
        &["list", "watch", "create", "patch", "delete"],
    ),
    // Control plane Machines: when their certificates expire.
    rule(&["cluster.x-k8s.io"], &["machines"], &["list", "watch"]),
    rule(
        &["controlplane.cluster.x-k8s.io"],
        &["kubeadmcontrolplanes"],
        &["list", "watch", "create", "patch", "delete"],
    ),
    rule(
        &["bootstrap.cluster.x-k8s.io"],
        &["kubeadmconfigtemplates"],
        &["list", "create", "patch", "delete"],
    ),
    rule(
        &["apiextensions.k8s.io"],
        &["customresourcedefinitions"],
        &["get"],
    ),
    rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
];

/// The leader Lease, only in the operator's namespace.
pub const LEADER_ELECTION_RULES: &[Rule] = &[rule(
    &["coordination.k8s.io"],
    &["leases"],
    &["get", "create", "patch"],
)];

const fn rule(
    api_groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
) -> Rule {
    Rule {
        api_groups,
        resources,
        verbs,
    }
}

const fn crd(name: &'static str, version: &'static str) -> CrdVersion {
    CrdVersion { name, version }
}

const KAAS_CRDS: &[CrdVersion] = &[
    crd("kaasclusters.kaas.scs.community", "v1beta1"),
    crd("providerclasses.kaas.scs.community", "v1beta1"),
    crd("clusterstacks.kaas.scs.community", "v1beta1"),
    crd("stackrollouts.kaas.scs.community", "v1beta1"),
    crd("tenantpolicies.kaas.scs.community", "v1beta1"),
];

const CAPI_CORE_CRDS: [CrdVersion; 5] = [
    crd("clusters.cluster.x-k8s.io", "v1beta2"),
    crd("machinedeployments.cluster.x-k8s.io", "v1beta2"),
    crd("machines.cluster.x-k8s.io", "v1beta2"),
    crd(
        "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io",
        "v1beta2",
    ),
    crd(
        "kubeadmconfigtemplates.bootstrap.cluster.x-k8s.io",
        "v1beta2",
    ),
];

const fn capi(
    core: &'static str,
    infrastructure: &'static str,
    namespace: &'static str,
    version: &'static str,
) -> [CapiProvider; 4] {
    [
        CapiProvider {
            kind: "CoreProvider",
            name: "cluster-api",
            namespace: "capi-system",
            version: core,
        },
        CapiProvider {
            kind: "BootstrapProvider",
            name: "kubeadm",
            namespace: "capi-kubeadm-bootstrap-system",
            version: core,
        },
        CapiProvider {
            kind: "ControlPlaneProvider",
            name: "kubeadm",
            namespace: "capi-kubeadm-control-plane-system",
            version: core,
        },
        CapiProvider {
            kind: "InfrastructureProvider",
            name: infrastructure,
            namespace,
            version,
        },
    ]
}

const fn with_infra(infra: [CrdVersion; 2]) -> [CrdVersion; 7] {
    let c = CAPI_CORE_CRDS;
    [c[0], c[1], c[2], c[3], c[4], infra[0], infra[1]]
}

const DOCKER_0_1_CRDS: [CrdVersion; 7] = with_infra([
    crd("dockerclusters.infrastructure.cluster.x-k8s.io", "v1beta2"),
    crd(
        "dockermachinetemplates.infrastructure.cluster.x-k8s.io",
        "v1beta2",
    ),
]);
const DOCKER_0_2_CRDS: [CrdVersion; 7] = with_infra([
    crd("devclusters.infrastructure.cluster.x-k8s.io", "v1beta2"),
    crd(
        "devmachinetemplates.infrastructure.cluster.x-k8s.io",
        "v1beta2",
    ),
]);
const OPENSTACK_CRDS: [CrdVersion; 7] = with_infra([
    crd(
        "openstackclusters.infrastructure.cluster.x-k8s.io",
        "v1beta1",
    ),
    crd(
        "openstackmachinetemplates.infrastructure.cluster.x-k8s.io",
        "v1beta1",
    ),
]);
const HETZNER_CRDS: [CrdVersion; 7] = with_infra([
    crd("hetznerclusters.infrastructure.cluster.x-k8s.io", "v1beta1"),
    crd(
        "hcloudmachinetemplates.infrastructure.cluster.x-k8s.io",
        "v1beta1",
    ),
]);

const INFRA_VERBS: &[&str] = &["list", "create", "patch", "delete"];

const fn bundle(
    provider: &'static str,
    version: &'static str,
    infrastructure_rules: &'static [Rule],
    cluster_api_crds: &'static [CrdVersion],
    cluster_api: [CapiProvider; 4],
) -> Bundle {
    Bundle {
        provider,
        version,
        image_repository: match provider.as_bytes() {
            b"docker" => "ghcr.io/scs-kaas/kaas-operator-docker",
            b"openstack" => "ghcr.io/scs-kaas/kaas-operator-openstack",
            _ => "ghcr.io/scs-kaas/kaas-operator-hetzner",
        },
        operator_rules: OPERATOR_RULES,
        infrastructure_rules,
        flags: FLAGS,
        kaas_crds: KAAS_CRDS,
        storage: KAAS_CRDS,
        cluster_api_crds,
        cluster_api,
    }
}

/// Every bundle, oldest release first within a provider.
pub const ALL: &[Bundle] = &[
    // 0.1.0 wrote Cluster API's DockerCluster/DockerMachineTemplate (deprecated in v1.14).
    bundle(
        "docker",
        "0.1.0",
        &[rule(
            &["infrastructure.cluster.x-k8s.io"],
            &["dockerclusters", "dockermachinetemplates"],
            INFRA_VERBS,
        )],
        &DOCKER_0_1_CRDS,
        capi("v1.11.0", "docker", "capd-system", "v1.11.0"),
    ),
    bundle(
        "docker",
        CURRENT,
        &[rule(
            &["infrastructure.cluster.x-k8s.io"],
            &["devclusters", "devmachinetemplates"],
            INFRA_VERBS,
        )],
        &DOCKER_0_2_CRDS,
        capi("v1.14.0", "docker", "capd-system", "v1.14.0"),
    ),
    bundle(
        "openstack",
        "0.1.0",
        OPENSTACK_RULES,
        &OPENSTACK_CRDS,
        capi("v1.11.0", "openstack", "capo-system", "v0.13.0"),
    ),
    bundle(
        "openstack",
        CURRENT,
        OPENSTACK_RULES,
        &OPENSTACK_CRDS,
        capi("v1.14.0", "openstack", "capo-system", "v0.15.0"),
    ),
    bundle(
        "hetzner",
        "0.1.0",
        HETZNER_RULES,
        &HETZNER_CRDS,
        capi("v1.11.0", "hetzner", "caph-system", "v1.0.5"),
    ),
    bundle(
        "hetzner",
        CURRENT,
        HETZNER_RULES,
        &HETZNER_CRDS,
        capi("v1.14.0", "hetzner", "caph-system", "v1.0.5"),
    ),
];

const OPENSTACK_RULES: &[Rule] = &[
    rule(
        &["infrastructure.cluster.x-k8s.io"],
        &["openstackclusters", "openstackmachinetemplates"],
        INFRA_VERBS,
    ),
    // ORC images: node images shared by the clusters that boot from them.
    rule(
        &["openstack.k-orc.cloud"],
        &["images"],
        &["get", "list", "create", "patch", "delete"],
    ),
];

const HETZNER_RULES: &[Rule] = &[rule(
    &["infrastructure.cluster.x-k8s.io"],
    &["hetznerclusters", "hcloudmachinetemplates"],
    INFRA_VERBS,
)];

/// The bundle of `provider` at `version`.
pub fn find(provider: &str, version: &str) -> Option<&'static Bundle> {
    ALL.iter()
        .find(|b| b.provider == provider && b.version == version)
}

/// The newest bundle of `provider`.
pub fn latest(provider: &str) -> Option<&'static Bundle> {
    ALL.iter()
        .filter(|b| b.provider == provider)
        .max_by_key(|b| semver::Version::parse(b.version).ok())
}

/// The providers with bundles, each once, in the table's order.
pub fn providers() -> Vec<&'static str> {
    let mut names: Vec<&str> = Vec::new();
    for b in ALL {
        if !names.contains(&b.provider) {
            names.push(b.provider);
        }
    }
    names
}

/// The versions of `provider`, oldest first.
pub fn versions(provider: &str) -> Vec<&'static str> {
    ALL.iter()
        .filter(|b| b.provider == provider)
        .map(|b| b.version)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_a_bundle_of_this_release_and_versions_are_semantic() {
        for provider in providers() {
            assert_eq!(latest(provider).map(|b| b.version), Some(CURRENT));
            for v in versions(provider) {
                assert!(semver::Version::parse(v).is_ok(), "{provider} {v}");
            }
        }
        assert_eq!(providers(), ["docker", "openstack", "hetzner"]);
    }

    #[test]
    fn no_flag_is_both_allowed_and_set_by_the_installer() {
        for b in ALL {
            for f in b.flags {
                assert!(!SET_BY_INSTALLER.contains(f), "{f}");
                assert!(f.starts_with("--"), "{f}");
            }
        }
    }
}
