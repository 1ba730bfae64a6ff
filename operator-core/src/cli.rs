//! The flags every provider operator takes (the contract in ARCHITECTURE.md); the runtime
//! part of them ([`RuntimeArgs`]: metrics, probes, leader election, logging) is shared with
//! `kaas-installer`.

use std::net::SocketAddr;

/// Metrics, probes, leader election and logging: the flags of every controller binary.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Address of the Prometheus metrics listener (GET /metrics).
    #[arg(
        long,
        env = "KAAS_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: SocketAddr,
    /// Serve metrics over plain HTTP without authentication (development, loopback only).
    /// Otherwise metrics are HTTPS and each scraper's token must be allowed `get` on the
    /// non-resource URL `/metrics` (TokenReview and SubjectAccessReview).
    #[arg(long, env = "KAAS_METRICS_INSECURE")]
    pub metrics_insecure: bool,
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
    /// Log as JSON lines.
    #[arg(long, env = "KAAS_LOG_JSON")]
    pub log_json: bool,
}

/// Flags of a provider operator.
#[derive(Debug, Clone, clap::Parser)]
pub struct Args {
    /// Controller name this operator answers to: it serves the KaasClusters whose
    /// ProviderClass has this `spec.controller` (default `kaas.scs.community/<provider>`).
    #[arg(long, env = "KAAS_CONTROLLER_NAME")]
    pub controller_name: Option<String>,
    /// The runtime flags every controller binary of this project takes.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Watch KaasClusters in this namespace only (default: all namespaces).
    #[arg(long, env = "KAAS_NAMESPACE")]
    pub namespace: Option<String>,
    /// How many clusters are reconciled at once.
    #[arg(long, env = "KAAS_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Folder where fetched stack releases are cached by content hash, so a restart does not
    /// fetch them again (an emptyDir in the Deployment).
    #[arg(long, env = "KAAS_STACK_CACHE_DIR", default_value = "/tmp/kaas-stacks")]
    pub stack_cache_dir: std::path::PathBuf,
    /// Create ClusterStack objects for the stacks shipped with this operator at start.
    #[arg(long, env = "KAAS_INSTALL_SHIPPED_STACKS")]
    pub install_shipped_stacks: bool,
    /// OCI repositories to discover new releases of this provider's stacks in
    /// (`registry.example.com/stacks/openstack-scs`); repeat for several.
    #[arg(
        long = "stack-repository",
        env = "KAAS_STACK_REPOSITORIES",
        value_delimiter = ','
    )]
    pub stack_repositories: Vec<String>,
    /// How often the stack repositories are polled, in seconds.
    #[arg(long, env = "KAAS_STACK_DISCOVERY_INTERVAL", default_value_t = 600)]
    pub stack_discovery_interval: u64,
    /// Registries spoken to over plain HTTP (`127.0.0.1:5000`), for development only.
    #[arg(
        long = "plain-http-registry",
        env = "KAAS_PLAIN_HTTP_REGISTRIES",
        value_delimiter = ','
    )]
    pub plain_http_registries: Vec<String>,
    /// Seconds between drift checks of a cluster's add-ons once they are healthy.
    #[arg(long, env = "KAAS_ADDON_RESYNC", default_value_t = 60)]
    pub addon_resync: u64,
    /// Seconds one reconcile may take in all (API calls, cloud calls, stack fetches, the
    /// workload cluster); past it the reconcile is abandoned and retried with backoff, so one
    /// stuck cluster or stack never holds a worker.
    #[arg(long, env = "KAAS_RECONCILE_TIMEOUT", default_value_t = 180)]
    pub reconcile_timeout: u64,
    /// Folders under which `local` stack sources may lie (repeatable or comma-separated).
    /// Default: none, so a `ClusterStack` cannot make the operator read its own files.
    #[arg(
        long = "allow-local-stacks",
        env = "KAAS_ALLOW_LOCAL_STACKS",
        value_delimiter = ','
    )]
    pub allow_local_stacks: Vec<std::path::PathBuf>,
    /// Prefixes that stack sources must start with: HTTP URLs (`https://stacks.example/`) and
    /// OCI repositories (`registry.example/kaas/`), for fetching and discovery alike
    /// (repeatable or comma-separated). Default: any; set it in production.
    #[arg(
        long = "allowed-stack-sources",
        env = "KAAS_ALLOWED_STACK_SOURCES",
        value_delimiter = ','
    )]
    pub allowed_stack_sources: Vec<String>,
    /// MiB a render worker may use: stack templates render in copies of this binary with this
    /// limit on their data segment, so a template that allocates without bound kills only its
    /// worker (the operator pod's limit must hold the operator and every worker).
    #[arg(long, env = "KAAS_RENDER_MEMORY_MIB", default_value_t = kaas_stack::sandbox::DEFAULT_MEMORY_MIB)]
    pub render_memory_mib: u64,
    /// Render workers: the renders of one release hold all but one, so a slow release does
    /// not stall the others.
    #[arg(long, env = "KAAS_RENDER_WORKERS", default_value_t = kaas_stack::sandbox::DEFAULT_WORKERS)]
    pub render_workers: usize,
    /// Seconds one stack fetch (HTTP or OCI) may take in all; silences within an answer are
    /// cut after 30 s.
    #[arg(long, env = "KAAS_STACK_FETCH_TIMEOUT", default_value_t = 120)]
    pub stack_fetch_timeout: u64,
    /// PEM public keys (ECDSA P-256, as `cosign generate-key-pair` or openssl write them)
    /// that stack releases must be signed with (repeatable or comma-separated). When given,
    /// a release from an OCI registry is used only with a cosign-style signature by one of
    /// them (`sha256-<hex>.sig` beside it), HTTP releases are refused, and the ClusterStack
    /// says why (`SignatureMissing`, `SignatureInvalid`). Local folders are exempt.
    #[arg(
        long = "stack-signing-key",
        env = "KAAS_STACK_SIGNING_KEYS",
        value_delimiter = ','
    )]
    pub stack_signing_keys: Vec<std::path::PathBuf>,
}

impl Args {
    /// The keys of `--stack-signing-key`, read and parsed; an unreadable or wrong file is an
    /// error naming it.
    pub fn signing_keys(&self) -> anyhow::Result<Vec<kaas_stack::signature::PublicKey>> {
        self.stack_signing_keys
            .iter()
            .map(|path| {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--stack-signing-key {}: {e}", path.display()))?;
                kaas_stack::signature::PublicKey::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("--stack-signing-key {}: {e}", path.display()))
            })
            .collect()
    }
}
