//! A tenant's workload API server as a hostile tenant could make it. Stand-in: a TLS front
//! on loopback that passes every request to a real kube-apiserver, except the list of Nodes,
//! which it answers as [`Nodes`] says: pages of Nodes without end, Nodes far too large, or a
//! list that streams slowly and never ends. The tenant owns its cluster's endpoint, so each
//! is what the operator may meet. It serves from a thread of its own, as the issuer does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::TestCa;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Reply = Response<UnsyncBoxBody<Bytes, BoxError>>;

/// How the front answers the list of Nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// Pages of the size asked for, each with a continue token: a million Nodes.
    Many,
    /// Every Node carries a 256 KiB annotation, the page size asked for is ignored, and the
    /// list holds 4,096 of them (a GiB), sent as fast as the reader takes it.
    Large,
    /// The list opens and then trickles one small Node every 50 ms, never closing.
    Endless,
}

/// A running front; it stops when dropped.
#[derive(Debug)]
pub struct Front {
    kubeconfig: String,
    sent: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Front {
    /// Starts a front of the API server whose kubeconfig is `upstream`, answering Node lists
    /// as `nodes` says.
    pub fn start(upstream: &std::path::Path, nodes: Nodes) -> Result<Front> {
        crate::install_crypto_provider();
        let ca = TestCa::new()?;
        let (cert, key) = ca.issue("kaas-hostile-workload")?;
        let certs =
            CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let server = format!("https://{}", listener.local_addr()?);
        let sent = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let upstream = upstream.to_path_buf();
        let counter = sent.clone();
        crate::on_own_thread("hostile-workload", move || async move {
            let (Ok(listener), Ok(client)) = (
                tokio::net::TcpListener::from_std(listener),
                crate::client_for(&upstream).await,
            ) else {
                return;
            };
            let serve = async {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, client, counter) =
                        (acceptor.clone(), client.clone(), counter.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            answer(request, client.clone(), nodes, counter.clone())
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stopped => {}
            }
        })?;
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hostile\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: hostile\n  user:\n    token: hostile-tenant\ncontexts:\n- name: hostile\n  context: {{cluster: hostile, user: hostile}}\ncurrent-context: hostile\n",
            base64::engine::general_purpose::STANDARD.encode(ca.pem())
        );
        Ok(Front {
            kubeconfig,
            sent,
            stop: Some(stop),
        })
    }

    /// A kubeconfig (YAML) that reaches the front.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// Bytes of Node lists sent so far.
    pub fn node_bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

async fn answer(
    request: Request<Incoming>,
    client: kube::Client,
    nodes: Nodes,
    sent: Arc<AtomicU64>,
) -> Result<Reply, BoxError> {
    if request.method() == http::Method::GET && request.uri().path() == "/api/v1/nodes" {
        let query = request.uri().query().unwrap_or_default().to_string();
        return Ok(node_list(nodes, &query, sent));
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut upstream = Request::builder().method(parts.method).uri(path);
    for name in [http::header::CONTENT_TYPE, http::header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            upstream = upstream.header(name, v);
        }
    }
    let reply = client
        .send(upstream.body(kube::client::Body::from(body.to_vec()))?)
        .await?;
    Ok(reply.map(|b| b.map_err(BoxError::from).boxed_unsync()))
}

fn node(name: &str, blob: usize) -> String {
    let annotation = "x".repeat(blob);
    format!(
        r#"{{"metadata":{{"name":"{name}","labels":{{"kubernetes.io/hostname":"{name}"}},"annotations":{{"hostile.example/blob":"{annotation}"}}}}}}"#
    )
}

fn node_list(nodes: Nodes, query: &str, sent: Arc<AtomicU64>) -> Reply {
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let head =
        r#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":["#;
    let body = match nodes {
        Nodes::Many => {
            let from = param("continue").unwrap_or(0);
            let limit = param("limit").unwrap_or(500).min(1000);
            let items: Vec<String> = (from..from + limit)
                .map(|i| node(&format!("many-{i}"), 0))
                .collect();
            let text = format!(
                r#"{{"kind":"NodeList","apiVersion":"v1","metadata":{{"resourceVersion":"1","continue":"{}"}},"items":[{}]}}"#,
                from + limit,
                items.join(",")
            );
            sent.fetch_add(text.len() as u64, Ordering::Relaxed);
            Full::new(Bytes::from(text))
                .map_err(BoxError::from)
                .boxed_unsync()
        }
        Nodes::Large => {
            let chunks = trickle(head, 4096, Duration::ZERO, 256 * 1024, sent);
            StreamBody::new(chunks).boxed_unsync()
        }
        Nodes::Endless => {
            let chunks = trickle(head, usize::MAX, Duration::from_millis(50), 0, sent);
            StreamBody::new(chunks).boxed_unsync()
        }
    };
    let mut reply = Response::new(body);
    *reply.status_mut() = StatusCode::OK;
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reply
}

/// The list's head, then `count` Nodes of `blob` bytes each, `pause` apart, then its end.
fn trickle(
    head: &'static str,
    count: usize,
    pause: Duration,
    blob: usize,
    sent: Arc<AtomicU64>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + 'static {
    futures::stream::unfold(0usize, move |i| {
        let sent = sent.clone();
        async move {
            let text = match i {
                0 => head.to_string(),
                i if i <= count => {
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    let comma = if i > 1 { "," } else { "" };
                    format!("{comma}{}", node(&format!("hostile-{i}"), blob))
                }
                i if i == count.saturating_add(1) => "]}".to_string(),
                _ => return None,
            };
            sent.fetch_add(text.len() as u64, Ordering::Relaxed);
            Some((Ok(Frame::data(Bytes::from(text))), i + 1))
        }
    })
}
