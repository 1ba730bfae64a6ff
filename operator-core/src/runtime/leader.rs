//! Leader election on a Lease: only the holder reconciles. A standby is ready (its probes
//! answer) but idle until the Lease is free; the holder gives it up on a graceful shutdown so a
//! standby takes over at once, and exits when it loses it, so nothing is written without it.
//!
//! Fencing: a holder cut off from the API server cannot renew, and its renewal request may
//! hang rather than fail, so the election alone would let it go on believing it leads, and
//! write again once the connection returns, after a standby took over. A watchdog therefore
//! reads the Lease itself (each read bounded) and exits once it cannot confirm its own
//! renewal for [`LEASE_SECONDS`] less [`FENCE_MARGIN`]: before the Lease expires and a
//! standby may take it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a Lease is valid after its last renewal; the holder renews it 3 s before that.
const LEASE_SECONDS: u64 = 10;
/// How long before the Lease expires an unconfirmed holder stops.
const FENCE_MARGIN: Duration = Duration::from_millis(1_500);
/// How often the watchdog reads the Lease, and how long one read may take.
const FENCE_POLL: Duration = Duration::from_millis(500);

/// Where this replica stands once the controllers may start.
#[allow(missing_debug_implementations)] // holds task handles and a watch receiver
pub enum Standing {
    /// No election: run.
    Alone,
    /// Holding the Lease.
    Leading {
        /// Whether this replica still holds it.
        held: watch::Receiver<bool>,
        /// Renews the Lease; ends (releasing it) when `held` is dropped.
        renewal: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
        /// Resolves once this replica can no longer confirm it holds the Lease.
        fence: JoinHandle<String>,
    },
    /// Asked to stop while waiting to lead.
    Stopped,
}

/// The leader election flags (`--leader-elect`, `--leader-election-namespace`).
#[derive(Debug, Clone, Default)]
pub struct Election {
    /// Whether to elect a leader at all.
    pub enabled: bool,
    /// Namespace of the Lease (default: the pod's namespace, else kaas-system).
    pub namespace: Option<String>,
}

impl Election {
    /// The leader election settings `args` ask for.
    pub fn of(args: &crate::cli::RuntimeArgs) -> Election {
        Election {
            enabled: args.leader_elect,
            namespace: args.leader_election_namespace.clone(),
        }
    }
}

/// With `--leader-elect`, waits until this replica holds the Lease named after
/// `controller_name` (marking it ready meanwhile); without it, returns at once.
pub async fn wait_to_lead(
    args: &Election,
    client: &Client,
    controller_name: &str,
    manager: &str,
    ready: &Arc<AtomicBool>,
) -> anyhow::Result<Standing> {
    if !args.enabled {
        return Ok(Standing::Alone);
    }
    let namespace = args
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "kaas-system".into());
    let lease_name = controller_name.replace(['/', '.'], "-");
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(3)
        // One field manager per replica: the Lease is taken with a server-side apply that
        // must conflict with another replica's. Under one shared name the API server saw no
        // conflict, and two replicas starting together could both believe they held it.
        .with_field_manager(format!("{manager}/{identity}"))
        .build()
        .await
        .context("setting up leader election")?;
    let (mut held, renewal) = lease.watch().await;
    ready.store(true, Ordering::Release);
    tracing::info!(lease = %lease_name, %namespace, %identity, "waiting to lead");
    while !*held.borrow_and_update() {
        tokio::select! {
            changed = held.changed() => changed.context("leader election stopped")?,
            () = kaas_listener::admin::shutdown_signal() => return Ok(Standing::Stopped),
        }
    }
    tracing::info!(lease = %lease_name, "leading");
    let fence = tokio::spawn(fence(
        Api::namespaced(client.clone(), &namespace),
        lease_name,
        identity,
    ));
    Ok(Standing::Leading {
        held,
        renewal,
        fence,
    })
}

/// Runs `controllers` for as long as `standing` allows: to their end (a graceful shutdown,
/// which then gives the Lease up), or until the Lease is lost, which is an error.
pub async fn run_while_leading(
    standing: Standing,
    controllers: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    match standing {
        Standing::Stopped => Ok(()),
        Standing::Alone => {
            controllers.await;
            Ok(())
        }
        Standing::Leading {
            mut held,
            renewal,
            fence,
        } => {
            let lost = async {
                loop {
                    if held.changed().await.is_err() || !*held.borrow() {
                        break;
                    }
                }
            };
            tokio::select! {
                () = controllers => {
                    // Graceful shutdown: give the Lease up at once so a standby takes over.
                    drop(held);
                    let _ = tokio::time::timeout(Duration::from_secs(5), renewal).await;
                    Ok(())
                }
                () = lost => {
                    anyhow::bail!("lost the leader Lease: exiting so that nothing is written without it");
                }
                why = fence => {
                    let why = why.unwrap_or_else(|e| e.to_string());
                    anyhow::bail!("{why}: exiting before a standby may take the Lease over");
                }
            }
        }
    }
}

/// Resolves (saying why) once this replica cannot confirm that it holds Lease `name`: another
/// identity holds it, or its own renewal has not been seen for the Lease's duration less the
/// margin (the API server unreachable, or the renewal hanging).
async fn fence(leases: Api<Lease>, name: String, identity: String) -> String {
    let valid = Duration::from_secs(LEASE_SECONDS) - FENCE_MARGIN;
    // Just acquired: renewed now.
    let mut sure_until = tokio::time::Instant::now() + valid;
    loop {
        let started = tokio::time::Instant::now();
        if let Ok(Ok(Some(lease))) = tokio::time::timeout(FENCE_POLL, leases.get_opt(&name)).await {
            let spec = lease.spec.unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(identity.as_str()) {
                return format!(
                    "the leader Lease is held by {}",
                    spec.holder_identity.unwrap_or_else(|| "nobody".into())
                );
            }
            if let Some(renewed) = spec.renew_time {
                // The holder writes renewTime from its own clock: its age here is exact.
                let age = k8s_openapi::jiff::Timestamp::now().duration_since(renewed.0);
                let age = Duration::try_from(age).unwrap_or_default();
                sure_until = sure_until.max(started + valid.saturating_sub(age));
            }
        }
        if tokio::time::Instant::now() >= sure_until {
            return format!(
                "could not confirm the leader Lease for {} s",
                valid.as_secs_f32()
            );
        }
        tokio::time::sleep_until(started + FENCE_POLL).await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "operator".into())
}
