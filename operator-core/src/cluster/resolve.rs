//! Resolve step of the pipeline (pure): which stack release and which full Kubernetes version
//! a defaulted cluster runs, or a reason and message saying why not.

use api::Catalog;
use api::v1beta1::{ClusterStack, KaasCluster};
use api::version::{KubeVersion, newest_match};

/// The stack release and full Kubernetes version of a cluster.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The release.
    pub stack: ClusterStack,
    /// A full version, such as `1.31.4` (`1.31` follows the release's newest patch).
    pub kubernetes_version: String,
}

/// Resolves `cluster` (already defaulted) for `provider` against `catalog`.
pub fn resolve(
    cluster: &KaasCluster,
    provider: &str,
    catalog: &Catalog,
) -> Result<Resolved, (String, String)> {
    let spec = &cluster.spec;
    let Some(version) = &spec.cluster_stack.version else {
        return Err((
            "StackNotFound".into(),
            format!(
                "no ready release of stack {:?} for provider {provider}",
                spec.cluster_stack.name
            ),
        ));
    };
    let Some(stack) = catalog.release(provider, &spec.cluster_stack.name, version) else {
        return Err((
            "StackNotFound".into(),
            format!(
                "ClusterStack {:?} {version} for provider {provider} not found",
                spec.cluster_stack.name
            ),
        ));
    };
    let wanted = spec
        .kubernetes_version
        .as_deref()
        .and_then(|v| KubeVersion::parse(v).ok());
    let full = match wanted {
        Some(w) => newest_match(&w, &stack.spec.kubernetes_versions),
        None => api::version::newest(&stack.spec.kubernetes_versions),
    };
    let Some(full) = full else {
        return Err((
            "KubernetesVersionUnsupported".into(),
            format!(
                "stack {} {version} does not support Kubernetes {}",
                spec.cluster_stack.name,
                spec.kubernetes_version.as_deref().unwrap_or("?")
            ),
        ));
    };
    Ok(Resolved {
        stack: stack.clone(),
        kubernetes_version: full.to_string(),
    })
}
