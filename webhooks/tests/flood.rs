//! The webhook's port under a flood, and its shutdown, with the real `kaas-webhooks` binary:
//!
//! - 2,000 connections that never start a TLS handshake, 50 that stop in the middle of their
//!   headers and 50 that stop in the middle of their body: the server stays under its pod's
//!   128 MiB, keeps answering a well-behaved client, and closes every one of them within its
//!   timeouts;
//! - 1,000 HTTP/2 connections that send the preface, answer pings and open no stream (the
//!   whole connection cap): each is closed within the header bound, as an HTTP/1 connection
//!   that sends no header is, and a `KaasCluster` create through the real API server, which
//!   calls this webhook over a new connection meanwhile, goes through (a new connection takes
//!   the slot of the oldest idle one);
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

/// An HTTP/2 client that sends the preface and its settings, answers the server's settings and
/// pings, and never opens a stream: it holds a connection slot as long as the server lets it.
/// Returns how long after `opened` the server closed the connection, or `None` if it did not
/// within `limit`.
async fn h2_idle_peer<S>(mut stream: S, opened: Instant, limit: Duration) -> Option<Duration>
where
    S: AsyncReadExt + AsyncWriteExt + Unpin,
{
    let answer = async {
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await?;
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let mut payload = vec![0u8; len.min(1 << 20)];
            stream.read_exact(&mut payload).await?;
            match (kind, flags & 1) {
                // SETTINGS: acknowledged.
                (4, 0) => stream.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await?,
                // PING: answered with its payload.
                (6, 0) => {
                    let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                    ack.extend_from_slice(&payload);
                    stream.write_all(&ack).await?;
                }
                _ => {}
            }
        }
        #[allow(unreachable_code)]
        std::io::Result::Ok(())
    };
    match tokio::time::timeout_at((opened + limit).into(), answer).await {
        Ok(_) => Some(opened.elapsed()),
        Err(_) => None,
    }
}

/// The header bound of the webhook's listener (`kaas_listener::Limits::WEBHOOK`).
const HEADER_BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn idle_http2_connections_are_closed_and_the_api_server_is_served_meanwhile() -> Result<()> {
    let (env, server) = server("h2", &[]).await?;
    assert_eq!(kaas_listener::Limits::WEBHOOK.header_read, HEADER_BOUND);
    let client = env.client().await?;
    let ca = server.ca.pem();
    // The API server calls this kaas-webhooks for KaasClusters.
    let target = kaas_webhooks::registration::Target::Url(format!("https://{}", server.addr));
    kaas_webhooks::registration::apply(&client, &target, Some(ca.as_bytes()), "flood-test").await?;
    let class = serde_json::json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "flood-docker"}, "spec": {"controller": "kaas.scs.community/docker"}});
    let stack = serde_json::json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-scs-1-0-0"},
        "spec": {"provider": "docker", "name": "scs", "version": "1.0.0", "kubernetesVersions": ["1.35.0"]}});
    let classes: kube::Api<api::v1beta1::ProviderClass> = kube::Api::all(client.clone());
    let stacks: kube::Api<api::v1beta1::ClusterStack> = kube::Api::all(client.clone());
    let post = kube::api::PostParams::default();
    // The API server sees the new registrations a moment later: retried until admitted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = classes
            .create(&post, &serde_json::from_value(class.clone())?)
            .await;
        match created {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    stacks
        .create(&post, &serde_json::from_value(stack)?)
        .await?;
    stacks
        .patch_status(
            "docker-scs-1-0-0",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Verified", "message": "test",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
        )
        .await?;
    let ns = env.namespace(&client, "h2flood").await?;
    let clusters: kube::Api<api::v1beta1::KaasCluster> = kube::Api::namespaced(client.clone(), &ns);
    let cluster = |name: &str| -> Result<api::v1beta1::KaasCluster> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": name},
            "spec": {"providerClassName": "flood-docker",
                     "clusterStack": {"name": "scs", "version": "1.0.0"},
                     "kubernetesVersion": "1.35"}
        }))?)
    };
    // The webhook's cache has the class and the stack when a create is admitted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match clusters.create(&post, &cluster("before")?).await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }

    // The API server's own connection to the webhook goes idle and is closed: its next call
    // needs a new connection, past the flood below.
    tokio::time::sleep(HEADER_BOUND + Duration::from_secs(2)).await;

    // 1,000 idle HTTP/2 connections: the webhook's whole connection cap.
    let limit = HEADER_BOUND + Duration::from_secs(15);
    let mut peers = Vec::new();
    for _ in 0..kaas_listener::Limits::WEBHOOK.max_connections {
        let mut tls = kaas_testenv::http::connect_tls(&server.addr, &ca).await?;
        let opened = Instant::now();
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await?;
        peers.push(tokio::spawn(h2_idle_peer(tls, opened, limit)));
    }
    let (rss, _) = server.memory()?;

    // Meanwhile a create through the API server, which calls the webhook, goes through.
    let started = Instant::now();
    clusters.create(&post, &cluster("during")?).await?;
    let created_in = started.elapsed();

    let mut closed = Vec::new();
    for peer in peers {
        closed.push(peer.await?);
    }
    let left_open = closed.iter().filter(|c| c.is_none()).count();
    let slowest = closed.iter().flatten().max().copied().unwrap_or_default();
    let (_, peak) = server.memory()?;
    println!(
        "HTTP/2 flood: 1,000 idle connections, RSS {} MiB, peak {} MiB; a create in {created_in:?}; slowest close {slowest:?}",
        rss >> 20,
        peak >> 20
    );
    assert_eq!(
        left_open, 0,
        "idle HTTP/2 connections left open past {limit:?}"
    );
    // Closed within the header bound (and a second of timer grain), as HTTP/1 ones are.
    assert!(
        slowest <= HEADER_BOUND + Duration::from_secs(1),
        "an idle HTTP/2 connection lived {slowest:?}"
    );
    assert!(peak < POD_LIMIT, "peak RSS {} MiB", peak >> 20);
    Ok(())
}
