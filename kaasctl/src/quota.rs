//! `kaasctl quota [NAMESPACE]`: for each `TenantPolicy` governing the namespace (or every
//! policy), each limit with what its namespaces use and what is left, as the policy's status
//! says (kaas-webhooks keeps it), and what the namespace itself uses. What webhook replicas
//! hold for admissions in flight is not left, and is said.

use std::fmt::Write;

use api::tenancy::{self, Footprint, Resource};
use api::v1beta1::TenantPolicy;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt};

use crate::cli::QuotaArgs;
use crate::error::Error;

/// Runs `kaasctl quota`.
pub async fn run(args: &QuotaArgs) -> Result<u8, Error> {
    let client = crate::connect::client().await?;
    let policies = Api::<TenantPolicy>::all(client.clone())
        .list(&Default::default())
        .await?
        .items;
    let shown: Vec<&TenantPolicy> = match &args.namespace {
        Some(ns) => {
            let labels = Api::<Namespace>::all(client)
                .get_opt(ns)
                .await?
                .map(|n| n.labels().clone())
                .unwrap_or_default();
            tenancy::governing(&policies, &labels)
        }
        None => policies.iter().collect(),
    };
    print!("{}", text(&shown, args.namespace.as_deref()));
    Ok(0)
}

/// The tables: one per policy.
pub fn text(policies: &[&TenantPolicy], namespace: Option<&str>) -> String {
    let mut out = String::new();
    if policies.is_empty() {
        let _ = writeln!(
            out,
            "{}: no TenantPolicy governs it: unlimited",
            namespace.unwrap_or("the cluster")
        );
        return out;
    }
    for p in policies {
        let status = p.status.clone().unwrap_or_default();
        let used = Footprint::of_usage(&status.used);
        let held = status.holds.iter().fold(Footprint::default(), |a, h| {
            a + Footprint::of_usage(&h.held)
        });
        let own = namespace.and_then(|ns| {
            status
                .namespaces
                .iter()
                .find(|n| n.namespace == ns)
                .map(|n| Footprint::of_usage(&n.used))
        });
        let _ = writeln!(out, "TenantPolicy {}", p.name_any());
        let mut header = vec!["RESOURCE", "LIMIT", "USED", "LEFT"];
        if namespace.is_some() {
            header.push("THIS NAMESPACE");
        }
        let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        for r in Resource::ALL {
            let limit = r.limit(p);
            let mut row = vec![
                r.field().to_string(),
                limit.map_or("-".into(), |l| r.amount(l)),
                r.amount(r.of(&used)),
                limit.map_or("-".into(), |l| {
                    r.amount((l - r.of(&used) - r.of(&held)).max(0))
                }),
            ];
            if namespace.is_some() {
                row.push(r.amount(own.as_ref().map_or(0, |o| r.of(o))));
            }
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        for row in rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
        if !status.reservations.is_empty() {
            let _ = writeln!(
                out,
                "  ({} admitted changes not counted from the clusters yet are included)",
                status.reservations.len()
            );
        }
        let holding: Vec<String> = Resource::ALL
            .iter()
            .filter(|r| r.of(&held) > 0)
            .map(|r| format!("{} {}", r.amount(r.of(&held)), r.unit()))
            .collect();
        if !holding.is_empty() {
            let _ = writeln!(
                out,
                "  (kaas-webhooks replicas hold {} for admissions in flight: not left)",
                holding.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::v1beta1::{Limits, NamespaceUsage, TenantPolicySpec, TenantPolicyStatus};

    #[test]
    fn each_limit_shows_used_and_left_and_the_namespace_its_own() {
        let mut p = TenantPolicy::new(
            "gold",
            TenantPolicySpec {
                limits: Limits {
                    cpu: Some(48),
                    memory: Some("128Gi".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let used = Footprint {
            clusters: 3,
            cpu: 46,
            memory_mib: 100 * 1024,
            ..Default::default()
        };
        p.status = Some(TenantPolicyStatus {
            used: used.usage(),
            namespaces: vec![NamespaceUsage {
                namespace: "team-a".into(),
                used: Footprint {
                    clusters: 1,
                    cpu: 16,
                    ..Default::default()
                }
                .usage(),
            }],
            ..Default::default()
        });
        let out = text(&[&p], Some("team-a"));
        let line = |name: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(line("cpu"), ["cpu", "48", "46", "2", "16"], "{out}");
        assert_eq!(
            line("memory"),
            ["memory", "128Gi", "100Gi", "28Gi", "0"],
            "{out}"
        );
        assert_eq!(line("clusters"), ["clusters", "-", "3", "-", "1"], "{out}");
        assert!(text(&[], Some("free")).contains("free: no TenantPolicy governs it: unlimited"));

        // What a webhook replica holds is not left, and the table says so.
        if let Some(s) = p.status.as_mut() {
            s.holds = vec![api::v1beta1::Hold {
                holder: "kaas-webhooks-0-1".into(),
                held: Footprint {
                    cpu: 1,
                    ..Default::default()
                }
                .usage(),
                expires: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
            }];
        }
        let out = text(&[&p], Some("team-a"));
        let cpu = out.lines().find(|l| l.trim_start().starts_with("cpu"));
        assert_eq!(
            cpu.map(|l| l.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["cpu", "48", "46", "1", "16"]),
            "{out}"
        );
        assert!(
            out.contains("kaas-webhooks replicas hold 1 vCPUs for admissions in flight"),
            "{out}"
        );
    }
}
