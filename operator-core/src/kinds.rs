//! The one table of the kinds the core writes for a cluster. Each entry says how its objects
//! are named, which apply wave they go in, and whether the operator watches them; the rest of
//! the core derives from [`table`]: the CRDs the operator waits for, the caches and the
//! reconciles their changes wake, what is observed of a cluster, the apply waves, the
//! removal of a dropped pool's objects, the delete order and the objects remembered as
//! applied at start. Adding a kind is one entry: here for a Cluster API kind of the core, in
//! [`crate::Provider::EXTRA_KINDS`] for a provider's own.

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

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

/// The kinds of a provider's infrastructure objects, declared once by the provider
/// ([`crate::Provider::KINDS`]): the core renders, watches, grants and cleans up exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfrastructureKinds {
    /// Their `apiVersion`, such as `infrastructure.cluster.x-k8s.io/v1beta2`.
    pub api_version: &'static str,
    /// The infrastructure cluster kind, such as `DevCluster`.
    pub cluster: &'static str,
    /// The machine template kind, such as `DevMachineTemplate`.
    pub machine_template: &'static str,
}

/// The API resource of `kind` in `api_version` (plural: lowercase kind + "s", which holds
/// for every kind this operator writes).
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_lowercase()))
}

/// How the objects of a kind are named, and so how many a cluster has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// One, named as the cluster.
    Cluster,
    /// One, named `<cluster>-<suffix>`.
    Suffix(&'static str),
    /// One per worker pool, named `<cluster>-<pool>`.
    Pool,
    /// One, named `<cluster>-<suffix>-<hash of its content>`: immutable, a change makes a new
    /// one and moves the reference.
    Content(&'static str),
    /// One per worker pool, named `<cluster>-<pool>-<hash of its content>`.
    PoolContent,
}

/// When an object is applied: what others refer to goes in the first wave, what refers to
/// them in the second, so Cluster API never sees a dangling reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    /// Referred to (templates, the infrastructure cluster).
    Referenced,
    /// Refers to others (the control plane, the machine deployments, the `Cluster`).
    Referrer,
}

/// One kind the core writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Its `apiVersion`.
    pub api_version: &'static str,
    /// Its kind.
    pub kind: &'static str,
    /// How its objects are named.
    pub naming: Naming,
    /// Its apply wave.
    pub wave: Wave,
    /// Watched: its objects are cached (what the status reads), a change to one wakes its
    /// cluster's reconcile, and an edit to its spec is undone at once. Only a kind named
    /// without a content hash can be (its name is known before the build).
    pub watched: bool,
}

impl Kind {
    /// Whether a cluster has one object of this kind per worker pool.
    pub fn per_pool(&self) -> bool {
        matches!(self.naming, Naming::Pool | Naming::PoolContent)
    }

    /// Its API resource.
    pub fn resource(&self) -> ApiResource {
        resource(self.api_version, self.kind)
    }

    /// The name of the object of cluster `cluster` (and `pool`, for a kind per pool), when it
    /// does not depend on the content.
    pub fn name(&self, cluster: &str, pool: Option<&str>) -> Option<String> {
        match (self.naming, pool) {
            (Naming::Cluster, _) => Some(cluster.to_string()),
            (Naming::Suffix(suffix), _) => Some(format!("{cluster}-{suffix}")),
            (Naming::Pool, Some(pool)) => Some(format!("{cluster}-{pool}")),
            _ => None,
        }
    }

    /// Whether `obj` is of this kind.
    pub fn is(&self, obj: &Value) -> bool {
        obj["kind"] == self.kind && obj["apiVersion"] == self.api_version
    }

    /// The name of `obj`'s CRD.
    pub fn crd(&self) -> String {
        let ar = self.resource();
        format!("{}.{}", ar.plural, ar.group)
    }
}

/// The Cluster API `Cluster`: deleted first, and waited for (Cluster API tears the machines
/// down behind it).
pub const CLUSTER: Kind = Kind {
    api_version: CAPI_CORE,
    kind: "Cluster",
    naming: Naming::Cluster,
    wave: Wave::Referrer,
    watched: true,
};
/// A worker pool's `MachineDeployment`.
pub const MACHINE_DEPLOYMENT: Kind = Kind {
    api_version: CAPI_CORE,
    kind: "MachineDeployment",
    naming: Naming::Pool,
    wave: Wave::Referrer,
    watched: true,
};
/// The `KubeadmControlPlane`.
pub const CONTROL_PLANE: Kind = Kind {
    api_version: CAPI_CONTROL_PLANE,
    kind: "KubeadmControlPlane",
    naming: Naming::Suffix("control-plane"),
    wave: Wave::Referrer,
    watched: true,
};
/// A worker pool's `KubeadmConfigTemplate`.
pub const BOOTSTRAP_TEMPLATE: Kind = Kind {
    api_version: CAPI_BOOTSTRAP,
    kind: "KubeadmConfigTemplate",
    naming: Naming::PoolContent,
    wave: Wave::Referenced,
    watched: false,
};

/// The provider's machine template kind (the control plane's and each pool's).
pub fn machine_template(infra: &InfrastructureKinds) -> Kind {
    Kind {
        api_version: infra.api_version,
        kind: infra.machine_template,
        naming: Naming::PoolContent,
        wave: Wave::Referenced,
        watched: false,
    }
}

/// The provider's infrastructure cluster kind.
pub fn infrastructure_cluster(infra: &InfrastructureKinds) -> Kind {
    Kind {
        api_version: infra.api_version,
        kind: infra.cluster,
        naming: Naming::Cluster,
        wave: Wave::Referenced,
        watched: false,
    }
}

/// Every kind the core writes for a cluster of a provider with infrastructure kinds `infra`
/// and its own `extra` kinds, in delete order: the `Cluster`, what refers to others, then what
/// they refer to.
pub fn table(infra: &InfrastructureKinds, extra: &[Kind]) -> Vec<Kind> {
    let wave = |w: Wave| extra.iter().copied().filter(move |k| k.wave == w);
    let mut all = vec![CLUSTER];
    all.extend(wave(Wave::Referrer));
    all.extend([
        MACHINE_DEPLOYMENT,
        CONTROL_PLANE,
        BOOTSTRAP_TEMPLATE,
        machine_template(infra),
        infrastructure_cluster(infra),
    ]);
    all.extend(wave(Wave::Referenced));
    all
}

/// The kind of `obj` in `kinds`.
pub fn find<'a>(kinds: &'a [Kind], obj: &Value) -> Option<&'a Kind> {
    kinds.iter().find(|k| k.is(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFRA: InfrastructureKinds = InfrastructureKinds {
        api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
        cluster: "DevCluster",
        machine_template: "DevMachineTemplate",
    };

    #[test]
    fn only_kinds_named_without_a_hash_are_watched_and_the_cluster_goes_first() {
        let health = Kind {
            api_version: CAPI_CORE,
            kind: "MachineHealthCheck",
            naming: Naming::Pool,
            wave: Wave::Referrer,
            watched: true,
        };
        let all = table(&INFRA, &[health]);
        assert_eq!(all[0], CLUSTER);
        assert_eq!(
            all[1], health,
            "a referrer is deleted before what it refers to"
        );
        assert_eq!(all.last().map(|k| k.kind), Some("DevCluster"));
        for k in &all {
            if k.watched {
                assert!(k.name("c", Some("p")).is_some(), "{k:?}");
            }
        }
        assert_eq!(
            CONTROL_PLANE.name("c1", None).as_deref(),
            Some("c1-control-plane")
        );
        assert_eq!(
            MACHINE_DEPLOYMENT.name("c1", Some("md-0")).as_deref(),
            Some("c1-md-0")
        );
        assert_eq!(BOOTSTRAP_TEMPLATE.name("c1", Some("md-0")), None);
    }
}
