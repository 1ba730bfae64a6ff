//! Leader election on a Lease: only the holder reconciles. A standby is ready (its probes
//! answer) but idle until the Lease is free; the holder gives it up on a graceful shutdown so a
//! standby takes over at once, and exits when it loses it, so nothing is written without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::LeaseManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::Args;

/// Where this replica stands once the controllers may start.
pub(super) enum Standing {
    /// No election: run.
    Alone,
    /// Holding the Lease.
    Leading {
        /// Whether this replica still holds it.
        held: watch::Receiver<bool>,
        /// Renews the Lease; ends (releasing it) when `held` is dropped.
        renewal: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    },
    /// Asked to stop while waiting to lead.
    Stopped,
}

/// With `--leader-elect`, waits until this replica holds the Lease named after
/// `controller_name` (marking it ready meanwhile); without it, returns at once.
pub(super) async fn wait_to_lead(
    args: &Args,
    client: &Client,
    controller_name: &str,
    manager: &str,
    ready: &Arc<AtomicBool>,
) -> anyhow::Result<Standing> {
    if !args.leader_elect {
        return Ok(Standing::Alone);
    }
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "kaas-system".into());
    let lease_name = controller_name.replace(['/', '.'], "-");
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(10)
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
            () = crate::shutdown_signal() => return Ok(Standing::Stopped),
        }
    }
    tracing::info!(lease = %lease_name, "leading");
    Ok(Standing::Leading { held, renewal })
}

/// Runs `controllers` for as long as `standing` allows: to their end (a graceful shutdown,
/// which then gives the Lease up), or until the Lease is lost, which is an error.
pub(super) async fn run_while_leading(
    standing: Standing,
    controllers: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    match standing {
        Standing::Stopped => Ok(()),
        Standing::Alone => {
            controllers.await;
            Ok(())
        }
        Standing::Leading { mut held, renewal } => {
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
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "operator".into())
}
