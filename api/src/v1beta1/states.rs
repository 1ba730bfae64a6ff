//! The named states of a status: a `KaasCluster`'s phase and condition types, a
//! `StackRollout`'s phase and the state of each of its clusters. The
//! status keeps them as strings (the wire format of every served version, and what `kubectl`
//! prints); code reads and writes them through these enums, never by spelling the string.

use super::KaasClusterStatus;

states! {
    /// A cluster's lifecycle phase (`status.phase`).
    ClusterPhase {
        /// Nothing of Cluster API exists yet.
        Pending = "Pending",
        /// Cluster API builds it.
        Provisioning = "Provisioning",
        /// Every condition holds.
        Ready = "Ready",
        /// A version change rolls out.
        Upgrading = "Upgrading",
        /// The spec is refused.
        Failed = "Failed",
        /// It is being deleted.
        Deleting = "Deleting",
    }
}

states! {
    /// A condition type of a cluster's status.
    ClusterCondition {
        /// Everything below is true.
        Ready = "Ready",
        /// The stack release and Kubernetes version were found.
        StackResolved = "StackResolved",
        /// The node images exist.
        NodeImagesReady = "NodeImagesReady",
        /// The provider's infrastructure (networks, load balancer) is provisioned.
        InfrastructureReady = "InfrastructureReady",
        /// Every control plane machine is ready.
        ControlPlaneReady = "ControlPlaneReady",
        /// Every worker pool has its ready replicas.
        WorkersReady = "WorkersReady",
        /// The stack's add-ons are applied and healthy.
        AddonsReady = "AddonsReady",
        /// A version change is rolling out.
        Upgrading = "Upgrading",
        /// The workload cluster has every component of its stack's base and the application
        /// surface (only for a stack built on a base).
        Compliant = "Compliant",
        /// Every SCS standard checked passes (`status.standards` has each).
        StandardsCompliant = "StandardsCompliant",
        /// Only where a `TenantPolicy` governs the namespace: its namespaces use no more than
        /// it allows (false: it was lowered below their usage; growth is refused).
        WithinTenantPolicy = "WithinTenantPolicy",
    }
}

states! {
    /// A `StackRollout`'s phase (`status.phase`).
    RolloutPhase {
        /// Clusters are being started or upgraded.
        Progressing = "Progressing",
        /// A wave is done; the next waits for the soak to end.
        Soaking = "Soaking",
        /// `spec.paused`: no cluster is started.
        Paused = "Paused",
        /// A cluster took longer than its time: nothing is started until a resume.
        Halted = "Halted",
        /// Every selected cluster is done.
        Completed = "Completed",
        /// The spec breaks a rule (an Event names each field): nothing moves.
        Invalid = "Invalid",
    }
}

states! {
    /// Where one cluster of a `StackRollout` stands (`status.clusters[].state`).
    RolloutClusterState {
        /// Not started.
        Pending = "Pending",
        /// Asks for the release, not yet Ready and Compliant on it.
        Upgrading = "Upgrading",
        /// On the release, Ready and Compliant.
        Done = "Done",
    }
}

impl KaasClusterStatus {
    /// The phase, when it is one this version knows.
    pub fn current_phase(&self) -> Option<ClusterPhase> {
        self.phase.as_deref().and_then(ClusterPhase::parse)
    }

    /// The condition of `type_`, if the status has it.
    pub fn condition(
        &self,
        type_: ClusterCondition,
    ) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        self.conditions.iter().find(|c| c.type_ == type_.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_back_from_its_string_and_nothing_else_does() {
        for p in ClusterPhase::ALL {
            assert_eq!(ClusterPhase::parse(p.as_str()), Some(*p));
        }
        for c in ClusterCondition::ALL {
            assert_eq!(ClusterCondition::parse(&c.to_string()), Some(*c));
        }
        assert_eq!(ClusterPhase::parse("ready"), None);
        let status = KaasClusterStatus {
            phase: Some("Rebooting".into()),
            ..Default::default()
        };
        assert_eq!(status.current_phase(), None, "a phase of a later version");
    }
}
