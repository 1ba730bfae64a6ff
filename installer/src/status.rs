//! A `KaasOperator`'s conditions from what one reconcile found, pure: `PreflightPassed`,
//! `Installed`, `Available`, `ClusterAPIReady` (when Cluster API is asked for) and `Ready`, with
//! transition times kept while a status does not change. The Events are the transitions.

use api::install::v1alpha1::OperatorCondition;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// One condition as found: status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `True` or `False`.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl Found {
    /// A condition that holds.
    pub fn ok(reason: &str, message: impl Into<String>) -> Self {
        Found {
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn not(reason: &str, message: impl Into<String>) -> Self {
        Found {
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether `conditions` hold `Ready`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == OperatorCondition::Ready.as_str() && c.status == "True")
}

/// Whether the operator's Deployment is available at its current spec: the controller saw
/// this generation and every desired replica is updated and available.
pub fn available(deployment: Option<&Deployment>) -> Found {
    let Some(d) = deployment else {
        return Found::not("NotInstalled", "the operator's Deployment does not exist");
    };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let seen = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.available_replicas.unwrap_or(0);
    let message = format!("{ready}/{want} replicas available, {updated}/{want} updated");
    if seen && updated >= want && ready >= want {
        Found::ok("DeploymentAvailable", message)
    } else if !seen {
        Found::not(
            "RolloutPending",
            "the Deployment's new spec is not rolled out yet",
        )
    } else {
        Found::not("RollingOut", message)
    }
}

/// The conditions in order, `Ready` last: `Ready` holds when every other one does.
pub fn conditions(
    found: Vec<(OperatorCondition, Found)>,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let not_ready: Vec<&str> = found
        .iter()
        .filter(|(_, f)| !f.ok)
        .map(|(t, _)| t.as_str())
        .collect();
    let ready = if not_ready.is_empty() {
        Found::ok("Ready", "the operator is installed and available")
    } else {
        Found::not("NotReady", format!("not yet: {}", not_ready.join(", ")))
    };
    found
        .into_iter()
        .chain([(OperatorCondition::Ready, ready)])
        .map(|(type_, f)| {
            let status = if f.ok { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|c| c.type_ == type_.as_str() && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.as_str().into(),
                status: status.into(),
                reason: f.reason,
                message: f.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// The conditions whose status differs from `previous` (or that are new): one Event each.
pub fn transitions<'a>(now: &'a [Condition], previous: &[Condition]) -> Vec<&'a Condition> {
    now.iter()
        .filter(|c| {
            previous
                .iter()
                .find(|p| p.type_ == c.type_)
                .is_none_or(|p| p.status != c.status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;

    fn deployment(generation: i64, observed: i64, updated: i32, available: i32) -> Deployment {
        let mut d = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.metadata.generation = Some(generation);
        d
    }

    #[test]
    fn available_only_when_the_current_spec_is_rolled_out() {
        assert!(!available(None).ok);
        assert!(available(Some(&deployment(2, 2, 2, 2))).ok);
        assert_eq!(
            available(Some(&deployment(3, 2, 2, 2))).reason,
            "RolloutPending"
        );
        let half = available(Some(&deployment(2, 2, 2, 1)));
        assert_eq!(half.reason, "RollingOut");
        assert_eq!(half.message, "1/2 replicas available, 2/2 updated");
        assert!(!available(Some(&deployment(2, 2, 1, 2))).ok);
    }

    #[test]
    fn ready_follows_the_others_and_transition_times_are_kept() {
        let t0 = Time(Timestamp::from_second(1_000).unwrap());
        let t1 = Time(Timestamp::from_second(2_000).unwrap());
        let first = conditions(
            vec![
                (OperatorCondition::PreflightPassed, Found::ok("Passed", "")),
                (
                    OperatorCondition::Available,
                    Found::not("RollingOut", "0/2"),
                ),
            ],
            &[],
            Some(1),
            &t0,
        );
        let types: Vec<(&str, &str)> = first
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("PreflightPassed", "True"),
                ("Available", "False"),
                ("Ready", "False")
            ]
        );
        assert_eq!(first[2].message, "not yet: Available");
        assert_eq!(transitions(&first, &[]).len(), 3);
        let second = conditions(
            vec![
                (OperatorCondition::PreflightPassed, Found::ok("Passed", "")),
                (
                    OperatorCondition::Available,
                    Found::ok("DeploymentAvailable", "2/2"),
                ),
            ],
            &first,
            Some(1),
            &t1,
        );
        assert_eq!(second[0].last_transition_time, t0, "unchanged: kept");
        assert_eq!(second[1].last_transition_time, t1, "changed: now");
        let changed: Vec<&str> = transitions(&second, &first)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, ["Available", "Ready"]);
    }
}
