//! Golden-file checks for providers: a fixture (one class, one stack release, one cluster)
//! built offline through the same path as the operator, compared with the committed output.
//! `UPDATE_GOLDEN=1 cargo test` rewrites the golden files after an intended change.

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use std::path::Path;

use crate::provider::Provider;

#[derive(serde::Deserialize)]
struct Fixture {
    class: ProviderClass,
    stack: ClusterStack,
    cluster: KaasCluster,
}

/// Builds `fixture` with `provider` and returns the objects as multi-document YAML, or the
/// problem (a validation error, a provider refusal) as text.
pub fn build_fixture<P: Provider>(provider: &P, fixture: &str) -> Result<String, String> {
    let fixture: Fixture = serde_saphyr::from_str(fixture).map_err(|e| format!("fixture: {e}"))?;
    let built = crate::offline::build(
        provider,
        &fixture.class,
        &[fixture.stack],
        fixture.cluster,
        &[],
    )?;
    let mut out = String::new();
    for obj in built.node_images.iter().chain(built.objects.all()) {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(obj).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Compares the build of `fixture_path` with `golden_path` (or rewrites it when
/// `UPDATE_GOLDEN` is set). Panics with a readable message on a difference.
pub fn check<P: Provider>(provider: &P, fixture_path: &Path, golden_path: &Path) {
    let fixture = std::fs::read_to_string(fixture_path)
        .unwrap_or_else(|e| panic!("{}: {e}", fixture_path.display()));
    let built = build_fixture(provider, &fixture).unwrap_or_else(|e| format!("error: {e}\n"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path, &built)
            .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()));
        return;
    }
    let golden = std::fs::read_to_string(golden_path).unwrap_or_default();
    if golden != built {
        let first = golden
            .lines()
            .zip(built.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(golden.lines().count().min(built.lines().count()));
        panic!(
            "{} differs from the build of {} at line {}:\n  golden: {:?}\n  built:  {:?}\n(UPDATE_GOLDEN=1 rewrites it after an intended change)",
            golden_path.display(),
            fixture_path.display(),
            first + 1,
            golden.lines().nth(first).unwrap_or("<end>"),
            built.lines().nth(first).unwrap_or("<end>"),
        );
    }
}
