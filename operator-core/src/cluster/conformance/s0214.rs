//! scs-0214 v2, node distribution: the control plane runs on several hosts, spread over
//! failure zones where the infrastructure has them (Cluster API places control plane
//! machines over the failure domains the infrastructure reports), and every node carries
//! `topology.kubernetes.io/region` and `topology.kubernetes.io/zone`, so users can see the
//! distribution. Hosts are told apart by `topology.scs.community/host-id` where the provider
//! sets it, else by zone.

use std::collections::BTreeSet;

use super::{Evidence, Finding, Outcome};

/// The standard's id.
pub const ID: &str = "scs-0214-v2";

const REGION: &str = "topology.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "topology.scs.community/host-id";

pub(super) fn check(e: &Evidence<'_>) -> Finding {
    if e.control_plane_replicas < 2 {
        return Finding::new(
            ID,
            Outcome::Fail,
            format!(
                "{} control plane node cannot be spread over hosts: use 3 (spec.controlPlane.replicas)",
                e.control_plane_replicas
            ),
        );
    }
    let workload = match &e.workload {
        Ok(w) => w,
        Err(why) => return Finding::new(ID, Outcome::Unknown, why.clone()),
    };
    if workload.nodes.is_empty() {
        return Finding::new(
            ID,
            Outcome::Unknown,
            "no Node has registered in the workload cluster yet",
        );
    }
    for node in &workload.nodes {
        for label in [REGION, ZONE] {
            if node.labels.get(label).is_none_or(String::is_empty) {
                return Finding::new(
                    ID,
                    Outcome::Fail,
                    format!("Node {} has no {label} label", node.name),
                );
            }
        }
    }
    let control: Vec<_> = workload.nodes.iter().filter(|n| n.control_plane).collect();
    if control.len() < 2 {
        return Finding::new(
            ID,
            Outcome::Unknown,
            format!(
                "{} of {} control plane nodes have registered",
                control.len(),
                e.control_plane_replicas
            ),
        );
    }
    let zones: BTreeSet<&str> = control
        .iter()
        .filter_map(|n| n.labels.get(ZONE))
        .map(String::as_str)
        .collect();
    let hosts: BTreeSet<&str> = control
        .iter()
        .filter_map(|n| n.labels.get(HOST))
        .map(String::as_str)
        .collect();
    if zones.len() >= 2 {
        Finding::new(
            ID,
            Outcome::Pass,
            format!(
                "{} control plane nodes over zones {}; every node labelled with region and zone",
                control.len(),
                zones.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    } else if hosts.len() == control.len() {
        Finding::new(
            ID,
            Outcome::Pass,
            format!(
                "{} control plane nodes on distinct hosts ({HOST}) in one zone; every node labelled with region and zone",
                control.len()
            ),
        )
    } else {
        Finding::new(
            ID,
            Outcome::Fail,
            format!(
                "the {} control plane nodes are all in zone {} and no {HOST} label shows distinct hosts",
                control.len(),
                zones.into_iter().next().unwrap_or_default()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::conformance::{NodeFacts, Workload};

    fn node(name: &str, cp: bool, zone: Option<&str>) -> NodeFacts {
        let mut labels: std::collections::BTreeMap<String, String> =
            [(REGION.to_string(), "eu".to_string())].into();
        if let Some(z) = zone {
            labels.insert(ZONE.into(), z.into());
        }
        NodeFacts {
            name: name.into(),
            control_plane: cp,
            labels,
        }
    }

    fn verdict(replicas: i32, nodes: Vec<NodeFacts>) -> Finding {
        let release = kaas_stack::builtin::find("docker", "scs", "1.0.0")
            .unwrap()
            .unwrap();
        let workload = Workload {
            nodes,
            ..Workload::default()
        };
        let calendar = Default::default();
        check(&Evidence {
            today: "2026-12-04".parse().unwrap(),
            release: &release,
            kubernetes_version: None,
            calendar: &calendar,
            offered: &[],
            control_plane_replicas: replicas,
            control_plane: None,
            bootstraps: Vec::new(),
            workload: Ok(&workload),
        })
    }

    #[test]
    fn zones_labels_and_the_number_of_control_plane_nodes_decide() {
        let spread = vec![
            node("cp-0", true, Some("a")),
            node("cp-1", true, Some("b")),
            node("cp-2", true, Some("c")),
            node("w-0", false, Some("a")),
        ];
        assert_eq!(verdict(3, spread.clone()).outcome, Outcome::Pass);
        let mut unlabelled = spread.clone();
        unlabelled[3] = node("w-0", false, None);
        let f = verdict(3, unlabelled);
        assert_eq!(
            (f.outcome, f.message.as_str()),
            (
                Outcome::Fail,
                "Node w-0 has no topology.kubernetes.io/zone label"
            )
        );
        let one_zone = vec![node("cp-0", true, Some("a")), node("cp-1", true, Some("a"))];
        let f = verdict(2, one_zone.clone());
        assert_eq!(f.outcome, Outcome::Fail, "{f:?}");
        let mut hosts = one_zone;
        for (i, n) in hosts.iter_mut().enumerate() {
            n.labels.insert(HOST.into(), format!("h{i}"));
        }
        assert_eq!(verdict(2, hosts).outcome, Outcome::Pass);
        let f = verdict(1, spread);
        assert!(f.message.contains("use 3"), "{f:?}");
        assert_eq!(verdict(3, Vec::new()).outcome, Outcome::Unknown);
    }
}
