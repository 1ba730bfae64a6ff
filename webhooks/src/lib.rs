//! `kaas-webhooks`: the admission (defaulting, validation) and CRD conversion server for
//! `kaas.scs.community`. Admission decisions call the `api` crate's shared rules over a
//! watch-backed cache, so the API server refuses a bad object before any operator sees it.
//!
//! Modules follow a request: [`serve`] accepts TLS ([`tls`], reloading certificates) and hands
//! it to the [`router`], which dispatches to [`admission`] (reading the review with [`request`],
//! answering with [`review`]) or [`convert`]; [`cache`] holds the
//! classes, stacks and clusters; [`metrics`] counts it all.

pub mod admission;
pub mod cache;
pub mod cli;
pub mod convert;
pub mod metrics;
pub mod registration;
pub mod request;
pub mod review;
pub mod router;
pub mod serve;
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
    let cache = cache::CatalogCache::watch(client);
    let state = router::AppState {
        cache,
        metrics: metrics.clone(),
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
    let metrics_task = tokio::spawn(serve::serve_metrics(metrics_addr, metrics));
    tokio::select! {
        () = serve::serve_tls(listener, tls::server_config(cert), router::router(state), serve::shutdown_signal()) => {
            tracing::info!("shutting down");
            Ok(())
        }
        result = metrics_task => {
            result.context("metrics server task")?.with_context(|| format!("serving metrics on {metrics_addr}"))
        }
    }
}
