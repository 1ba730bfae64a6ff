//! `kaas-etcd-backup`: takes a workload cluster's etcd backups on its control plane node, on
//! the configuration's schedule (or once with `--once`), and keeps the retention. docs/backup.md.

use std::path::PathBuf;

use clap::Parser;
use kaas_backup::config::Config;
use kaas_backup::schedule::Schedule;

/// Flags.
#[derive(Debug, Parser)]
#[command(name = "kaas-etcd-backup", version)]
struct Args {
    /// The configuration file.
    #[arg(long, default_value = "/etc/kaas-backup/config.yaml")]
    config: PathBuf,
    /// Take one backup now and exit (non-zero when it failed).
    #[arg(long)]
    once: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().json().init();
    let config = Config::load(&args.config)?;
    if args.once {
        let manifest = kaas_backup::agent::attempt(&config).await?;
        tracing::info!(id = %manifest.id, size = manifest.size, "backup stored");
        return Ok(());
    }
    let schedule: Schedule = config.schedule.parse()?;
    let tz = match &config.time_zone {
        Some(name) => jiff::tz::TimeZone::get(name)?,
        None => jiff::tz::TimeZone::UTC,
    };
    loop {
        let now = jiff::Timestamp::now();
        let Some(next) = schedule.next(now, &tz) else {
            anyhow::bail!("schedule {:?} never fires", config.schedule);
        };
        let wait = (next.as_millisecond() - now.as_millisecond()).max(0) as u64;
        tracing::info!(next = %next, "waiting for the next backup");
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        match kaas_backup::agent::attempt(&config).await {
            Ok(m) => {
                tracing::info!(id = %m.id, size = m.size, revision = ?m.revision, "backup stored")
            }
            // The next schedule tries again; the status in the storage says why this failed.
            Err(e) => tracing::warn!(error = %e, "backup failed"),
        }
    }
}
