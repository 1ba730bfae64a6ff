//! The `kaas-webhooks` binary: install the TLS crypto provider, set up logging, run.

use clap::Parser;

// Admission parses many small JSON objects per request; mimalloc keeps that cheap under
// concurrency (see bench-results/webhooks.txt).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = kaas_webhooks::cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    kaas_webhooks::run(args).await
}
