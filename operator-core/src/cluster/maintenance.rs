//! Automatic upgrades inside a cluster's maintenance window (pure, the clock given): whether
//! the window is open at a time, in the window's time zone (a window may run past midnight,
//! and a day's opening follows daylight saving time), and which offered release a policy
//! moves to (`patch`: the newest of the same major and minor; `minor`: of the same major).
//! The cluster reconcile asks both with the operator's clock and sets the cluster's
//! `spec.clusterStack.version`; the upgrade is then orchestrated as any other.

use api::v1beta1::MaintenanceWindow;
use k8s_openapi::jiff::civil::{Time, Weekday};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The day names a window takes, Monday first.
pub const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

/// `HH:MM` as a time of day.
pub fn parse_start(start: &str) -> Option<Time> {
    let (h, m) = start.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// The window's time zone (UTC when it names none).
pub fn time_zone(window: &MaintenanceWindow) -> Result<TimeZone, String> {
    match window.time_zone.as_deref() {
        None | Some("UTC") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| format!("{name:?}: {e}")),
    }
}

/// Whether `window` is open at `now`; an error names what of it does not parse.
pub fn is_open(window: &MaintenanceWindow, now: Timestamp) -> Result<bool, String> {
    let tz = time_zone(window)?;
    let start = parse_start(&window.start)
        .ok_or_else(|| format!("start {:?} is not HH:MM", window.start))?;
    let length = SignedDuration::from_mins(i64::from(window.duration_minutes));
    let days: Vec<Weekday> = window
        .days
        .iter()
        .map(|d| {
            DAYS.iter()
                .find(|(name, _)| name == d)
                .map(|(_, w)| *w)
                .ok_or_else(|| format!("day {d:?} is not one of Mon..Sun"))
        })
        .collect::<Result<_, _>>()?;
    let today = now.to_zoned(tz.clone()).date();
    // Only today's opening or yesterday's (running past midnight) can hold `now`.
    for date in [today.yesterday(), Ok(today)].into_iter().flatten() {
        if !days.is_empty() && !days.contains(&date.weekday()) {
            continue;
        }
        let Ok(open) = date.to_datetime(start).to_zoned(tz.clone()) else {
            continue;
        };
        let open = open.timestamp();
        let close = open.saturating_add(length).unwrap_or(open);
        if open <= now && now < close {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The release `policy` moves a cluster on `current` to, among `offered` (its
/// `availableUpgrades`): the newest newer one of the same major and minor (`patch`) or major
/// (`minor`); none when nothing fits or a version does not parse.
pub fn target(policy: &str, current: &str, offered: &[String]) -> Option<String> {
    let current = semver::Version::parse(current).ok()?;
    offered
        .iter()
        .filter_map(|v| semver::Version::parse(v).ok().map(|p| (p, v)))
        .filter(|(v, _)| v > &current && v.pre.is_empty() && v.major == current.major)
        .filter(|(v, _)| match policy {
            "patch" => v.minor == current.minor,
            "minor" => true,
            _ => false,
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], start: &str, minutes: i32, tz: Option<&str>) -> MaintenanceWindow {
        MaintenanceWindow {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            duration_minutes: minutes,
            time_zone: tz.map(Into::into),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_opens_on_its_days_in_its_time_zone_and_runs_past_midnight() {
        // Saturday 23:00 to Sunday 03:00 in Berlin (UTC+1 in December).
        let w = window(&["Sat"], "23:00", 240, Some("Europe/Berlin"));
        assert!(
            !is_open(&w, at("2026-12-05T21:59:00Z")).unwrap(),
            "Sat 22:59 local"
        );
        assert!(
            is_open(&w, at("2026-12-05T22:00:00Z")).unwrap(),
            "Sat 23:00 local"
        );
        assert!(
            is_open(&w, at("2026-12-06T01:59:00Z")).unwrap(),
            "Sun 02:59 local"
        );
        assert!(
            !is_open(&w, at("2026-12-06T02:00:00Z")).unwrap(),
            "closed at 03:00"
        );
        assert!(!is_open(&w, at("2026-12-12T21:00:00Z")).unwrap());
        // In summer the same local opening is an hour earlier in UTC.
        assert!(is_open(&w, at("2027-07-03T21:00:00Z")).unwrap());
    }

    #[test]
    fn every_day_when_no_day_is_named_and_bad_settings_are_named() {
        let w = window(&[], "02:00", 60, None);
        assert!(is_open(&w, at("2026-12-09T02:30:00Z")).unwrap());
        assert!(!is_open(&w, at("2026-12-09T03:00:00Z")).unwrap());
        let bad = window(&["Funday"], "25:00", 60, Some("Mars/Olympus"));
        assert!(
            is_open(&bad, at("2026-12-09T02:30:00Z"))
                .unwrap_err()
                .contains("Mars/Olympus")
        );
        assert_eq!(parse_start("25:00"), None);
        assert_eq!(parse_start("2:00"), None);
    }

    #[test]
    fn a_policy_picks_the_newest_release_it_allows() {
        let offered: Vec<String> = ["1.0.1", "1.0.3", "1.1.0", "2.0.0", "1.0.4-rc.1"]
            .map(String::from)
            .to_vec();
        assert_eq!(target("patch", "1.0.0", &offered).as_deref(), Some("1.0.3"));
        assert_eq!(target("minor", "1.0.0", &offered).as_deref(), Some("1.1.0"));
        assert_eq!(target("patch", "1.1.0", &offered), None);
        assert_eq!(target("never", "1.0.0", &offered), None);
    }
}
