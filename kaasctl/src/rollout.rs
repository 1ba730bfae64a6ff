//! `kaasctl rollout status|pause|resume NAME` and the waves `kaasctl plan -f` shows for a
//! `StackRollout`: where a rollout stands as its operator reports it, pausing it (no cluster
//! is started; those upgrading go on), resuming it (also after a halt: the halted cluster
//! gets its time again), and which cluster of the namespace would go in which wave.

use api::v1beta1::RolloutPhase;
use std::fmt::Write;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass, RESUMED_AT_ANNOTATION, StackRollout};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use operator_core::rollout;

use crate::cli::{RolloutArgs, RolloutCommand};
use crate::error::Error;

/// Runs `kaasctl rollout ...`.
pub async fn run(command: &RolloutCommand) -> Result<u8, Error> {
    let client = crate::connect::client().await?;
    match command {
        RolloutCommand::Status(args) => {
            let r = get(&client, args).await?;
            print!("{}", status_text(&r));
            let phase = r.status.and_then(|s| s.phase);
            Ok(match phase.as_deref().and_then(RolloutPhase::parse) {
                Some(RolloutPhase::Halted) => 2,
                _ => 0,
            })
        }
        RolloutCommand::Pause(args) => {
            patch(&client, args, serde_json::json!({"spec": {"paused": true}})).await?;
            println!(
                "{}/{} paused: no further cluster starts",
                args.namespace, args.name
            );
            Ok(0)
        }
        RolloutCommand::Resume(args) => {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            patch(
                &client,
                args,
                serde_json::json!({
                    "metadata": {"annotations": {RESUMED_AT_ANNOTATION: now}},
                    "spec": {"paused": null},
                }),
            )
            .await?;
            println!("{}/{} resumed", args.namespace, args.name);
            Ok(0)
        }
    }
}

async fn get(client: &Client, args: &RolloutArgs) -> Result<StackRollout, Error> {
    Ok(
        Api::<StackRollout>::namespaced(client.clone(), &args.namespace)
            .get(&args.name)
            .await?,
    )
}

async fn patch(client: &Client, args: &RolloutArgs, patch: serde_json::Value) -> Result<(), Error> {
    Api::<StackRollout>::namespaced(client.clone(), &args.namespace)
        .patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The rollout's state: phase and wave, a halt, each wave and each cluster.
pub fn status_text(r: &StackRollout) -> String {
    let s = r.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}/{}: {} {} — {}, wave {} of {}",
        r.namespace().unwrap_or_default(),
        r.name_any(),
        r.spec.cluster_stack.name,
        r.spec.cluster_stack.version,
        s.phase.as_deref().unwrap_or("Pending"),
        s.wave.map_or(0, |w| w + 1).min(r.spec.waves.len() as i32),
        r.spec.waves.len(),
    );
    if let Some(until) = &s.soak_until {
        let _ = writeln!(out, "soaking until {}", until.0);
    }
    if let Some(h) = &s.halted {
        let _ = writeln!(
            out,
            "HALTED on {} ({}) at {}: {}",
            h.cluster,
            h.condition.as_deref().unwrap_or("no condition"),
            h.at.0,
            h.message
        );
        let _ = writeln!(
            out,
            "fix the cluster, then: kaasctl rollout resume {} -n {}",
            r.name_any(),
            r.namespace().unwrap_or_default()
        );
    }
    for (i, w) in s.waves.iter().enumerate() {
        let _ = writeln!(
            out,
            "wave {} {}: {} of {} done{}",
            i + 1,
            w.name,
            w.done,
            w.clusters,
            w.finished_at
                .as_ref()
                .map(|t| format!(", finished {}", t.0))
                .unwrap_or_default()
        );
        for c in s.clusters.iter().filter(|c| c.wave == i as i32) {
            let _ = writeln!(out, "  {:<24} {}", c.name, c.state);
        }
    }
    out
}

/// `kaasctl plan` of a rollout: each wave and its clusters in the order they would start,
/// and the clusters of the stack that no wave selects.
pub async fn plan(r: &StackRollout, namespace: &str) -> Result<String, Error> {
    let client = crate::connect::client().await?;
    let ns = r.namespace().unwrap_or_else(|| namespace.to_string());
    let clusters = Api::<KaasCluster>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let classes = Api::<ProviderClass>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let stacks = Api::<ClusterStack>::all(client)
        .list(&ListParams::default())
        .await?
        .items;
    let catalog = api::Catalog {
        classes: classes.into_iter().map(std::sync::Arc::new).collect(),
        stacks: stacks.into_iter().map(std::sync::Arc::new).collect(),
        ..Default::default()
    };
    Ok(waves_text(r, &rollout::candidates(r, &clusters, &catalog)))
}

/// The waves of `r` over `views`.
pub fn waves_text(r: &StackRollout, views: &[rollout::ClusterView]) -> String {
    let target = &r.spec.cluster_stack;
    let planned = rollout::plan_waves(&r.spec, views);
    let mut out = format!(
        "Rollout of {} {} over {} clusters in {} waves:\n",
        target.name,
        target.version,
        planned.len(),
        r.spec.waves.len()
    );
    for (i, w) in r.spec.waves.iter().enumerate() {
        let members: Vec<&str> = planned
            .iter()
            .filter(|(wave, _)| *wave == i)
            .map(|(_, c)| c.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  {}. {} ({} at once, then {} s soak): {}",
            i + 1,
            w.name,
            w.max_concurrent.unwrap_or(1),
            w.soak_seconds.unwrap_or(0),
            if members.is_empty() {
                "no cluster".to_string()
            } else {
                members.join(", ")
            }
        );
    }
    let left: Vec<&str> = views
        .iter()
        .filter(|c| c.stack == target.name && !planned.iter().any(|(_, p)| p.name == c.name))
        .map(|c| c.name.as_str())
        .collect();
    if !left.is_empty() {
        let _ = writeln!(
            out,
            "  untouched (no wave selects them): {}",
            left.join(", ")
        );
    }
    out
}
