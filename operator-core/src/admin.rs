//! The admin listeners: `/metrics` on the metrics address; `/healthz` and `/readyz` on the
//! health probe address (ready once the operator leads, or is a ready standby, and its caches
//! synced). Both bounded like every listener of this project ([`kaas_listener`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// The OpenMetrics text of a registry, encoded on each scrape.
pub type Encode = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `/metrics` with `access` (HTTPS with reviewed tokens, or plain on loopback).
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Encode,
    access: kaas_listener::metrics_auth::Access,
) -> std::io::Result<()> {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics(),
                )
            }
        }),
    );
    kaas_listener::metrics_auth::serve(addr, router, access).await
}

/// Serves `/healthz` and `/readyz`.
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
    serve_bounded(addr, router).await
}

/// Serves `router` on `addr` with the admin listeners' bounds, until the process ends.
async fn serve_bounded(addr: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    kaas_listener::serve(
        listener,
        None,
        router,
        kaas_listener::Limits::ADMIN,
        std::future::pending(),
        std::time::Duration::ZERO,
    )
    .await;
    Ok(())
}
