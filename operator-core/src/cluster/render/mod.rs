//! Build step of the pipeline (pure): the Cluster API objects for one `KaasCluster`, from the
//! resolved cluster and the provider's infrastructure. Core kinds are `cluster.x-k8s.io/v1beta2`
//! (`Cluster`, `MachineDeployment`), `controlplane.cluster.x-k8s.io/v1beta2`
//! (`KubeadmControlPlane`) and `bootstrap.cluster.x-k8s.io/v1beta2` (`KubeadmConfigTemplate`).
//!
//! Machine templates and bootstrap templates are immutable in Cluster API: each is named after
//! a hash of its content, so a change (a new machine type, a new image) makes a new template
//! and moves the reference, and Cluster API rolls the machines.
//!
//! The result is typed ([`ClusterObjects`]): what others refer to and what refers to them are
//! fields, not kinds to sort out of a list; each object has its own function, and the kubeadm
//! settings theirs in [`kubeadm`].

mod kubeadm;
pub mod mirrors;

use std::collections::BTreeMap;

use api::v1beta1::WorkerPool;
use kube::ResourceExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use kaas_stack::format::Kubeadm;

use crate::kinds::{self, CAPI_BOOTSTRAP, CAPI_CONTROL_PLANE, CAPI_CORE, Kind, Naming};
use crate::provider::{ClusterContext, Extra, Infrastructure, InfrastructureKinds, ProviderError};

pub use kubeadm::OIDC_FLAG_PREFIX;

pub use crate::kinds::{CAPI_CLUSTER_LABEL, CLUSTER_LABEL, MANAGED_BY_LABEL, POOL_LABEL};

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
    kinds::CONTROL_PLANE.name(name, None).unwrap_or_default()
}

/// Name of the `MachineDeployment` of pool `pool` of cluster `name`.
pub fn machine_deployment_name(name: &str, pool: &str) -> String {
    kinds::MACHINE_DEPLOYMENT
        .name(name, Some(pool))
        .unwrap_or_default()
}

/// One worker pool's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolObjects {
    /// The pool's name.
    pub name: String,
    /// Its infrastructure machine template (immutable, named by content).
    pub machine_template: Value,
    /// Its `KubeadmConfigTemplate` (immutable, named by content).
    pub bootstrap_template: Value,
    /// Its `MachineDeployment`, referring to both templates.
    pub machine_deployment: Value,
    /// The provider's own objects of the pool ([`crate::Provider::EXTRA_KINDS`]).
    pub extra: Vec<Value>,
}

/// Every Cluster API object of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterObjects {
    /// The provider's infrastructure cluster (`DevCluster`, `OpenStackCluster`, ...).
    pub infrastructure_cluster: Value,
    /// The control plane's infrastructure machine template (immutable, named by content).
    pub control_plane_template: Value,
    /// The `KubeadmControlPlane`, referring to its machine template.
    pub control_plane: Value,
    /// The worker pools, in spec order.
    pub pools: Vec<PoolObjects>,
    /// The `Cluster`, referring to the infrastructure cluster and the control plane.
    pub cluster: Value,
    /// The provider's own objects of the cluster ([`crate::Provider::EXTRA_KINDS`]).
    pub extra: Vec<Value>,
}

impl ClusterObjects {
    /// Every object in apply order within each wave ([`crate::kinds::Wave`]): the
    /// infrastructure cluster, the control plane's template and itself, each pool's templates,
    /// `MachineDeployment` and own objects, the cluster's own objects, the `Cluster` last.
    pub fn all(&self) -> Vec<&Value> {
        let mut all = vec![
            &self.infrastructure_cluster,
            &self.control_plane_template,
            &self.control_plane,
        ];
        for pool in &self.pools {
            all.extend([
                &pool.machine_template,
                &pool.bootstrap_template,
                &pool.machine_deployment,
            ]);
            all.extend(&pool.extra);
        }
        all.extend(&self.extra);
        all.push(&self.cluster);
        all
    }
}

/// What every object of one cluster shares: its name, namespace, labels and owner.
struct Meta<'a> {
    ctx: &'a ClusterContext<'a>,
    manager: &'a str,
}

impl Meta<'_> {
    fn of(&self, obj_name: &str, extra: &[(&str, &str)]) -> Value {
        let name = self.ctx.name;
        let mut labels = BTreeMap::from([
            (CLUSTER_LABEL.to_string(), name.to_string()),
            (CAPI_CLUSTER_LABEL.to_string(), name.to_string()),
            (MANAGED_BY_LABEL.to_string(), self.manager.to_string()),
        ]);
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        let mut meta = json!({
            "name": obj_name,
            "namespace": self.ctx.namespace,
            "labels": labels,
        });
        // Offline (kaasctl render) the cluster has no uid yet: nothing to own by.
        if let Some(uid) = self.ctx.cluster.uid().filter(|u| !u.is_empty()) {
            meta["ownerReferences"] = json!([{
                "apiVersion": "kaas.scs.community/v1beta1",
                "kind": "KaasCluster",
                "name": name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]);
        }
        meta
    }
}

fn object(api_version: &str, kind: &str, metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec})
}

/// A reference as Cluster API v1beta2 writes it.
fn reference(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiGroup": group_of(api_version), "kind": kind, "name": name})
}

/// The kubeadm objects a release's settings make, without a cluster or a provider: the
/// `KubeadmControlPlane`'s and a pool's `KubeadmConfigTemplate`'s specs, as far as a static
/// check of the release reads them (`kaasctl stack verify --standards`).
pub fn release_kubeadm(kubeadm: &Kubeadm) -> (Value, Value) {
    let files = mirrors::containerd_files(&kubeadm.registry_mirrors);
    let config =
        kubeadm::control_plane_config(kubeadm, &kubeadm.kubelet_extra_args, None, None, &files)
            .unwrap_or_else(|| json!({}));
    let pool = api::v1beta1::WorkerPool {
        name: "pool".into(),
        ..Default::default()
    };
    let bootstrap = kubeadm::pool_bootstrap(
        kubeadm,
        &kubeadm.kubelet_extra_args,
        &pool,
        json!({}),
        &files,
    );
    (
        json!({"spec": {"kubeadmConfigSpec": config}}),
        json!({"spec": {"template": bootstrap}}),
    )
}

/// The stack's kubelet flags, with the provider's winning: the provider knows what its cloud
/// needs (`cloud-provider=external`).
fn kubelet_args(kubeadm: &Kubeadm, infra: &Infrastructure) -> BTreeMap<String, String> {
    let mut all = kubeadm.kubelet_extra_args.clone();
    all.extend(infra.kubelet_args.clone());
    all
}

/// The objects of one cluster; an object of [`Infrastructure::extra`] of a kind not in
/// `extra_kinds` is refused.
pub fn render(
    ctx: &ClusterContext<'_>,
    kinds: &InfrastructureKinds,
    extra_kinds: &[Kind],
    infra: &Infrastructure,
    kubeadm: &Kubeadm,
    manager: &str,
) -> Result<ClusterObjects, ProviderError> {
    let meta = Meta { ctx, manager };
    let kubelet = kubelet_args(kubeadm, infra);
    let control_plane_template = machine_template(
        &meta,
        kinds,
        &control_plane_name(ctx.name),
        &infra.control_plane_machine,
        &[],
    );
    let control_plane = control_plane(
        ctx,
        &meta,
        kinds,
        kubeadm,
        &kubelet,
        &control_plane_template,
    );
    let mut pools: Vec<PoolObjects> = ctx
        .cluster
        .spec
        .workers
        .iter()
        .map(|pool| pool_objects(ctx, &meta, kinds, infra, kubeadm, &kubelet, pool))
        .collect();
    let mut extra = Vec::new();
    for rendered in &infra.extra {
        let (kind, value) = extra_object(&meta, extra_kinds, rendered)?;
        match pools
            .iter_mut()
            .find(|p| kind.per_pool() && rendered.pool.as_deref() == Some(p.name.as_str()))
        {
            Some(pool) => pool.extra.push(value),
            None if kind.per_pool() => {
                return Err(ProviderError::Invalid(format!(
                    "the provider rendered a {} for pool {:?}, which the cluster does not have",
                    kind.kind,
                    rendered.pool.as_deref().unwrap_or_default()
                )));
            }
            None => extra.push(value),
        }
    }
    Ok(ClusterObjects {
        infrastructure_cluster: object(
            kinds.api_version,
            kinds.cluster,
            meta.of(ctx.name, &[]),
            infra.cluster_spec.clone(),
        ),
        control_plane_template,
        control_plane,
        pools,
        cluster: cluster(ctx, &meta, kinds),
        extra,
    })
}

/// One of the provider's own objects, named and labelled as its kind says.
fn extra_object<'k>(
    meta: &Meta<'_>,
    extra_kinds: &'k [Kind],
    rendered: &Extra,
) -> Result<(&'k Kind, Value), ProviderError> {
    let kind = extra_kinds
        .iter()
        .find(|k| k.kind == rendered.kind)
        .ok_or_else(|| {
            ProviderError::Invalid(format!(
                "the provider rendered a {}, which is not one of its EXTRA_KINDS",
                rendered.kind
            ))
        })?;
    let cluster = meta.ctx.name;
    let pool = rendered.pool.as_deref().filter(|_| kind.per_pool());
    let name = match (kind.naming, pool) {
        (Naming::Content(suffix), _) => {
            format!("{cluster}-{suffix}-{}", content_hash(&rendered.spec))
        }
        (Naming::PoolContent, Some(pool)) => {
            format!("{cluster}-{pool}-{}", content_hash(&rendered.spec))
        }
        _ => kind.name(cluster, pool).ok_or_else(|| {
            ProviderError::Invalid(format!(
                "the provider rendered a {} without a pool",
                kind.kind
            ))
        })?,
    };
    let labels: Vec<(&str, &str)> = pool.map(|p| (POOL_LABEL, p)).into_iter().collect();
    Ok((
        kind,
        object(
            kind.api_version,
            kind.kind,
            meta.of(&name, &labels),
            rendered.spec.clone(),
        ),
    ))
}

/// An infrastructure machine template for `machine` (`spec.template.spec`), named
/// `<prefix>-<hash of its content>`.
fn machine_template(
    meta: &Meta<'_>,
    kinds: &InfrastructureKinds,
    prefix: &str,
    machine: &Value,
    labels: &[(&str, &str)],
) -> Value {
    let spec = json!({"template": {"spec": machine}});
    let name = format!("{prefix}-{}", content_hash(&spec));
    object(
        kinds.api_version,
        kinds.machine_template,
        meta.of(&name, labels),
        spec,
    )
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// Files every node of the cluster gets: containerd's registry mirrors, the stack's with the
/// cluster's in place of those for the same registry.
fn node_files(kubeadm: &Kubeadm, spec: &api::v1beta1::KaasClusterSpec) -> Vec<Value> {
    mirrors::containerd_files(&api::v1beta1::RegistryMirror::merged(
        &kubeadm.registry_mirrors,
        &spec.registry_mirrors,
    ))
}

/// The `KubeadmControlPlane` at the context's version on `template`.
fn control_plane(
    ctx: &ClusterContext<'_>,
    meta: &Meta<'_>,
    kinds: &InfrastructureKinds,
    kubeadm: &Kubeadm,
    kubelet: &BTreeMap<String, String>,
    template: &Value,
) -> Value {
    let spec = &ctx.cluster.spec;
    let mut cp = json!({
        "replicas": spec.control_plane.replicas.unwrap_or(3),
        "version": format!("v{}", ctx.kubernetes_version),
        "machineTemplate": {
            // Cluster API puts these on the control plane Machines: the operator reads their
            // certificate expiry by them.
            "metadata": {"labels": {CLUSTER_LABEL: ctx.name, MANAGED_BY_LABEL: meta.manager}},
            "spec": {"infrastructureRef":
                reference(kinds.api_version, kinds.machine_template, name_of(template))},
        },
    });
    let files = node_files(kubeadm, spec);
    let authentication = spec.authentication.as_ref().map(|auth| {
        kubeadm::authentication_configuration(auth, spec.oidc.as_ref(), ctx.kubernetes_version)
    });
    if let Some(config) = kubeadm::control_plane_config(
        kubeadm,
        kubelet,
        spec.oidc.as_ref(),
        authentication.as_deref(),
        &files,
    ) {
        cp["kubeadmConfigSpec"] = config;
    }
    // Cluster API rolls the control plane before its certificates expire.
    if let Some(days) = spec
        .control_plane
        .certificates_expiry_days
        .or(kubeadm.certificates_expiry_days)
    {
        cp["rollout"] = json!({"before": {"certificatesExpiryDays": days}});
    }
    object(
        CAPI_CONTROL_PLANE,
        "KubeadmControlPlane",
        meta.of(&control_plane_name(ctx.name), &[]),
        cp,
    )
}

/// A worker pool: machine template, bootstrap template, `MachineDeployment`.
fn pool_objects(
    ctx: &ClusterContext<'_>,
    meta: &Meta<'_>,
    kinds: &InfrastructureKinds,
    infra: &Infrastructure,
    kubeadm: &Kubeadm,
    kubelet: &BTreeMap<String, String>,
    pool: &WorkerPool,
) -> PoolObjects {
    let name = ctx.name;
    let md_name = machine_deployment_name(name, &pool.name);
    let pool_labels = [(POOL_LABEL, pool.name.as_str())];
    let machine = infra
        .worker_machines
        .get(&pool.name)
        .cloned()
        .unwrap_or(Value::Null);
    let machine_template = machine_template(meta, kinds, &md_name, &machine, &pool_labels);
    let template_labels = json!({CLUSTER_LABEL: name, POOL_LABEL: pool.name});
    let bootstrap_spec = json!({"template": kubeadm::pool_bootstrap(
        kubeadm,
        kubelet,
        pool,
        template_labels,
        &node_files(kubeadm, &ctx.cluster.spec),
    )});
    let bootstrap_name = format!("{md_name}-{}", content_hash(&bootstrap_spec));
    let bootstrap_template = object(
        CAPI_BOOTSTRAP,
        "KubeadmConfigTemplate",
        meta.of(&bootstrap_name, &pool_labels),
        bootstrap_spec,
    );
    let selector = json!({CAPI_CLUSTER_LABEL: name, POOL_LABEL: pool.name});
    let mut md_meta = meta.of(&md_name, &pool_labels);
    let mut md_spec = json!({
        "clusterName": name,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": selector},
            "spec": {
                "clusterName": name,
                "version": format!("v{}", ctx.kubernetes_version),
                "bootstrap": {"configRef":
                    reference(CAPI_BOOTSTRAP, "KubeadmConfigTemplate", &bootstrap_name)},
                "infrastructureRef":
                    reference(kinds.api_version, kinds.machine_template, name_of(&machine_template)),
            },
        },
    });
    rollout(&mut md_spec, pool);
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
    PoolObjects {
        name: pool.name.clone(),
        machine_template,
        bootstrap_template,
        machine_deployment: object(CAPI_CORE, "MachineDeployment", md_meta, md_spec),
        extra: Vec::new(),
    }
}

/// A pool's rollout settings and Cluster API taints in its `MachineDeployment` (v1beta2:
/// `spec.rollout`, `spec.deletion.order`, `spec.template.spec.deletion`,
/// `spec.template.spec.taints`); nothing is written for what the pool leaves out, so an
/// unchanged pool renders as before.
fn rollout(md_spec: &mut Value, pool: &WorkerPool) {
    if let Some(propagation) = pool.taint_propagation {
        let taints: Vec<Value> = pool
            .taints
            .iter()
            .map(|t| {
                let mut taint =
                    json!({"key": t.key, "effect": t.effect, "propagation": propagation});
                if let Some(v) = &t.value {
                    taint["value"] = v.clone().into();
                }
                taint
            })
            .collect();
        if !taints.is_empty() {
            md_spec["template"]["spec"]["taints"] = taints.into();
        }
    }
    let Some(r) = &pool.rollout else {
        return;
    };
    let mut rollout = serde_json::Map::new();
    if let Some(after) = &r.after {
        rollout.insert("after".into(), json!(after));
    }
    let mut strategy = serde_json::Map::new();
    if let Some(kind) = r.strategy {
        strategy.insert("type".into(), json!(kind));
    }
    let mut rolling = serde_json::Map::new();
    if let Some(v) = &r.max_surge {
        rolling.insert("maxSurge".into(), json!(v));
    }
    if let Some(v) = &r.max_unavailable {
        rolling.insert("maxUnavailable".into(), json!(v));
    }
    if !rolling.is_empty() {
        strategy
            .entry("type")
            .or_insert_with(|| json!("RollingUpdate"));
        strategy.insert("rollingUpdate".into(), Value::Object(rolling));
    }
    if !strategy.is_empty() {
        rollout.insert("strategy".into(), Value::Object(strategy));
    }
    if !rollout.is_empty() {
        md_spec["rollout"] = Value::Object(rollout);
    }
    if let Some(order) = r.deletion_order {
        md_spec["deletion"] = json!({"order": order});
    }
    if let Some(seconds) = r.node_drain_timeout_seconds {
        md_spec["template"]["spec"]["deletion"] = json!({"nodeDrainTimeoutSeconds": seconds});
    }
}

/// The `Cluster`: networks, and references to the control plane and the infrastructure.
fn cluster(ctx: &ClusterContext<'_>, meta: &Meta<'_>, kinds: &InfrastructureKinds) -> Value {
    let spec = &ctx.cluster.spec;
    let mut cluster_spec = json!({
        "clusterNetwork": {
            "pods": {"cidrBlocks": spec.network.pod_cidrs},
            "services": {"cidrBlocks": spec.network.service_cidrs},
        },
        "controlPlaneRef": reference(CAPI_CONTROL_PLANE, "KubeadmControlPlane", &control_plane_name(ctx.name)),
        "infrastructureRef": reference(kinds.api_version, kinds.cluster, ctx.name),
    });
    if spec.paused == Some(true) {
        cluster_spec["paused"] = true.into();
    }
    object(CAPI_CORE, "Cluster", meta.of(ctx.name, &[]), cluster_spec)
}
