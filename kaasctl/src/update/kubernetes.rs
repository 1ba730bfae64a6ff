//! `kaasctl stack update DIR --kubernetes FILE|URL`: new upstream Kubernetes patch releases
//! into a stack that lists its own Kubernetes versions (the base stack). The released
//! versions come as a small document:
//!
//! ```yaml
//! releases:
//!   - {version: "1.34.2", date: "2026-11-12"}
//! endOfLife:
//!   "1.33": "2026-06-28"
//! ```
//!
//! For every minor the stack offers, the newest released patch is added (older patches stay:
//! clusters pinned to them upgrade from there); every version of a minor past its end of life
//! is dropped. New minors are not added: offering one is a decision, not an update.

use std::collections::BTreeMap;

use semver::Version;

/// The released versions and the end of life of each minor.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Releases {
    /// Released versions.
    #[serde(default)]
    pub releases: Vec<Released>,
    /// The end of life of a minor (`"1.33"`) as `YYYY-MM-DD`.
    #[serde(default)]
    pub end_of_life: BTreeMap<String, String>,
}

/// One released version.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Released {
    /// Its version, `1.34.2`.
    pub version: String,
    /// When it was released, `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
}

/// What changes in a stack's Kubernetes versions.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    /// Each new version, with the version of its minor it follows (whose node image it
    /// derives from).
    pub added: Vec<(String, String)>,
    /// Versions dropped (their minor is past its end of life).
    pub dropped: Vec<String>,
    /// The versions after the change, oldest first.
    pub versions: Vec<String>,
}

fn minor(v: &Version) -> String {
    format!("{}.{}", v.major, v.minor)
}

/// Whether `date` is `YYYY-MM-DD`.
fn is_date(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// The change to `current` that `releases` asks for on `today` (`YYYY-MM-DD`); an error
/// names a bad field of the document, or says that nothing would be left.
pub fn plan(current: &[String], releases: &Releases, today: &str) -> Result<Change, String> {
    let parse = |field: String, v: &str| {
        Version::parse(v).map_err(|e| format!("{field}: {v:?} is not a version: {e}"))
    };
    let mut have: Vec<Version> = current
        .iter()
        .enumerate()
        .map(|(i, v)| parse(format!("kubernetesVersions[{i}]"), v))
        .collect::<Result<_, _>>()?;
    have.sort();
    let mut released = Vec::new();
    for (i, r) in releases.releases.iter().enumerate() {
        if let Some(d) = &r.date
            && !is_date(d)
        {
            return Err(format!("releases[{i}].date: {d:?} is not YYYY-MM-DD"));
        }
        let v = parse(format!("releases[{i}].version"), &r.version)?;
        if v.pre.is_empty() {
            released.push(v);
        }
    }
    for (m, d) in &releases.end_of_life {
        if !is_date(d) {
            return Err(format!("endOfLife[{m}]: {d:?} is not YYYY-MM-DD"));
        }
    }
    let minors: Vec<String> = {
        let mut m: Vec<String> = have.iter().map(minor).collect();
        m.dedup();
        m
    };
    let mut added = Vec::new();
    let mut after = have.clone();
    for m in &minors {
        let newest_have = have.iter().filter(|v| minor(v) == *m).max().cloned();
        let newest_released = released.iter().filter(|v| minor(v) == *m).max();
        if let (Some(h), Some(r)) = (newest_have, newest_released)
            && *r > h
        {
            added.push((r.to_string(), h.to_string()));
            after.push(r.clone());
        }
    }
    let ended = |v: &Version| {
        releases
            .end_of_life
            .get(&minor(v))
            .is_some_and(|d| d.as_str() < today)
    };
    let dropped: Vec<String> = after
        .iter()
        .filter(|v| ended(v))
        .map(Version::to_string)
        .collect();
    after.retain(|v| !ended(v));
    after.sort();
    if after.is_empty() {
        return Err(
            "every version the stack offers is past its end of life: add a supported minor".into(),
        );
    }
    Ok(Change {
        added,
        dropped,
        versions: after.iter().map(Version::to_string).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn releases(versions: &[&str], eol: &[(&str, &str)]) -> Releases {
        Releases {
            releases: versions
                .iter()
                .map(|v| Released {
                    version: v.to_string(),
                    date: Some("2026-11-12".into()),
                })
                .collect(),
            end_of_life: eol
                .iter()
                .map(|(m, d)| (m.to_string(), d.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_newest_patch_of_each_offered_minor_comes_and_ended_minors_go() {
        let current = ["1.33.4", "1.34.1", "1.35.0"].map(String::from);
        let r = releases(
            &[
                "1.33.4",
                "1.34.1",
                "1.34.2",
                "1.34.3",
                "1.35.0",
                "1.36.0",
                "1.35.1-rc.0",
            ],
            &[("1.33", "2026-06-28"), ("1.34", "2027-02-28")],
        );
        let change = plan(&current, &r, "2026-12-03").unwrap();
        assert_eq!(
            change,
            Change {
                added: vec![("1.34.3".into(), "1.34.1".into())],
                dropped: vec!["1.33.4".into()],
                versions: ["1.34.1", "1.34.3", "1.35.0"].map(String::from).to_vec(),
            },
            "no new minor, no pre-release"
        );
        let none = plan(&change.versions, &r, "2026-12-03").unwrap();
        assert!(none.added.is_empty() && none.dropped.is_empty());
    }

    #[test]
    fn bad_documents_and_an_empty_result_are_errors_naming_the_field() {
        let current = ["1.33.4".to_string()];
        let err = plan(&current, &releases(&["1.33.x"], &[]), "2026-12-03").unwrap_err();
        assert!(err.starts_with("releases[0].version"), "{err}");
        let err = plan(&current, &releases(&[], &[("1.33", "June")]), "2026-12-03").unwrap_err();
        assert!(err.starts_with("endOfLife[1.33]"), "{err}");
        let err = plan(
            &current,
            &releases(&[], &[("1.33", "2026-01-01")]),
            "2026-12-03",
        )
        .unwrap_err();
        assert!(err.contains("end of life"), "{err}");
    }
}
