//! The flags every provider operator takes (the contract in ARCHITECTURE.md).

use std::net::SocketAddr;

/// Flags of a provider operator.
#[derive(Debug, Clone, clap::Parser)]
pub struct Args {
    /// Controller name this operator answers to: it serves the KaasClusters whose
    /// ProviderClass has this `spec.controller` (default `kaas.scs.community/<provider>`).
    #[arg(long, env = "KAAS_CONTROLLER_NAME")]
    pub controller_name: Option<String>,
    /// Address of the Prometheus metrics listener (GET /metrics).
    #[arg(
        long,
        env = "KAAS_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: SocketAddr,
    /// Address of the health probe listener (GET /healthz, /readyz).
    #[arg(
        long,
        env = "KAAS_HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub health_probe_bind_address: SocketAddr,
    /// Run only while holding the leader Lease, so several replicas can run.
    #[arg(long, env = "KAAS_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, else kaas-system).
    #[arg(long, env = "KAAS_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Watch KaasClusters in this namespace only (default: all namespaces).
    #[arg(long, env = "KAAS_NAMESPACE")]
    pub namespace: Option<String>,
    /// How many clusters are reconciled at once.
    #[arg(long, env = "KAAS_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Log as JSON lines.
    #[arg(long, env = "KAAS_LOG_JSON")]
    pub log_json: bool,
}
