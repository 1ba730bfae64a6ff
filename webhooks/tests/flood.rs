//! The webhook's port under a flood, and its shutdown, with the real `kaas-webhooks` binary:
//!
//! - 2,000 connections that never start a TLS handshake, 50 that stop in the middle of their
//!   headers and 50 that stop in the middle of their body: the server stays under its pod's
//!   128 MiB, keeps answering a well-behaved client, and closes every one of them within its
//!   timeouts;
//! - SIGTERM while requests flow: `/readyz` turns 503 at once, requests keep being answered
//!   through the drain, a request whose body is still arriving when the listener closes is
//!   answered in full, and the process exits 0.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kaas_testenv::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The webhook pod's memory limit (deploy/webhooks/deployment.yaml).
const POD_LIMIT: u64 = 128 * 1024 * 1024;

async fn server(name: &str, extra: &[&str]) -> Result<(&'static TestEnv, support::Server)> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    kaas_testenv::install_crds(&client, &crds).await?;
    let server = support::start(env, env.kubeconfig_path(), name, extra).await?;
    Ok((env, server))
}

/// Waits until the peer closes `stream` (read returns 0 or fails); how long that took.
async fn closed_within<S: AsyncReadExt + Unpin>(
    mut stream: S,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// Waits (in a task) until the server closes `stream`; counts it in `open` if it did not
/// within 25 s.
fn counted_if_left_open<S>(stream: S, open: Arc<AtomicUsize>) -> tokio::task::JoinHandle<()>
where
    S: AsyncReadExt + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if closed_within(stream, Duration::from_secs(25))
            .await
            .is_none()
        {
            open.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// The status code of the first response on `stream`.
async fn status_of<S: AsyncReadExt + Unpin>(stream: &mut S) -> Result<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got);
    line.split_whitespace()
        .nth(1)
        .context("status line")?
        .parse()
        .context("status code")
}

#[tokio::test]
async fn a_flood_of_slow_idle_and_unfinished_connections_is_bounded_and_closed() -> Result<()> {
    let (_env, server) = server("flood", &[]).await?;
    let addr = server.addr.clone();
    let ca = server.ca.pem();

    // 2,000 connections that never say anything.
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(&addr).await?);
    }
    // 50 that finish TLS and stop in the middle of their headers; 50 in the middle of a body.
    let mut headers = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..100 {
        let mut tls = kaas_testenv::http::connect_tls(&addr, &ca).await?;
        if i % 2 == 0 {
            tls.write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Ty")
                .await?;
            headers.push(tls);
        } else {
            tls.write_all(
                b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"apiVersion\":",
            )
            .await?;
            bodies.push(tls);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss, _) = server.memory()?;

    // A well-behaved client is still answered while the flood holds.
    let started = Instant::now();
    let healthy = kaas_testenv::http::get_tls(&addr, "/healthz", &ca).await?;
    assert_eq!(healthy.status, 200);
    let answered_in = started.elapsed();

    // Every flooding connection is closed by the server within its timeouts: TLS handshake 5 s
    // (those beyond the 1,000-connection cap wait for a slot first), headers 10 s, request 15 s.
    let counted = |n: usize| Arc::new(AtomicUsize::new(n));
    let open = counted(0);
    let mut waits = Vec::new();
    for stream in idle {
        waits.push(counted_if_left_open(stream, open.clone()));
    }
    for stream in headers {
        waits.push(counted_if_left_open(stream, open.clone()));
    }
    let timed_out = counted(0);
    for mut stream in bodies {
        let (open, timed_out) = (open.clone(), timed_out.clone());
        waits.push(tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(25), status_of(&mut stream)).await {
                Ok(Ok(408)) => {
                    timed_out.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => {
                    open.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in waits {
        w.await?;
    }
    let (_, peak) = server.memory()?;
    println!(
        "flood: RSS {} MiB with 2,100 connections, peak {} MiB; healthy answer in {answered_in:?}",
        rss >> 20,
        peak >> 20
    );
    assert_eq!(open.load(Ordering::SeqCst), 0, "connections left open");
    assert_eq!(
        timed_out.load(Ordering::SeqCst),
        50,
        "unfinished bodies answered 408"
    );
    assert!(peak < POD_LIMIT, "peak RSS {} MiB", peak >> 20);
    assert!(answered_in < Duration::from_secs(15), "{answered_in:?}");
    // And it still serves.
    let after = kaas_testenv::http::get_tls(&addr, "/healthz", &ca).await?;
    assert_eq!(after.status, 200);
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_and_finishes_requests_in_flight() -> Result<()> {
    let (_env, mut server) = server(
        "drain",
        &[
            "--shutdown-drain-seconds=1.5",
            "--shutdown-grace-seconds=10",
        ],
    )
    .await?;
    let addr = server.addr.clone();
    let ca = server.ca.pem();

    // A request whose body is still arriving when the listener will close.
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
    let mut slow = kaas_testenv::http::connect_tls(&addr, &ca).await?;
    slow.write_all(
        format!(
            "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    slow.write_all(&body[..10]).await?;

    // A request loop, as the API server would send them.
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let requests = {
        let (addr, ca, answered, failed, stop) = (
            addr.clone(),
            ca.clone(),
            answered.clone(),
            failed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match kaas_testenv::http::post_tls(&addr, "/validate", b"{}", &ca).await {
                    Ok(r) if r.status < 500 => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failed.lock().unwrap().push(format!("status {}", r.status)),
                    Err(e) => failed.lock().unwrap().push(format!("{e:#}")),
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()?;
    assert!(term.success());
    let signalled = Instant::now();
    // Not ready at once, while requests are still answered.
    let not_ready = poll_until(|| async {
        Ok(kaas_testenv::http::get_tls(&addr, "/readyz", &ca)
            .await
            .is_ok_and(|r| r.status == 503))
    })
    .await?;
    assert!(not_ready < Duration::from_millis(1_000), "{not_ready:?}");
    let before = answered.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        answered.load(Ordering::SeqCst) > before,
        "requests are answered during the drain"
    );
    // The API server stops sending once the endpoint is not ready; so does this loop.
    stop.store(true, Ordering::SeqCst);
    requests.await?;

    // After the drain the listener is closed: the slow request is still answered in full.
    while signalled.elapsed() < Duration::from_millis(2_500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "the listener is closed after the drain"
    );
    slow.write_all(&body[10..]).await?;
    let status = status_of(&mut slow).await?;
    assert!(status < 500, "the in-flight request got {status}");
    drop(slow);

    let exit = tokio::task::spawn_blocking(move || server.child.wait()).await??;
    assert!(exit.success(), "{exit:?}");
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "requests lost: {failed:?}");
    Ok(())
}

/// Polls `check` every 20 ms until it holds (at most 5 s); how long that took.
async fn poll_until<F, Fut>(mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if check().await? {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("not within 5 s")
}
