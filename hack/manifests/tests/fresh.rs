//! The committed generated files under `deploy/` (CRDs, registrations, bundles, the chart's
//! generated templates and values schema) are exactly what `make manifests` writes.

#[test]
fn every_generated_file_under_deploy_is_current() -> anyhow::Result<()> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut stale = Vec::new();
    let files = kaas_manifests::files()?;
    assert!(files.len() > 20, "{} files", files.len());
    for (path, want) in files {
        let have = std::fs::read_to_string(deploy.join(&path)).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale under deploy/: {stale:?}: run `make manifests` and commit the result"
    );
    Ok(())
}

/// docs/metrics.md is generated from each binary's sample registry, which holds one series per
/// family: a metric registered without a series in the sample would be left out of the page
/// (prometheus-client writes no HELP for a family without series). Every registration in the
/// metrics modules is counted against the families the samples show.
#[test]
fn every_registered_metric_is_in_the_sample() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let documented: std::collections::BTreeMap<&str, usize> = kaas_manifests::metrics_doc::all()
        .into_iter()
        .map(|(binary, families)| (binary, families.len()))
        .collect();
    for (binary, files) in [
        (
            "kaas-operator-<provider>",
            &["operator-core/src/metrics.rs"][..],
        ),
        ("kaas-webhooks", &["webhooks/src/metrics.rs"][..]),
        ("kaas-installer", &["installer/src/metrics.rs"][..]),
    ] {
        let registered: usize = files
            .iter()
            .map(|f| {
                let source = std::fs::read_to_string(root.join(f)).unwrap();
                [".register(", ".register_with_unit(", ".register_collector("]
                    .iter()
                    .map(|call| source.matches(call).count())
                    .sum::<usize>()
            })
            .sum();
        assert!(registered > 2, "{binary}: {registered}");
        assert_eq!(
            documented[binary], registered,
            "{binary}: {registered} metrics registered, {} in its sample (docs/metrics.md)",
            documented[binary]
        );
    }
}
