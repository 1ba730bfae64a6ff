//! Runtime wiring, once for every provider: flags, logging, the client, admin listeners, waiting
//! for the CRDs, leader election on a Lease, the caches and the controller, graceful shutdown.
//! A provider's `main` is one call to [`run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use api::v1beta1::{ClusterStack, ProviderClass};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::apply::{Applier, resource};
use crate::cli::Args;
use crate::metrics::Metrics;
use crate::provider::Provider;
use crate::reconcile::{Context, OwnedStores, error_policy, reconcile};
use crate::render;

/// Parses the flags and runs the operator for `provider` until SIGTERM or Ctrl-C.
pub async fn run<P: Provider>(provider: P) -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_json);
    run_with(provider, args).await
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Every CRD the operator reads or writes must be Established before it starts watching.
async fn wait_for_crds(client: &Client, names: &[String]) -> anyhow::Result<()> {
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

fn crd_name(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

fn spawn_store<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(|o| {
            o.meta_mut().managed_fields = None;
        }),
    );
    tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    reader
}

/// Triggers buffered per owned kind while the controller is busy or not yet running.
const TRIGGER_BUFFER: usize = 16_384;

/// A cache of one owned Cluster API kind, and the stream of what changed in it (name,
/// namespace and owner references only) that triggers the owner's reconcile. One watch feeds
/// both, so the API server serves each kind once.
fn spawn_dynamic_store(
    api: Api<DynamicObject>,
    ar: ApiResource,
    config: watcher::Config,
) -> (
    Store<DynamicObject>,
    impl futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static,
) {
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let (tx, rx) = tokio::sync::mpsc::channel(TRIGGER_BUFFER);
    let stream = reflector::reflector(
        writer,
        // Only metadata and status are read from these objects: the spec (the operator's own
        // rendering) is dropped to keep the cache small with thousands of clusters.
        watcher(api, config).default_backoff().modify(|o| {
            o.metadata.managed_fields = None;
            o.metadata.annotations = None;
            if let Some(obj) = o.data.as_object_mut() {
                obj.remove("spec");
            }
        }),
    )
    .touched_objects();
    tokio::spawn(stream.for_each(move |o| {
        if let Ok(o) = o {
            let mut trigger = DynamicObject::new(&o.name_any(), &ar);
            trigger.metadata.namespace = o.metadata.namespace.clone();
            trigger.metadata.owner_references = o.metadata.owner_references.clone();
            // The controller may not run yet (a standby replica): the buffer holds the
            // triggers, which are small, and drops what does not fit. Nothing is lost by that:
            // a starting controller reconciles every cluster, and a running one requeues each
            // cluster periodically.
            if tx.try_send(trigger).is_err() {
                tracing::debug!("owned-object trigger dropped: the controller is behind");
            }
        }
        futures::future::ready(())
    }));
    let triggers =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|o| (Ok(o), rx)) },
        );
    (reader, triggers)
}

/// Runs the operator with already parsed flags.
pub async fn run_with<P: Provider>(provider: P, args: Args) -> anyhow::Result<()> {
    let controller_name = args
        .controller_name
        .clone()
        .unwrap_or_else(|| format!("{}{}", api::CONTROLLER_PREFIX, provider.name()));
    let manager = format!("kaas-operator-{}", provider.name());
    let client = Client::try_default()
        .await
        .context("connecting to the API server (KUBECONFIG or in-cluster)")?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(crate::admin::serve_metrics(
        args.metrics_bind_address,
        metrics.clone(),
    ));
    tokio::spawn(crate::admin::serve_probes(
        args.health_probe_bind_address,
        ready.clone(),
    ));

    let (infra_version, infra_cluster, infra_template) = provider.infrastructure_kinds();
    let capi_kinds = [
        resource(render::CAPI_CORE, "Cluster"),
        resource(render::CAPI_CONTROL_PLANE, "KubeadmControlPlane"),
        resource(render::CAPI_CORE, "MachineDeployment"),
        resource(render::CAPI_BOOTSTRAP, "KubeadmConfigTemplate"),
        resource(&infra_version, &infra_cluster),
        resource(&infra_version, &infra_template),
    ];
    let mut crds: Vec<String> = ["kaasclusters", "providerclasses", "clusterstacks"]
        .iter()
        .map(|p| format!("{p}.{}", api::GROUP))
        .collect();
    crds.extend(capi_kinds.iter().map(crd_name));
    wait_for_crds(&client, &crds).await?;

    // Leader election: only the Lease holder reconciles; a standby is ready but idle.
    let mut leadership = None;
    if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "kaas-system".into());
        let lease_name = controller_name.replace(['/', '.'], "-");
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease_name)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(10)
            .with_grace(3)
            .with_field_manager(&manager)
            .build()
            .await
            .context("setting up leader election")?;
        let (mut rx, handle) = manager.watch().await;
        ready.store(true, Ordering::Release);
        tracing::info!(lease = %lease_name, %namespace, %identity, "waiting to lead");
        while !*rx.borrow_and_update() {
            tokio::select! {
                changed = rx.changed() => changed.context("leader election stopped")?,
                () = crate::shutdown_signal() => return Ok(()),
            }
        }
        tracing::info!(lease = %lease_name, "leading");
        leadership = Some((rx, handle));
    }

    let clusters_api: Api<crate::reconcile::Watched> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let dynamic = |ar: &ApiResource| -> Api<DynamicObject> {
        match &args.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        }
    };
    let mine =
        watcher::Config::default().labels(&format!("{}={manager}", render::MANAGED_BY_LABEL));
    let (cluster_store, cluster_triggers) =
        spawn_dynamic_store(dynamic(&capi_kinds[0]), capi_kinds[0].clone(), mine.clone());
    let (cp_store, cp_triggers) =
        spawn_dynamic_store(dynamic(&capi_kinds[1]), capi_kinds[1].clone(), mine.clone());
    let (md_store, md_triggers) =
        spawn_dynamic_store(dynamic(&capi_kinds[2]), capi_kinds[2].clone(), mine);
    let owned = OwnedStores {
        clusters: cluster_store,
        control_planes: cp_store,
        machine_deployments: md_store,
    };
    let classes = spawn_store(
        Api::<ProviderClass>::all(client.clone()),
        watcher::Config::default(),
    );
    let stacks = spawn_store(
        Api::<ClusterStack>::all(client.clone()),
        watcher::Config::default(),
    );
    for store in [
        &owned.clusters,
        &owned.control_planes,
        &owned.machine_deployments,
    ] {
        store.wait_until_ready().await.context("caches")?;
    }
    classes.wait_until_ready().await.context("caches")?;
    stacks.wait_until_ready().await.context("caches")?;
    ready.store(true, Ordering::Release);

    let reporter = Reporter {
        controller: manager.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let releases = Arc::new(crate::stacks::Releases::new(
        provider.name(),
        kaas_stack::source::Fetcher::new(
            Some(args.stack_cache_dir.clone()),
            args.plain_http_registries.clone(),
        ),
    ));
    if args.install_shipped_stacks {
        let shipped = kaas_stack::builtin::for_provider(provider.name())
            .context("the stacks shipped with this binary")?;
        let objects = shipped
            .iter()
            .map(|r| crate::stacks::object_for(r, None))
            .collect();
        let created = crate::stacks::install(&client, objects, &manager).await?;
        tracing::info!(created, "installed the shipped stacks");
    }
    spawn_discovery(&args, client.clone(), releases.clone(), manager.clone());
    let stack_controller = Controller::new(
        Api::<ClusterStack>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(crate::shutdown_signal())
    .run(
        crate::stacks::reconcile_stack,
        crate::stacks::stack_error_policy,
        Arc::new(crate::stacks::StackContext {
            releases: releases.clone(),
            client: client.clone(),
            manager: manager.clone(),
        }),
    )
    .for_each(|_| futures::future::ready(()));
    let ctx = Arc::new(Context {
        provider,
        finalizer: controller_name.clone(),
        controller_name: controller_name.clone(),
        applier: Applier::new(client.clone(), &manager, metrics.writes.clone()),
        classes: classes.clone(),
        stacks: stacks.clone(),
        owned,
        metrics,
        recorder: Recorder::new(client.clone(), reporter),
        releases,
        workloads: crate::addons::Workloads::default(),
        addon_resync: Duration::from_secs(args.addon_resync.max(1)),
        image_users: Default::default(),
        written: Default::default(),
    });

    // The controller's own cache, without managedFields (they are most of a small object).
    let (store, writer) = reflector::store::<crate::reconcile::Watched>();
    let clusters_stream = watcher(clusters_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o| kube::Resource::meta_mut(o).managed_fields = None)
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(clusters_stream, store.clone())
        .with_config(controller::Config::default().concurrency(args.concurrency));
    let by_class = store.clone();
    let by_stack = store.clone();
    let controller = controller
        .owns_stream_with(cluster_triggers, capi_kinds[0].clone())
        .owns_stream_with(cp_triggers, capi_kinds[1].clone())
        .owns_stream_with(md_triggers, capi_kinds[2].clone())
        .watches(
            Api::<ProviderClass>::all(client.clone()),
            watcher::Config::default(),
            move |class: ProviderClass| {
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
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            Api::<ClusterStack>::all(client.clone()),
            watcher::Config::default(),
            move |stack: ClusterStack| {
                by_stack
                    .state()
                    .iter()
                    .filter(|w| {
                        w.0.as_ref()
                            .is_ok_and(|c| c.spec.cluster_stack.name == stack.spec.name)
                    })
                    .map(|w| ObjectRef::from_obj(&**w))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(crate::shutdown_signal());
    tracing::info!(controller = %controller_name, field_manager = %ctx.applier.manager(), "running");
    let clusters = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    let run = async {
        tokio::join!(clusters, stack_controller);
    };

    match leadership {
        None => run.await,
        Some((mut rx, handle)) => {
            let lost = async {
                loop {
                    if rx.changed().await.is_err() || !*rx.borrow() {
                        break;
                    }
                }
            };
            tokio::select! {
                () = run => {
                    // Graceful shutdown: give the Lease up at once so a standby takes over.
                    drop(rx);
                    let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
                }
                () = lost => {
                    anyhow::bail!("lost the leader Lease: exiting so that nothing is written without it");
                }
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "operator".into())
}
