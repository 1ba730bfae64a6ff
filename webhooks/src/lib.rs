//! `kaas-webhooks`: the admission (defaulting, validation) and CRD conversion server for
//! `kaas.scs.community`. Admission decisions call the `api` crate's shared rules over a
//! watch-backed cache, so the API server refuses a bad object before any operator sees it.
//!
//! Modules follow a request: [`kaas_listener::serve`] accepts TLS ([`tls`], reloading
//! certificates) and hands it to the [`router`], which dispatches to [`admission`] (reading the review with [`request`],
//! answering with [`review`]) or [`convert`]; [`cache`] holds the
//! classes, stacks and clusters; [`tenancy`] holds clusters to their tenant policies (its
//! reservations written by [`reserve`]) and keeps the policies' usage; [`metrics`] counts it
//! all.

pub mod admission;
pub mod cache;
pub mod cli;
pub mod convert;
pub mod metrics;
pub mod registration;
pub mod request;
pub mod reserve;
pub mod review;
pub mod router;
pub mod tenancy;
pub mod tls;

use std::sync::Arc;

use anyhow::Context;

/// Runs the server with `args` until SIGTERM or Ctrl-C.
pub async fn run(args: cli::Args) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let cert = tls::ReloadingCert::new(&args.tls_cert_file, &args.tls_key_file)
        .context("loading the serving certificate")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the API server (KUBECONFIG or in-cluster)")?;
    let version = api::server_version::require_supported(&client).await?;
    tracing::info!(%version, "connected to the API server");
    let access = kaas_listener::metrics_auth::access(
        args.metrics_bind_address,
        args.metrics_insecure,
        &client,
    )
    .map_err(anyhow::Error::msg)?;
    let cache =
        cache::CatalogCache::watch(client).with_rollout_bound(args.max_rollouts_per_namespace);
    tokio::spawn(tenancy::keep_usage(cache.clone(), metrics.clone()));
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let state = router::AppState {
        cache,
        metrics: metrics.clone(),
        draining: draining.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.bind_address)
        .await
        .with_context(|| format!("binding {}", args.bind_address))?;
    tracing::info!(address = %listener.local_addr()?, "serving admission and conversion");
    tokio::spawn(
        cert.clone()
            .watch(args.tls_reload_interval(), metrics.clone()),
    );
    let metrics_addr = args.metrics_bind_address;
    let metrics_task = tokio::spawn(kaas_listener::admin::serve_metrics(
        metrics_addr,
        std::sync::Arc::new(move || metrics.encode()),
        access,
    ));
    let drain = std::time::Duration::from_secs_f64(args.shutdown_drain_seconds.max(0.0));
    let grace = std::time::Duration::from_secs_f64(args.shutdown_grace_seconds.max(0.0));
    // SIGTERM: report not ready, keep serving for the drain, then close the listener and let
    // requests in flight finish within the grace period.
    let shutdown = async move {
        kaas_listener::admin::shutdown_signal().await;
        tracing::info!(
            drain_seconds = drain.as_secs_f64(),
            "SIGTERM: not ready, draining"
        );
        draining.store(true, std::sync::atomic::Ordering::Release);
        tokio::time::sleep(drain).await;
    };
    let limits = kaas_listener::Limits {
        max_connections: args.max_connections.max(1),
        ..kaas_listener::Limits::WEBHOOK
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(cert));
    let serving = kaas_listener::serve(
        listener,
        Some(acceptor),
        router::router(state),
        limits,
        shutdown,
        grace,
    );
    tokio::select! {
        () = serving => {
            tracing::info!("shut down");
            Ok(())
        }
        result = metrics_task => {
            result.context("metrics server task")?.with_context(|| format!("serving metrics on {metrics_addr}"))
        }
    }
}
