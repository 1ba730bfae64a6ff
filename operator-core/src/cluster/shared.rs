//! Objects several clusters share (node images: ORC `Image`s): each user cluster labels the
//! object, and the last one to go deletes it. Kept apart from the pipeline because the
//! sharing is bookkeeping across clusters, not a step of one.

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::Context;
use crate::apply::resource;
use crate::error::Error;
use crate::provider::Provider;

/// Label on a shared object (a node image) for each cluster that uses it.
pub const USER_LABEL_PREFIX: &str = "users.kaas.scs.community/";

/// What the provider finds missing on the live copy of a shared object (gone counts too).
pub(super) async fn shared_problem<P: Provider>(
    shared: &Value,
    ctx: &Context<P>,
) -> Result<Option<String>, Error> {
    let ns = shared["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = shared["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.applier.client().clone(),
        ns,
        &crate::apply::resource_of(shared),
    );
    Ok(match api.get_opt(name).await? {
        Some(live) => ctx
            .provider
            .shared_object_problem(&serde_json::to_value(&live).unwrap_or_default()),
        None => Some(format!(
            "{} {ns}/{name} was applied but is gone",
            shared["kind"].as_str().unwrap_or_default()
        )),
    })
}

/// Labels `shared` as used by `cluster` (once per process): a merge patch of one label, so
/// the labels of other clusters stay.
pub(super) async fn mark_user<P: Provider>(
    shared: &Value,
    cluster: &str,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let ns = shared["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = shared["metadata"]["name"].as_str().unwrap_or_default();
    let object = format!("{}/{name}", shared["kind"].as_str().unwrap_or_default());
    if ctx.ledger.uses(ns, cluster, &object) {
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.applier.client().clone(),
        ns,
        &crate::apply::resource_of(shared),
    );
    ctx.applier.count_write();
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(format!("{}-users", ctx.applier.manager())),
            ..Default::default()
        },
        &Patch::Merge(
            json!({"metadata": {"labels": {format!("{USER_LABEL_PREFIX}{cluster}"): "true"}}}),
        ),
    )
    .await?;
    ctx.ledger.record_use(ns, cluster, &object);
    Ok(())
}

/// Releases the shared objects `cluster` used: its label goes, and an object no other cluster
/// uses is deleted.
pub(super) async fn release_shared<P: Provider>(
    namespace: &str,
    cluster: &str,
    ctx: &Context<P>,
) -> Result<(), Error> {
    let label = format!("{USER_LABEL_PREFIX}{cluster}");
    for (api_version, kind) in P::SHARED_KINDS {
        let ar = resource(api_version, kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.applier.client().clone(), namespace, &ar);
        for obj in ctx.list_labelled(&ar, namespace, &label).await? {
            let name = obj.name_any();
            let others = obj
                .labels()
                .keys()
                .any(|k| k.starts_with(USER_LABEL_PREFIX) && *k != label);
            if others {
                ctx.applier.count_write();
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {label.clone(): null}}})),
                )
                .await?;
            } else {
                ctx.applier.delete(&ar, namespace, &name).await?;
                tracing::info!(%kind, %name, "deleted a node image no cluster uses any more");
            }
        }
    }
    Ok(())
}
