//! What makes a release valid, checked when it is loaded and before anything of it is used:
//! the identity fields by the same rules the webhook applies to a `ClusterStack` object, then
//! variables, add-ons (names, order, dependencies, files, template syntax) and a trial render
//! with the defaults, so an unknown variable in a template is caught here and not in a
//! cluster. Every problem is returned at once, named by file and field.

use std::collections::BTreeMap;

use api::v1beta1::{ClusterStack, ClusterStackSpec};

use crate::error::Problem;
use crate::format::{STACK_FILE, StackFile, Stage};
use crate::template::{self, ClusterValues};
use crate::values;

/// Every problem of the release `stack` with its `files`.
/// The Kubernetes calendar's dates and the Pod Security levels, each bad one named.
fn check_settings(stack: &StackFile) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(calendar) = &stack.kubernetes_calendar {
        for (version, date) in &calendar.released {
            let field = format!("kubernetesCalendar.released.{version}");
            if semver::Version::parse(version).is_err() {
                problems.push(Problem::new(
                    STACK_FILE,
                    &field,
                    "must be a full version such as 1.35.0",
                ));
            }
            if !is_date(date) {
                problems.push(Problem::new(
                    STACK_FILE,
                    field,
                    format!("{date:?} must be a date YYYY-MM-DD"),
                ));
            }
        }
        for (minor, date) in &calendar.end_of_life {
            let field = format!("kubernetesCalendar.endOfLife.{minor}");
            if semver::Version::parse(&format!("{minor}.0")).is_err() {
                problems.push(Problem::new(
                    STACK_FILE,
                    &field,
                    "must be a minor such as 1.35",
                ));
            }
            if !is_date(date) {
                problems.push(Problem::new(
                    STACK_FILE,
                    field,
                    format!("{date:?} must be a date YYYY-MM-DD"),
                ));
            }
        }
    }
    use api::validation::{
        MAX_CERTIFICATES_EXPIRY_DAYS as MAX, MIN_CERTIFICATES_EXPIRY_DAYS as MIN,
    };
    if let Some(days) = stack.kubeadm.certificates_expiry_days
        && !(MIN..=MAX).contains(&days)
    {
        problems.push(Problem::new(
            STACK_FILE,
            "kubeadm.certificatesExpiryDays",
            format!("{days} must be from {MIN} (Cluster API's minimum) to {MAX}"),
        ));
    }
    for (field, message) in api::validation::registry_mirror_problems(
        "kubeadm.registryMirrors",
        &stack.kubeadm.registry_mirrors,
    ) {
        problems.push(Problem::new(STACK_FILE, field, message));
    }
    if let Some(ps) = &stack.kubeadm.pod_security {
        for (name, level) in [
            ("enforce", &ps.enforce),
            ("audit", &ps.audit),
            ("warn", &ps.warn),
        ] {
            if let Some(level) = level
                && !crate::format::POD_SECURITY_LEVELS.contains(&level.as_str())
            {
                problems.push(Problem::new(
                    STACK_FILE,
                    format!("kubeadm.podSecurity.{name}"),
                    format!("{level:?} must be privileged, baseline or restricted"),
                ));
            }
        }
        for (i, ns) in ps.exempt_namespaces.iter().enumerate() {
            if !api::validation::is_dns_label(ns) {
                problems.push(Problem::new(
                    STACK_FILE,
                    format!("kubeadm.podSecurity.exemptNamespaces[{i}]"),
                    format!("{ns:?} must be a namespace name"),
                ));
            }
        }
    }
    problems
}

/// Whether `s` is a date `YYYY-MM-DD` that exists.
pub fn is_date(s: &str) -> bool {
    s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok()
}

pub fn check(stack: &StackFile, files: &BTreeMap<String, String>) -> Vec<Problem> {
    let mut problems = identity(stack);
    let var = |p: &mut Vec<Problem>, path: String, v: &crate::format::Variable| {
        if let Some(d) = &v.default
            && let Some(message) = values::check_value(v, d)
        {
            p.push(Problem::new(STACK_FILE, format!("{path}.default"), message));
        }
    };
    for (name, v) in &stack.variables {
        if !is_identifier(name) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("variables.{name}"),
                "must be a letter followed by letters, digits or _",
            ));
        }
        var(&mut problems, format!("variables.{name}"), v);
    }
    if let Some(build) = &stack.node_image_build {
        if !files.contains_key(&build.packer) {
            problems.push(Problem::new(
                STACK_FILE,
                "nodeImageBuild.packer",
                format!("file {:?} is not in the release", build.packer),
            ));
        }
        if stack.node_images.is_empty() {
            problems.push(Problem::new(
                STACK_FILE,
                "nodeImageBuild",
                "names a Packer template, but nodeImages lists no image for it to build",
            ));
        }
    }
    let mut seen: BTreeMap<&str, Stage> = BTreeMap::new();
    for (i, addon) in stack.addons.iter().enumerate() {
        let path = format!("addons[{i}]");
        if !api::validation::is_dns_label(&addon.name) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("{path}.name"),
                format!("{:?} must be a DNS label", addon.name),
            ));
        }
        if seen.contains_key(addon.name.as_str()) {
            problems.push(Problem::new(
                STACK_FILE,
                format!("{path}.name"),
                format!("{:?} is listed twice", addon.name),
            ));
        }
        if addon.version.is_empty() {
            problems.push(Problem::new(
                STACK_FILE,
                format!("{path}.version"),
                "required",
            ));
        }
        for (j, dep) in addon.depends_on.iter().enumerate() {
            let field = format!("{path}.dependsOn[{j}]");
            match seen.get(dep.as_str()) {
                // Listed earlier: dependencies come first, which also rules out cycles.
                Some(stage) if *stage > addon.stage => problems.push(Problem::new(
                    STACK_FILE,
                    field,
                    format!(
                        "{dep:?} is a postUpgrade add-on; a preUpgrade add-on cannot wait for it"
                    ),
                )),
                Some(_) => {}
                None => problems.push(Problem::new(
                    STACK_FILE,
                    field,
                    format!("{dep:?} must be an add-on listed before {:?}", addon.name),
                )),
            }
        }
        if addon.manifests.is_empty() {
            problems.push(Problem::new(
                STACK_FILE,
                format!("{path}.manifests"),
                "lists no file",
            ));
        }
        for (j, file) in addon.manifests.iter().enumerate() {
            match files.get(file) {
                None => problems.push(Problem::new(
                    STACK_FILE,
                    format!("{path}.manifests[{j}]"),
                    format!("file {file:?} is not in the release"),
                )),
                Some(source) => problems.extend(template::check_syntax(file, source)),
            }
        }
        for (name, v) in &addon.values {
            var(&mut problems, format!("{path}.values.{name}"), v);
        }
        for (j, capability) in addon.provides.iter().enumerate() {
            if capability != crate::format::NETWORK_POLICY {
                problems.push(Problem::new(
                    STACK_FILE,
                    format!("{path}.provides[{j}]"),
                    format!(
                        "{capability:?} is not a known capability (known: {})",
                        crate::format::NETWORK_POLICY
                    ),
                ));
            }
        }
        seen.insert(&addon.name, addon.stage);
    }
    problems.extend(check_settings(stack));
    if problems.is_empty() {
        problems.extend(trial_render(stack, files));
    }
    problems
}

/// The rules of a `ClusterStack` object, applied to the same fields of `stack.yaml`.
fn identity(stack: &StackFile) -> Vec<Problem> {
    let object = ClusterStack::new(
        "release",
        ClusterStackSpec {
            provider: stack.provider.clone(),
            name: stack.name.clone(),
            version: stack.version.clone(),
            kubernetes_versions: stack.kubernetes_versions.clone(),
            upgrade_from: stack.upgrade_from.clone(),
            node_images: stack.node_images.clone(),
            source: None,
        },
    );
    match api::validation::validate_cluster_stack(&object, None, &api::Catalog::default()) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .0
            .into_iter()
            .map(|e| {
                let field = e
                    .field
                    .strip_prefix("spec.")
                    .unwrap_or(&e.field)
                    .to_string();
                Problem::new(STACK_FILE, field, e.message)
            })
            .collect(),
    }
}

/// Renders the release for a sample cluster on each Kubernetes version it supports, with
/// every default; add-ons whose values have no default are rendered only by real clusters.
fn trial_render(stack: &StackFile, files: &BTreeMap<String, String>) -> Vec<Problem> {
    let mut sample = stack.clone();
    sample
        .addons
        .retain(|a| a.values.values().all(|v| v.default.is_some()));
    if sample.variables.values().any(|v| v.default.is_none()) {
        return Vec::new();
    }
    let release = crate::Release {
        stack: sample,
        files: files.clone(),
        digest: String::new(),
        base: None,
    };
    let mut problems: Vec<Problem> = Vec::new();
    for version in &stack.kubernetes_versions {
        let cluster = ClusterValues::sample(&stack.provider, version);
        if let Err(crate::Error::Invalid(p)) = template::render_addons(&release, &cluster, &[]) {
            for problem in p {
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
    }
    problems
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
