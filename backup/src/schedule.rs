//! When backups are taken: a five-field cron expression (minute, hour, day of month, month,
//! day of week; `*`, lists, ranges and steps, as Kubernetes CronJobs read them) in a time zone,
//! or `@every <duration>` (`@every 30s`, `@every 6h`). Pure: an expression and a moment in,
//! the next moment out.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Minutes, hours, days of month, months, days of week (0 = Sunday) that match; a day
    /// matches when either day field does, if both are restricted (cron's rule).
    Cron {
        minutes: Vec<u8>,
        hours: Vec<u8>,
        days: Vec<u8>,
        months: Vec<u8>,
        weekdays: Vec<u8>,
        days_restricted: bool,
        weekdays_restricted: bool,
    },
    /// Every so many seconds, from the moment asked.
    Every(u64),
}

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {expression:?}: {reason}")]
pub struct ScheduleError {
    expression: String,
    reason: String,
}

fn field(text: &str, min: u8, max: u8, name: &str) -> Result<Vec<u8>, String> {
    let mut values = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step {s:?} is not a number from 1"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let parse = |v: &str| {
                v.parse::<u8>()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(|| format!("{name}: {v:?} is not from {min} to {max}"))
            };
            (parse(a)?, parse(b)?)
        } else {
            let v = range
                .parse::<u8>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{name}: {range:?} is not from {min} to {max}"))?;
            (v, if step > 1 { max } else { v })
        };
        if lo > hi {
            return Err(format!("{name}: range {range:?} runs backwards"));
        }
        values.extend((lo..=hi).step_by(step as usize));
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(expression: &str) -> Result<Schedule, ScheduleError> {
        let fail = |reason: String| ScheduleError {
            expression: expression.to_string(),
            reason,
        };
        if expression.len() > 256 {
            return Err(fail("longer than 256 characters".into()));
        }
        if let Some(every) = expression.strip_prefix("@every ") {
            let seconds = parse_duration(every.trim()).map_err(fail)?;
            return Ok(Schedule::Every(seconds));
        }
        let expression = match expression.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            other => other,
        };
        let parts: Vec<&str> = expression.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts[..] else {
            return Err(fail(format!(
                "{} fields, a cron expression has 5 (minute hour day-of-month month day-of-week)",
                parts.len()
            )));
        };
        let mut weekdays = field(dow, 0, 7, "day of week").map_err(fail)?;
        // 7 is Sunday too.
        if weekdays.contains(&7) {
            weekdays.retain(|d| *d != 7);
            if !weekdays.contains(&0) {
                weekdays.insert(0, 0);
            }
        }
        Ok(Schedule::Cron {
            minutes: field(m, 0, 59, "minute").map_err(fail)?,
            hours: field(h, 0, 23, "hour").map_err(fail)?,
            days: field(dom, 1, 31, "day of month").map_err(fail)?,
            months: field(mon, 1, 12, "month").map_err(fail)?,
            weekdays,
            days_restricted: dom != "*",
            weekdays_restricted: dow != "*",
        })
    }
}

/// `30s`, `15m`, `6h`, `1h30m`: seconds, at least 1 and at most a year.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "duration {text:?}: unknown unit {c:?} (s, m, h, d)"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("duration {text:?}: a number before each unit"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 || total > 366 * 86_400 {
        return Err(format!(
            "duration {text:?}: such as 30s, 15m, 6h or 1h30m, from 1s to 366d"
        ));
    }
    Ok(total)
}

impl Schedule {
    /// The first moment after `after` the schedule fires, in time zone `tz`; `None` for a cron
    /// expression that never matches (February 30th).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(seconds) => after.checked_add((*seconds as i64).seconds()).ok(),
            Schedule::Cron {
                minutes,
                hours,
                days,
                months,
                weekdays,
                days_restricted,
                weekdays_restricted,
            } => {
                let start = after.to_zoned(tz.clone());
                // The next whole minute.
                let mut t: Zoned = start
                    .with()
                    .second(0)
                    .subsec_nanosecond(0)
                    .build()
                    .ok()?
                    .checked_add(1.minute())
                    .ok()?;
                // Four years of minutes bound the search (a leap day comes within them).
                let limit = start.checked_add(1461.days()).ok()?;
                while t < limit {
                    let month_ok = months.contains(&(t.month() as u8));
                    let dom_ok = days.contains(&(t.day() as u8));
                    let dow_ok = weekdays.contains(&(t.weekday().to_sunday_zero_offset() as u8));
                    let day_ok = match (days_restricted, weekdays_restricted) {
                        (true, true) => dom_ok || dow_ok,
                        _ => dom_ok && dow_ok,
                    };
                    if !month_ok || !day_ok {
                        t = t.start_of_day().ok()?.checked_add(1.day()).ok()?;
                        continue;
                    }
                    if !hours.contains(&(t.hour() as u8)) {
                        t = t
                            .with()
                            .minute(0)
                            .build()
                            .ok()?
                            .checked_add(1.hour())
                            .ok()?;
                        continue;
                    }
                    if !minutes.contains(&(t.minute() as u8)) {
                        t = t.checked_add(1.minute()).ok()?;
                        continue;
                    }
                    return Some(t.timestamp());
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn cron_expressions_fire_when_kubernetes_cronjobs_would() {
        let utc = TimeZone::UTC;
        let daily: Schedule = "30 3 * * *".parse().unwrap();
        assert_eq!(
            daily.next(at("2026-12-08T03:29:59Z"), &utc),
            Some(at("2026-12-08T03:30:00Z"))
        );
        assert_eq!(
            daily.next(at("2026-12-08T03:30:00Z"), &utc),
            Some(at("2026-12-09T03:30:00Z"))
        );
        let weekly: Schedule = "0 2 * * 0".parse().unwrap(); // Sundays
        assert_eq!(
            weekly.next(at("2026-12-08T00:00:00Z"), &utc),
            Some(at("2026-12-13T02:00:00Z"))
        );
        let steps: Schedule = "*/15 9-17 * * 1-5".parse().unwrap();
        assert_eq!(
            steps.next(at("2026-12-11T17:50:00Z"), &utc), // a Friday
            Some(at("2026-12-14T09:00:00Z"))
        );
        // Either day field matches when both are restricted.
        let either: Schedule = "0 0 13 * 5".parse().unwrap();
        assert_eq!(
            either.next(at("2026-12-08T00:00:00Z"), &utc),
            Some(at("2026-12-11T00:00:00Z"))
        );
        let leap: Schedule = "0 0 29 2 *".parse().unwrap();
        assert_eq!(
            leap.next(at("2026-03-01T00:00:00Z"), &utc),
            Some(at("2028-02-29T00:00:00Z"))
        );
        let never: Schedule = "0 0 30 2 *".parse().unwrap();
        assert_eq!(never.next(at("2026-03-01T00:00:00Z"), &utc), None);
    }

    #[test]
    fn a_time_zone_moves_the_moment() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let daily: Schedule = "0 3 * * *".parse().unwrap();
        // 03:00 in Berlin in winter is 02:00 UTC.
        assert_eq!(
            daily.next(at("2026-12-08T00:00:00Z"), &berlin),
            Some(at("2026-12-08T02:00:00Z"))
        );
    }

    #[test]
    fn every_and_the_shorthands() {
        let every: Schedule = "@every 1h30m".parse().unwrap();
        assert_eq!(every, Schedule::Every(5400));
        assert_eq!(
            every.next(at("2026-12-08T00:00:00Z"), &TimeZone::UTC),
            Some(at("2026-12-08T01:30:00Z"))
        );
        assert_eq!(
            "@daily".parse::<Schedule>().unwrap(),
            "0 0 * * *".parse::<Schedule>().unwrap()
        );
    }

    #[test]
    fn bad_expressions_say_which_field() {
        for (bad, says) in [
            ("* * * *", "4 fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("@every 0s", "from 1s"),
            ("@every 5x", "unit"),
        ] {
            let e = bad.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!("x".repeat(300).parse::<Schedule>().is_err());
    }
}
