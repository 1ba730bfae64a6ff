//! Defaulting shared by the mutating webhook and the operators. Each function fills only what
//! is left out, so applying it twice changes nothing more than applying it once.
//!
//! `ProviderClass` has nothing to default: its only required field, the controller name, has
//! no sensible default, and its parameters belong to the provider.

use crate::v1beta1::{
    ClusterStackSpec, DEFAULT_CONTROL_PLANE_REPLICAS, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR,
    KaasClusterSpec,
};
use crate::version::KubeVersion;
use crate::{Catalog, Previous};

/// Fills what a user may leave out of a `KaasCluster`:
/// - `providerClassName`: the one class annotated as the default (none when several are);
/// - `clusterStack.version`: the newest ready release of the stack for the class's provider;
/// - `kubernetesVersion`: the newest version that release supports;
/// - `controlPlane.replicas`: 3;
/// - `network.podCIDRs` / `serviceCIDRs`: `192.168.0.0/16` / `10.96.0.0/12`.
pub fn default_kaas_cluster(spec: &mut KaasClusterSpec, catalog: &Catalog) {
    if spec.provider_class_name.is_none() {
        spec.provider_class_name = catalog
            .class_for(None)
            .and_then(|c| c.metadata.name.clone());
    }
    let provider = spec
        .provider_class_name
        .as_deref()
        .and_then(|name| catalog.class(name))
        .map(|c| c.spec.provider().to_string());
    if let Some(provider) = &provider {
        if spec.cluster_stack.version.is_none()
            && let Some(stack) = catalog.newest_ready_release(provider, &spec.cluster_stack.name)
        {
            spec.cluster_stack.version = Some(stack.spec.version.clone());
        }
        if spec.kubernetes_version.is_none()
            && let Some(version) = &spec.cluster_stack.version
            && let Some(stack) = catalog.release(provider, &spec.cluster_stack.name, version)
        {
            spec.kubernetes_version =
                crate::version::newest(&stack.spec.kubernetes_versions).map(str::to_string);
        }
    }
    if spec.control_plane.replicas.is_none() {
        spec.control_plane.replicas = Some(DEFAULT_CONTROL_PLANE_REPLICAS);
    }
    if spec.network.pod_cidrs.is_empty() {
        spec.network.pod_cidrs = vec![DEFAULT_POD_CIDR.to_string()];
    }
    if spec.network.service_cidrs.is_empty() {
        spec.network.service_cidrs = vec![DEFAULT_SERVICE_CIDR.to_string()];
    }
}

/// Defaulting on update: what the user left out keeps the value it has now (class, stack
/// version, Kubernetes version, control plane size, networks), so re-applying a minimal
/// manifest never upgrades or resizes a cluster by surprise; then [`default_kaas_cluster`].
pub fn default_kaas_cluster_update(spec: &mut KaasClusterSpec, old: &Previous, catalog: &Catalog) {
    if spec.provider_class_name.is_none() {
        spec.provider_class_name = old.provider_class_name.clone();
    }
    if spec.cluster_stack.version.is_none() && spec.cluster_stack.name == old.cluster_stack.name {
        spec.cluster_stack.version = old.cluster_stack.version.clone();
    }
    if spec.kubernetes_version.is_none() {
        spec.kubernetes_version = old.kubernetes_version.clone();
    }
    if spec.control_plane.replicas.is_none() {
        spec.control_plane.replicas = old.control_plane.replicas;
    }
    if spec.control_plane.machine_type.is_none() {
        spec.control_plane.machine_type = old.control_plane.machine_type.clone();
    }
    if spec.network.pod_cidrs.is_empty() {
        spec.network.pod_cidrs = old.network.pod_cidrs.clone();
    }
    if spec.network.service_cidrs.is_empty() {
        spec.network.service_cidrs = old.network.service_cidrs.clone();
    }
    if spec.network.mtu.is_none() {
        spec.network.mtu = old.network.mtu;
    }
    default_kaas_cluster(spec, catalog);
}

/// Normalizes a `ClusterStack`: Kubernetes versions and upgrade edges sorted oldest first,
/// duplicates dropped, so `kubectl get -o yaml` reads in order. Unparseable entries are kept
/// (validation reports them) after the parseable ones.
pub fn default_cluster_stack(spec: &mut ClusterStackSpec) {
    spec.kubernetes_versions.sort_by(
        |a, b| match (KubeVersion::parse(a), KubeVersion::parse(b)) {
            (Ok(x), Ok(y)) => x.cmp_loose(&y).then_with(|| a.cmp(b)),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        },
    );
    spec.kubernetes_versions.dedup();
    spec.upgrade_from.sort_by(|a, b| {
        match (semver::Version::parse(a), semver::Version::parse(b)) {
            (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    });
    spec.upgrade_from.dedup();
}
