//! The add-ons step: renders the stack's add-ons for the cluster and syncs them into the
//! workload cluster (through CAPI's kubeconfig Secret) once its control plane is initialized;
//! reports each add-on's health and, after a full sync, the cluster's compliance and what the
//! standards checks read from the workload cluster.

use api::v1beta1::KaasCluster;

use super::Context;
use crate::cluster::conformance::Workload;
use crate::cluster::status::{self, AddonsProgress, Observed};
use crate::provider::Provider;

/// What the add-ons step found: the add-ons, the compliance check, and the workload cluster's
/// evidence for the standards (`None`: not looked at in this reconcile; an error: why it could
/// not be read).
pub(super) struct AddonOutcome {
    pub addons: AddonsProgress,
    pub compliance: Option<crate::cluster::conformance::Verdict>,
    pub workload: Option<Result<Workload, String>>,
}

impl AddonOutcome {
    fn waiting(addons: AddonsProgress, why: String) -> Self {
        AddonOutcome {
            addons,
            compliance: None,
            workload: Some(Err(why)),
        }
    }
}

/// The add-ons step of `plan`: the add-ons in the plan's scope, at the control plane's
/// version; none touched while machines roll (the last states stand).
pub(super) async fn sync<P: Provider>(
    plan: &crate::cluster::plan::Plan,
    release: &std::sync::Arc<kaas_stack::Release>,
    observed: &Observed,
    ctx: &Context<P>,
) -> AddonOutcome {
    let decision = &plan.decision;
    match decision.addons {
        crate::cluster::upgrade::AddonScope::Untouched => {
            let last = plan
                .cluster
                .status
                .as_ref()
                .map(|s| s.addons.clone())
                .unwrap_or_default();
            AddonOutcome {
                addons: AddonsProgress::Synced(last),
                compliance: None,
                workload: None,
            }
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
    scope: crate::cluster::upgrade::AddonScope,
    observed: &Observed,
    ctx: &Context<P>,
) -> AddonOutcome {
    if release.stack.addons.is_empty() {
        return AddonOutcome {
            addons: AddonsProgress::NoAddons,
            compliance: None,
            workload: Some(Err(
                "the stack has no add-ons, so the workload cluster is not read".into(),
            )),
        };
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
        Ok(Err(e)) => {
            let why = format!("the add-ons do not render: {e}");
            return AddonOutcome::waiting(AddonsProgress::Invalid(e.to_string()), why);
        }
        Err(e) => {
            let why = format!("rendering add-ons: {e}");
            return AddonOutcome::waiting(AddonsProgress::Failed(why.clone()), why);
        }
    };
    let partial = scope == crate::cluster::upgrade::AddonScope::PreUpgradeOnly;
    if partial {
        rendered.retain(|a| a.stage == kaas_stack::Stage::PreUpgrade);
    }
    if !status::control_plane_initialized(observed) {
        let why = "waiting for Cluster API to initialize the control plane".to_string();
        return AddonOutcome::waiting(AddonsProgress::Waiting(why.clone()), why);
    }
    let Some(expected) = crate::workload_access::Expected::from_observed(
        &values.name,
        observed.cluster.as_ref(),
        observed.control_plane.as_ref(),
    ) else {
        let why = "waiting for Cluster API to report the control plane endpoint".to_string();
        return AddonOutcome::waiting(AddonsProgress::Waiting(why.clone()), why);
    };
    let client = match ctx
        .ledger
        .workloads
        .client(ctx.applier.client(), &values.namespace, &expected)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            let why = format!(
                "waiting for the kubeconfig Secret {}-kubeconfig",
                values.name
            );
            return AddonOutcome::waiting(AddonsProgress::Waiting(why.clone()), why);
        }
        Err(crate::addons::AddonError::Refused(refused)) => {
            tracing::warn!(%refused, "workload cluster kubeconfig refused");
            let why = format!("the workload cluster's kubeconfig is refused: {refused}");
            return AddonOutcome::waiting(AddonsProgress::Refused(refused.to_string()), why);
        }
        Err(e) => {
            let why = format!("the workload cluster cannot be reached: {e}");
            return AddonOutcome::waiting(AddonsProgress::Failed(e.to_string()), why);
        }
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
            let (compliance, workload) = if partial {
                (None, None)
            } else {
                let probe_for = crate::cluster::conformance::probes_network_policy(release)
                    .then_some(release.digest.as_str());
                (
                    crate::cluster::compliance::live(release, &synced, &client).await,
                    Some(
                        crate::cluster::conformance::live::observe(
                            &client,
                            &synced.missing,
                            probe_for,
                        )
                        .await,
                    ),
                )
            };
            AddonOutcome {
                addons: AddonsProgress::Synced(synced.statuses),
                compliance,
                workload,
            }
        }
        Err(e) => {
            let why = format!("the add-on sync failed: {e}");
            AddonOutcome::waiting(AddonsProgress::Failed(e.to_string()), why)
        }
    }
}
