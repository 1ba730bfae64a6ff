//! `kaasctl status` and `kaasctl get kubeconfig`: running clusters as their operators report
//! them in the management cluster.

use api::v1beta1::KaasCluster;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::cli::{KubeconfigArgs, StatusArgs};
use crate::error::Error;

/// The first condition of `status` that does not hold (`Upgrading` is no problem).
pub fn first_failing(
    status: &api::v1beta1::KaasClusterStatus,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status.conditions.iter().find(|c| {
        c.status != "True" && c.type_ != api::v1beta1::ClusterCondition::Upgrading.as_str()
    })
}

/// One row of `kaasctl status`.
pub fn row(c: &KaasCluster) -> [String; 6] {
    let status = c.status.clone().unwrap_or_default();
    let failing = first_failing(&status).map_or_else(
        || "-".to_string(),
        |c| format!("{}: {}", c.type_, c.message),
    );
    [
        c.namespace().unwrap_or_default(),
        c.name_any(),
        status.phase.unwrap_or_else(|| "-".into()),
        format!(
            "{} {}",
            c.spec.cluster_stack.name,
            c.spec.cluster_stack.version.as_deref().unwrap_or("?")
        ),
        status.kubernetes_version.unwrap_or_else(|| "-".into()),
        failing,
    ]
}

/// Lays out rows under a header, columns padded to their widest cell.
pub fn table(header: [&str; 6], rows: &[[String; 6]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `kaasctl status`: the installed operators (when the install API is there), then the
/// clusters.
pub async fn status(args: &StatusArgs) -> Result<u8, Error> {
    let client = crate::connect::client().await?;
    if let Some(rows) = crate::install::rows(client.clone()).await
        && !rows.is_empty()
    {
        println!(
            "{}",
            table(
                [
                    "OPERATOR",
                    "PROVIDER",
                    "VERSION",
                    "INSTALLED",
                    "READY",
                    "FIRST FAILING CONDITION"
                ],
                &rows
            )
        );
    }
    let api: Api<KaasCluster> = match &args.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut clusters = api.list(&Default::default()).await?.items;
    clusters.sort_by_key(|c| (c.namespace(), c.name_any()));
    if clusters.is_empty() {
        println!("no KaasClusters");
        return Ok(0);
    }
    let rows: Vec<[String; 6]> = clusters.iter().map(row).collect();
    print!(
        "{}",
        table(
            [
                "NAMESPACE",
                "NAME",
                "PHASE",
                "STACK",
                "KUBERNETES",
                "FIRST FAILING CONDITION"
            ],
            &rows
        )
    );
    Ok(0)
}

/// `kaasctl get kubeconfig`.
pub async fn kubeconfig(args: &KubeconfigArgs) -> Result<u8, Error> {
    let client = crate::connect::client().await?;
    let (ns, name) = (&args.namespace, &args.name);
    if Api::<KaasCluster>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .is_none()
    {
        return Err(Error::Invalid(format!("KaasCluster {ns}/{name} not found")));
    }
    let secret_name = format!("{name}-kubeconfig");
    let secret = Api::<Secret>::namespaced(client, ns)
        .get_opt(&secret_name)
        .await?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "KaasCluster {ns}/{name} has no kubeconfig yet: Cluster API has not written Secret {ns}/{secret_name}"
            ))
        })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .ok_or_else(|| Error::Invalid(format!("Secret {ns}/{secret_name} has no key \"value\"")))?;
    print!("{}", String::from_utf8_lossy(&value.0));
    Ok(0)
}
