//! scs-0210 v2, the Kubernetes version policy: a cluster runs a minor that upstream still
//! supports, on a patch no older than a month behind the newest patch of that minor the stack
//! catalog offers. Release dates come with the stacks (`kubernetesCalendar`). The provider's
//! side (a new minor offered within four months, every supported minor kept) is the catalog
//! check, `kaasctl stack verify --standards`. Critical fixes within two weeks cannot be told
//! apart from other patches here, so the month applies to every patch.

use jiff::civil::Date;
use kaas_stack::Release;
use kaas_stack::format::KubernetesCalendar;
use semver::Version;

use super::{Evidence, Finding, Outcome};

/// The standard's id.
pub const ID: &str = "scs-0210-v2";

/// How long a newer patch may be available before the cluster must run it.
const PATCH_DAYS: i64 = 30;
/// How long after a minor's release a provider must offer it.
const MINOR_DAYS: i64 = 120;

fn date(s: &str) -> Option<Date> {
    s.parse().ok()
}

fn days(from: Date, to: Date) -> i64 {
    i64::from((to - from).get_days())
}

/// The newest offered patch of each minor: `(minor, version, stack version offering it)`.
pub fn newest_patches(offered: &[(String, String)]) -> Vec<(String, Version, String)> {
    let mut best: std::collections::BTreeMap<(u64, u64), (Version, String)> = Default::default();
    for (stack, v) in offered {
        let Ok(v) = Version::parse(v) else { continue };
        let entry = best
            .entry((v.major, v.minor))
            .or_insert((v.clone(), stack.clone()));
        if v > entry.0 {
            *entry = (v, stack.clone());
        }
    }
    best.into_iter()
        .map(|((a, b), (v, s))| (format!("{a}.{b}"), v, s))
        .collect()
}

pub(super) fn check(e: &Evidence<'_>) -> Finding {
    let Some(running) = e.kubernetes_version else {
        return Finding::new(
            ID,
            Outcome::Unknown,
            "the cluster's Kubernetes version is not resolved yet",
        );
    };
    let Ok(v) = Version::parse(running) else {
        return Finding::new(
            ID,
            Outcome::Unknown,
            format!("{running} is not a full version"),
        );
    };
    let minor = format!("{}.{}", v.major, v.minor);
    let newest = newest_patches(e.offered);
    let supported = |m: &str| {
        e.calendar
            .end_of_life
            .get(m)
            .and_then(|d| date(d))
            .is_none_or(|eol| e.today <= eol)
    };
    let eol = e.calendar.end_of_life.get(&minor).and_then(|d| date(d));
    if let Some(eol) = eol
        && e.today > eol
    {
        let to = newest
            .iter()
            .rev()
            .find(|(m, _, _)| supported(m) && m != &minor)
            .map_or_else(
                || "no supported minor is offered by the stack catalog".to_string(),
                |(_, to, stack)| format!("move to {to} (stack version {stack})"),
            );
        return Finding::new(
            ID,
            Outcome::Fail,
            format!("Kubernetes {minor} reached its end of life on {eol}: {to}"),
        );
    }
    let until = eol.map_or_else(String::new, |d| format!("; {minor} is supported until {d}"));
    match newest.iter().find(|(m, _, _)| m == &minor) {
        Some((_, to, stack)) if *to > v => {
            let released = e
                .calendar
                .released
                .get(&to.to_string())
                .and_then(|d| date(d));
            match released {
                None => Finding::new(
                    ID,
                    Outcome::Unknown,
                    format!(
                        "{running} is older than {to} (stack version {stack}), whose release date the stacks do not list (kubernetesCalendar.released)"
                    ),
                ),
                Some(d) if days(d, e.today) > PATCH_DAYS => Finding::new(
                    ID,
                    Outcome::Fail,
                    format!(
                        "{running} is behind {to}, released {d} ({} days ago; the policy allows {PATCH_DAYS}): move to {to} (stack version {stack})",
                        days(d, e.today)
                    ),
                ),
                Some(d) => Finding::new(
                    ID,
                    Outcome::Pass,
                    format!(
                        "{running}; {to} was released {d}, {} days ago, within the {PATCH_DAYS} days the policy allows{until}",
                        days(d, e.today)
                    ),
                ),
            }
        }
        _ if eol.is_none() && e.calendar.released.is_empty() => Finding::new(
            ID,
            Outcome::Unknown,
            "the stack lists no Kubernetes release dates (kubernetesCalendar)",
        ),
        _ => Finding::new(
            ID,
            Outcome::Pass,
            format!("{running} is the newest patch of {minor} the stack catalog offers{until}"),
        ),
    }
}

/// The catalog side, for one release: it offers a minor upstream still supports, and no
/// offered minor lacks a patch released within the policy's month while a newer one is older
/// than that; a minor released more than four months ago and newer than every offered one is
/// reported too.
pub(super) fn check_catalog(
    release: &Release,
    calendar: &KubernetesCalendar,
    today: Date,
) -> Finding {
    let offered: Vec<(String, String)> = release
        .stack
        .kubernetes_versions
        .iter()
        .map(|v| (release.stack.version.clone(), v.clone()))
        .collect();
    if calendar.released.is_empty() && calendar.end_of_life.is_empty() {
        return Finding::new(
            ID,
            Outcome::Unknown,
            "the release lists no Kubernetes release dates (kubernetesCalendar)",
        );
    }
    let newest = newest_patches(&offered);
    let mut problems = Vec::new();
    // Minors past their end of life may stay offered (clusters on them must be able to move
    // on); they are named, and fail only when nothing else is offered.
    let mut ended = Vec::new();
    let mut supported = 0;
    for (minor, v, _) in &newest {
        match calendar.end_of_life.get(minor).and_then(|d| date(d)) {
            Some(eol) if today > eol => {
                ended.push(format!("{minor} reached its end of life on {eol}"))
            }
            _ => supported += 1,
        }
        // A newer patch of this minor known to the calendar for over a month.
        let behind = calendar
            .released
            .iter()
            .filter_map(|(k, d)| Some((Version::parse(k).ok()?, date(d)?)))
            .filter(|(k, d)| {
                k.major == v.major && k.minor == v.minor && k > v && days(*d, today) > PATCH_DAYS
            })
            .max();
        if let Some((k, d)) = behind {
            problems.push(format!(
                "{minor}: {k} was released {d} and the release offers only up to {v}"
            ));
        }
    }
    let newest_offered = newest.last().map(|(_, v, _)| (v.major, v.minor));
    let missing_minor = calendar
        .released
        .iter()
        .filter_map(|(k, d)| Some((Version::parse(k).ok()?, date(d)?)))
        .filter(|(k, d)| k.patch == 0 && k.pre.is_empty() && days(*d, today) > MINOR_DAYS)
        .filter(|(k, _)| newest_offered.is_some_and(|n| (k.major, k.minor) > n))
        .max();
    if let Some((k, d)) = missing_minor {
        problems.push(format!(
            "Kubernetes {}.{} was released {d}, over {MINOR_DAYS} days ago, and is not offered",
            k.major, k.minor
        ));
    }
    if supported == 0 {
        problems.insert(
            0,
            format!(
                "no offered minor is still supported upstream ({})",
                ended.join("; ")
            ),
        );
    }
    if problems.is_empty() {
        let mut message = format!(
            "offers {} with current patches",
            newest
                .iter()
                .map(|(_, v, _)| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !ended.is_empty() {
            message.push_str(&format!(
                " (for clusters to move on from: {})",
                ended.join("; ")
            ));
        }
        Finding::new(ID, Outcome::Pass, message)
    } else {
        Finding::new(ID, Outcome::Fail, problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::conformance::{Evidence, Workload};

    fn calendar() -> KubernetesCalendar {
        KubernetesCalendar {
            released: [
                ("1.34.1", "2025-09-09"),
                ("1.34.3", "2026-10-01"),
                ("1.35.0", "2025-12-17"),
                ("1.35.2", "2026-11-20"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            end_of_life: [("1.34", "2026-10-27"), ("1.35", "2027-02-28")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn verdict(running: &str, offered: &[(&str, &str)], today: &str) -> Finding {
        let release = kaas_stack::builtin::find("docker", "scs", "1.0.0")
            .unwrap()
            .unwrap();
        let offered: Vec<(String, String)> = offered
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let calendar = calendar();
        let workload = Workload::default();
        check(&Evidence {
            today: today.parse().unwrap(),
            release: &release,
            kubernetes_version: Some(running),
            calendar: &calendar,
            offered: &offered,
            control_plane_replicas: 3,
            control_plane: None,
            bootstraps: Vec::new(),
            workload: Ok(&workload),
        })
    }

    #[test]
    fn an_old_patch_fails_naming_the_version_and_the_stack_to_move_to() {
        let offered = [
            ("1.0.0", "1.35.0"),
            ("1.1.0", "1.35.2"),
            ("1.1.0", "1.34.3"),
        ];
        let f = verdict("1.35.0", &offered, "2026-12-04");
        assert_eq!(f.outcome, Outcome::Pass, "1.35.2 is two weeks old: {f:?}");
        let f = verdict("1.35.0", &offered, "2027-01-02");
        assert_eq!(f.outcome, Outcome::Fail);
        assert!(
            f.message.contains("move to 1.35.2 (stack version 1.1.0)"),
            "{f:?}"
        );
        let f = verdict("1.35.2", &offered, "2027-01-02");
        assert_eq!(f.outcome, Outcome::Pass, "{f:?}");
        assert!(f.message.contains("supported until 2027-02-28"), "{f:?}");
        let f = verdict("1.34.3", &offered, "2026-12-04");
        assert_eq!(f.outcome, Outcome::Fail);
        assert_eq!(
            f.message,
            "Kubernetes 1.34 reached its end of life on 2026-10-27: move to 1.35.2 (stack version 1.1.0)"
        );
        let f = verdict(
            "1.35.0",
            &[("1.0.0", "1.35.0"), ("1.2.0", "1.35.9")],
            "2026-12-04",
        );
        assert_eq!(f.outcome, Outcome::Unknown, "no date for 1.35.9: {f:?}");
    }

    #[test]
    fn the_catalog_check_names_ended_minors_stale_patches_and_missing_minors() {
        let release = kaas_stack::builtin::find("docker", "scs", "1.0.0")
            .unwrap()
            .unwrap();
        let mut cal = calendar();
        let mut r = release.clone();
        r.stack.kubernetes_versions = vec!["1.34.1".into(), "1.35.0".into()];
        let f = check_catalog(&r, &cal, "2027-01-02".parse().unwrap());
        assert_eq!(f.outcome, Outcome::Fail);
        assert!(!f.message.contains("no offered minor"), "{f:?}");
        r.stack.kubernetes_versions = vec!["1.34.3".into()];
        let g = check_catalog(&r, &cal, "2027-01-02".parse().unwrap());
        assert!(
            g.message.contains(
                "no offered minor is still supported upstream (1.34 reached its end of life on 2026-10-27)"
            ),
            "{g:?}"
        );
        r.stack.kubernetes_versions = vec!["1.34.1".into(), "1.35.0".into()];
        assert!(
            f.message.contains(
                "1.35: 1.35.2 was released 2026-11-20 and the release offers only up to 1.35.0"
            ),
            "{f:?}"
        );
        cal.released.insert("1.36.0".into(), "2026-04-22".into());
        r.stack.kubernetes_versions = vec!["1.35.2".into()];
        let f = check_catalog(&r, &cal, "2026-12-04".parse().unwrap());
        assert!(
            f.message.contains(
                "Kubernetes 1.36 was released 2026-04-22, over 120 days ago, and is not offered"
            ),
            "{f:?}"
        );
        cal.released.remove("1.36.0");
        let f = check_catalog(&r, &cal, "2026-12-04".parse().unwrap());
        assert_eq!(f.outcome, Outcome::Pass, "{f:?}");
    }
}
