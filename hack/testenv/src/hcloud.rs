//! A stand-in for the Hetzner Cloud API on loopback. The real API cannot be reached from the
//! test machines, so this serves the one call the Hetzner operator makes,
//! `GET /v1/images?type=snapshot&label_selector=k==v`, over snapshots a test adds and
//! removes while it runs. It checks the bearer token when told to and counts requests.
//! It runs on its own thread, so it outlives the test runtime that started it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One snapshot in the fake project.
#[derive(Debug, Clone)]
struct Snapshot {
    id: u64,
    status: String,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Project {
    token: Option<String>,
    snapshots: Vec<Snapshot>,
    requests: u64,
}

/// The running stand-in; it stops when dropped.
#[derive(Debug)]
pub struct FakeHcloud {
    /// What `HCLOUD_ENDPOINT` should be, such as `http://127.0.0.1:PORT/v1`.
    pub endpoint: String,
    project: Arc<Mutex<Project>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeHcloud {
    /// Starts it. With `token`, any other bearer token gets 401 as from the real API; without,
    /// every non-empty token is accepted (for examples that carry a placeholder token).
    pub fn start(token: Option<&str>) -> Result<FakeHcloud> {
        let project = Arc::new(Mutex::new(Project {
            token: token.map(str::to_string),
            ..Project::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}/v1", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/v1/images", axum::routing::get(images))
            .with_state(project.clone());
        crate::on_own_thread("fake-hcloud", move || async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        })?;
        Ok(FakeHcloud {
            endpoint,
            project,
            stop: Some(stop),
        })
    }

    /// Adds a snapshot labelled `caph-image-name=<name>` with `status` (`available`,
    /// `creating`); returns its id.
    pub fn add_snapshot(&self, name: &str, status: &str) -> u64 {
        let mut p = self.lock();
        let id = 1000 + p.snapshots.len() as u64;
        p.snapshots.push(Snapshot {
            id,
            status: status.to_string(),
            labels: BTreeMap::from([("caph-image-name".to_string(), name.to_string())]),
        });
        id
    }

    /// Sets the status of every snapshot labelled `caph-image-name=<name>`.
    pub fn set_status(&self, name: &str, status: &str) {
        for s in &mut self.lock().snapshots {
            if s.labels.get("caph-image-name").map(String::as_str) == Some(name) {
                s.status = status.to_string();
            }
        }
    }

    /// How many requests it answered.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    fn lock(&self) -> MutexGuard<'_, Project> {
        self.project.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeHcloud {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn images(
    State(project): State<Arc<Mutex<Project>>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let mut p = project.lock().unwrap_or_else(PoisonError::into_inner);
    p.requests += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.is_empty() || p.token.as_deref().is_some_and(|t| t != token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unable to authenticate",
        );
    }
    let mut wanted = Vec::new();
    for term in query
        .get("label_selector")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
    {
        let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "label_selector: only k==v terms are served by this stand-in",
            );
        };
        wanted.push((k.to_string(), v.to_string()));
    }
    let images: Vec<_> = p
        .snapshots
        .iter()
        .rev() // newest first, as `sort=created:desc` asks
        .filter(|_| query.get("type").is_none_or(|t| t == "snapshot"))
        .filter(|s| wanted.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| {
            json!({"id": s.id, "type": "snapshot", "status": s.status, "name": null,
                   "description": format!("snapshot {}", s.id), "labels": s.labels,
                   "architecture": "x86"})
        })
        .collect();
    let total = images.len();
    axum::Json(json!({"images": images, "meta": {"pagination": {
        "page": 1, "per_page": 25, "previous_page": null, "next_page": null,
        "last_page": 1, "total_entries": total}}}))
    .into_response()
}
