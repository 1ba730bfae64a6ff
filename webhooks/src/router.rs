//! The HTTPS routes: `POST /mutate`, `/validate`, `/convert`, `GET /healthz`, `/readyz`.
//! Bodies over 3 MiB get a 413, unknown paths a 404, wrong methods a 405; a body that is not a
//! review gets a 400 carrying a well-formed review with the error. Nothing here panics on input.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::admission::{self, Endpoint};
use crate::cache::CatalogCache;
use crate::convert;
use crate::metrics::{Metrics, RequestLabels};

/// Largest request body accepted.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Classes, stacks and clusters.
    pub cache: CatalogCache,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: `/readyz` answers 503 while requests are still served (the drain).
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// The webhook routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/convert", post(convert_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn admit(endpoint: Endpoint, state: AppState, body: Bytes) -> Response {
    let start = Instant::now();
    let answer = admission::admit(endpoint, &body, &state.cache).await;
    let response = json_response(answer.status, &answer.body);
    if let Some(reason) = answer.labels.reason {
        state
            .metrics
            .refused(endpoint.label(), answer.labels.kind, reason);
    }
    state.metrics.observe(
        RequestLabels {
            endpoint: endpoint.label(),
            kind: answer.labels.kind,
            operation: answer.labels.operation,
            outcome: answer.labels.outcome,
        },
        start.elapsed().as_secs_f64(),
    );
    response
}

async fn mutate(State(state): State<AppState>, body: Bytes) -> Response {
    admit(Endpoint::Mutate, state, body).await
}

async fn validate(State(state): State<AppState>, body: Bytes) -> Response {
    admit(Endpoint::Validate, state, body).await
}

async fn convert_handler(State(state): State<AppState>, body: Bytes) -> Response {
    let start = Instant::now();
    let answer = convert::convert(&body);
    let response = json_response(answer.status, &answer.body);
    state.metrics.observe(
        RequestLabels {
            endpoint: "convert",
            kind: "KaasCluster",
            operation: "convert",
            outcome: answer.outcome,
        },
        start.elapsed().as_secs_f64(),
    );
    response
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if state.cache.is_ready() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced").into_response()
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: kaas-webhooks serves POST /mutate, /validate, /convert and GET /healthz, /readyz\n",
    )
        .into_response()
}
