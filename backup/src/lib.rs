//! etcd backups of workload clusters (docs/backup.md): the agent `kaas-etcd-backup` that runs
//! where etcd runs. It reads a snapshot through etcd's maintenance API ([`snapshot`]), streams
//! it into S3-compatible storage with its checksum and a manifest ([`agent`], [`s3`]) on a
//! schedule ([`schedule`]), and keeps the retention; its file is [`config`].

pub mod agent;
pub mod config;
pub mod s3;
pub mod schedule;
mod sigv4;
pub mod snapshot;
