//! Command-line flags (each also settable by environment variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Admission and conversion webhooks for kaas.scs.community.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "kaas-webhooks", version, about)]
pub struct Args {
    /// Address of the HTTPS listener (POST /mutate, /validate, /convert; GET /healthz, /readyz).
    #[arg(
        long,
        env = "KAAS_WEBHOOKS_BIND_ADDRESS",
        default_value = "0.0.0.0:9443"
    )]
    pub bind_address: SocketAddr,
    /// PEM certificate chain; reloaded when the file changes.
    #[arg(
        long,
        env = "KAAS_WEBHOOKS_TLS_CERT_FILE",
        default_value = "/tmp/k8s-webhook-server/serving-certs/tls.crt"
    )]
    pub tls_cert_file: PathBuf,
    /// PEM private key; reloaded when the file changes.
    #[arg(
        long,
        env = "KAAS_WEBHOOKS_TLS_KEY_FILE",
        default_value = "/tmp/k8s-webhook-server/serving-certs/tls.key"
    )]
    pub tls_key_file: PathBuf,
    /// How often, in seconds, the certificate files are checked for new content.
    #[arg(long, env = "KAAS_WEBHOOKS_TLS_RELOAD_SECONDS", default_value_t = 2.0)]
    pub tls_reload_seconds: f64,
    /// Address of the plain-HTTP metrics listener (GET /metrics).
    #[arg(
        long,
        env = "KAAS_WEBHOOKS_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: SocketAddr,
    /// Serve metrics over plain HTTP without authentication (development, loopback only).
    /// Otherwise metrics are HTTPS and each scraper's token must be allowed `get` on the
    /// non-resource URL `/metrics` (TokenReview and SubjectAccessReview).
    #[arg(long, env = "KAAS_WEBHOOKS_METRICS_INSECURE")]
    pub metrics_insecure: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "KAAS_LOG_JSON")]
    pub log_json: bool,
    /// On SIGTERM: seconds to keep serving while reporting not ready, so the Service stops
    /// sending before the listener closes.
    #[arg(
        long,
        env = "KAAS_WEBHOOKS_SHUTDOWN_DRAIN_SECONDS",
        default_value_t = 5.0
    )]
    pub shutdown_drain_seconds: f64,
    /// Then: seconds requests in flight get to finish before the process exits.
    #[arg(
        long,
        env = "KAAS_WEBHOOKS_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 20.0
    )]
    pub shutdown_grace_seconds: f64,
    /// Connections served at once on the HTTPS listener; more wait in the backlog.
    #[arg(long, env = "KAAS_WEBHOOKS_MAX_CONNECTIONS", default_value_t = kaas_listener::Limits::WEBHOOK.max_connections)]
    pub max_connections: usize,
    /// StackRollouts one namespace may hold; a create past it is refused (403).
    #[arg(long, env = "KAAS_WEBHOOKS_MAX_ROLLOUTS_PER_NAMESPACE", default_value_t = crate::cache::MAX_ROLLOUTS_PER_NAMESPACE)]
    pub max_rollouts_per_namespace: usize,
}

impl Args {
    /// The reload interval, at least 100 ms.
    pub fn tls_reload_interval(&self) -> Duration {
        Duration::from_secs_f64(self.tls_reload_seconds.max(0.1))
    }
}
