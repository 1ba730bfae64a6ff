//! `kaasctl plan`: what applying a KaasCluster would change, without writing anything. The
//! cluster is defaulted and validated as the webhook would (against the live object, so the
//! update rules apply), its stack content is fetched as the operator fetches it, and the
//! objects the operator would write are compared with those in the management cluster.
//! Reported: objects created or updated (with the fields), which pools roll and why, the
//! control plane rolling, and for a Kubernetes upgrade the chain of one-minor steps.

use std::fmt::Write;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::source::Fetcher;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};
use operator_core::render::{CLUSTER_LABEL, POOL_LABEL};
use serde_json::Value;

use crate::cli::PlanArgs;
use crate::error::Error;

/// Runs `kaasctl plan`: exit 0, or 2 when the API server would refuse the change.
pub async fn run(args: &PlanArgs) -> Result<u8, Error> {
    let (text, refused) = plan(args).await?;
    print!("{text}");
    Ok(if refused { 2 } else { 0 })
}

/// The plan's text, and whether the change would be refused.
pub async fn plan(args: &PlanArgs) -> Result<(String, bool), Error> {
    let objects = crate::input::read(&args.file)?;
    if objects.clusters.is_empty() && !objects.rollouts.is_empty() {
        // A StackRollout: its waves over the namespace's clusters.
        let mut text = String::new();
        for r in &objects.rollouts {
            let problems = api::validation::validate_stack_rollout_spec(&r.spec);
            if !problems.fields().is_empty() {
                return Ok((
                    format!(
                        "StackRollout {} would be refused: {problems}\n",
                        r.name_any()
                    ),
                    true,
                ));
            }
            text.push_str(&crate::rollout::plan(r, &args.namespace).await?);
        }
        return Ok((text, false));
    }
    let (at, mut cluster) = crate::input::one_cluster(&objects, &args.file)?;
    let ns = cluster
        .metadata
        .namespace
        .get_or_insert_with(|| args.namespace.clone())
        .clone();
    let name = cluster.name_any();
    let client = crate::connect::client().await?;
    let classes = Api::<ProviderClass>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let stacks = Api::<ClusterStack>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let mut live = Api::<KaasCluster>::namespaced(client.clone(), &ns)
        .get_opt(&name)
        .await?;
    let catalog = api::Catalog {
        classes: classes.iter().cloned().map(std::sync::Arc::new).collect(),
        stacks: stacks.iter().cloned().map(std::sync::Arc::new).collect(),
        clusters: Vec::new(),
        ..Default::default()
    };
    api::defaulting::default_kaas_cluster(&mut cluster.spec, &catalog);
    if let Some(l) = &mut live {
        // Stored objects were defaulted when written (by the webhook); one written without
        // it is compared as the webhook would have left it.
        api::defaulting::default_kaas_cluster(&mut l.spec, &catalog);
    }
    if let Some(l) = &live {
        // Owner references name the live object.
        cluster.metadata.uid = l.metadata.uid.clone();
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for KaasCluster {ns}/{name} ({}):",
        if live.is_some() { "update" } else { "create" }
    );
    let previous = live.as_ref().map(api::Previous::from);
    let refusal =
        api::validation::validate_kaas_cluster(&cluster, previous.as_ref(), &catalog).err();
    if let Some(errors) = &refusal {
        let _ = writeln!(out, "\nThe API server would refuse this change:");
        for e in &errors.0 {
            let _ = writeln!(out, "  - {e}");
        }
    }

    let class_name = cluster.spec.provider_class_name.clone().unwrap_or_default();
    let class = catalog.class(&class_name).cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "{at}: spec.providerClassName: ProviderClass {class_name:?} not found in the management cluster"
        ))
    })?;
    let provider = class.spec.provider().to_string();
    let resolved = operator_core::resolve::resolve(&cluster, &provider, &catalog)
        .map_err(|(_, m)| Error::Invalid(format!("{at}: {m}")))?;
    let fetcher = Fetcher::new(
        args.stack_cache_dir.clone(),
        args.plain_http_registry.clone(),
    );
    let releases = operator_core::stacks::Releases::new(&provider, fetcher);
    eprintln!(
        "fetching the content of ClusterStack {} (cached by content hash)",
        resolved.stack.name_any()
    );
    let release = releases
        .get(&resolved.stack)
        .await
        .map_err(|e| Error::Invalid(format!("stack {}: {e}", resolved.stack.name_any())))?;

    upgrade_steps(&mut out, live.as_ref(), &cluster, &resolved);

    eprintln!("comparing with the objects in namespace {ns}");
    let built = crate::providers::build(
        &class,
        &stacks,
        cluster.clone(),
        std::slice::from_ref(&*release),
    )?;
    let mut changes = Vec::new();
    let objects: Vec<serde_json::Value> = built.objects.all().into_iter().cloned().collect();
    for obj in built.node_images.iter().chain(&objects) {
        let current = get(&client, obj).await?;
        match current {
            None => changes.push(format!("create {}", id(obj))),
            Some(l) if operator_core::addons::contains(&l, obj) => {}
            Some(l) => changes.push(format!(
                "update {} ({})",
                id(obj),
                differences(&l, obj, "").join(", ")
            )),
        }
    }
    let _ = writeln!(out, "\nObjects:");
    if changes.is_empty() {
        let _ = writeln!(out, "  no change");
    }
    for c in &changes {
        let _ = writeln!(out, "  {c}");
    }

    let _ = writeln!(out, "\nRollouts:");
    let rolls = rollouts(&client, &ns, &name, &objects).await?;
    if rolls.is_empty() {
        let _ = writeln!(out, "  no machine is replaced");
    }
    for r in &rolls {
        let _ = writeln!(out, "  {r}");
    }
    Ok((out, refusal.is_some()))
}

/// The Kubernetes (and stack) move, with the chain of one-minor steps the operator takes.
fn upgrade_steps(
    out: &mut String,
    live: Option<&KaasCluster>,
    cluster: &KaasCluster,
    resolved: &operator_core::resolve::Resolved,
) {
    let Some(live) = live else {
        return;
    };
    let running = live
        .status
        .as_ref()
        .and_then(|s| s.kubernetes_version.clone());
    let target = &resolved.kubernetes_version;
    let old_stack = live.spec.cluster_stack.version.clone().unwrap_or_default();
    let new_stack = cluster
        .spec
        .cluster_stack
        .version
        .clone()
        .unwrap_or_default();
    if old_stack != new_stack {
        let _ = writeln!(
            out,
            "\nStack: {} {old_stack} → {new_stack}",
            cluster.spec.cluster_stack.name
        );
    }
    let Some(running) = running.filter(|r| r != target) else {
        return;
    };
    match operator_core::upgrade::chain(&running, target, &resolved.stack.spec.kubernetes_versions)
    {
        Ok(steps) => {
            let _ = writeln!(
                out,
                "\nKubernetes upgrade {running} → {target} in {} step{} (control plane, then workers, each step):",
                steps.len(),
                if steps.len() == 1 { "" } else { "s" }
            );
            for (i, s) in steps.iter().enumerate() {
                let _ = writeln!(out, "  {}. {s}", i + 1);
            }
            if steps.len() > 1 {
                let _ = writeln!(
                    out,
                    "  (a change moves at most one minor: apply spec.kubernetesVersion {} first)",
                    steps[0]
                        .rsplit_once('.')
                        .map_or(steps[0].as_str(), |(m, _)| m)
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "\nKubernetes {running} → {target}: {e}");
        }
    }
}

/// What replaces machines: the control plane and each pool, compared with what runs.
async fn rollouts(
    client: &Client,
    ns: &str,
    name: &str,
    desired: &[Value],
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let live_of = |kind: &str| {
        let kind = kind.to_string();
        async move {
            let probe = desired.iter().find(|o| o["kind"] == kind.as_str());
            let Some(probe) = probe else {
                return Ok::<Vec<Value>, Error>(Vec::new());
            };
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                ns,
                &operator_core::apply::resource_of(probe),
            );
            Ok(api
                .list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={name}")))
                .await?
                .items
                .into_iter()
                .map(|o| serde_json::to_value(o).unwrap_or_default())
                .collect())
        }
    };
    let template_changes = |live: &Value, want: &Value, spec: &[&str]| {
        let at = |v: &Value| {
            let mut cur = v;
            for p in spec {
                cur = &cur[*p];
            }
            cur.clone()
        };
        let (l, w) = (at(live), at(want));
        let mut why = Vec::new();
        if l["version"] != w["version"] {
            why.push(format!(
                "Kubernetes {} → {}",
                l["version"].as_str().unwrap_or("?"),
                w["version"].as_str().unwrap_or("?")
            ));
        }
        let infra = |v: &Value| {
            v["infrastructureRef"]["name"]
                .as_str()
                .or(v["machineTemplate"]["spec"]["infrastructureRef"]["name"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        if infra(&l) != infra(&w) {
            why.push(format!("machine template {} → {}", infra(&l), infra(&w)));
        }
        let boot = |v: &Value| v["bootstrap"]["configRef"]["name"].clone();
        if boot(&l) != boot(&w) {
            why.push(format!(
                "bootstrap template {} → {}",
                boot(&l).as_str().unwrap_or("?"),
                boot(&w).as_str().unwrap_or("?")
            ));
        }
        why
    };

    let live_cp = live_of("KubeadmControlPlane").await?;
    if let Some(want) = desired.iter().find(|o| o["kind"] == "KubeadmControlPlane") {
        match live_cp.first() {
            None => out.push("control plane: created".to_string()),
            Some(l) => {
                let mut why = template_changes(l, want, &["spec"]);
                if l["spec"]["kubeadmConfigSpec"] != want["spec"]["kubeadmConfigSpec"]
                    && !operator_core::addons::contains(
                        &l["spec"]["kubeadmConfigSpec"],
                        &want["spec"]["kubeadmConfigSpec"],
                    )
                {
                    why.push("kubeadm settings changed".into());
                }
                if !why.is_empty() {
                    out.push(format!("control plane rolls: {}", why.join("; ")));
                }
            }
        }
    }

    let live_mds = live_of("MachineDeployment").await?;
    let pool = |o: &Value| {
        o["metadata"]["labels"][POOL_LABEL]
            .as_str()
            .map(str::to_string)
    };
    for want in desired.iter().filter(|o| o["kind"] == "MachineDeployment") {
        let Some(p) = pool(want) else { continue };
        match live_mds.iter().find(|l| pool(l).as_deref() == Some(&p)) {
            None => out.push(format!("pool {p}: added")),
            Some(l) => {
                let why = template_changes(l, want, &["spec", "template", "spec"]);
                if !why.is_empty() {
                    out.push(format!("pool {p} rolls: {}", why.join("; ")));
                }
                let (a, b) = (&l["spec"]["replicas"], &want["spec"]["replicas"]);
                if !b.is_null() && a != b {
                    out.push(format!("pool {p} scales {a} → {b} (no machine replaced)"));
                }
            }
        }
    }
    for l in &live_mds {
        if let Some(p) = pool(l)
            && !desired
                .iter()
                .any(|w| w["kind"] == "MachineDeployment" && pool(w).as_deref() == Some(&p))
        {
            out.push(format!("pool {p}: removed (its machines are deleted)"));
        }
    }
    Ok(out)
}

async fn get(client: &Client, obj: &Value) -> Result<Option<Value>, Error> {
    let ar = operator_core::apply::resource_of(obj);
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = if ns.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), ns, &ar)
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Ok(api
        .get_opt(name)
        .await?
        .map(|o| serde_json::to_value(o).unwrap_or_default()))
}

fn id(obj: &Value) -> String {
    kaas_stack::compliance::identity(obj)
}

/// Paths where `desired` sets something `live` does not hold (at most five).
fn differences(live: &Value, desired: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    match desired {
        Value::Object(d) => {
            for (k, dv) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match live.get(k) {
                    Some(lv) if operator_core::addons::contains(lv, dv) => {}
                    Some(lv) if dv.is_object() => out.extend(differences(lv, dv, &p)),
                    _ => out.push(p),
                }
            }
        }
        _ => out.push(path.to_string()),
    }
    out.truncate(5);
    out
}
