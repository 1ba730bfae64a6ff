//! A real OCI registry on loopback: Debian's `docker-registry` (the CNCF distribution server),
//! installed by `hack/tools.sh`, with its storage in a temporary folder. Stopped on drop.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::Server;

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    addr: String,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Registry> {
        let bin = which("docker-registry")
            .context("docker-registry is not installed: run hack/tools.sh")?;
        let dir = tempfile::tempdir()?;
        let [port] = crate::free_ports()?;
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let mut server = Server::spawn(
            "docker-registry",
            &bin,
            &["serve".into(), config_path.display().to_string()],
            dir.path(),
        )?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            server.check_running()?;
            if let Ok(r) = crate::http::get(&addr, "/v2/").await
                && r.status == 200
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("registry did not answer on {addr}:\n{}", server.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Registry {
            addr,
            _server: server,
            _dir: dir,
        })
    }

    /// `127.0.0.1:PORT`, the registry part of a reference (plain HTTP).
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}
