//! Bounded HTTP listeners: what every listener of this project needs against the cluster
//! network (the webhook's HTTPS port, and the metrics and health ports of the webhook and of
//! the operators). Anyone who can reach a port can open connections that never finish a TLS
//! handshake, never finish their headers or body, or sit idle; unbounded, 1,500 of them took
//! the webhook past its pod's memory limit. Here:
//!
//! - at most [`Limits::max_connections`] connections are served at once; a new one past that
//!   closes the oldest connection with no request in flight (so idle connections, however many,
//!   never lock out a caller with work), or waits for a slot when every connection is busy;
//!   the connections behind it wait in the kernel's backlog;
//! - a TLS handshake, the headers of a request (and the wait for the next one on a kept-alive
//!   connection), and a whole request (body included) each have a deadline; a connection with
//!   no request in flight for [`Limits::header_read`] is closed, HTTP/2 ones included (hyper's
//!   header timeout covers HTTP/1 only: an HTTP/2 peer that opens no stream and answers pings
//!   would otherwise hold its slot until [`Limits::max_age`]);
//! - a connection lives at most [`Limits::max_age`], then is closed gracefully; HTTP/2 streams
//!   per connection are capped and idle peers are pinged;
//! - on shutdown the listener stops accepting, asks every connection to finish what it has in
//!   flight, and waits for them up to a grace period.

pub mod admin;
pub mod exposition;
pub mod metrics_auth;
pub mod process;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

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
    let idle_ones = Arc::new(Mutex::new(std::collections::VecDeque::<
        std::sync::Weak<Activity>,
    >::new()));
    loop {
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
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                evict_one(&idle_ones);
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let activity = Arc::new(Activity::new());
        {
            let mut all = idle_ones.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|a| a.strong_count() > 0);
            all.push_back(Arc::downgrade(&activity));
        }
        let (tls, router, builder, mut stop) = (
            tls.clone(),
            router.clone(),
            builder.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let busy = activity.start();
                    let router = router.clone();
                    let mut req = req.map(axum::body::Body::new);
                    // Who asks (the metrics guard budgets token reviews per source).
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    async move {
                        let _busy = busy;
                        router.oneshot(req).await
                    }
                })
            };
            match tls {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(limits.handshake, acceptor.accept(stream));
                    let tls = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        () = activity.evicted.notified() => {
                            tracing::debug!(%peer, "closed before its handshake: its slot was needed");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    drive(conn, &limits, &activity, &mut stop, peer).await;
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    drive(conn, &limits, &activity, &mut stop, peer).await;
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

/// What one connection is doing: requests in flight, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// Set once the connection was asked to close (it is no longer a candidate to evict).
    closing: std::sync::atomic::AtomicBool,
    /// Told when a new connection needs this one's slot.
    evicted: tokio::sync::Notify,
}

/// A request in flight on a connection; its end restarts the connection's idle clock.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            closing: std::sync::atomic::AtomicBool::new(false),
            evicted: tokio::sync::Notify::new(),
        }
    }

    fn start(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// When the connection will have been idle for `limit`, if it has no request in flight.
    fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        Some(since + limit)
    }
}

/// Asks the oldest connection with no request in flight to close, for a new connection that
/// needs its slot; none when every connection is busy.
fn evict_one(connections: &Mutex<std::collections::VecDeque<std::sync::Weak<Activity>>>) {
    let all = connections.lock().unwrap_or_else(|e| e.into_inner());
    let idle = all
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .find(|a| a.in_flight.load(Ordering::Acquire) == 0 && !a.closing.load(Ordering::Acquire));
    if let Some(a) = idle {
        a.closing.store(true, Ordering::Release);
        a.evicted.notify_one();
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs one connection until it ends, closing it gracefully (in-flight requests finish) when
/// it has had no request in flight for the header bound, reaches its maximum age or the
/// listener stops; one that is still open a request deadline after that is dropped.
async fn drive<C>(
    conn: C,
    limits: &Limits,
    activity: &Activity,
    stop: &mut watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    C: hyper_util::server::graceful::GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let aged = tokio::time::sleep(limits.max_age);
    tokio::pin!(aged);
    let idle = tokio::time::sleep(limits.header_read);
    tokio::pin!(idle);
    // Far off until the connection starts closing.
    let hard = tokio::time::sleep(limits.max_age * 2 + limits.request);
    tokio::pin!(hard);
    let mut closing = false;
    let close = |conn: std::pin::Pin<&mut C>, hard: std::pin::Pin<&mut tokio::time::Sleep>| {
        // A closing connection frees its slot soon: never the one to evict.
        activity.closing.store(true, Ordering::Release);
        conn.graceful_shutdown();
        hard.reset((Instant::now() + limits.header_read + limits.request).into());
    };
    if *stop.borrow() {
        closing = true;
        close(conn.as_mut(), hard.as_mut());
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut hard => {
                tracing::debug!(%peer, "connection dropped: still open after it was asked to close");
                return;
            }
            () = &mut idle, if !closing => match activity.idle_deadline(limits.header_read) {
                Some(at) if at <= Instant::now() => {
                    tracing::debug!(%peer, "idle connection closed");
                    closing = true;
                    close(conn.as_mut(), hard.as_mut());
                }
                Some(at) => idle.as_mut().reset(at.into()),
                None => idle.as_mut().reset((Instant::now() + limits.header_read).into()),
            },
            () = &mut aged, if !closing => {
                closing = true;
                close(conn.as_mut(), hard.as_mut());
            }
            () = activity.evicted.notified(), if !closing => {
                tracing::debug!(%peer, "idle connection closed: its slot was needed");
                closing = true;
                conn.as_mut().graceful_shutdown();
                // It had nothing in flight: a peer that does not go soon is dropped (a request
                // that started meanwhile gets its whole deadline).
                let grace = if activity.in_flight.load(Ordering::Acquire) > 0 {
                    limits.request
                } else {
                    limits.handshake
                };
                hard.as_mut().reset((Instant::now() + grace).into());
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    close(conn.as_mut(), hard.as_mut());
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
