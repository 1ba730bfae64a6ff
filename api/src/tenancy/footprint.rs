//! What a cluster uses, counted: its nodes and, by its class's machine type catalogue, their
//! vCPUs, memory and GPUs ([`Footprint`]); the resources a policy limits ([`Resource`]); memory
//! quantities as policies and catalogues write them.

use crate::Catalog;
pub use crate::previous::PoolSize;
pub use crate::schema::QUANTITY;
use crate::v1beta1::{
    ControlPlane, DEFAULT_CONTROL_PLANE_REPLICAS, KaasCluster, ProviderClass, ResourceUsage,
    TenantPolicy,
};

/// The memory of `quantity` in MiB, rounded up; None when it is not a [`QUANTITY`].
pub fn memory_mib(quantity: &str) -> Option<i64> {
    let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &quantity[digits.len()..];
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let n: i128 = digits.parse().ok()?;
    let bytes: i128 = match suffix {
        "" => n,
        "Ki" => n << 10,
        "Mi" => n << 20,
        "Gi" => n << 30,
        "Ti" => n << 40,
        "Pi" => n << 50,
        "k" => n * 1_000,
        "M" => n * 1_000_000,
        "G" => n * 1_000_000_000,
        "T" => n * 1_000_000_000_000,
        "P" => n * 1_000_000_000_000_000,
        _ => return None,
    };
    i64::try_from((bytes + (1 << 20) - 1) >> 20).ok()
}

/// `mib` as a quantity: in `Gi` when whole, else in `Mi`.
pub fn memory_quantity(mib: i64) -> String {
    match mib {
        0 => "0".into(),
        m if m % 1024 == 0 => format!("{}Gi", m / 1024),
        m => format!("{m}Mi"),
    }
}

/// What one cluster uses, or a change adds (then negative parts are decreases).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Clusters.
    pub clusters: i64,
    /// Control plane nodes.
    pub control_plane_nodes: i64,
    /// Worker nodes.
    pub worker_nodes: i64,
    /// vCPUs.
    pub cpu: i64,
    /// Memory in MiB.
    pub memory_mib: i64,
    /// GPUs.
    pub gpus: i64,
}

impl std::ops::Add for Footprint {
    type Output = Footprint;
    fn add(self, o: Footprint) -> Footprint {
        Footprint {
            clusters: self.clusters.saturating_add(o.clusters),
            control_plane_nodes: self
                .control_plane_nodes
                .saturating_add(o.control_plane_nodes),
            worker_nodes: self.worker_nodes.saturating_add(o.worker_nodes),
            cpu: self.cpu.saturating_add(o.cpu),
            memory_mib: self.memory_mib.saturating_add(o.memory_mib),
            gpus: self.gpus.saturating_add(o.gpus),
        }
    }
}

impl std::ops::Sub for Footprint {
    type Output = Footprint;
    fn sub(self, o: Footprint) -> Footprint {
        Footprint {
            clusters: self.clusters.saturating_sub(o.clusters),
            control_plane_nodes: self
                .control_plane_nodes
                .saturating_sub(o.control_plane_nodes),
            worker_nodes: self.worker_nodes.saturating_sub(o.worker_nodes),
            cpu: self.cpu.saturating_sub(o.cpu),
            memory_mib: self.memory_mib.saturating_sub(o.memory_mib),
            gpus: self.gpus.saturating_sub(o.gpus),
        }
    }
}

impl Footprint {
    /// The status form.
    pub fn usage(&self) -> ResourceUsage {
        ResourceUsage {
            clusters: self.clusters,
            control_plane_nodes: self.control_plane_nodes,
            worker_nodes: self.worker_nodes,
            cpu: self.cpu,
            memory: memory_quantity(self.memory_mib),
            gpus: self.gpus,
        }
    }

    /// From the status form (memory that does not parse reads as none).
    pub fn of_usage(u: &ResourceUsage) -> Footprint {
        let memory_mib = match u.memory.strip_prefix('-') {
            Some(m) => memory_mib(m).map(|v| -v),
            None => memory_mib(&u.memory),
        };
        Footprint {
            clusters: u.clusters,
            control_plane_nodes: u.control_plane_nodes,
            worker_nodes: u.worker_nodes,
            cpu: u.cpu,
            memory_mib: memory_mib.unwrap_or(0),
            gpus: u.gpus,
        }
    }

    /// Only what grows (decreases as zero).
    pub fn growth(&self) -> Footprint {
        Footprint {
            clusters: self.clusters.max(0),
            control_plane_nodes: self.control_plane_nodes.max(0),
            worker_nodes: self.worker_nodes.max(0),
            cpu: self.cpu.max(0),
            memory_mib: self.memory_mib.max(0),
            gpus: self.gpus.max(0),
        }
    }

    /// Whether nothing grows.
    pub fn grows_nothing(&self) -> bool {
        self.parts().iter().all(|(_, v)| *v <= 0)
    }

    fn parts(&self) -> [(Resource, i64); 6] {
        [
            (Resource::Clusters, self.clusters),
            (Resource::ControlPlaneNodes, self.control_plane_nodes),
            (Resource::WorkerNodes, self.worker_nodes),
            (Resource::Cpu, self.cpu),
            (Resource::Memory, self.memory_mib),
            (Resource::Gpus, self.gpus),
        ]
    }
}

/// A limited resource: its name in messages, metrics and the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// `limits.clusters`.
    Clusters,
    /// `limits.controlPlaneNodes`.
    ControlPlaneNodes,
    /// `limits.workerNodes`.
    WorkerNodes,
    /// `limits.cpu`.
    Cpu,
    /// `limits.memory`.
    Memory,
    /// `limits.gpus`.
    Gpus,
}

impl Resource {
    /// Every resource, in the order messages and metrics list them.
    pub const ALL: [Resource; 6] = [
        Resource::Clusters,
        Resource::ControlPlaneNodes,
        Resource::WorkerNodes,
        Resource::Cpu,
        Resource::Memory,
        Resource::Gpus,
    ];

    /// The policy field (`limits.<field>`) and metric label.
    pub fn field(self) -> &'static str {
        match self {
            Resource::Clusters => "clusters",
            Resource::ControlPlaneNodes => "controlPlaneNodes",
            Resource::WorkerNodes => "workerNodes",
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Gpus => "gpus",
        }
    }

    /// How a message counts it ("vCPUs").
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Clusters => "clusters",
            Resource::ControlPlaneNodes => "control plane nodes",
            Resource::WorkerNodes => "worker nodes",
            Resource::Cpu => "vCPUs",
            Resource::Memory => "of memory",
            Resource::Gpus => "GPUs",
        }
    }

    /// `v` of it as a message shows it (memory as a quantity).
    pub fn amount(self, v: i64) -> String {
        match self {
            Resource::Memory => memory_quantity(v),
            _ => v.to_string(),
        }
    }

    /// The amount of this resource in `f`.
    pub fn of(self, f: &Footprint) -> i64 {
        f.parts()
            .iter()
            .find(|(r, _)| *r == self)
            .map_or(0, |(_, v)| *v)
    }

    /// Whether it is counted from machine types (vCPUs, memory, GPUs), which a class's
    /// catalogue may not list.
    pub fn by_machine_type(self) -> bool {
        matches!(self, Resource::Cpu | Resource::Memory | Resource::Gpus)
    }

    /// Sets this resource of `f` to `v`.
    pub fn set(self, f: &mut Footprint, v: i64) {
        match self {
            Resource::Clusters => f.clusters = v,
            Resource::ControlPlaneNodes => f.control_plane_nodes = v,
            Resource::WorkerNodes => f.worker_nodes = v,
            Resource::Cpu => f.cpu = v,
            Resource::Memory => f.memory_mib = v,
            Resource::Gpus => f.gpus = v,
        }
    }

    /// The policy's limit of this resource (memory in MiB); None: unlimited.
    pub fn limit(self, policy: &TenantPolicy) -> Option<i64> {
        let l = &policy.spec.limits;
        match self {
            Resource::Clusters => l.clusters,
            Resource::ControlPlaneNodes => l.control_plane_nodes,
            Resource::WorkerNodes => l.worker_nodes,
            Resource::Cpu => l.cpu,
            Resource::Memory => l.memory.as_deref().and_then(memory_mib),
            Resource::Gpus => l.gpus,
        }
    }
}

/// What a cluster uses, and the machine types it names that its class's catalogue does not
/// list (their vCPUs, memory and GPUs are not counted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sized {
    /// What it uses.
    pub footprint: Footprint,
    /// Machine types not in the class's catalogue, each with where it is named.
    pub uncounted: Vec<(String, String)>,
}

/// What a cluster with `control_plane` and `pools` of `class` uses.
pub fn footprint(
    control_plane: &ControlPlane,
    pools: &[PoolSize],
    class: Option<&ProviderClass>,
) -> Sized {
    let catalogue = class
        .map(|c| c.spec.machine_types.as_slice())
        .unwrap_or(&[]);
    let mut out = Sized::default();
    out.footprint.clusters = 1;
    let mut add = |field: String, machine_type: Option<&str>, nodes: i64| {
        let found = match machine_type {
            Some(name) => catalogue.iter().find(|m| m.name == name),
            None => catalogue.iter().find(|m| m.default == Some(true)),
        };
        match found {
            Some(m) => {
                let f = &mut out.footprint;
                f.cpu = f.cpu.saturating_add(m.cpu.saturating_mul(nodes));
                let mib = memory_mib(&m.memory).unwrap_or(0);
                f.memory_mib = f.memory_mib.saturating_add(mib.saturating_mul(nodes));
                f.gpus = f
                    .gpus
                    .saturating_add(m.gpus.unwrap_or(0).saturating_mul(nodes));
            }
            None if nodes > 0 => out.uncounted.push((
                field,
                machine_type.unwrap_or("(the stack's default)").to_string(),
            )),
            None => {}
        }
    };
    let cp = i64::from(
        control_plane
            .replicas
            .unwrap_or(DEFAULT_CONTROL_PLANE_REPLICAS)
            .max(0),
    );
    add(
        "spec.controlPlane.machineType".into(),
        control_plane.machine_type.as_deref(),
        cp,
    );
    let mut workers = 0i64;
    for (i, pool) in pools.iter().enumerate() {
        let nodes = pool.nodes();
        workers = workers.saturating_add(nodes);
        add(
            format!("spec.workers[{i}].machineType"),
            Some(&pool.machine_type),
            nodes,
        );
    }
    out.footprint.control_plane_nodes = cp;
    out.footprint.worker_nodes = workers;
    out
}

/// What a stored cluster uses, by its class in `catalog`.
pub fn cluster_footprint(cluster: &KaasCluster, catalog: &Catalog) -> Sized {
    let class = catalog.class_for(cluster.spec.provider_class_name.as_deref());
    footprint(
        &cluster.spec.control_plane,
        &PoolSize::of(&cluster.spec),
        class,
    )
}
