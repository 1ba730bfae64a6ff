//! The add-ons step: renders the stack's add-ons for the cluster and syncs them into the
//! workload cluster (through CAPI's kubeconfig Secret) once its control plane is initialized;
//! reports each add-on's health and, after a full sync, the cluster's compliance.

use api::v1beta1::KaasCluster;

use super::Context;
use crate::provider::Provider;
use crate::status::{self, AddonsProgress, Observed};

/// The add-ons step of `plan`: the add-ons in the plan's scope, at the control plane's
/// version; none touched while machines roll (the last states stand).
pub(super) async fn sync<P: Provider>(
    plan: &crate::plan::Plan,
    release: &std::sync::Arc<kaas_stack::Release>,
    observed: &Observed,
    ctx: &Context<P>,
) -> (AddonsProgress, Option<(bool, String, String)>) {
    let decision = &plan.decision;
    match decision.addons {
        crate::upgrade::AddonScope::Untouched => {
            let last = plan
                .cluster
                .status
                .as_ref()
                .map(|s| s.addons.clone())
                .unwrap_or_default();
            (AddonsProgress::Synced(last), None)
        }
        scope => {
            sync_addons(
                &plan.cluster,
                release,
                &decision.control_plane_version,
                scope,
                observed,
                ctx,
            )
            .await
        }
    }
}

/// Renders the stack's add-ons for the cluster and syncs them into the workload cluster once
/// Cluster API has initialized its control plane.
async fn sync_addons<P: Provider>(
    cluster: &KaasCluster,
    release: &std::sync::Arc<kaas_stack::Release>,
    kubernetes_version: &str,
    scope: crate::upgrade::AddonScope,
    observed: &Observed,
    ctx: &Context<P>,
) -> (AddonsProgress, Option<(bool, String, String)>) {
    if release.stack.addons.is_empty() {
        return (AddonsProgress::NoAddons, None);
    }
    let spec = &cluster.spec;
    let values = crate::addons::cluster_values(cluster, ctx.provider.name(), kubernetes_version);
    // Templates come from a release someone else published: they render under a budget, on
    // a blocking thread, never on the threads that serve every other cluster.
    let rendering = {
        let (release, values, overrides) = (release.clone(), values.clone(), spec.addons.clone());
        tokio::task::spawn_blocking(move || {
            kaas_stack::template::render_addons(&release, &values, &overrides)
        })
    };
    let mut rendered = match rendering.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (AddonsProgress::Invalid(e.to_string()), None),
        Err(e) => {
            return (
                AddonsProgress::Failed(format!("rendering add-ons: {e}")),
                None,
            );
        }
    };
    let partial = scope == crate::upgrade::AddonScope::PreUpgradeOnly;
    if partial {
        rendered.retain(|a| a.stage == kaas_stack::Stage::PreUpgrade);
    }
    if !status::control_plane_initialized(observed) {
        return (
            AddonsProgress::Waiting(
                "waiting for Cluster API to initialize the control plane".into(),
            ),
            None,
        );
    }
    let Some(expected) = crate::workload_access::Expected::from_observed(&values.name, observed)
    else {
        return (
            AddonsProgress::Waiting(
                "waiting for Cluster API to report the control plane endpoint".into(),
            ),
            None,
        );
    };
    let client = match ctx
        .workloads
        .client(ctx.applier.client(), &values.namespace, &expected)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                AddonsProgress::Waiting(format!(
                    "waiting for the kubeconfig Secret {}-kubeconfig",
                    values.name
                )),
                None,
            );
        }
        Err(crate::addons::AddonError::Refused(refused)) => {
            tracing::warn!(%refused, "workload cluster kubeconfig refused");
            return (AddonsProgress::Refused(refused.to_string()), None);
        }
        Err(e) => return (AddonsProgress::Failed(e.to_string()), None),
    };
    match crate::addons::sync(&client, &rendered, ctx.applier.manager(), !partial).await {
        Ok(synced) => {
            if synced.writes > 0 {
                tracing::info!(
                    writes = synced.writes,
                    "synced add-ons into the workload cluster"
                );
            }
            ctx.metrics.addon_writes.inc_by(synced.writes as u64);
            let compliance = if partial {
                None
            } else {
                crate::compliance::live(release, &synced, &client).await
            };
            (AddonsProgress::Synced(synced.statuses), compliance)
        }
        Err(e) => (AddonsProgress::Failed(e.to_string()), None),
    }
}
