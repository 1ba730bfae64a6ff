//! Finding the control plane binaries: `$KUBEBUILDER_ASSETS`, else the cache of
//! `hack/control-plane.sh`, which is run (once per test binary) to fill it when empty.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

/// Paths of the binaries.
#[derive(Debug, Clone)]
pub(crate) struct Assets {
    pub(crate) apiserver: PathBuf,
    pub(crate) etcd: PathBuf,
    pub(crate) kubectl: PathBuf,
}

fn from_dir(dir: &Path) -> Option<Assets> {
    let assets = Assets {
        apiserver: dir.join("kube-apiserver"),
        etcd: dir.join("etcd"),
        kubectl: dir.join("kubectl"),
    };
    (assets.apiserver.exists() && assets.etcd.exists()).then_some(assets)
}

pub(crate) fn locate() -> Result<Assets> {
    static FOUND: Mutex<Option<Assets>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = found.as_ref() {
        return Ok(a.clone());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../control-plane.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: the test control plane is not available",
            script.display()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    let mut assets = from_dir(&dir)
        .with_context(|| format!("no kube-apiserver and etcd in {}", dir.display()))?;
    if !assets.kubectl.exists() {
        // KUBEBUILDER_ASSETS folders do not always carry kubectl.
        assets.kubectl = PathBuf::from("kubectl");
    }
    *found = Some(assets.clone());
    Ok(assets)
}
