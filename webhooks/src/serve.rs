//! Serving beside the HTTPS listener (which is [`kaas_listener::serve`] over TLS): the metrics
//! listener (HTTPS with reviewed tokens, or plain HTTP on loopback), bounded the same way, and
//! the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::metrics::Metrics;

/// Serves `GET /metrics` (and `/healthz`) on `addr` with `access` (HTTPS with reviewed
/// tokens, or plain HTTP on loopback).
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    access: kaas_listener::metrics_auth::Access,
) -> std::io::Result<()> {
    let router = Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    kaas_listener::metrics_auth::serve(addr, router, access).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
