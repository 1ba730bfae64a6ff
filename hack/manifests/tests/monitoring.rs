//! The alert rules and dashboards against the real `promtool` (Debian's prometheus package,
//! installed by hack/tools.sh) and against the binaries' own registries: `promtool check rules`
//! and `promtool test rules` pass; every alert is fired by a unit test and left silent by
//! another; every series the unit tests feed and every metric a rule or a dashboard query names
//! is one a binary exports (with labels it has); every alert has its runbook section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kaas_manifests::metrics_doc::{self, Family};
use serde_json::Value;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring")
}

/// Every series name a query may use → the labels its family has (plus what a scrape adds).
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let families: Vec<Family> = metrics_doc::all()
        .into_iter()
        .flat_map(|(_, f)| f)
        .chain(metrics_doc::process())
        .collect();
    for family in families {
        let mut labels: BTreeSet<String> = family.labels.clone();
        labels.extend(["job".to_string(), "instance".to_string()]);
        if family.kind == "histogram" {
            labels.insert("le".into());
        }
        for name in metrics_doc::series_names(&family) {
            out.insert(name, labels.clone());
        }
    }
    out.insert(
        "up".into(),
        ["job".to_string(), "instance".to_string()].into(),
    );
    out
}

/// The metric names a PromQL expression uses (identifiers of the kaas, process and up
/// families; PromQL's functions and keywords are neither).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut in_string = false;
    for c in promql.chars().chain([' ']) {
        if c == '"' {
            in_string = !in_string;
            word.clear();
            continue;
        }
        if in_string {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.starts_with("kaas_") || word.starts_with("process_") || word == "up" {
                names.insert(word.clone());
            }
            word.clear();
        }
    }
    names
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("promtool is not installed: run hack/tools.sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn rules() -> Vec<Value> {
    let text = std::fs::read_to_string(monitoring().join("alerts.rules.yaml")).unwrap();
    let file: Value = serde_saphyr::from_str(&text).unwrap();
    file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "alerts.rules.yaml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yaml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn a_broken_expectation_fails_promtool() {
    // The unit tests can fail: the first firing test, expected silent, does.
    let text = std::fs::read_to_string(monitoring().join("alerts.test.yaml")).unwrap();
    let broken = text.replacen(
        "          - exp_labels: {severity: critical}",
        "          - exp_labels: {severity: warning}",
        1,
    );
    assert_ne!(broken, text);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alerts.test.yaml"), broken).unwrap();
    std::fs::copy(
        monitoring().join("alerts.rules.yaml"),
        dir.path().join("alerts.rules.yaml"),
    )
    .unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn every_alert_is_fired_by_a_unit_test_and_left_silent_by_another() {
    let text = std::fs::read_to_string(monitoring().join("alerts.test.yaml")).unwrap();
    let tests: Value = serde_saphyr::from_str(&text).unwrap();
    let (mut fired, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_array().unwrap() {
        for case in test["alert_rule_test"].as_array().unwrap() {
            let name = case["alertname"].as_str().unwrap().to_string();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                fired.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    let alerts: BTreeSet<String> = rules()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect();
    assert!(alerts.len() >= 15, "{alerts:?}");
    assert_eq!(fired, alerts, "alerts fired by a test");
    assert_eq!(silent, alerts, "alerts left silent by a test");
}

#[test]
fn the_unit_tests_feed_series_shaped_like_the_exported_ones() {
    let exported = exported();
    let text = std::fs::read_to_string(monitoring().join("alerts.test.yaml")).unwrap();
    let tests: Value = serde_saphyr::from_str(&text).unwrap();
    let mut seen = 0;
    for test in tests["tests"].as_array().unwrap() {
        for input in test["input_series"].as_array().unwrap() {
            let series = input["series"].as_str().unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let known = exported
                .get(name)
                .unwrap_or_else(|| panic!("{series}: no binary exports {name}"));
            for pair in labels.trim_end_matches('}').split("\",") {
                if let Some((label, _)) = pair.split_once('=') {
                    assert!(
                        known.contains(label.trim()),
                        "{series}: {name} has no label {label}"
                    );
                }
            }
            seen += 1;
        }
    }
    assert!(seen > 30, "{seen}");
}

#[test]
fn rules_and_dashboards_name_only_exported_metrics() {
    let exported = exported();
    let mut named = 0;
    for rule in rules() {
        let expr = rule["expr"].as_str().unwrap();
        for name in metric_names(expr) {
            assert!(exported.contains_key(&name), "{}: {name}", rule["alert"]);
            named += 1;
        }
    }
    for (dashboard, panel, query) in kaas_manifests::dashboards::queries() {
        let names = metric_names(query);
        assert!(!names.is_empty(), "{dashboard} / {panel}: {query}");
        for name in names {
            assert!(
                exported.contains_key(&name),
                "{dashboard} / {panel}: no binary exports {name}"
            );
            named += 1;
        }
    }
    assert!(named > 40, "{named}");
    // The check itself: an unknown name is caught.
    assert!(
        metric_names("rate(kaas_reconcile_totl[5m])")
            .iter()
            .any(|n| !exported.contains_key(n))
    );
}

#[test]
fn every_alert_has_its_runbook_section() {
    let runbooks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks.md"),
    )
    .unwrap();
    for rule in rules() {
        let alert = rule["alert"].as_str().unwrap();
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.ends_with(&format!("docs/runbooks.md#{}", alert.to_lowercase())),
            "{alert}: {url}"
        );
        let heading = format!("\n## {alert}\n");
        let at = runbooks
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/runbooks.md has no section {alert}"));
        let section = &runbooks[at + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for part in ["**Meaning**", "**Look at**", "**Do**"] {
            assert!(section.contains(part), "{alert}: no {part}");
        }
    }
}
