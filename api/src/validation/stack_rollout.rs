//! `StackRollout` rules: the release named by a stack name and a semantic version, 1 to 16
//! uniquely named waves with well-formed label selectors, and every number within its
//! bounds, each bad field named.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::ValidationErrors;
use super::names::{is_dns_label, is_label_value, is_qualified_name};
use crate::limits::*;
use crate::v1beta1::StackRolloutSpec;

/// Bounds of the time one cluster may take.
pub const CLUSTER_TIMEOUT_SECONDS: std::ops::RangeInclusive<i64> = 10..=86_400;

/// Every rule for a rollout's spec.
pub fn validate_stack_rollout_spec(spec: &StackRolloutSpec) -> ValidationErrors {
    let mut errs = ValidationErrors::default();
    if !is_dns_label(&spec.cluster_stack.name) {
        errs.add(
            "spec.clusterStack.name",
            format!("{:?} must be a DNS label", spec.cluster_stack.name),
        );
    }
    if semver::Version::parse(&spec.cluster_stack.version).is_err() {
        errs.add(
            "spec.clusterStack.version",
            format!(
                "{:?} must be a semantic version such as 1.2.0",
                spec.cluster_stack.version
            ),
        );
    }
    if spec.waves.is_empty() || spec.waves.len() > MAX_WAVES {
        errs.add("spec.waves", format!("must hold 1 to {MAX_WAVES} waves"));
    }
    let mut names = HashSet::new();
    for (i, wave) in spec.waves.iter().take(MAX_WAVES).enumerate() {
        let at = |field: &str| format!("spec.waves[{i}].{field}");
        if !is_dns_label(&wave.name) {
            errs.add(at("name"), format!("{:?} must be a DNS label", wave.name));
        } else if !names.insert(wave.name.as_str()) {
            errs.add(at("name"), format!("{:?} is used twice", wave.name));
        }
        if let Some(n) = wave.max_concurrent
            && !(1..=MAX_CONCURRENT).contains(&n)
        {
            errs.add(
                at("maxConcurrent"),
                format!("must be 1 to {MAX_CONCURRENT}"),
            );
        }
        if let Some(s) = wave.soak_seconds
            && !(0..=MAX_SOAK_SECONDS).contains(&s)
        {
            errs.add(
                at("soakSeconds"),
                format!("must be 0 to {MAX_SOAK_SECONDS} (a week)"),
            );
        }
        selector_problems(&wave.selector, &at("selector"), &mut errs);
    }
    if let Some(s) = spec.min_ready_seconds
        && !(0..=3600).contains(&s)
    {
        errs.add("spec.minReadySeconds", "must be 0 to 3600");
    }
    if let Some(t) = spec.cluster_timeout_seconds
        && !CLUSTER_TIMEOUT_SECONDS.contains(&t)
    {
        errs.add(
            "spec.clusterTimeoutSeconds",
            format!(
                "must be {} to {}",
                CLUSTER_TIMEOUT_SECONDS.start(),
                CLUSTER_TIMEOUT_SECONDS.end()
            ),
        );
    }
    errs
}

/// A label selector as the API server checks one: qualified keys, label values, known
/// operators, values only with `In`/`NotIn` (and then at least one).
fn selector_problems(selector: &LabelSelector, path: &str, errs: &mut ValidationErrors) {
    for (key, value) in selector.match_labels.iter().flatten() {
        if !is_qualified_name(key) || !is_label_value(value) {
            errs.add(
                format!("{path}.matchLabels"),
                format!("{key:?}: {value:?} is not a label key and value"),
            );
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        if !is_qualified_name(&e.key) {
            errs.add(
                format!("{at}.key"),
                format!("{:?} is not a label key", e.key),
            );
        }
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errs.add(format!("{at}.values"), "must not be empty with In or NotIn")
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.add(
                format!("{at}.values"),
                "must be empty with Exists or DoesNotExist",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.add(
                format!("{at}.operator"),
                format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
            ),
        }
        if values.iter().any(|v| !is_label_value(v)) {
            errs.add(format!("{at}.values"), "every value must be a label value");
        }
    }
}
