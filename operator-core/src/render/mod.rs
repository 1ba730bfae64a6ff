//! Build step of the pipeline (pure): the Cluster API objects for one `KaasCluster`, from the
//! resolved cluster and the provider's infrastructure. Core kinds are `cluster.x-k8s.io/v1beta2`
//! (`Cluster`, `MachineDeployment`), `controlplane.cluster.x-k8s.io/v1beta2`
//! (`KubeadmControlPlane`) and `bootstrap.cluster.x-k8s.io/v1beta2` (`KubeadmConfigTemplate`).
//!
//! Machine templates and bootstrap templates are immutable in Cluster API: each is named after
//! a hash of its content, so a change (a new machine type, a new image) makes a new template
//! and moves the reference, and Cluster API rolls the machines.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use kaas_stack::format::Kubeadm;

use crate::provider::{ClusterContext, Infrastructure};

/// Label on every object the operator writes: the `KaasCluster` it belongs to.
pub const CLUSTER_LABEL: &str = "kaas.scs.community/cluster";
/// Label on a worker pool's objects: the pool.
pub const POOL_LABEL: &str = "kaas.scs.community/pool";
/// Cluster API's own cluster-name label.
pub const CAPI_CLUSTER_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// Names the operator that wrote an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// `apiVersion` of the core Cluster API kinds.
pub const CAPI_CORE: &str = "cluster.x-k8s.io/v1beta2";
/// `apiVersion` of `KubeadmControlPlane`.
pub const CAPI_CONTROL_PLANE: &str = "controlplane.cluster.x-k8s.io/v1beta2";
/// `apiVersion` of `KubeadmConfigTemplate`.
pub const CAPI_BOOTSTRAP: &str = "bootstrap.cluster.x-k8s.io/v1beta2";

/// The first 10 hex digits of the sha256 of `value`'s JSON (object keys are sorted).
pub fn content_hash(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Name of the `KubeadmControlPlane` of cluster `name`.
pub fn control_plane_name(name: &str) -> String {
    format!("{name}-control-plane")
}

/// Name of the `MachineDeployment` of pool `pool` of cluster `name`.
pub fn machine_deployment_name(name: &str, pool: &str) -> String {
    format!("{name}-{pool}")
}

/// Whether `obj` refers to other objects of the cluster (`Cluster`, `KubeadmControlPlane`,
/// `MachineDeployment`) and so should be applied after them.
pub fn is_referrer(obj: &Value) -> bool {
    matches!(
        (obj["apiVersion"].as_str(), obj["kind"].as_str()),
        (Some(CAPI_CORE), Some("Cluster" | "MachineDeployment"))
            | (Some(CAPI_CONTROL_PLANE), Some("KubeadmControlPlane"))
    )
}

/// The objects of one cluster, in apply order (referenced objects before their referrers).
pub fn render(
    ctx: &ClusterContext<'_>,
    infra: &Infrastructure,
    kubeadm: &Kubeadm,
    manager: &str,
) -> Vec<Value> {
    let spec = &ctx.cluster.spec;
    let name = ctx.name;
    let version = format!("v{}", ctx.kubernetes_version);
    let infra_group = group_of(&infra.api_version);
    let owner = json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "name": name,
        "uid": ctx.cluster.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    });
    let meta = |obj_name: &str, extra: &[(&str, &str)]| {
        let mut labels = BTreeMap::from([
            (CLUSTER_LABEL.to_string(), name.to_string()),
            (CAPI_CLUSTER_LABEL.to_string(), name.to_string()),
            (MANAGED_BY_LABEL.to_string(), manager.to_string()),
        ]);
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        let mut meta = json!({
            "name": obj_name,
            "namespace": ctx.namespace,
            "labels": labels,
        });
        // Offline (kaasctl render) the cluster has no uid yet: nothing to own by.
        if !owner["uid"].as_str().unwrap_or_default().is_empty() {
            meta["ownerReferences"] = json!([owner.clone()]);
        }
        meta
    };
    let object = |api_version: &str, kind: &str, metadata: Value, spec: Value| json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec});
    let mut objects = Vec::new();

    // Infrastructure cluster.
    objects.push(object(
        &infra.api_version,
        &infra.cluster_kind,
        meta(name, &[]),
        infra.cluster_spec.clone(),
    ));

    // Control plane: its machine template, then the KubeadmControlPlane.
    let cp_template_spec = json!({"template": {"spec": infra.control_plane_machine}});
    let cp_template_name = format!(
        "{}-{}",
        control_plane_name(name),
        content_hash(&cp_template_spec)
    );
    objects.push(object(
        &infra.api_version,
        &infra.template_kind,
        meta(&cp_template_name, &[]),
        cp_template_spec,
    ));
    // The stack's kubelet flags, with the provider's winning: the provider knows what its
    // cloud needs (`cloud-provider=external`).
    let mut all_kubelet_args = kubeadm.kubelet_extra_args.clone();
    all_kubelet_args.extend(infra.kubelet_args.clone());
    let kubelet_args = args_list(&all_kubelet_args);
    let mut api_server_args = args_list(&kubeadm.api_server_extra_args);
    if let Some(oidc) = &spec.oidc {
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                api_server_args.push(json!({"name": k, "value": v}));
            }
        };
        push("oidc-issuer-url", &Some(oidc.issuer_url.clone()));
        push("oidc-client-id", &Some(oidc.client_id.clone()));
        push("oidc-username-claim", &oidc.username_claim);
        push("oidc-groups-claim", &oidc.groups_claim);
        push("oidc-username-prefix", &oidc.username_prefix);
        push("oidc-groups-prefix", &oidc.groups_prefix);
    }
    let node_registration = json!({"kubeletExtraArgs": kubelet_args});
    let mut cluster_configuration = json!({});
    if !api_server_args.is_empty() {
        cluster_configuration["apiServer"] = json!({"extraArgs": api_server_args});
    }
    if !kubeadm.controller_manager_extra_args.is_empty() {
        cluster_configuration["controllerManager"] =
            json!({"extraArgs": args_list(&kubeadm.controller_manager_extra_args)});
    }
    if !kubeadm.scheduler_extra_args.is_empty() {
        cluster_configuration["scheduler"] =
            json!({"extraArgs": args_list(&kubeadm.scheduler_extra_args)});
    }
    let mut kubeadm_config_spec = json!({
        "clusterConfiguration": cluster_configuration,
        "initConfiguration": {"nodeRegistration": node_registration},
        "joinConfiguration": {"nodeRegistration": node_registration},
    });
    commands(&mut kubeadm_config_spec, kubeadm);
    objects.push(object(
        CAPI_CONTROL_PLANE,
        "KubeadmControlPlane",
        meta(&control_plane_name(name), &[]),
        json!({
            "replicas": spec.control_plane.replicas.unwrap_or(3),
            "version": version,
            "machineTemplate": {"spec": {"infrastructureRef": {
                "apiGroup": infra_group, "kind": infra.template_kind, "name": cp_template_name,
            }}},
            "kubeadmConfigSpec": kubeadm_config_spec,
        }),
    ));

    // Worker pools: machine template, bootstrap template, MachineDeployment.
    for pool in &spec.workers {
        let pool_labels = [(POOL_LABEL, pool.name.as_str())];
        let machine = infra
            .worker_machines
            .get(&pool.name)
            .cloned()
            .unwrap_or(Value::Null);
        let machine_spec = json!({"template": {"spec": machine}});
        let machine_name = format!(
            "{}-{}",
            machine_deployment_name(name, &pool.name),
            content_hash(&machine_spec)
        );
        objects.push(object(
            &infra.api_version,
            &infra.template_kind,
            meta(&machine_name, &pool_labels),
            machine_spec,
        ));

        let mut args = all_kubelet_args.clone();
        if !pool.labels.is_empty() {
            let labels: Vec<String> = pool
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            args.insert("node-labels".into(), labels.join(","));
        }
        let args: Vec<Value> = args
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let mut registration = json!({"kubeletExtraArgs": args});
        if !pool.taints.is_empty() {
            registration["taints"] = serde_json::to_value(&pool.taints).unwrap_or_default();
        }
        let mut bootstrap = json!({"joinConfiguration": {"nodeRegistration": registration}});
        commands(&mut bootstrap, kubeadm);
        let bootstrap_spec = json!({"template": {"spec": bootstrap}});
        let bootstrap_name = format!(
            "{}-{}",
            machine_deployment_name(name, &pool.name),
            content_hash(&bootstrap_spec)
        );
        objects.push(object(
            CAPI_BOOTSTRAP,
            "KubeadmConfigTemplate",
            meta(&bootstrap_name, &pool_labels),
            bootstrap_spec,
        ));

        let selector = json!({CAPI_CLUSTER_LABEL: name, POOL_LABEL: pool.name});
        let mut md_meta = meta(&machine_deployment_name(name, &pool.name), &pool_labels);
        let mut md_spec = json!({
            "clusterName": name,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "clusterName": name,
                    "version": version,
                    "bootstrap": {"configRef": {
                        "apiGroup": group_of(CAPI_BOOTSTRAP), "kind": "KubeadmConfigTemplate", "name": bootstrap_name,
                    }},
                    "infrastructureRef": {
                        "apiGroup": infra_group, "kind": infra.template_kind, "name": machine_name,
                    },
                },
            },
        });
        if pool.min_replicas.is_some() || pool.max_replicas.is_some() {
            // The cluster autoscaler owns the size between the bounds.
            let mut annotations = serde_json::Map::new();
            if let Some(min) = pool.min_replicas {
                annotations.insert(
                    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size".into(),
                    min.to_string().into(),
                );
            }
            if let Some(max) = pool.max_replicas {
                annotations.insert(
                    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size".into(),
                    max.to_string().into(),
                );
            }
            md_meta["annotations"] = Value::Object(annotations);
        } else {
            md_spec["replicas"] = pool.replicas.into();
        }
        objects.push(object(CAPI_CORE, "MachineDeployment", md_meta, md_spec));
    }

    // The Cluster last: it references the infrastructure cluster and the control plane.
    let mut cluster_spec = json!({
        "clusterNetwork": {
            "pods": {"cidrBlocks": spec.network.pod_cidrs},
            "services": {"cidrBlocks": spec.network.service_cidrs},
        },
        "controlPlaneRef": {"apiGroup": group_of(CAPI_CONTROL_PLANE), "kind": "KubeadmControlPlane", "name": control_plane_name(name)},
        "infrastructureRef": {"apiGroup": infra_group, "kind": infra.cluster_kind, "name": name},
    });
    if spec.paused == Some(true) {
        cluster_spec["paused"] = true.into();
    }
    objects.push(object(CAPI_CORE, "Cluster", meta(name, &[]), cluster_spec));
    objects
}

/// Flags as Cluster API v1beta2 lists them: `[{name, value}]`.
fn args_list(args: &BTreeMap<String, String>) -> Vec<Value> {
    args.iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect()
}

/// The stack's commands around kubeadm, on a `KubeadmConfigSpec`.
fn commands(spec: &mut Value, kubeadm: &Kubeadm) {
    if !kubeadm.pre_kubeadm_commands.is_empty() {
        spec["preKubeadmCommands"] = json!(kubeadm.pre_kubeadm_commands);
    }
    if !kubeadm.post_kubeadm_commands.is_empty() {
        spec["postKubeadmCommands"] = json!(kubeadm.post_kubeadm_commands);
    }
}
