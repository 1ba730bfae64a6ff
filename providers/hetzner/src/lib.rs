//! The Hetzner provider (Syself's CAPH): server types from `machineType`, node images as
//! snapshots named by the stack and found through the Hetzner Cloud API ([`snapshots`]), the
//! API token from the class's parameters (a Secret with key `hcloud`), and `providerConfig`
//! for the region and SSH keys.

pub mod snapshots;

use std::collections::BTreeMap;
use std::sync::Arc;

use api::FieldError;
use operator_core::settings::{self, Setting};
use operator_core::{
    ClusterContext, Infrastructure, InfrastructureKinds, NodeImages, ProviderError,
};
use serde_json::{Value, json};

/// The Hetzner provider.
#[derive(Debug, Clone)]
pub struct Provider {
    snapshots: Arc<snapshots::Lookup>,
}

impl Provider {
    /// A provider asking the Hetzner Cloud API at `endpoint` for snapshots.
    pub fn new(endpoint: &str) -> Provider {
        Provider {
            snapshots: Arc::new(snapshots::Lookup::new(endpoint)),
        }
    }

    /// A provider asking `HCLOUD_ENDPOINT` (as the `hcloud` CLI does), else the public API.
    pub fn from_env() -> Provider {
        Provider::new(
            &std::env::var("HCLOUD_ENDPOINT")
                .unwrap_or_else(|_| snapshots::DEFAULT_ENDPOINT.to_string()),
        )
    }
}

impl Default for Provider {
    fn default() -> Provider {
        Provider::new(snapshots::DEFAULT_ENDPOINT)
    }
}

/// Key of the Hetzner API token in the class's Secret (the key CAPH reads too).
pub const TOKEN_KEY: &str = "hcloud";

/// `apiVersion` of CAPH's kinds.
pub const INFRA_API_VERSION: &str = "infrastructure.cluster.x-k8s.io/v1beta1";
/// Server type of control plane nodes when the cluster names none.
pub const DEFAULT_CONTROL_PLANE_TYPE: &str = "cpx31";
/// The spread placement group of the control plane's servers (distinct physical hosts).
pub const CONTROL_PLANE_PLACEMENT_GROUP: &str = "control-plane";
/// Region when `providerConfig.region` is left out.
pub const DEFAULT_REGION: &str = "fsn1";

const REGIONS: [&str; 6] = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"];

impl operator_core::Provider for Provider {
    fn name(&self) -> &'static str {
        "hetzner"
    }

    const KINDS: InfrastructureKinds = InfrastructureKinds {
        api_version: INFRA_API_VERSION,
        cluster: "HetznerCluster",
        machine_template: "HCloudMachineTemplate",
    };

    fn credential_keys(&self) -> &'static [&'static str] {
        &[TOKEN_KEY]
    }

    fn validate_config(&self, config: Option<&Value>) -> Vec<FieldError> {
        settings::validate(
            config,
            &[
                ("region", Setting::OneOf(&REGIONS)),
                (
                    "controlPlaneRegions",
                    Setting::List {
                        item: "a Hetzner location (fsn1, nbg1, hel1, ash, hil, sin)",
                        items: "Hetzner locations",
                        check: |s| REGIONS.contains(&s),
                    },
                ),
                (
                    "sshKeys",
                    Setting::List {
                        item: "the name of an SSH key in the project",
                        items: "SSH key names",
                        check: |s| !s.is_empty(),
                    },
                ),
            ],
        )
    }

    fn node_images(&self, ctx: &ClusterContext<'_>) -> Result<NodeImages, ProviderError> {
        // Hetzner has no image import: the stack names a snapshot prepared in the project.
        let image = ctx
            .stack
            .spec
            .node_image(ctx.kubernetes_version)
            .ok_or_else(|| {
                ProviderError::Invalid(format!(
                    "stack {} {} lists no node image (snapshot) for Kubernetes {}",
                    ctx.stack.spec.name, ctx.stack.spec.version, ctx.kubernetes_version
                ))
            })?;
        Ok(NodeImages {
            reference: image.name.clone(),
            shared_objects: Vec::new(),
        })
    }

    async fn find_node_images(
        &self,
        ctx: &ClusterContext<'_>,
        images: &NodeImages,
    ) -> Result<(), ProviderError> {
        // Hetzner has no image import: the snapshot must exist in the project, so a missing
        // one is named in NodeImagesReady before any machine is created.
        let Some(token) = ctx.credentials.and_then(|c| c.get(TOKEN_KEY)) else {
            return Ok(());
        };
        let secret = format!(
            "{}/{}",
            ctx.namespace,
            ctx.class_secret("the Hetzner token")?
        );
        self.snapshots
            .find(token, &images.reference, &secret)
            .await
            .map(drop)
    }

    fn render(
        &self,
        ctx: &ClusterContext<'_>,
        images: &NodeImages,
    ) -> Result<Infrastructure, ProviderError> {
        let spec = &ctx.cluster.spec;
        let config = spec.provider_config.clone().unwrap_or_else(|| json!({}));
        let region = config["region"].as_str().unwrap_or(DEFAULT_REGION);
        let ssh_keys: Vec<Value> = config["sshKeys"]
            .as_array()
            .map(|l| l.iter().map(|k| json!({"name": k})).collect())
            .unwrap_or_default();
        // The control plane over the regions asked for (Cluster API spreads its machines over
        // them as failure domains), and on distinct hosts within one: a spread placement
        // group (scs-0214).
        let control_plane_regions = config
            .get("controlPlaneRegions")
            .cloned()
            .unwrap_or_else(|| json!([region]));
        let cluster_spec = json!({
            "controlPlaneRegions": control_plane_regions,
            "hcloudPlacementGroups": [{"name": CONTROL_PLANE_PLACEMENT_GROUP, "type": "spread"}],
            "controlPlaneLoadBalancer": {"region": region},
            "hetznerSecretRef": {"name": ctx.class_secret("the Hetzner token")?, "key": {"hcloudToken": TOKEN_KEY}},
            "sshKeys": {"hcloud": ssh_keys},
        });
        let machine = |server_type: &str, group: Option<&str>| json!({"type": server_type, "imageName": images.reference, "placementGroupName": group});
        let strip = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.retain(|_, x| !x.is_null());
            }
            v
        };
        Ok(Infrastructure {
            extra: Vec::new(),
            cluster_spec,
            control_plane_machine: strip(machine(
                spec.control_plane
                    .machine_type
                    .as_deref()
                    .unwrap_or(DEFAULT_CONTROL_PLANE_TYPE),
                Some(CONTROL_PLANE_PLACEMENT_GROUP),
            )),
            worker_machines: spec
                .workers
                .iter()
                .map(|w| (w.name.clone(), strip(machine(&w.machine_type, None))))
                .collect(),
            kubelet_args: BTreeMap::from([("cloud-provider".to_string(), "external".to_string())]),
        })
    }
}
