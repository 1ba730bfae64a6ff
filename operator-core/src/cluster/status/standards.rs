//! The standards' part of the status (pure): the findings of this reconcile's checks
//! ([`crate::cluster::conformance`]) as `status.standards` entries, and the
//! `StandardsCompliant` condition over them.

use api::v1beta1::{ClusterCondition, StandardResult};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Cond;
use crate::cluster::conformance::{Finding, Verdict};

/// How often an unchanged result's `lastChecked` is refreshed.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The status entries for `findings`: an entry whose result and message did not change keeps
/// its `lastChecked` (refreshed once a day), so a steady cluster's status does not change.
pub fn results(
    findings: &[Finding],
    previous: &[StandardResult],
    now: &Time,
) -> Vec<StandardResult> {
    findings
        .iter()
        .map(|f| {
            let kept = previous
                .iter()
                .find(|p| p.id == f.id && p.result == f.outcome.as_str() && p.message == f.message)
                .and_then(|p| p.last_checked.clone())
                .filter(|t| now.0.duration_since(t.0).unsigned_abs() < REFRESH);
            StandardResult {
                id: f.id.to_string(),
                result: f.outcome.as_str().to_string(),
                message: f.message.clone(),
                last_checked: Some(kept.unwrap_or_else(|| now.clone())),
            }
        })
        .collect()
}

/// `StandardsCompliant`: every SCS standard passes; the reason names the first failing (else
/// unknown) one. None before the standards were first checked.
pub fn compliant(standards: &[StandardResult]) -> Option<Cond> {
    if standards.is_empty() {
        return None;
    }
    let v = condition(standards);
    Some(Cond {
        type_: ClusterCondition::StandardsCompliant,
        ok: v.ok,
        reason: v.reason,
        message: v.message,
    })
}

/// The `StandardsCompliant` condition. The reason names the first failing standard
/// (`Scs0214Failed`), else the first unknown one (`Scs0219Unknown`).
fn condition(results: &[StandardResult]) -> Verdict {
    let reason = |id: &str, what: &str| {
        let number: String = id.chars().filter(char::is_ascii_digit).take(4).collect();
        format!("Scs{number}{what}")
    };
    if let Some(f) = results.iter().find(|r| r.result == "Fail") {
        return Verdict::fails(reason(&f.id, "Failed"), format!("{}: {}", f.id, f.message));
    }
    if let Some(u) = results.iter().find(|r| r.result == "Unknown") {
        return Verdict::fails(reason(&u.id, "Unknown"), format!("{}: {}", u.id, u.message));
    }
    let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    Verdict {
        ok: true,
        reason: "AllPass".into(),
        message: format!("passes {}", ids.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::conformance::Outcome;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn an_unchanged_result_keeps_its_time_for_a_day_and_the_condition_names_the_first_failure() {
        let findings = vec![
            Finding::new("scs-0210-v2", Outcome::Pass, "newest"),
            Finding::new("scs-0214-v2", Outcome::Fail, "no zone label"),
            Finding::new("scs-0219-v1", Outcome::Unknown, "probe running"),
        ];
        let first = results(&findings, &[], &time("2026-12-01T10:00:00Z"));
        assert!(
            first
                .iter()
                .all(|r| r.last_checked == Some(time("2026-12-01T10:00:00Z")))
        );
        let later = results(&findings, &first, &time("2026-12-01T20:00:00Z"));
        assert_eq!(later, first, "unchanged within a day: nothing to write");
        let next_day = results(&findings, &first, &time("2026-12-02T10:00:01Z"));
        assert_eq!(next_day[0].last_checked, Some(time("2026-12-02T10:00:01Z")));
        let mut changed = findings.clone();
        changed[0].message = "older".into();
        let after = results(&changed, &first, &time("2026-12-01T11:00:00Z"));
        assert_eq!(after[0].last_checked, Some(time("2026-12-01T11:00:00Z")));
        assert_eq!(after[1].last_checked, first[1].last_checked);

        let Verdict {
            ok,
            reason,
            message,
        } = condition(&first);
        assert!(!ok);
        assert_eq!(reason, "Scs0214Failed");
        assert_eq!(message, "scs-0214-v2: no zone label");
        let Verdict { ok, reason, .. } = condition(&first[2..]);
        assert_eq!((ok, reason.as_str()), (false, "Scs0219Unknown"));
        let Verdict {
            ok,
            reason,
            message,
        } = condition(&first[..1]);
        assert_eq!(
            (ok, reason.as_str(), message.as_str()),
            (true, "AllPass", "passes scs-0210-v2")
        );
    }
}
