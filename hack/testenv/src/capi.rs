//! CRDs for the Cluster API kinds the operators write and read. Cluster API's own core,
//! kubeadm bootstrap and control plane kinds get their real CRDs, generated from Cluster API's
//! API module at the release the bundles pin (`hack/control-plane.sh`), so its schemas and CEL
//! rules judge every object the operators write and every status the CAPI stand-in reports.
//! Kinds without a real CRD here (the providers' infrastructure kinds, whose modules are not
//! served, and the Cluster API operator's) get stand-in CRDs: schemaless, only storing the
//! objects, each with a status subresource so the stand-in controller can report status.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
    CustomResourceDefinitionVersion, CustomResourceSubresourceStatus, CustomResourceSubresources,
    CustomResourceValidation, JSONSchemaProps,
};
use kube::api::ObjectMeta;

/// `(apiVersion, kind)` of Cluster API's own kinds the operators write. The providers' kinds
/// are theirs to declare: the system tests add stand-ins for every registered provider.
pub const KINDS: &[(&str, &str)] = &[
    ("cluster.x-k8s.io/v1beta2", "Cluster"),
    ("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
    (
        "controlplane.cluster.x-k8s.io/v1beta2",
        "KubeadmControlPlane",
    ),
    (
        "bootstrap.cluster.x-k8s.io/v1beta2",
        "KubeadmConfigTemplate",
    ),
];

/// Cluster API's kinds the operators only read: control plane `Machine`s (their certificate
/// expiry).
pub const READ_KINDS: &[(&str, &str)] = &[("cluster.x-k8s.io/v1beta2", "Machine")];

fn free_form() -> JSONSchemaProps {
    JSONSchemaProps {
        type_: Some("object".into()),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    }
}

/// One stand-in CRD.
pub fn stand_in_crd(api_version: &str, kind: &str) -> CustomResourceDefinition {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = format!("{}s", kind.to_lowercase());
    let schema = JSONSchemaProps {
        type_: Some("object".into()),
        properties: Some(
            [
                ("spec".to_string(), free_form()),
                ("status".to_string(), free_form()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{plural}.{group}")),
            labels: Some(
                [(
                    "kaas.scs.community/test-stand-in".to_string(),
                    "true".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: group.into(),
            names: CustomResourceDefinitionNames {
                kind: kind.into(),
                plural: plural.clone(),
                singular: Some(kind.to_lowercase()),
                ..Default::default()
            },
            scope: "Namespaced".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: version.into(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                    scale: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

/// A stand-in CRD for each of Cluster API's own kinds the operators write or read.
pub fn stand_in_crds() -> Vec<CustomResourceDefinition> {
    KINDS
        .iter()
        .chain(READ_KINDS)
        .map(|(v, k)| stand_in_crd(v, k))
        .collect()
}

/// Cluster API's real CRDs for the kinds of [`KINDS`] and [`READ_KINDS`], read from the
/// files `hack/control-plane.sh` generated (the `v1beta2` version only: no conversion webhook,
/// which Cluster API's controllers would serve, is needed).
pub fn cluster_api_crds() -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let dir = crate::program("cluster-api-crds")?;
    KINDS
        .iter()
        .chain(READ_KINDS)
        .map(|(api_version, kind)| {
            let group = api_version.split('/').next().unwrap_or_default();
            let file = dir.join(format!("{group}_{}s.yaml", kind.to_lowercase()));
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Ok(crd)
        })
        .collect()
}
