//! Every binary refuses, at start, a management cluster older than the supported minimum
//! (`api::server_version`), naming the version it found and the one it needs, instead of
//! running against an API server that would ignore the CRDs' validation rules and the webhooks'
//! match conditions. The old API server is a loopback stand-in that answers `/version` as
//! Kubernetes 1.20 did (nothing else is asked before the refusal).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `/version` as Kubernetes v1.20.2 over plain HTTP; returns a kubeconfig for it.
async fn old_api_server(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let body =
                    r#"{"major":"1","minor":"20","gitVersion":"v1.20.2","platform":"linux/amd64"}"#;
                let _ = tcp
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "old", "cluster": {"server": url}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "old", "context": {"cluster": "old", "user": "u"}}],
            "current-context": "old",
        })
        .to_string(),
    )?;
    Ok(kubeconfig)
}

/// Runs `binary` with `args` against the old server: it must exit unsuccessfully within 20 s.
async fn refusal(binary: &str, args: &[String], kubeconfig: &std::path::Path) -> Result<String> {
    let mut child = Command::new(kaas_e2e::binary(binary)?)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if status.success() {
                bail!("{binary} ran against Kubernetes 1.20 and exited successfully: {text}");
            }
            return Ok(text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{binary} still runs 20 s after connecting to Kubernetes 1.20");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_binary_refuses_a_management_cluster_older_than_the_minimum() -> Result<()> {
    kaas_testenv::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let kubeconfig = old_api_server(dir.path()).await?;
    let ca = kaas_testenv::certs::TestCa::new()?;
    let (cert, key) = ca.issue_files(dir.path(), "kaas-webhooks")?;
    let port = || -> Result<String> { Ok(format!("127.0.0.1:{}", kaas_e2e::free_port()?)) };
    let admin = |extra: &[&str]| -> Result<Vec<String>> {
        let mut args = vec![
            format!("--metrics-bind-address={}", port()?),
            format!("--health-probe-bind-address={}", port()?),
            "--metrics-insecure".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Ok(args)
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("kaas-operator-docker", admin(&[])?),
        ("kaas-operator-openstack", admin(&[])?),
        ("kaas-installer", admin(&[])?),
        (
            "kaas-webhooks",
            vec![
                format!("--bind-address={}", port()?),
                format!("--metrics-bind-address={}", port()?),
                "--metrics-insecure".into(),
                format!("--tls-cert-file={}", cert.display()),
                format!("--tls-key-file={}", key.display()),
            ],
        ),
        ("kaasctl", vec!["status".into()]),
    ];
    for (binary, args) in cases {
        let text = refusal(binary, &args, &kubeconfig).await?;
        assert!(
            text.contains("v1.20.2") && text.contains("1.33 or newer"),
            "{binary} must name the version found and the one needed: {text}"
        );
    }
    Ok(())
}
