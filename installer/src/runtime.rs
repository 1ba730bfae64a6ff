//! The installer's flags and wiring, on operator-core's runtime: logging, the admin listeners
//! (metrics with reviewed tokens, probes), waiting for the `KaasOperator` CRD, leader election
//! on a Lease, the controller (on `KaasOperator`s and on the Deployments it installed), graceful
//! shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use api::install::NAMESPACE;
use api::install::v1alpha1::KaasOperator;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, watcher};
use operator_core::cli::RuntimeArgs;
use operator_core::runtime::leader;

use crate::controller::{Context, error_policy, reconcile};
use crate::metrics::Metrics;
use crate::render::{MANAGER, OWNER_LABEL};

/// Flags of `kaas-installer`: the runtime flags of the provider operators.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "kaas-installer", version)]
pub struct Args {
    /// Metrics, probes, leader election, logging.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// How many KaasOperators are reconciled at once.
    #[arg(long, env = "KAAS_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// An image repository (or a prefix of repositories, such as `registry.example.com/mirror`)
    /// a `KaasOperator`'s `spec.image.repository` may name; repeatable. None: only each
    /// bundle's own repository (a digest may still pin it). The operator runs with its service
    /// account, which reads every tenant's kubeconfig Secret.
    #[arg(
        long = "allowed-image-repository",
        env = "KAAS_ALLOWED_IMAGE_REPOSITORIES",
        value_delimiter = ','
    )]
    pub allowed_image_repositories: Vec<String>,
}

/// Parses the flags and runs the installer until SIGTERM or Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    operator_core::runtime::init_logging(args.runtime.log_json);
    let client = operator_core::runtime::connect().await?;
    let metrics = Arc::new(Metrics::default());
    let encoded = metrics.clone();
    let ready = operator_core::runtime::serve_admin(
        &args.runtime,
        &client,
        Arc::new(move || encoded.encode()),
    )?;
    operator_core::runtime::wait_for_crds(
        &client,
        &[format!("kaasoperators.{}", api::install::GROUP)],
    )
    .await?;
    let standing = leader::wait_to_lead(
        &leader::Election::of(&args.runtime),
        &client,
        MANAGER,
        MANAGER,
        &ready,
    )
    .await?;
    if matches!(standing, leader::Standing::Stopped) {
        return Ok(());
    }
    let leading = metrics.clone();
    leading.leader.set(1);

    let operators: Api<KaasOperator> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    // Every trigger marks its KaasOperator waiting until its reconcile starts (the queue depth).
    let (store, writer) = kube::runtime::reflector::store();
    let queue = metrics.clone();
    let stream = watcher(operators, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .inspect(move |o| {
            if let Ok(o) = o {
                queue.queued(&kube::ResourceExt::name_any(o));
            }
        });
    let controller = Controller::for_stream(stream, store)
        .with_config(controller::Config::default().concurrency(args.concurrency));
    let queue = metrics.clone();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        operators: controller.store(),
        metrics,
        allowed_image_repositories: args.allowed_image_repositories.clone(),
    });
    ready.store(true, Ordering::Release);
    tracing::info!("running");
    let run = controller
        // An installed Deployment's status moves `Available`.
        .watches(
            deployments,
            watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}")),
            move |d: Deployment| {
                d.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(OWNER_LABEL))
                    .map(|owner| {
                        queue.queued(owner);
                        ObjectRef::<KaasOperator>::new(owner)
                    })
            },
        )
        .graceful_shutdown_on(kaas_listener::admin::shutdown_signal())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    let result = leader::run_while_leading(standing, run).await;
    leading.leader.set(0);
    result?;
    tracing::info!("stopped");
    Ok(())
}
