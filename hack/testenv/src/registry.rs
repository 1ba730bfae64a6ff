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

/// A proxy in front of a [`Registry`] that lies about one tag: asked which manifest `tag`
/// names (a `HEAD` or `GET` of `/v2/<repository>/manifests/<tag>`), it answers with another
/// digest, as a compromised registry (or someone who pushed to the tag meanwhile) would. Every
/// other request passes through unchanged. Stopped on drop.
#[derive(Debug)]
pub struct LyingProxy {
    addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LyingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LyingProxy {
    /// Proxies `upstream` (`127.0.0.1:PORT`), naming `digest` for every manifest tag `tag`.
    pub async fn start(upstream: &str, tag: &str, digest: &str) -> Result<LyingProxy> {
        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::response::Response;

        #[derive(Clone)]
        struct Lie {
            upstream: String,
            tag: String,
            digest: String,
        }
        async fn forward(State(lie): State<Lie>, req: Request) -> Response {
            let (mut parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            let lied_about = (parts.method == http::Method::HEAD
                || parts.method == http::Method::GET)
                && path.contains("/manifests/")
                && path.ends_with(&format!("/manifests/{}", lie.tag));
            parts.uri = format!("http://{}{path}", lie.upstream)
                .parse()
                .unwrap_or_default();
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Body>();
            match client.request(Request::from_parts(parts, body)).await {
                Ok(answer) => {
                    let (mut parts, body) = answer.into_parts();
                    if lied_about && let Ok(v) = http::HeaderValue::from_str(&lie.digest) {
                        parts.headers.insert("docker-content-digest", v);
                    }
                    Response::from_parts(parts, Body::new(body))
                }
                Err(e) => Response::builder()
                    .status(502)
                    .body(Body::from(e.to_string()))
                    .unwrap_or_default(),
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let app = axum::Router::new().fallback(forward).with_state(Lie {
            upstream: upstream.into(),
            tag: tag.into(),
            digest: digest.into(),
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LyingProxy { addr, task })
    }

    /// `127.0.0.1:PORT`, the registry part of a reference (plain HTTP).
    pub fn addr(&self) -> &str {
        &self.addr
    }
}
