//! `kaasctl conformance NAME` and `stack verify --standards`: the SCS standards as a table a
//! provider reads before anyone certifies the offering, and as JUnit XML for CI. A cluster's
//! results are its operator's (`status.standards`); a release's are the static checks of
//! `operator_core::conformance::check_release`.

use api::v1beta1::KaasCluster;
use kaas_stack::Release;
use kube::Api;

use crate::cli::ConformanceArgs;
use crate::error::Error;
use crate::junit::{self, Case};

/// One row per result: id, result, when, message.
fn table(rows: &[(String, String, String, String)]) {
    let width = |i: usize, head: &str| {
        rows.iter()
            .map(|r| [&r.0, &r.1, &r.2][i].len())
            .chain([head.len()])
            .max()
            .unwrap_or(0)
    };
    let (a, b, c) = (
        width(0, "STANDARD"),
        width(1, "RESULT"),
        width(2, "CHECKED"),
    );
    println!(
        "{:a$}  {:b$}  {:c$}  MESSAGE",
        "STANDARD", "RESULT", "CHECKED"
    );
    for (id, result, when, message) in rows {
        println!("{id:a$}  {result:b$}  {when:c$}  {message}");
    }
}

/// The JUnit case of one result.
fn case(id: &str, result: &str, message: &str) -> Case {
    Case {
        name: id.to_string(),
        seconds: 0.0,
        result: match result {
            "Pass" => "passed",
            "Fail" => "failed",
            _ => "skipped",
        }
        .into(),
        message: message.to_string(),
    }
}

/// `kaasctl conformance`: exit 0 when every standard passes, 2 otherwise.
pub async fn run(args: &ConformanceArgs) -> Result<u8, Error> {
    let client = crate::connect::client().await?;
    let cluster = Api::<KaasCluster>::namespaced(client, &args.namespace)
        .get_opt(&args.name)
        .await?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "KaasCluster {}/{} not found",
                args.namespace, args.name
            ))
        })?;
    let status = cluster.status.unwrap_or_default();
    if status.standards.is_empty() {
        println!(
            "{}/{}: the standards were not checked yet (its operator checks them once the workload cluster answers)",
            args.namespace, args.name
        );
        return Ok(2);
    }
    let rows: Vec<_> = status
        .standards
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.result.clone(),
                s.last_checked
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                s.message.clone(),
            )
        })
        .collect();
    table(&rows);
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "StandardsCompliant")
    {
        println!(
            "\nStandardsCompliant={} ({}): {}",
            c.status, c.reason, c.message
        );
    }
    if let Some(path) = &args.junit {
        let cases: Vec<Case> = status
            .standards
            .iter()
            .map(|s| case(&s.id, &s.result, &s.message))
            .collect();
        let suite = format!("SCS standards of {}/{}", args.namespace, args.name);
        std::fs::write(path, junit::document(&suite, &cases)).map_err(|e| Error::io(path, e))?;
    }
    Ok(if status.standards.iter().all(|s| s.result == "Pass") {
        0
    } else {
        2
    })
}

/// `stack verify --standards`: prints the release's static results; 0 when none fails, 2
/// otherwise (unknown ones, such as a release without Kubernetes dates, are shown, not failed).
pub fn release_standards(release: &Release) -> u8 {
    let today = operator_core::conformance::today();
    let findings = operator_core::conformance::check_release(release, today);
    println!(
        "SCS standards {} can be judged on by itself ({today}):",
        release.id()
    );
    let rows: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f.id.to_string(),
                f.outcome.as_str().to_string(),
                today.to_string(),
                f.message.clone(),
            )
        })
        .collect();
    table(&rows);
    println!();
    if findings
        .iter()
        .any(|f| f.outcome == operator_core::conformance::Outcome::Fail)
    {
        2
    } else {
        0
    }
}
