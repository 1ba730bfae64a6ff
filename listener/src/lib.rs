//! Bounded HTTP listeners: what every listener of this project needs against the cluster
//! network (the webhook's HTTPS port, and the metrics and health ports of the webhook and of
//! the operators). Anyone who can reach a port can open connections that never finish a TLS
//! handshake, never finish their headers or body, or sit idle; unbounded, 1,500 of them took
//! the webhook past its pod's memory limit. Here:
//!
//! - at most [`Limits::max_connections`] connections are served at once; past that, new ones
//!   wait in the kernel's backlog until a slot frees;
//! - a TLS handshake, the headers of a request (and the wait for the next one on a kept-alive
//!   connection), and a whole request (body included) each have a deadline;
//! - a connection lives at most [`Limits::max_age`], then is closed gracefully; HTTP/2 streams
//!   per connection are capped and idle peers are pinged;
//! - on shutdown the listener stops accepting, asks every connection to finish what it has in
//!   flight, and waits for them up to a grace period.

pub mod metrics_auth;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Deadline of a TLS handshake.
    pub handshake: Duration,
    /// Deadline of a request's headers, and of the wait for the next request on a kept-alive
    /// HTTP/1 connection.
    pub header_read: Duration,
    /// Deadline of a whole request, body included; past it the answer is 408 and the
    /// connection is closed.
    pub request: Duration,
    /// How long a connection may live before it is closed gracefully.
    pub max_age: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub h2_max_streams: u32,
}

impl Limits {
    /// The webhook's HTTPS port: the API server calls with a 3 s timeout (10 s at most) over
    /// a few kept-alive connections.
    pub const WEBHOOK: Limits = Limits {
        max_connections: 1_000,
        handshake: Duration::from_secs(5),
        header_read: Duration::from_secs(10),
        request: Duration::from_secs(15),
        max_age: Duration::from_secs(600),
        h2_max_streams: 250,
    };

    /// A metrics or health port: scrapes and probes, a few at a time.
    pub const ADMIN: Limits = Limits {
        max_connections: 64,
        handshake: Duration::from_secs(5),
        header_read: Duration::from_secs(10),
        request: Duration::from_secs(30),
        max_age: Duration::from_secs(600),
        h2_max_streams: 16,
    };
}

/// Serves `router` on `listener` (over TLS when `tls` is given) within `limits` until
/// `shutdown` resolves; then stops accepting, lets in-flight requests finish and returns once
/// every connection closed or `grace` passed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        request_deadline(limits.request, req, next)
    }));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (tls, router, builder, mut stop) = (
            tls.clone(),
            router.clone(),
            builder.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router);
            match tls {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    drive(conn, limits.max_age, &mut stop, peer).await;
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    drive(conn, limits.max_age, &mut stop, peer).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all connections done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = limits.max_connections - slots.available_permits(),
            "connections still open after the shutdown grace period"
        );
    }
}

/// Runs one connection until it ends, closing it gracefully (in-flight requests finish) when
/// it reaches `max_age` or the listener stops.
async fn drive<C>(
    conn: C,
    max_age: Duration,
    stop: &mut watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    C: hyper_util::server::graceful::GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let aged = tokio::time::sleep(max_age);
    tokio::pin!(aged);
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut aged, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answers 408 and closes the connection when a request, body included, takes longer than
/// `deadline`.
async fn request_deadline(deadline: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = (
                StatusCode::REQUEST_TIMEOUT,
                "request not complete in time\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
