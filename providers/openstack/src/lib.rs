//! The OpenStack provider (Cluster API's CAPO): flavors from `machineType`, node images from
//! the stack imported as ORC `Image` objects, credentials from the class's parameters (a Secret
//! with a `clouds.yaml`), and `providerConfig` for the external network, the API server load
//! balancer, DNS servers and the SSH key.

use std::collections::BTreeMap;

use api::FieldError;
use operator_core::settings::{self, Setting};
use operator_core::{
    ClusterContext, Infrastructure, InfrastructureKinds, NodeImages, ProviderError,
};
use serde_json::{Value, json};

/// The OpenStack provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Provider;

/// `apiVersion` of CAPO's kinds.
pub const INFRA_API_VERSION: &str = "infrastructure.cluster.x-k8s.io/v1beta1";
/// `apiVersion` of ORC images.
pub const ORC_API_VERSION: &str = "openstack.k-orc.cloud/v1alpha1";
/// Flavor of control plane nodes when the cluster names none.
pub const DEFAULT_CONTROL_PLANE_FLAVOR: &str = "SCS-2V-4-20s";
/// The cloud's name inside the credentials Secret's `clouds.yaml`.
pub const CLOUD_NAME: &str = "openstack";
/// The node network's range.
pub const NODE_CIDR: &str = "10.8.0.0/20";

const LOAD_BALANCERS: [&str; 3] = ["octavia-amphora", "octavia-ovn", "none"];

impl operator_core::Provider for Provider {
    fn name(&self) -> &'static str {
        "openstack"
    }

    const KINDS: InfrastructureKinds = InfrastructureKinds {
        api_version: INFRA_API_VERSION,
        cluster: "OpenStackCluster",
        machine_template: "OpenStackMachineTemplate",
    };

    const SHARED_KINDS: &'static [(&'static str, &'static str)] = &[(ORC_API_VERSION, "Image")];

    fn validate_config(&self, config: Option<&Value>) -> Vec<FieldError> {
        settings::validate(
            config,
            &[
                ("externalNetwork", Setting::Text),
                ("apiServerLoadBalancer", Setting::OneOf(&LOAD_BALANCERS)),
                (
                    "dnsServers",
                    Setting::List {
                        item: "an IP address",
                        items: "IP addresses",
                        check: |s| s.parse::<std::net::IpAddr>().is_ok(),
                    },
                ),
                ("sshKeyName", Setting::Text),
                (
                    "controlPlaneAvailabilityZones",
                    Setting::List {
                        item: "an availability zone name",
                        items: "availability zones",
                        check: |s| !s.is_empty(),
                    },
                ),
            ],
        )
    }

    fn shared_object_problem(&self, live: &Value) -> Option<String> {
        let name = live["metadata"]["name"].as_str().unwrap_or_default();
        let available = live["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Available"));
        match available {
            Some(c) if c["status"] == "True" => None,
            Some(c) => Some(format!(
                "ORC Image {name} is not available: {}",
                c["message"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .or(c["reason"].as_str())
                    .unwrap_or("no reason given")
            )),
            None => Some(format!(
                "ORC Image {name} is not imported yet (ORC has not reported it Available)"
            )),
        }
    }

    fn node_images(&self, ctx: &ClusterContext<'_>) -> Result<NodeImages, ProviderError> {
        let image = ctx
            .stack
            .spec
            .node_image(ctx.kubernetes_version)
            .ok_or_else(|| {
                ProviderError::Invalid(format!(
                    "stack {} {} lists no node image for Kubernetes {}",
                    ctx.stack.spec.name, ctx.stack.spec.version, ctx.kubernetes_version
                ))
            })?;
        let mut shared_objects = Vec::new();
        if let Some(url) = &image.url {
            let mut download = json!({"url": url});
            if let Some(sum) = image
                .checksum
                .as_deref()
                .and_then(|c| c.strip_prefix("sha256:"))
            {
                download["hash"] = json!({"algorithm": "sha256", "value": sum});
            }
            shared_objects.push(json!({
                "apiVersion": ORC_API_VERSION,
                "kind": "Image",
                "metadata": {
                    "name": image.name,
                    "labels": {"kaas.scs.community/node-image": "true",
                               "app.kubernetes.io/managed-by": "kaas-operator-openstack"},
                },
                "spec": {
                    "cloudCredentialsRef": {"secretName": ctx.class_secret("clouds.yaml")?, "cloudName": CLOUD_NAME},
                    "managementPolicy": "managed",
                    "resource": {
                        "name": image.name,
                        "content": {
                            "diskFormat": image.format.clone().unwrap_or_else(|| "qcow2".into()),
                            "download": download,
                        },
                    },
                },
            }));
        }
        Ok(NodeImages {
            reference: image.name.clone(),
            shared_objects,
        })
    }

    fn render(
        &self,
        ctx: &ClusterContext<'_>,
        images: &NodeImages,
    ) -> Result<Infrastructure, ProviderError> {
        let spec = &ctx.cluster.spec;
        let config = spec.provider_config.clone().unwrap_or_else(|| json!({}));
        let mut subnet = json!({"cidr": NODE_CIDR});
        if let Some(dns) = config.get("dnsServers") {
            subnet["dnsNameservers"] = dns.clone();
        }
        let lb = config["apiServerLoadBalancer"]
            .as_str()
            .unwrap_or("octavia-amphora");
        let mut cluster_spec = json!({
            "identityRef": {"cloudName": CLOUD_NAME, "name": ctx.class_secret("clouds.yaml")?},
            "managedSubnets": [subnet],
            "managedSecurityGroups": {"allowAllInClusterTraffic": true},
            "apiServerLoadBalancer": if lb == "none" { json!({"enabled": false}) } else {
                json!({"enabled": true, "provider": lb.trim_start_matches("octavia-")})
            },
        });
        if let Some(net) = config["externalNetwork"].as_str() {
            cluster_spec["externalNetwork"] = json!({"filter": {"name": net}});
        }
        // Cluster API spreads control plane machines over these as failure domains
        // (scs-0214); left out, Nova picks.
        if let Some(zones) = config.get("controlPlaneAvailabilityZones") {
            cluster_spec["controlPlaneAvailabilityZones"] = zones.clone();
        }
        let machine = |flavor: &str| {
            let mut m =
                json!({"flavor": flavor, "image": {"imageRef": {"name": images.reference}}});
            if let Some(key) = config["sshKeyName"].as_str() {
                m["sshKeyName"] = key.into();
            }
            m
        };
        Ok(Infrastructure {
            extra: Vec::new(),
            cluster_spec,
            control_plane_machine: machine(
                spec.control_plane
                    .machine_type
                    .as_deref()
                    .unwrap_or(DEFAULT_CONTROL_PLANE_FLAVOR),
            ),
            worker_machines: spec
                .workers
                .iter()
                .map(|w| (w.name.clone(), machine(&w.machine_type)))
                .collect(),
            kubelet_args: BTreeMap::from([
                ("cloud-provider".to_string(), "external".to_string()),
                (
                    "provider-id".to_string(),
                    "openstack:///'{{ instance_id }}'".to_string(),
                ),
            ]),
        })
    }
}
