//! `kaasctl install`: the `KaasOperator` that installs a provider operator, validated with the
//! rules kaas-webhooks applies, then printed (`--dry-run`) or applied with server-side apply;
//! and the installed operators' rows of `kaasctl status`.

use api::install::bundles;
use api::install::v1alpha1::{KaasOperator, KaasOperatorSpec, ProviderClassTemplate};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::cli::InstallArgs;
use crate::error::Error;

/// The `KaasOperator` `args` ask for, named after its provider; refused with every problem
/// when the shared rules refuse it.
pub fn operator(args: &InstallArgs) -> Result<KaasOperator, Error> {
    let op = KaasOperator::new(
        &args.provider,
        KaasOperatorSpec {
            provider: args.provider.clone(),
            version: args
                .version
                .clone()
                .unwrap_or_else(|| bundles::CURRENT.to_string()),
            provider_classes: args
                .class
                .iter()
                .map(|name| ProviderClassTemplate {
                    name: name.clone(),
                    default: args.default_class.as_deref() == Some(name.as_str()),
                    ..Default::default()
                })
                .collect(),
            install_cluster_api: args.cluster_api,
            ..Default::default()
        },
    );
    api::validation::validate_kaas_operator(&op, None, &api::Catalog::default())
        .map_err(|e| Error::Invalid(format!("KaasOperator {}: {e}", args.provider)))?;
    Ok(op)
}

/// `kaasctl install`.
pub async fn run(args: &InstallArgs) -> Result<u8, Error> {
    let op = operator(args)?;
    if args.dry_run {
        let yaml = serde_saphyr::to_string(&op)
            .map_err(|e| Error::Invalid(format!("writing YAML: {e}")))?;
        print!("{yaml}");
        return Ok(0);
    }
    let client = crate::connect::client().await?;
    Api::<KaasOperator>::all(client)
        .patch(
            &op.name_any(),
            &PatchParams::apply("kaasctl"),
            &Patch::Apply(&op),
        )
        .await?;
    println!(
        "kaasoperator/{} applied ({} {}): `kaasctl status` shows when it is Ready",
        op.name_any(),
        op.spec.provider,
        op.spec.version
    );
    Ok(0)
}

/// One row per `KaasOperator`: name, provider, version asked for, installed, Ready and the
/// first condition that does not hold. None when the install API is not there.
pub async fn rows(client: Client) -> Option<Vec<[String; 6]>> {
    let mut ops = Api::<KaasOperator>::all(client)
        .list(&Default::default())
        .await
        .ok()?
        .items;
    ops.sort_by_key(|o| o.name_any());
    Some(ops.iter().map(row).collect())
}

/// One `KaasOperator`'s row.
pub fn row(op: &KaasOperator) -> [String; 6] {
    let status = op.status.clone().unwrap_or_default();
    let ready = status
        .condition("Ready")
        .map_or_else(|| "-".to_string(), |c| c.status.clone());
    let failing = status
        .conditions
        .iter()
        .find(|c| c.status != "True" && c.type_ != "Ready")
        .map_or_else(
            || "-".to_string(),
            |c| format!("{}: {}", c.type_, c.message),
        );
    [
        op.name_any(),
        op.spec.provider.clone(),
        op.spec.version.clone(),
        status.installed_version.unwrap_or_else(|| "-".into()),
        ready,
        failing,
    ]
}
