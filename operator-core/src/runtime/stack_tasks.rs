//! The stack side of the operator: the cache of fetched releases every reconcile reads, the
//! shipped stacks installed on request, discovery of new releases in stack repositories, and
//! the controller that fetches, verifies and reports each `ClusterStack`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::v1beta1::ClusterStack;
use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::Controller;
use kube::runtime::watcher;

use crate::cli::Args;
use crate::stacks::Releases;

/// Starts what keeps the stacks of `provider` current; returns the releases and the stack
/// controller to run.
pub(super) async fn start(
    args: &Args,
    client: &Client,
    provider: &str,
    manager: &str,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<(Arc<Releases>, impl Future<Output = ()> + use<>)> {
    let keys = args.signing_keys()?;
    if !keys.is_empty() {
        let fingerprints: Vec<String> = keys.iter().map(|k| k.fingerprint()).collect();
        tracing::info!(keys = ?fingerprints, "stack releases from registries must be signed");
    }
    let releases = Arc::new(Releases::new(
        provider,
        kaas_stack::source::Fetcher::with_timeout(
            Some(args.stack_cache_dir.clone()),
            args.plain_http_registries.clone(),
            Duration::from_secs(args.stack_fetch_timeout.max(1)),
        )
        .allowing(kaas_stack::source::Allowed {
            local_dirs: args.allow_local_stacks.clone(),
            prefixes: args.allowed_stack_sources.clone(),
        })
        .requiring_signatures(keys),
    ));
    if args.install_shipped_stacks {
        let shipped = kaas_stack::builtin::for_provider(provider)
            .context("the stacks shipped with this binary")?;
        let objects = shipped
            .iter()
            .map(|r| crate::stacks::object_for(r, None))
            .collect();
        let created = crate::stacks::install(client, objects, manager).await?;
        tracing::info!(created, "installed the shipped stacks");
    }
    spawn_discovery(args, client.clone(), releases.clone(), manager.to_string());
    // Through a guard: one stored ClusterStack that does not deserialize is reported and
    // skipped instead of failing the watch of all of them.
    let controller = Controller::new(
        Api::<DeserializeGuard<ClusterStack>>::all(client.clone()),
        watcher::Config::default(),
    );
    metrics.stacks().set_source(controller.store(), provider);
    let controller = controller
        .graceful_shutdown_on(kaas_listener::admin::shutdown_signal())
        .run(
            |stack: Arc<DeserializeGuard<ClusterStack>>, ctx| async move {
                match &stack.0 {
                    Ok(stack) => crate::stacks::reconcile_stack(Arc::new(stack.clone()), ctx).await,
                    Err(invalid) => {
                        tracing::warn!(
                            name = %invalid.metadata.name.clone().unwrap_or_default(),
                            error = %invalid.error,
                            "ClusterStack does not deserialize; not served"
                        );
                        Ok(kube::runtime::controller::Action::await_change())
                    }
                }
            },
            |_stack, error, ctx| {
                crate::stacks::stack_error_policy(Arc::new(ClusterStack::default()), error, ctx)
            },
            Arc::new(crate::stacks::StackContext {
                releases: releases.clone(),
                client: client.clone(),
                manager: manager.to_string(),
            }),
        )
        .for_each(|_| futures::future::ready(()));
    Ok((releases, controller))
}

/// Polls the stack repositories for new releases of this provider's stacks.
fn spawn_discovery(
    args: &Args,
    client: Client,
    releases: Arc<crate::stacks::Releases>,
    manager: String,
) {
    if args.stack_repositories.is_empty() {
        return;
    }
    let repositories = args.stack_repositories.clone();
    let interval = Duration::from_secs(args.stack_discovery_interval.max(5));
    tokio::spawn(async move {
        loop {
            for repository in &repositories {
                match crate::stacks::discover(&client, &releases, repository, &manager).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(%repository, created = n, "discovered stack releases"),
                    Err(e) => tracing::warn!(%repository, error = %e, "stack discovery failed"),
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
}
