//! Everything `make manifests` writes under `deploy/`, as `(path under deploy/, content)`: the
//! CRDs (from the `api` types), the webhook registrations, each provider operator's objects (from
//! its bundle, as the installer renders them), the installer's RBAC policy, and the generated
//! parts of the Helm chart (`chart`). One function so that the binary writes exactly what the
//! staleness test compares.

pub mod chart;
pub mod dashboards;
pub mod metrics_doc;

use std::path::PathBuf;

/// Every generated file, by path relative to `deploy/` (`../docs/metrics.md` is the metrics
/// reference).
pub fn files() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for (file, content) in api::crds::render_all()? {
        files.push((PathBuf::from("crds").join(file), content));
    }
    files.push((
        PathBuf::from("webhooks/webhook-configurations.yaml"),
        kaas_webhooks::registration::deployed_yaml()?,
    ));
    for provider in api::install::bundles::providers() {
        for (file, content) in installer::deploy::files(provider)? {
            files.push((
                PathBuf::from("operators").join(provider).join(file),
                content,
            ));
        }
    }
    files.push((
        PathBuf::from("installer/rbac-policy.yaml"),
        installer::deploy::rbac_policy(),
    ));
    files.push((
        PathBuf::from("monitoring/alerts.yaml"),
        chart::prometheus_rule_object()?,
    ));
    for (file, content) in dashboards::files()? {
        files.push((PathBuf::from("monitoring/dashboards").join(file), content));
    }
    for (file, content) in chart::files()? {
        files.push((PathBuf::from("chart/kaas").join(file), content));
    }
    files.push((PathBuf::from("../docs/metrics.md"), metrics_doc::page()));
    Ok(files)
}
