//! `make manifests`: writes what `deploy/` holds that is generated from Rust: the CRDs (from the
//! `api` types) into `deploy/crds/`, the webhook registrations into `deploy/webhooks/` and each
//! provider operator's objects (from its bundle, as the installer renders them) into
//! `deploy/operators/<provider>/`, and the installer's RBAC policy into `deploy/installer/`.
//! Tests fail when the committed files differ from what this writes.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let deploy = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "deploy".into()));
    let crds = deploy.join("crds");
    std::fs::create_dir_all(&crds)?;
    for (file, content) in api::crds::render_all()? {
        std::fs::write(crds.join(&file), content)?;
        println!("wrote {}", crds.join(file).display());
    }
    let webhooks = deploy.join("webhooks");
    std::fs::create_dir_all(&webhooks)?;
    let path = webhooks.join("webhook-configurations.yaml");
    std::fs::write(&path, kaas_webhooks::registration::deployed_yaml()?)?;
    println!("wrote {}", path.display());
    for provider in api::install::bundles::providers() {
        let dir = deploy.join("operators").join(provider);
        std::fs::create_dir_all(&dir)?;
        for (file, content) in installer::deploy::files(provider)? {
            std::fs::write(dir.join(&file), content)?;
            println!("wrote {}", dir.join(file).display());
        }
    }
    let path = deploy.join("installer").join("rbac-policy.yaml");
    std::fs::write(&path, installer::deploy::rbac_policy())?;
    println!("wrote {}", path.display());
    Ok(())
}
