//! Golden build tests: each fixture under tests/fixtures/ built offline through the operator's
//! own path, compared with tests/golden/ (UPDATE_GOLDEN=1 rewrites after an intended change).

use std::path::Path;

fn check(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    operator_core::golden::check(
        &kaas_provider_hetzner::Provider::default(),
        &dir.join("fixtures").join(format!("{name}.yaml")),
        &dir.join("golden").join(format!("{name}.yaml")),
    );
}

#[test]
fn prod() {
    check("prod");
}
