//! Starting the real `kaas-webhooks` binary for a test: its own serving certificate from a
//! test CA, free loopback ports, a log file, and a wait until `/readyz` answers 200.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kaas_testenv::TestEnv;
use kaas_testenv::certs::TestCa;

/// A running `kaas-webhooks`.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its HTTPS address.
    pub addr: String,
    /// Its metrics address.
    pub metrics_addr: String,
    /// The CA its certificate chains to.
    pub ca: TestCa,
    /// Its log.
    pub log: PathBuf,
}

impl Server {
    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its resident memory now and at its peak (VmRSS, VmHWM), in bytes.
    pub fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} in /proc status"))?;
            let kb: u64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
            Ok(kb * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `kaas-webhooks` against `env` with `kubeconfig` and `extra` flags, and waits until
/// it is ready.
pub async fn start(
    env: &TestEnv,
    kubeconfig: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> Result<Server> {
    kaas_testenv::install_crypto_provider();
    let ca = TestCa::new()?;
    let dir = env.dir().join(format!("{name}-certs"));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = ca.issue_files(&dir, "kaas-webhooks")?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let log = env.dir().join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let child = Command::new(env!("CARGO_BIN_EXE_kaas-webhooks"))
        .args([
            "--bind-address",
            &addr,
            "--metrics-bind-address",
            &metrics_addr,
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .context("starting kaas-webhooks")?;
    env.adopt(&child)?;
    let server = Server {
        child,
        addr,
        metrics_addr,
        ca,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = kaas_testenv::http::get_tls(&server.addr, "/readyz", &server.ca.pem()).await
            && r.status == 200
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("{name} not ready after 30 s:\n{}", server.log_text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The webhook server's namespace, service account and RBAC from `deploy/`, applied as an
/// operator-admin would: a test runs it with exactly the rights it is deployed with.
pub fn apply_webhook_rbac(env: &TestEnv) -> Result<()> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for file in [
        "namespace/namespace.yaml",
        "webhooks/serviceaccount.yaml",
        "webhooks/rbac.yaml",
    ] {
        let out = env
            .kubectl()
            .args(["apply", "-n", "kaas-system", "-f"])
            .arg(deploy.join(file))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
