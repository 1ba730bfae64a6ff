//! The `ClusterStack` controller: loads each release of this provider and reports the result
//! in the object's status (`Ready`, `contentDigest`).

use std::sync::Arc;
use std::time::Duration;

use api::v1beta1::{ClusterStack, ClusterStackStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Releases;

/// What the stack controller shares.
pub struct StackContext {
    /// The provider's releases.
    pub releases: Arc<Releases>,
    /// Client for status writes.
    pub client: Client,
    /// Field manager.
    pub manager: String,
}

impl std::fmt::Debug for StackContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackContext")
            .field("manager", &self.manager)
            .finish()
    }
}

/// Loads `stack`'s content (when it is this provider's) and reports it in its status.
pub async fn reconcile_stack(
    stack: Arc<ClusterStack>,
    ctx: Arc<StackContext>,
) -> Result<Action, kube::Error> {
    if stack.spec.provider != ctx.releases.provider {
        return Ok(Action::await_change());
    }
    let result = ctx.releases.get(&stack).await;
    let (ready, reason, message, digest, action) = match &result {
        Ok(release) => (
            true,
            "Verified",
            if release.digest.is_empty() {
                "bare release: no source and not shipped with this operator, so no add-ons"
                    .to_string()
            } else {
                format!(
                    "{} add-ons, content {}",
                    release.stack.addons.len(),
                    release.digest
                )
            },
            Some(release.digest.clone()).filter(|d| !d.is_empty()),
            Action::await_change(),
        ),
        Err(e) => (
            false,
            e.reason(),
            e.to_string(),
            None,
            if e.is_transient() {
                Action::requeue(Duration::from_secs(30))
            } else {
                Action::await_change()
            },
        ),
    };
    if let Err(e) = &result {
        tracing::warn!(stack = %stack.name_any(), error = %e, "stack release unusable");
    }
    let status = stack.status.clone().unwrap_or_default();
    let previous = status.conditions.iter().find(|c| c.type_ == "Ready");
    let status_word = if ready { "True" } else { "False" };
    let unchanged = previous.is_some_and(|c| {
        c.status == status_word
            && c.reason == reason
            && c.message == message
            && c.observed_generation == stack.metadata.generation
    }) && status.content_digest == digest
        && status.observed_generation == stack.metadata.generation;
    if unchanged {
        return Ok(action);
    }
    let transition = previous
        .filter(|c| c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(crate::clock::now);
    let new = ClusterStackStatus {
        observed_generation: stack.metadata.generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status_word.into(),
            reason: reason.into(),
            message,
            observed_generation: stack.metadata.generation,
            last_transition_time: transition,
        }],
        content_digest: digest,
    };
    let api: Api<ClusterStack> = Api::all(ctx.client.clone());
    api.patch_status(
        &stack.name_any(),
        &PatchParams::apply(&ctx.manager).force(),
        &Patch::Apply(json!({
            "apiVersion": "kaas.scs.community/v1beta1",
            "kind": "ClusterStack",
            "status": new,
        })),
    )
    .await?;
    Ok(action)
}

/// Retries failed status writes.
pub fn stack_error_policy(
    _stack: Arc<ClusterStack>,
    error: &kube::Error,
    _ctx: Arc<StackContext>,
) -> Action {
    tracing::warn!(%error, "writing a ClusterStack status failed");
    Action::requeue(Duration::from_secs(10))
}
