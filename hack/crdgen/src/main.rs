//! `make crds`: writes the CRDs generated from the `api` crate's types into `deploy/crds/`
//! (or the folder given as the only argument), with a kustomization listing them.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "deploy/crds".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (file, content) in api::crds::render_all()? {
        std::fs::write(dir.join(&file), content)?;
        println!("wrote {}", dir.join(file).display());
    }
    Ok(())
}
