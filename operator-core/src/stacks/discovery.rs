//! The `ClusterStack` objects of releases the operator finds itself: the shipped ones it
//! installs on request, and those discovered in an OCI repository (pinned by digest).

use api::v1beta1::{ClusterStack, ClusterStackSpec};
use kaas_stack::Release;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::{Releases, StackError};

/// The `ClusterStack` object for a shipped or discovered release.
pub fn object_for(release: &Release, source: Option<api::v1beta1::StackSource>) -> ClusterStack {
    let s = &release.stack;
    let name = format!(
        "{}-{}-{}",
        s.provider,
        s.name,
        s.version.replace(['.', '+'], "-")
    );
    ClusterStack::new(
        &name,
        ClusterStackSpec {
            provider: s.provider.clone(),
            name: s.name.clone(),
            version: s.version.clone(),
            kubernetes_versions: s.kubernetes_versions.clone(),
            upgrade_from: s.upgrade_from.clone(),
            node_images: s.node_images.clone(),
            source,
        },
    )
}

/// Creates the `ClusterStack` objects of `releases` that do not exist yet (by name); returns
/// how many it created. Existing objects are left alone: a release is immutable.
pub async fn install(
    client: &Client,
    objects: Vec<ClusterStack>,
    manager: &str,
) -> Result<usize, kube::Error> {
    let api: Api<ClusterStack> = Api::all(client.clone());
    let mut created = 0;
    for object in objects {
        let name = object.name_any();
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        let pp = kube::api::PostParams {
            field_manager: Some(manager.to_string()),
            ..Default::default()
        };
        match api.create(&pp, &object).await {
            Ok(_) => {
                created += 1;
                tracing::info!(stack = %name, "installed ClusterStack");
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// Lists the releases in the OCI `repository` and installs those of this provider that have
/// no `ClusterStack` yet, pinned by digest. When signatures are required, a release without a
/// valid one is left out (and logged) until it has one.
pub async fn discover(
    client: &Client,
    releases: &Releases,
    repository: &str,
    manager: &str,
) -> Result<usize, StackError> {
    let found = releases.fetcher.discover(repository).await?;
    let mut objects = Vec::new();
    for d in found {
        let source = api::v1beta1::StackSource {
            oci: Some(api::v1beta1::OciSource {
                repository: repository.to_string(),
                digest: d.digest.clone(),
                public_key: None,
            }),
            ..Default::default()
        };
        let release = match releases.fetcher.fetch(&source).await {
            Ok(release) => release,
            // Unsigned or wrongly signed while signatures are required: not offered (it may be
            // signed on the next round); the others still are.
            Err(e @ kaas_stack::Error::Signature { .. }) => {
                tracing::warn!(%repository, tag = %d.tag, error = %e, "release not offered");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if release.stack.provider == releases.provider {
            objects.push(object_for(&release, Some(source)));
        }
    }
    install(client, objects, manager)
        .await
        .map_err(|e| StackError::Content(kaas_stack::Error::Fetch(e.to_string())))
}
