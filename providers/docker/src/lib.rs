//! The Docker provider (Cluster API's CAPD): clusters whose nodes are containers, for
//! development and tests. Node images are kind's (`kindest/node:v<version>`) unless the stack
//! lists one; machine types mean nothing to Docker and are ignored.
//!
//! CAPD's kinds are `DevCluster` and `DevMachineTemplate` with the Docker backend
//! (`spec.backend.docker`): `DockerCluster` and `DockerMachineTemplate` are deprecated in
//! Cluster API v1.14 and gone from its main branch.

use std::collections::BTreeMap;

use api::FieldError;
use operator_core::{
    ClusterContext, Infrastructure, InfrastructureKinds, NodeImages, ProviderError,
};
use serde_json::{Value, json};

/// The Docker provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Provider;

/// `apiVersion` of CAPD's kinds.
pub const INFRA_API_VERSION: &str = "infrastructure.cluster.x-k8s.io/v1beta2";
/// CAPD's infrastructure cluster kind.
pub const CLUSTER_KIND: &str = "DevCluster";
/// CAPD's machine template kind.
pub const TEMPLATE_KIND: &str = "DevMachineTemplate";

impl operator_core::Provider for Provider {
    fn name(&self) -> &'static str {
        "docker"
    }

    const KINDS: InfrastructureKinds = InfrastructureKinds {
        api_version: INFRA_API_VERSION,
        cluster: CLUSTER_KIND,
        machine_template: TEMPLATE_KIND,
    };

    fn validate_config(&self, config: Option<&Value>) -> Vec<FieldError> {
        // Docker takes no settings: any key is refused.
        operator_core::settings::validate(config, &[])
    }

    fn node_images(&self, ctx: &ClusterContext<'_>) -> Result<NodeImages, ProviderError> {
        let reference = ctx
            .stack
            .spec
            .node_image(ctx.kubernetes_version)
            .map(|i| i.name.clone())
            .unwrap_or_else(|| format!("kindest/node:v{}", ctx.kubernetes_version));
        Ok(NodeImages {
            reference,
            shared_objects: Vec::new(),
        })
    }

    fn render(
        &self,
        ctx: &ClusterContext<'_>,
        images: &NodeImages,
    ) -> Result<Infrastructure, ProviderError> {
        let machine = json!({"backend": {"docker": {
            "customImage": images.reference,
            "extraMounts": [{"containerPath": "/var/run/docker.sock", "hostPath": "/var/run/docker.sock"}],
        }}});
        let worker_machines = ctx
            .cluster
            .spec
            .workers
            .iter()
            .map(|w| {
                let docker = json!({"customImage": images.reference});
                (w.name.clone(), json!({"backend": {"docker": docker}}))
            })
            .collect();
        Ok(Infrastructure {
            extra: Vec::new(),
            // The backend is required; the Docker one needs nothing set.
            cluster_spec: json!({"backend": {"docker": {}}}),
            control_plane_machine: machine,
            worker_machines,
            // kind nodes share the host's disks: never evict for disk pressure.
            kubelet_args: BTreeMap::from([(
                "eviction-hard".to_string(),
                "nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%".to_string(),
            )]),
        })
    }
}
