//! What every binary of this project serves beside its main work, written once: the metrics
//! listener (`/metrics` and `/healthz`, HTTPS with reviewed tokens or plain on loopback, see
//! [`crate::metrics_auth`]), the probe listener (`/healthz`, and `/readyz` once a flag is
//! set), and the signal that starts a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// The OpenMetrics text of a registry, encoded on each scrape.
pub type Encode = Arc<dyn Fn() -> String + Send + Sync>;

/// The content type of [`Encode`]'s text.
pub use crate::exposition::OPENMETRICS;

/// Serves `/metrics` (encoded by `metrics` on each scrape: OpenMetrics to a scraper that
/// asks for it, the classic text format otherwise, see [`crate::exposition`]) and `/healthz`
/// on `addr` with `access`, until the process ends.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Encode,
    access: crate::metrics_auth::Access,
) -> std::io::Result<()> {
    let router = Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let metrics = metrics.clone();
                async move {
                    let accept = headers
                        .get(axum::http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    let open = metrics();
                    if crate::exposition::wants_openmetrics(accept) {
                        ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], open)
                    } else {
                        (
                            [(axum::http::header::CONTENT_TYPE, crate::exposition::CLASSIC)],
                            crate::exposition::classic(&open),
                        )
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    crate::metrics_auth::serve(addr, router, access).await
}

/// Serves `/healthz`, and `/readyz` (200 once `ready` is set, 503 before) on `addr` with the
/// admin listeners' bounds ([`crate::Limits::ADMIN`]), until the process ends.
pub async fn serve_probes(addr: SocketAddr, ready: Arc<AtomicBool>) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Acquire) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    crate::serve(
        listener,
        None,
        router,
        crate::Limits::ADMIN,
        std::future::pending(),
        std::time::Duration::ZERO,
    )
    .await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
