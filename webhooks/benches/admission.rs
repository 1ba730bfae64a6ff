//! Admission round trips over TLS keep-alive on loopback: `/validate` and `/mutate` with a
//! realistic ~4 KB AdmissionReview, side by side with a baseline route on the very same stack
//! (TLS accept loop, hyper, axum, body read) that answers a constant "allowed" without
//! looking at the review: the ceiling. Two more references on the same stack say what the
//! ratio can reach at all: `echo-uid` reads only the review's uid (the least any correct
//! webhook does) and `parse-spec` also parses the new object's spec into the typed form the
//! shared rules take (the least a validating webhook does), both answering a constant.
//! 32 connections, closed loop for throughput (endpoints interleaved over several rounds,
//! medians reported), then an open loop at a fixed 2,000 req/s for
//! latency (measured from each request's send). Prints req/s, p50, p99, the CPU the server's
//! and the load generator's threads spent per request, and the ratio to the baseline, and
//! writes them to `bench-results/webhooks.txt`.
//!
//! Run: `make bench-webhooks` (or `cargo bench -p kaas-webhooks --bench admission`).
//! Machines here are noisy: read the ratios, not the absolute numbers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kaas_webhooks::cache::CatalogCache;
use kaas_webhooks::metrics::Metrics;
use kaas_webhooks::router::{AppState, router};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

#[path = "support/requests.rs"]
mod requests;
use requests::{SpecOnly, mutate_body, validate_body};

// The same allocator as the kaas-webhooks binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 32;
/// The closed loop runs every endpoint once per round, for this long, and reports the median
/// over the rounds: the host's load drifts, and interleaving puts every endpoint under the
/// same drift, so each round's ratio to the baseline is fair even when the absolute numbers
/// are not.
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(2);
const FIXED_RATE: u64 = 2_000;
/// Per endpoint and round of the open loop (interleaved like the closed loop's).
const FIXED_RATE_SECONDS: u64 = 2;

/// The constant answer and the two floors: for comparison, not for the targets.
fn is_reference(name: &str) -> bool {
    matches!(name, "baseline" | "echo-uid" | "parse-spec")
}

struct Target {
    name: &'static str,
    path: &'static str,
    body: Bytes,
}

#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    requests: usize,
    p50_us: u64,
    p99_us: u64,
    lag_p99_us: u64,
    errors: usize,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(sender: &mut Sender, path: &str, body: &Bytes) -> Result<()> {
    sender.ready().await?;
    let req = http::Request::post(path)
        .header("content-type", "application/json")
        .header("host", "localhost")
        .body(Full::new(body.clone()))?;
    let resp = sender.send_request(req).await?;
    let ok = resp.status().is_success();
    let bytes = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(ok && bytes.starts_with(b"{"), "bad answer");
    Ok(())
}

/// Closed loop: every connection sends its next request as soon as the last is answered.
async fn closed_loop(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    target: &Target,
    length: Duration,
) -> Result<Figures> {
    let mut tasks = Vec::new();
    let start = Instant::now();
    let end = start + length;
    for _ in 0..CONNECTIONS {
        let mut sender = connect(addr, tls.clone()).await?;
        let (path, body) = (target.path, target.body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < end {
                let t = Instant::now();
                match send(&mut sender, path, &body).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(_) => errors += 1,
                }
            }
            (lat, Vec::new(), errors)
        }));
    }
    collect(tasks, start).await
}

/// Open loop at `rate` req/s spread over the connections. Latency is measured from each
/// request's actual send; how late sends were against their schedule is reported as lag
/// (tokio's timer has a 1 ms grain, so lag up to ~1 ms is the client's, not the server's; a
/// slow server would show as lag far beyond that, since each connection waits for its answer).
async fn fixed_rate(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    target: &Target,
    rate: u64,
    seconds: u64,
) -> Result<Figures> {
    let mut tasks = Vec::new();
    let per_conn = Duration::from_secs_f64(CONNECTIONS as f64 / rate as f64);
    let total_per_conn = rate * seconds / CONNECTIONS as u64;
    let start = Instant::now();
    for c in 0..CONNECTIONS {
        let mut sender = connect(addr, tls.clone()).await?;
        let (path, body) = (target.path, target.body.clone());
        // Stagger connections evenly across one interval.
        let offset = per_conn.mul_f64(c as f64 / CONNECTIONS as f64);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut lag = Vec::new();
            let mut errors = 0;
            let first = Instant::now() + Duration::from_millis(50) + offset;
            for i in 0..total_per_conn {
                let scheduled = first + per_conn.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                let sent = Instant::now();
                lag.push(sent.saturating_duration_since(scheduled).as_micros() as u64);
                match send(&mut sender, path, &body).await {
                    Ok(()) => lat.push(sent.elapsed().as_micros() as u64),
                    Err(_) => errors += 1,
                }
            }
            (lat, lag, errors)
        }));
    }
    collect(tasks, start).await
}

type Samples = (Vec<u64>, Vec<u64>, usize);

async fn collect(tasks: Vec<tokio::task::JoinHandle<Samples>>, start: Instant) -> Result<Figures> {
    let mut all = Vec::new();
    let mut lags = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, lag, e) = t.await?;
        all.extend(lat);
        lags.extend(lag);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    lags.sort_unstable();
    Ok(Figures {
        rps: all.len() as f64 / elapsed,
        requests: all.len(),
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
        lag_p99_us: percentile(&lags, 0.99),
        errors,
    })
}

/// CPU seconds the threads of this process whose names start with `server` and `client` have
/// used (Linux: from /proc; zero elsewhere).
fn thread_cpu() -> (f64, f64) {
    let (mut server, mut client) = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // `pid (name) state ...`: utime and stime are the 12th and 13th fields after the name.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        let Some(cpu) = ticks(11).zip(ticks(12)).map(|(u, s)| (u + s) / 100.0) else {
            continue;
        };
        if name.starts_with("server") {
            server += cpu;
        } else if name.starts_with("client") {
            client += cpu;
        }
    }
    (server, client)
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The server gets its own runtime (2 workers, like a 2-core pod); the load generator another.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;

    let catalog = requests::catalog()?;
    let dir = tempfile::tempdir()?;
    let ca = kaas_testenv::certs::TestCa::new()?;
    let (cert, key) = ca.issue_files(dir.path(), "bench")?;
    let resolver = kaas_webhooks::tls::ReloadingCert::new(&cert, &key)?;
    let state = AppState {
        cache: CatalogCache::fixed(&catalog),
        metrics: Arc::new(Metrics::default()),
        draining: Default::default(),
    };
    // The baseline receives the body like the real routes (same TLS, HTTP and axum layers,
    // same 3 MiB limit) and answers a constant review without looking at it.
    const ALLOWED: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"7f0b4b1a-9f49-4b8a-8d1f-3a6f1c2b9e01","allowed":true}}"#;
    // For context, a second reference: the least a *valid* webhook must do, which is to
    // read the review's uid and echo it (serde skips the rest of the body).
    let app = router(state)
        .route(
            "/baseline",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                ([(http::header::CONTENT_TYPE, "application/json")], ALLOWED)
            }),
        )
        .route(
            "/parse-spec",
            post(|body: Bytes| async move {
                let uid = serde_json::from_slice::<SpecOnly<'_>>(&body)
                    .map(|r| {
                        std::hint::black_box(&r.request.object.spec);
                        r.request.uid.into_owned()
                    })
                    .unwrap_or_default();
                std::hint::black_box(uid);
                ([(http::header::CONTENT_TYPE, "application/json")], ALLOWED)
            }),
        )
        .route(
            "/echo-uid",
            post(|body: Bytes| async move {
                (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    requests::echo_uid_allowed(&body),
                )
            }),
        );
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    // The server's own listener, with its timeouts and caps: what they cost is in the figures.
    server_rt.spawn(kaas_listener::serve(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(
            kaas_webhooks::tls::server_config(resolver),
        )),
        app,
        kaas_listener::Limits::WEBHOOK,
        std::future::pending(),
        std::time::Duration::ZERO,
    ));

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(c?)?;
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = Arc::new(tls);

    let validate_body = validate_body();
    let mutate_body = mutate_body();
    let targets = [
        Target {
            name: "baseline",
            path: "/baseline",
            body: validate_body.clone(),
        },
        Target {
            name: "echo-uid",
            path: "/echo-uid",
            body: validate_body.clone(),
        },
        Target {
            name: "parse-spec",
            path: "/parse-spec",
            body: validate_body.clone(),
        },
        Target {
            name: "validate",
            path: "/validate",
            body: validate_body.clone(),
        },
        Target {
            name: "mutate",
            path: "/mutate",
            body: mutate_body.clone(),
        },
    ];
    // Check the answers once, so the figures are for real work.
    client_rt
        .block_on(async {
            let mut s = connect(addr, tls.clone()).await?;
            for t in targets.iter().filter(|t| !is_reference(t.name)) {
                s.ready().await?;
                let req = http::Request::post(t.path)
                    .header("host", "localhost")
                    .body(Full::new(t.body.clone()))?;
                let body = s
                    .send_request(req)
                    .await?
                    .into_body()
                    .collect()
                    .await?
                    .to_bytes();
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                anyhow::ensure!(
                    v["response"]["allowed"] == true,
                    "{} refused the bench object: {v}",
                    t.name
                );
                if t.name == "mutate" {
                    anyhow::ensure!(
                        v["response"]["patch"].is_string(),
                        "mutate returned no patch: {v}"
                    );
                }
            }
            anyhow::Ok(())
        })
        .context("sanity check")?;

    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        println!("{s}");
        out.push_str(&s);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "kaas-webhooks admission benchmark: TLS keep-alive on loopback, {CONNECTIONS} connections, body {} B (validate) / {} B (mutate)",
            validate_body.len(),
            mutate_body.len()
        ),
    );
    line(
        &mut out,
        format!(
            "\nclosed loop, {ROUNDS} rounds of {} s per endpoint, interleaved; medians over the rounds (the ratio is\neach round's to that round's baseline):",
            ROUND.as_secs()
        ),
    );
    line(
        &mut out,
        format!(
            "{:<10} {:>10} {:>9} {:>9} {:>7} {:>8} {:>14} {:>14}",
            "endpoint",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "ratio",
            "server µs/req",
            "client µs/req"
        ),
    );
    // Per endpoint and round: req/s, p50, p99, errors, ratio, server and client CPU per request.
    let mut rounds: Vec<Vec<[f64; 7]>> = vec![Vec::new(); targets.len()];
    for _ in 0..ROUNDS {
        let mut baseline_rps = 0.0;
        for (i, t) in targets.iter().enumerate() {
            // Warm up the connections and caches first.
            client_rt.block_on(closed_loop(addr, tls.clone(), t, ROUND / 8))?;
            let before = thread_cpu();
            let f = client_rt.block_on(closed_loop(addr, tls.clone(), t, ROUND))?;
            let after = thread_cpu();
            let per_request = |a: f64, b: f64| (b - a) * 1e6 / f.requests.max(1) as f64;
            if t.name == "baseline" {
                baseline_rps = f.rps;
            }
            rounds[i].push([
                f.rps,
                f.p50_us as f64 / 1000.0,
                f.p99_us as f64 / 1000.0,
                f.errors as f64,
                f.rps / baseline_rps,
                per_request(before.0, after.0),
                per_request(before.1, after.1),
            ]);
        }
    }
    let median = |i: usize, k: usize| {
        let mut v: Vec<f64> = rounds[i].iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ratios = std::collections::BTreeMap::new();
    for (i, t) in targets.iter().enumerate() {
        let errors: f64 = rounds[i].iter().map(|r| r[3]).sum();
        ratios.insert(t.name, median(i, 4));
        line(
            &mut out,
            format!(
                "{:<10} {:>10.0} {:>9.3} {:>9.3} {:>7} {:>8.2} {:>14.1} {:>14.1}",
                t.name,
                median(i, 0),
                median(i, 1),
                median(i, 2),
                errors,
                median(i, 4),
                median(i, 5),
                median(i, 6),
            ),
        );
    }
    line(
        &mut out,
        format!(
            "\nopen loop at {FIXED_RATE} req/s, {ROUNDS} rounds of {FIXED_RATE_SECONDS} s per endpoint, interleaved; medians over the rounds,\nand the worst round's p99 (latency from each send; send lag: how late sends left against their\nschedule, where tokio's timer grain is 1 ms: lag far beyond it means the load generator itself\nwas held up, as when the host takes the CPU away):"
        ),
    );
    line(
        &mut out,
        format!(
            "{:<10} {:>10} {:>9} {:>9} {:>7} {:>16} {:>16}",
            "endpoint", "req/s", "p50 ms", "p99 ms", "errors", "send lag p99 ms", "worst p99 ms"
        ),
    );
    // Per endpoint and round: req/s, p50, p99, errors, send lag p99 (ms where a time).
    let mut open: Vec<Vec<[f64; 5]>> = vec![Vec::new(); targets.len()];
    for _ in 0..ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            let f = client_rt.block_on(fixed_rate(
                addr,
                tls.clone(),
                t,
                FIXED_RATE,
                FIXED_RATE_SECONDS,
            ))?;
            open[i].push([
                f.rps,
                f.p50_us as f64 / 1000.0,
                f.p99_us as f64 / 1000.0,
                f.errors as f64,
                f.lag_p99_us as f64 / 1000.0,
            ]);
        }
    }
    let open_median = |i: usize, k: usize| {
        let mut v: Vec<f64> = open[i].iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut p99s = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let worst = open[i].iter().map(|r| r[2]).fold(0.0, f64::max);
        if !is_reference(t.name) {
            p99s.push((t.name, open_median(i, 2)));
        }
        line(
            &mut out,
            format!(
                "{:<10} {:>10.0} {:>9.3} {:>9.3} {:>7} {:>16.3} {:>16.3}",
                t.name,
                open_median(i, 0),
                open_median(i, 1),
                open_median(i, 2),
                open[i].iter().map(|r| r[3]).sum::<f64>(),
                open_median(i, 4),
                worst,
            ),
        );
    }
    line(
        &mut out,
        "\ntargets: throughput >= 0.8 x baseline; p99 < 2 ms at 2,000 req/s".to_string(),
    );
    let ratio = |name: &str| ratios[name];
    for t in targets.iter().filter(|t| !is_reference(t.name)) {
        let r = ratio(t.name);
        line(
            &mut out,
            format!(
                "  {:<8} throughput ratio {r:.2}  {}",
                t.name,
                if r >= 0.8 { "met" } else { "NOT met" }
            ),
        );
    }
    line(
        &mut out,
        format!(
            "  what the ratio can reach in this run: {:.2} reading only the uid (echo-uid), {:.2} also\n  parsing the new object's spec (parse-spec), with nothing validated",
            ratio("echo-uid"),
            ratio("parse-spec")
        ),
    );
    for (name, p) in &p99s {
        line(
            &mut out,
            format!(
                "  {name:<8} p99 at 2,000 req/s {p:.3} ms (median of the rounds)  {}",
                if *p < 2.0 { "met" } else { "NOT met" }
            ),
        );
    }
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("webhooks.txt"), out)?;
    println!("\nwritten to bench-results/webhooks.txt");
    server_rt.shutdown_background();
    Ok(())
}
