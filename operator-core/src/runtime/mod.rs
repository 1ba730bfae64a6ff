//! Runtime wiring, once for every provider: flags, logging, the client, admin listeners, waiting
//! for the CRDs, leader election on a Lease ([`leader`]), the caches ([`caches`]), the stack
//! side ([`stack_tasks`]) and the `KaasCluster` controller, graceful shutdown. A provider's
//! `main` is one call to [`run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use api::v1beta1::{ClusterStack, ProviderClass, TenantPolicy};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::apply::{Applier, resource};
use crate::cli::Args;
use crate::cluster::{Context, error_policy, reconcile_within_deadline};
use crate::metrics::Metrics;
use crate::provider::Provider;

mod caches;
pub mod leader;
mod stack_tasks;

/// Parses the flags and runs the operator for `provider` until SIGTERM or Ctrl-C.
pub async fn run<P: Provider>(provider: P) -> anyhow::Result<()> {
    // Started as a render worker by this very binary: serve renders, then exit.
    kaas_stack::sandbox::serve_if_worker();
    let args = Args::parse();
    init_logging(args.runtime.log_json);
    // Stack templates come from registries someone else runs: they render in worker
    // processes with a memory limit and a deadline, never in this one.
    let exe = std::env::current_exe().context("the operator's own binary (render workers)")?;
    kaas_stack::sandbox::install(
        exe,
        kaas_stack::sandbox::Limits {
            memory: args.render_memory_mib.max(32) * 1024 * 1024,
            workers: args.render_workers.clamp(1, 16),
            ..Default::default()
        },
    );
    run_with(provider, args).await
}

/// Logs to stderr, as JSON lines with `json`, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A client from KUBECONFIG or the pod's service account.
/// Refuses an API server older than the supported minimum ([`api::server_version`]).
pub async fn connect() -> anyhow::Result<Client> {
    let client = Client::try_default()
        .await
        .context("connecting to the API server (KUBECONFIG or in-cluster)")?;
    let version = api::server_version::require_supported(&client).await?;
    tracing::info!(%version, "connected to the API server");
    Ok(client)
}

/// Starts the admin listeners `runtime` asks for: `/metrics` (serving `metrics`, with
/// reviewed tokens unless `--metrics-insecure`) and the probes; the returned flag makes
/// `/readyz` answer 200 once set.
pub fn serve_admin(
    runtime: &crate::cli::RuntimeArgs,
    client: &Client,
    metrics: kaas_listener::admin::Encode,
) -> anyhow::Result<Arc<AtomicBool>> {
    let ready = Arc::new(AtomicBool::new(false));
    let access = kaas_listener::metrics_auth::access(
        runtime.metrics_bind_address,
        runtime.metrics_insecure,
        client,
    )
    .map_err(anyhow::Error::msg)?;
    tokio::spawn(kaas_listener::admin::serve_metrics(
        runtime.metrics_bind_address,
        metrics,
        access,
    ));
    tokio::spawn(kaas_listener::admin::serve_probes(
        runtime.health_probe_bind_address,
        ready.clone(),
    ));
    Ok(ready)
}

/// Every CRD the operator reads or writes must be Established before it starts watching.
pub async fn wait_for_crds(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for name in names {
        let mut logged = false;
        loop {
            let established = api.get_opt(name).await?.is_some_and(|crd| {
                crd.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if !logged {
                tracing::info!(crd = %name, "waiting for the CRD to be established");
                logged = true;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}

/// The operator's one cache of `KaasCluster`s, without what is never read: the cluster
/// controller fills it, the rollout controller reads it.
type ClusterCache = (
    reflector::Store<crate::cluster::Watched>,
    reflector::store::Writer<crate::cluster::Watched>,
);

/// The `KaasCluster` controller: reconciles a cluster when it changes, when one of its Cluster
/// API objects does (`triggers`), when a class or stack it may use does, and when a tenant
/// policy over its namespace comes to stand elsewhere.
fn cluster_controller<P: Provider>(
    clusters_api: Api<crate::cluster::Watched>,
    triggers: caches::Triggers,
    cached: caches::CachedChanges,
    (store, writer): ClusterCache,
    args: &Args,
    ctx: Arc<Context<P>>,
) -> impl Future<Output = ()> + use<P> {
    // Listed in pages (from etcd): each page's clusters are reconciled while the next one
    // comes, and the whole fleet is never one response in memory (`make bench-operator`
    // shows the restarted operator's memory).
    let clusters_stream = watcher(clusters_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o| {
            // Managed fields and kubectl's copy of the last applied object would be most of
            // what the store holds; neither is read.
            let meta = kube::Resource::meta_mut(o);
            meta.managed_fields = None;
            if let Some(a) = meta.annotations.as_mut() {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        })
        .reflect(writer)
        .applied_objects();
    let by_class = store.clone();
    let by_stack = store.clone();
    let by_policy = store.clone();
    let policies = ctx.caches.policies.clone();
    let stood = std::sync::Mutex::new(std::collections::HashMap::new());
    // The queue depth: every trigger marks its cluster as waiting until its reconcile starts.
    let queue = ctx.metrics.clone();
    let queued = move |r: &ObjectRef<crate::cluster::Watched>| {
        queue.queued((r.namespace.clone().unwrap_or_default(), r.name.clone()));
    };
    let (by_self, by_trigger) = (queued.clone(), queued.clone());
    let (by_class_q, by_stack_q, by_policy_q) = (queued.clone(), queued.clone(), queued);
    let clusters_stream = clusters_stream.inspect(move |o| {
        if let Ok(o) = o {
            by_self(&ObjectRef::from_obj(o));
        }
    });
    Controller::for_stream(clusters_stream, store)
        .with_config(controller::Config::default().concurrency(args.concurrency))
        .reconcile_on(triggers.inspect(move |r| by_trigger(r)))
        // Class and stack triggers come from the caches the reconcile reads, after they hold
        // the change (see `caches`).
        .watches_stream(cached.classes, move |class: ProviderClass| {
            let name = class.name_any();
            by_class
                .state()
                .iter()
                .filter(|w| {
                    w.0.as_ref().is_ok_and(|c| {
                        c.spec
                            .provider_class_name
                            .as_deref()
                            .is_none_or(|n| n == name)
                    })
                })
                .map(|w| ObjectRef::from_obj(&**w))
                .inspect(|r| by_class_q(r))
                .collect::<Vec<_>>()
        })
        .watches_stream(cached.stacks, move |stack: ClusterStack| {
            by_stack
                .state()
                .iter()
                .filter(|w| {
                    w.0.as_ref()
                        .is_ok_and(|c| c.spec.cluster_stack.name == stack.spec.name)
                })
                .map(|w| ObjectRef::from_obj(&**w))
                .inspect(|r| by_stack_q(r))
                .collect::<Vec<_>>()
        })
        // A policy's usage changes with every admission; its clusters are reconciled only
        // when where it stands does (over its limits or not, the namespaces it lists), or
        // when it goes.
        .watches_stream(cached.policies, move |policy: TenantPolicy| {
            let name = policy.name_any();
            let now = api::tenancy::Standing::key(&policy);
            let present = policies.get(&ObjectRef::new(&name)).is_some();
            let before = {
                let mut stood = stood.lock().unwrap_or_else(|e| e.into_inner());
                if present {
                    stood.insert(name, now.clone())
                } else {
                    stood.remove(&name)
                }
            };
            if present && before.as_ref() == Some(&now) {
                return Vec::new();
            }
            let namespaces: std::collections::BTreeSet<String> = before
                .into_iter()
                .chain([now])
                .flat_map(|(namespaces, _)| namespaces)
                .collect();
            by_policy
                .state()
                .iter()
                .filter(|w| {
                    w.0.as_ref().is_ok_and(|c| {
                        c.metadata
                            .namespace
                            .as_ref()
                            .is_some_and(|ns| namespaces.contains(ns))
                    })
                })
                .map(|w| ObjectRef::from_obj(&**w))
                .inspect(|r| by_policy_q(r))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(kaas_listener::admin::shutdown_signal())
        .run(reconcile_within_deadline, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
}

fn crd_name(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

/// Runs the operator with already parsed flags.
pub async fn run_with<P: Provider>(provider: P, args: Args) -> anyhow::Result<()> {
    let client = connect().await?;
    run_on(provider, args, client).await
}

/// Runs the operator with already parsed flags on `client` (whose server is supported).
pub async fn run_on<P: Provider>(provider: P, args: Args, client: Client) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let controller_name = args
        .controller_name
        .clone()
        .unwrap_or_else(|| format!("{}{}", api::CONTROLLER_PREFIX, provider.name()));
    let manager = crate::cluster::build::manager_name(&provider);
    let metrics = Arc::new(Metrics::default());
    let encoded = metrics.clone();
    let ready = serve_admin(&args.runtime, &client, Arc::new(move || encoded.encode()))?;

    let kinds = crate::provider::kinds::<P>();
    let mut crds: Vec<String> = [
        "kaasclusters",
        "providerclasses",
        "clusterstacks",
        "stackrollouts",
        "tenantpolicies",
    ]
    .iter()
    .map(|p| format!("{p}.{}", api::GROUP))
    .collect();
    crds.extend(kinds.iter().map(crate::kinds::Kind::crd));
    crds.push(crd_name(&crate::certificates::machine_resource()));
    wait_for_crds(&client, &crds).await?;
    tracing::info!(
        after_ms = started.elapsed().as_millis() as u64,
        "CRDs established"
    );

    let standing = leader::wait_to_lead(
        &leader::Election::of(&args.runtime),
        &client,
        &controller_name,
        &manager,
        &ready,
    )
    .await?;
    if matches!(standing, leader::Standing::Stopped) {
        return Ok(());
    }
    let leading = metrics.clone();
    leading.leader.set(1);

    let clusters_api: Api<crate::cluster::Watched> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let caches::Started {
        caches,
        triggers,
        cached,
    } = caches::start(&client, args.namespace.as_deref(), &kinds, &manager).await?;
    ready.store(true, Ordering::Release);
    tracing::info!(
        after_ms = started.elapsed().as_millis() as u64,
        "caches synced: ready"
    );

    // What this operator applied before (another replica, an earlier run) counts as applied:
    // a restart over converged clusters writes nothing.
    let applier = Applier::new(client.clone(), &manager, metrics.writes.clone());
    let mut seeded = 0;
    let shared = P::SHARED_KINDS.iter().map(|(v, k)| resource(v, k));
    for ar in kinds.iter().map(crate::kinds::Kind::resource).chain(shared) {
        match applier.seed(&ar, args.namespace.as_deref()).await {
            Ok(n) => seeded += n,
            Err(e) => {
                tracing::warn!(kind = %ar.kind, error = %e, "listing applied objects failed; they are applied again")
            }
        }
    }
    tracing::info!(objects = seeded, "objects applied before are remembered");

    let reporter = Reporter {
        controller: manager.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let (releases, stack_controller) =
        stack_tasks::start(&args, &client, provider.name(), &manager, &metrics).await?;
    let ctx = Arc::new(Context {
        provider,
        applier,
        recorder: Recorder::new(client.clone(), reporter),
        releases,
        metrics,
        caches,
        ledger: Default::default(),
        settings: crate::cluster::Settings {
            controller_name: controller_name.clone(),
            addon_resync: Duration::from_secs(args.addon_resync.max(1)),
            reconcile_timeout: Duration::from_secs(args.reconcile_timeout.max(1)),
        },
    });

    tracing::info!(controller = %controller_name, field_manager = %ctx.applier.manager(), "running");
    let cluster_cache: ClusterCache = reflector::store();
    let rollouts = crate::rollout::controller::controller(
        crate::rollout::controller::RolloutContext {
            client: client.clone(),
            clusters: cluster_cache.0.clone(),
            classes: ctx.caches.classes.clone(),
            controller_name: controller_name.clone(),
            recorder: ctx.recorder.clone(),
            phases: ctx.metrics.rollouts().clone(),
        },
        args.namespace.as_deref(),
    );
    let clusters = cluster_controller(clusters_api, triggers, cached, cluster_cache, &args, ctx);
    let run = async {
        tokio::join!(clusters, stack_controller, rollouts);
    };

    let result = leader::run_while_leading(standing, run).await;
    leading.leader.set(0);
    result?;
    tracing::info!("stopped");
    Ok(())
}
