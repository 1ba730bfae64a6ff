//! `kaasctl render`: what a KaasCluster becomes, offline, through the operator's own build
//! (`operator_core::offline`). Prints YAML documents: node image objects, the Cluster API
//! objects in the order the operator applies them, then each add-on's manifests for the
//! workload cluster, with a comment line before each group.

use std::fmt::Write;

use kaas_stack::Release;

use crate::cli::RenderArgs;
use crate::error::Error;

/// Runs `kaasctl render`.
pub async fn run(args: &RenderArgs) -> Result<u8, Error> {
    let text = render(args).await?;
    print!("{text}");
    Ok(0)
}

/// The text `kaasctl render` prints.
pub async fn render(args: &RenderArgs) -> Result<String, Error> {
    let objects = crate::input::read(&args.file)?;
    let releases = args
        .stack
        .iter()
        .map(|dir| Release::load_dir(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = String::new();
    for (at, cluster) in &objects.clusters {
        let mut cluster = cluster.clone();
        if cluster.metadata.namespace.is_none() {
            cluster.metadata.namespace = Some(args.namespace.clone());
        }
        let class_name = cluster
            .spec
            .provider_class_name
            .clone()
            .ok_or_else(|| Error::Input {
                file: at.clone(),
                message: "spec.providerClassName: required offline (no default class to pick)"
                    .into(),
            })?;
        let class = crate::providers::class(&class_name, &objects.classes)?;
        let stacks = crate::providers::stacks(class.spec.provider(), &objects.stacks, &releases)?;
        let built = crate::providers::build(&class, &stacks, cluster, &releases)
            .map_err(|e| Error::Invalid(format!("{at}: {e}")))?;
        let c = &built.cluster;
        let _ = writeln!(
            out,
            "# KaasCluster {}/{}: provider {}, stack {} {}, Kubernetes {}",
            c.metadata.namespace.as_deref().unwrap_or_default(),
            c.metadata.name.as_deref().unwrap_or_default(),
            class.spec.provider(),
            c.spec.cluster_stack.name,
            c.spec.cluster_stack.version.as_deref().unwrap_or("?"),
            built.kubernetes_version
        );
        if let Some(u) = &built.decision.upgrade {
            // A live cluster mid-upgrade renders as the operator renders it now.
            let _ = writeln!(
                out,
                "# upgrade in progress, stage {}: control plane at {}, pools at {} (stack {})",
                u.stage,
                built.decision.control_plane_version,
                built.decision.workers_version,
                built.decision.workers_stack_version
            );
        }
        if !built.node_images.is_empty() {
            let _ = writeln!(out, "# node images (shared by the clusters that use them)");
            documents(&mut out, &built.node_images)?;
        }
        let _ = writeln!(
            out,
            "# Cluster API objects, in the order the operator applies them"
        );
        let cluster_api: Vec<serde_json::Value> =
            built.objects.all().into_iter().cloned().collect();
        documents(&mut out, &cluster_api)?;
        if !args.no_addons {
            for addon in &built.addons {
                let _ = writeln!(
                    out,
                    "# add-on {} {} (applied in the workload cluster)",
                    addon.name, addon.version
                );
                documents(&mut out, &addon.objects)?;
            }
        }
    }
    if objects.clusters.is_empty() {
        return Err(Error::Input {
            file: args.file.display().to_string(),
            message: "holds no KaasCluster".into(),
        });
    }
    Ok(out)
}

fn documents(out: &mut String, objects: &[serde_json::Value]) -> Result<(), Error> {
    for obj in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(obj).map_err(|e| Error::Invalid(e.to_string()))?);
    }
    Ok(())
}
