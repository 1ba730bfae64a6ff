use super::*;
use api::v1beta1::{RolloutClusterState, RolloutPhase};
use api::v1beta1::{RolloutTarget, Wave};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn wave(name: &str, ring: &str, max: i32, soak: i64) -> Wave {
    Wave {
        name: name.into(),
        selector: LabelSelector {
            match_labels: Some([("ring".to_string(), ring.to_string())].into()),
            ..Default::default()
        },
        max_concurrent: Some(max),
        soak_seconds: Some(soak),
    }
}

fn spec() -> StackRolloutSpec {
    StackRolloutSpec {
        provider_class_name: None,
        cluster_stack: RolloutTarget {
            name: "scs".into(),
            version: "1.0.1".into(),
        },
        waves: vec![
            wave("canary", "0", 1, 60),
            wave("early", "1", 2, 60),
            wave("rest", "2", 2, 0),
        ],
        cluster_timeout_seconds: Some(300),
        min_ready_seconds: Some(0),
        paused: None,
    }
}

/// Six clusters, two per ring, on 1.0.0, and one of another ring.
fn fleet() -> Vec<ClusterView> {
    let mut all: Vec<ClusterView> = (0..6)
        .map(|i| ClusterView {
            name: format!("c{i}"),
            labels: [("ring".to_string(), (i / 2).to_string())].into(),
            stack: "scs".into(),
            wanted: Some("1.0.0".into()),
            running: Some("1.0.0".into()),
            healthy: true,
            failing: None,
        })
        .collect();
    all.push(ClusterView {
        name: "outsider".into(),
        labels: [("ring".to_string(), "9".to_string())].into(),
        ..all[0].clone()
    });
    all
}

/// What the operators do with a started cluster: it asks for the release and, unless held,
/// runs it healthy.
fn upgrade(fleet: &mut [ClusterView], names: &[String], held: &[&str]) {
    for c in fleet.iter_mut().filter(|c| names.contains(&c.name)) {
        c.wanted = Some("1.0.1".into());
    }
    for c in fleet
        .iter_mut()
        .filter(|c| c.wanted.as_deref() == Some("1.0.1"))
    {
        if held.contains(&c.name.as_str()) {
            c.healthy = false;
            c.failing = Some(("ControlPlaneReady".into(), "1 of 3 machines ready".into()));
        } else {
            c.running = Some("1.0.1".into());
            c.healthy = true;
            c.failing = None;
        }
    }
}

#[test]
fn waves_go_in_order_soak_halt_on_a_held_cluster_and_resume_to_completion() {
    let spec = spec();
    let mut fleet = fleet();
    let mut status = StackRolloutStatus::default();
    let mut go = |fleet: &mut Vec<ClusterView>, at: i64, resumed: Option<i64>, held: &[&str]| {
        let s = step(&spec, &status, fleet, resumed.map(t), t(at));
        upgrade(fleet, &s.start, held);
        status = s.status.clone();
        s
    };

    let s = go(&mut fleet, 0, None, &[]);
    assert_eq!(s.start, ["c0"], "the canary wave, one at a time");
    let s = go(&mut fleet, 1, None, &[]);
    assert_eq!(s.start, ["c1"]);
    let s = go(&mut fleet, 2, None, &[]);
    assert!(s.start.is_empty(), "the canary wave soaks");
    assert_eq!(
        s.status.phase.as_deref(),
        Some(RolloutPhase::Soaking.as_str())
    );
    assert_eq!(
        s.requeue_at,
        Some(t(62)),
        "looked at again when the soak ends"
    );
    let s = go(&mut fleet, 62, None, &[]);
    assert_eq!(s.start, ["c2", "c3"], "the second wave, two at a time");

    // c3 is held not ready: the rollout halts on it after its time, naming its condition.
    let mut fleet2 = fleet.clone();
    for c in fleet2.iter_mut().filter(|c| c.name == "c3") {
        c.running = Some("1.0.0".into());
        c.healthy = false;
        c.failing = Some(("ControlPlaneReady".into(), "1 of 3 machines ready".into()));
    }
    let s = go(&mut fleet2, 100, None, &["c3"]);
    assert_eq!(
        s.status.phase.as_deref(),
        Some(RolloutPhase::Progressing.as_str())
    );
    let s = go(&mut fleet2, 400, None, &["c3"]);
    let halt = s.status.halted.clone().expect("halted");
    assert_eq!(
        (halt.cluster.as_str(), halt.condition.as_deref()),
        ("c3", Some("ControlPlaneReady"))
    );
    assert!(
        halt.message.contains("1 of 3 machines ready"),
        "{}",
        halt.message
    );
    let s = go(&mut fleet2, 500, None, &["c3"]);
    assert_eq!(
        s.status.phase.as_deref(),
        Some(RolloutPhase::Halted.as_str())
    );
    assert!(s.start.is_empty());
    assert!(
        s.status
            .clusters
            .iter()
            .filter(|c| c.wave == 2)
            .all(|c| c.state == RolloutClusterState::Pending.as_str()),
        "the third wave is untouched"
    );

    // Fixed and resumed: the rollout completes; the outsider never moves.
    upgrade(&mut fleet2, &[], &[]);
    let s = go(&mut fleet2, 600, Some(550), &[]);
    assert!(s.status.halted.is_none());
    assert!(s.events.iter().any(|(r, _)| r == "Resumed"));
    assert!(s.start.is_empty(), "the second wave soaks first");
    let s = go(&mut fleet2, 700, Some(550), &[]);
    assert_eq!(s.start, ["c4", "c5"]);
    let s = go(&mut fleet2, 701, Some(550), &[]);
    assert_eq!(
        s.status.phase.as_deref(),
        Some(RolloutPhase::Completed.as_str())
    );
    assert_eq!(s.status.clusters.len(), 6);
    let outsider = fleet2.iter().find(|c| c.name == "outsider").unwrap();
    assert_eq!(outsider.wanted.as_deref(), Some("1.0.0"));
}

#[test]
fn a_restarted_planner_goes_on_from_the_status_and_pause_starts_nothing() {
    let spec = spec();
    let mut fleet = fleet();
    let first = step(&spec, &StackRolloutStatus::default(), &fleet, None, t(0));
    upgrade(&mut fleet, &first.start, &["c0"]);
    // The same status read back later (a new operator process): c0 keeps its start time.
    let later = step(&spec, &first.status, &fleet, None, t(10));
    assert_eq!(later.status.clusters[0].started_at, Some(Time(t(0))));
    assert!(
        later.start.is_empty(),
        "one at a time: c0 is still upgrading"
    );
    let paused = StackRolloutSpec {
        paused: Some(true),
        ..spec.clone()
    };
    upgrade(&mut fleet, &[], &[]);
    let s = step(&paused, &later.status, &fleet, None, t(20));
    assert_eq!(
        s.status.phase.as_deref(),
        Some(RolloutPhase::Paused.as_str())
    );
    assert!(s.start.is_empty());
}

#[test]
fn a_done_cluster_stays_done_and_one_moved_past_the_release_counts_as_done() {
    let spec = spec();
    let mut fleet = fleet();
    let first = step(&spec, &StackRolloutStatus::default(), &fleet, None, t(0));
    upgrade(&mut fleet, &first.start, &[]);
    let second = step(&spec, &first.status, &fleet, None, t(1));
    assert_eq!(
        second.status.clusters[0].state,
        RolloutClusterState::Done.as_str()
    );
    // c0 blips (not ready) long after: it stays done, nothing halts.
    fleet[0].healthy = false;
    fleet[1].wanted = Some("1.0.2".into());
    let later = step(&spec, &second.status, &fleet, None, t(4000));
    assert!(later.status.halted.is_none());
    let state = |n: &str| {
        later
            .status
            .clusters
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.state.clone())
    };
    assert_eq!(
        state("c0").as_deref(),
        Some(RolloutClusterState::Done.as_str())
    );
    assert_eq!(
        state("c1").as_deref(),
        Some(RolloutClusterState::Done.as_str()),
        "moved past by hand"
    );
    assert_eq!(
        later.status.phase.as_deref(),
        Some(RolloutPhase::Soaking.as_str())
    );
}

#[test]
fn a_cluster_counts_as_done_only_after_min_ready_seconds_in_a_row() {
    let spec = StackRolloutSpec {
        min_ready_seconds: Some(10),
        ..spec()
    };
    let mut fleet = fleet();
    let first = step(&spec, &StackRolloutStatus::default(), &fleet, None, t(0));
    upgrade(&mut fleet, &first.start, &[]);
    // Ready on the release at once (a status from before Cluster API reacted): not yet.
    let s1 = step(&spec, &first.status, &fleet, None, t(1));
    assert_eq!(
        s1.status.clusters[0].state,
        RolloutClusterState::Upgrading.as_str()
    );
    assert_eq!(s1.requeue_at, Some(t(11)));
    // Then not ready: the count starts again.
    fleet[0].healthy = false;
    let s2 = step(&spec, &s1.status, &fleet, None, t(5));
    assert_eq!(s2.status.clusters[0].ready_since, None);
    fleet[0].healthy = true;
    let s3 = step(&spec, &s2.status, &fleet, None, t(6));
    let s4 = step(&spec, &s3.status, &fleet, None, t(15));
    assert_eq!(
        s4.status.clusters[0].state,
        RolloutClusterState::Upgrading.as_str(),
        "5 s of 10"
    );
    let s5 = step(&spec, &s4.status, &fleet, None, t(16));
    assert_eq!(
        s5.status.clusters[0].state,
        RolloutClusterState::Done.as_str()
    );
    assert_eq!(s5.start, ["c1"]);
}

#[test]
fn selectors_match_labels_and_expressions() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    let labels: BTreeMap<String, String> = [("tier".into(), "gold".into())].into();
    let expr = |op: &str, values: &[&str]| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }]),
        ..Default::default()
    };
    assert!(matches(&LabelSelector::default(), &labels));
    assert!(matches(&expr("In", &["gold", "silver"]), &labels));
    assert!(!matches(&expr("NotIn", &["gold"]), &labels));
    assert!(matches(&expr("Exists", &[]), &labels));
    assert!(!matches(&expr("DoesNotExist", &[]), &labels));
    assert!(
        !matches(&expr("Near", &[]), &labels),
        "unknown operators match nothing"
    );
}
