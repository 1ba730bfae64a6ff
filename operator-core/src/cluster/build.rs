//! The build step (pure): `plan × inputs → objects`. Everything it needs from outside the
//! process (the stack releases, the class's credentials, the node images the cloud confirmed)
//! was read before by the gather step into [`BuildInputs`], so the build is a plain function,
//! the same for the operator, `kaasctl render/plan` and the golden tests ([`crate::offline`]
//! makes the inputs from files instead).
//!
//! A plan renders the control plane at its version and release, and the pools at theirs: from
//! a second rendering when they differ (another version or release mid-upgrade).

use std::collections::BTreeMap;

use kaas_stack::format::Kubeadm;

use crate::cluster::gather::{BuildInputs, Step};
use crate::cluster::plan::Plan;
use crate::cluster::render::ClusterObjects;
use crate::provider::{NodeImages, Provider, ProviderError};

/// What a cluster needs applied: the shared node image objects, then its own objects.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Node images and their shared objects.
    pub images: NodeImages,
    /// The cluster's own objects.
    pub objects: ClusterObjects,
}

/// The Cluster API objects of `step` booting `images`.
pub fn render_step<P: Provider>(
    provider: &P,
    step: &Step<'_>,
    images: &NodeImages,
    kubeadm: &Kubeadm,
    manager: &str,
    credentials: Option<&BTreeMap<String, String>>,
) -> Result<ClusterObjects, ProviderError> {
    let ctx = step.context(credentials);
    let infra = provider.render(&ctx, images)?;
    crate::cluster::render::render(&ctx, &P::KINDS, P::EXTRA_KINDS, &infra, kubeadm, manager)
}

/// The build of `plan` with `provider` from `inputs`.
pub fn build<P: Provider>(
    provider: &P,
    plan: &Plan,
    inputs: &BuildInputs,
    manager: &str,
) -> Result<Desired, ProviderError> {
    let releases = &inputs.releases;
    let kubeadm = &releases.target.stack.kubeadm;
    let credentials = inputs.credentials.as_ref();
    let mut images = inputs.control_plane_images.clone();
    let mut objects = render_step(
        provider,
        &Step::control_plane(plan, releases),
        &images,
        kubeadm,
        manager,
        credentials,
    )?;
    if let Some(worker_images) = &inputs.worker_images {
        let workers = render_step(
            provider,
            &Step::workers(plan, releases),
            worker_images,
            kubeadm,
            manager,
            credentials,
        )?;
        objects.pools = workers.pools;
        for shared in &worker_images.shared_objects {
            if !images.shared_objects.contains(shared) {
                images.shared_objects.push(shared.clone());
            }
        }
    }
    Ok(Desired { images, objects })
}

/// The field manager (and managed-by label) of the operator for `provider`.
pub fn manager_name<P: Provider>(provider: &P) -> String {
    format!("kaas-operator-{}", provider.name())
}
