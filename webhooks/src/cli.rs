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
    /// Log as JSON lines instead of text.
    #[arg(long, env = "KAAS_LOG_JSON")]
    pub log_json: bool,
}

impl Args {
    /// The reload interval, at least 100 ms.
    pub fn tls_reload_interval(&self) -> Duration {
        Duration::from_secs_f64(self.tls_reload_seconds.max(0.1))
    }
}
