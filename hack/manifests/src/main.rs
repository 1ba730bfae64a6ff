//! `make manifests`: writes what `deploy/` holds that is generated from Rust (`kaas_manifests::files`).
//! `hack/manifests/tests/fresh.rs` fails when the committed files differ from what this writes.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let deploy = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "deploy".into()));
    for (path, content) in kaas_manifests::files()? {
        let path = deploy.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, content)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
