//! The installer's flags and wiring, on operator-core's runtime: logging, the admin listeners
//! (metrics with reviewed tokens, probes), waiting for the `KaasOperator` CRD, leader election
//! on a Lease, the controller (on `KaasOperator`s and on the Deployments it installed), graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use api::install::NAMESPACE;
use api::install::v1alpha1::KaasOperator;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client};
use operator_core::runtime::leader;

use crate::controller::{Context, error_policy, reconcile};
use crate::metrics::Metrics;
use crate::render::{MANAGER, OWNER_LABEL};

/// Flags of `kaas-installer`: the runtime flags of the provider operators.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "kaas-installer", version)]
pub struct Args {
    /// Address of the Prometheus metrics listener (GET /metrics).
    #[arg(
        long,
        env = "KAAS_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_bind_address: SocketAddr,
    /// Serve metrics over plain HTTP without authentication (development, loopback only).
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
    /// How many KaasOperators are reconciled at once.
    #[arg(long, env = "KAAS_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Log as JSON lines.
    #[arg(long, env = "KAAS_LOG_JSON")]
    pub log_json: bool,
}

/// Whether the API server serves `policy/v1` (Kubernetes 1.21 and later).
async fn pdb_api_version(client: &Client) -> String {
    match client.list_api_group_resources("policy/v1").await {
        Ok(list)
            if list
                .resources
                .iter()
                .any(|r| r.name == "poddisruptionbudgets") =>
        {
            "policy/v1".into()
        }
        _ => "policy/v1beta1".into(),
    }
}

/// Parses the flags and runs the installer until SIGTERM or Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    operator_core::runtime::init_logging(args.log_json);
    let client = Client::try_default()
        .await
        .context("connecting to the API server (KUBECONFIG or in-cluster)")?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let access = kaas_listener::metrics_auth::access(
        args.metrics_bind_address,
        args.metrics_insecure,
        &client,
    )
    .map_err(anyhow::Error::msg)?;
    let encoded = metrics.clone();
    tokio::spawn(operator_core::admin::serve_metrics(
        args.metrics_bind_address,
        Arc::new(move || encoded.encode()),
        access,
    ));
    tokio::spawn(operator_core::admin::serve_probes(
        args.health_probe_bind_address,
        ready.clone(),
    ));
    operator_core::runtime::wait_for_crds(
        &client,
        &[format!("kaasoperators.{}", api::install::GROUP)],
    )
    .await?;
    let election = leader::Election {
        enabled: args.leader_elect,
        namespace: args.leader_election_namespace.clone(),
    };
    let standing = leader::wait_to_lead(&election, &client, MANAGER, MANAGER, &ready).await?;
    if matches!(standing, leader::Standing::Stopped) {
        return Ok(());
    }

    let operators: Api<KaasOperator> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let controller = Controller::new(operators, watcher::Config::default().any_semantic())
        .with_config(controller::Config::default().concurrency(args.concurrency));
    let ctx = Arc::new(Context {
        client: client.clone(),
        instance: std::env::var("POD_NAME").unwrap_or_else(|_| MANAGER.into()),
        operators: controller.store(),
        pdb_api_version: pdb_api_version(&client).await,
        metrics,
    });
    ready.store(true, Ordering::Release);
    tracing::info!(pdb = %ctx.pdb_api_version, "running");
    let run = controller
        // An installed Deployment's status moves `Available`.
        .watches(
            deployments,
            watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}")),
            |d: Deployment| {
                d.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(OWNER_LABEL))
                    .map(|owner| ObjectRef::<KaasOperator>::new(owner))
            },
        )
        .graceful_shutdown_on(operator_core::shutdown_signal())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    leader::run_while_leading(standing, run).await?;
    tracing::info!("stopped");
    Ok(())
}
