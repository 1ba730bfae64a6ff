//! Finding the control plane binaries and the other programs the tests run: the folder
//! `hack/control-plane.sh` prints (its cache, with `$KUBEBUILDER_ASSETS`' kube-apiserver and
//! etcd when set), the script being run once per test binary to fill it when empty.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

/// Paths of the binaries.
#[derive(Debug, Clone)]
pub(crate) struct Assets {
    pub(crate) dir: PathBuf,
    pub(crate) apiserver: PathBuf,
    pub(crate) etcd: PathBuf,
    pub(crate) kubectl: PathBuf,
}

fn from_dir(dir: &Path) -> Option<Assets> {
    let assets = Assets {
        dir: dir.to_path_buf(),
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

/// A program of the assets folder (`kubeadm-1.35`, `containerd-hosts`, `helm`, ...) or one of
/// its folders (`cluster-api-crds`).
pub fn program(name: &str) -> Result<PathBuf> {
    let path = locate()?.dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} has no {name}: run hack/control-plane.sh",
        path.parent().unwrap_or(&path).display()
    );
    Ok(path)
}
