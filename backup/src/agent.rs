//! One backup and its upkeep: a snapshot streamed into the storage as `<prefix>/<id>.db`
//! with its SHA-256 taken on the way, then `<prefix>/<id>.json`, the manifest (cluster,
//! Kubernetes version, stack release, etcd revision, times, size, checksum), written last so
//! that a backup without a manifest is an unfinished one; then the backups past the retention
//! are deleted; then `<prefix>/status.json` says how the attempt went. A failed attempt
//! deletes nothing, keeps the last successful backup in the status and sets its error.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, Retain};
use crate::s3::{Bucket, Credentials};
use crate::schedule::parse_duration;
use crate::snapshot::{Snapshot, SnapshotError};

/// What a backup holds and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `<namespace>/<name>` of the cluster.
    pub cluster: String,
    /// The backup's id (its start time, `YYYYMMDDTHHMMSSZ`).
    pub id: String,
    /// The snapshot's key.
    pub snapshot: String,
    /// The Kubernetes version the cluster ran.
    pub kubernetes_version: Option<String>,
    /// Its stack release.
    pub stack_release: Option<String>,
    /// etcd's revision just before the snapshot (the snapshot holds at least it).
    pub revision: Option<i64>,
    /// When the snapshot started and finished.
    pub started: Timestamp,
    /// When it was stored.
    pub finished: Timestamp,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the snapshot, hex.
    pub sha256: String,
}

/// How the last attempt went (`<prefix>/status.json`, read by the operator).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The last attempt's start.
    pub last_attempt: Option<Timestamp>,
    /// The id of the newest complete backup.
    pub last_successful: Option<String>,
    /// Why the last attempt failed; none when it succeeded.
    pub last_error: Option<String>,
    /// Complete backups kept.
    pub count: u32,
    /// Their snapshots' bytes.
    pub size: u64,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading the snapshot.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The storage.
    #[error(transparent)]
    Storage(#[from] crate::s3::Error),
    /// A credential file.
    #[error("{0}: {1}")]
    Credentials(String, std::io::Error),
}

/// The bucket as the configuration's credential sees it.
pub fn bucket(config: &Config) -> Result<Bucket, BackupError> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| BackupError::Credentials(p.display().to_string(), e))
    };
    let ca = match &config.storage.ca_file {
        Some(p) => Some(
            std::fs::read(p).map_err(|e| BackupError::Credentials(p.display().to_string(), e))?,
        ),
        None => None,
    };
    Ok(Bucket::new(
        &config.storage.endpoint,
        &config.storage.bucket,
        Credentials {
            access_key: read(&config.storage.access_key_file)?,
            secret_key: read(&config.storage.secret_key_file)?,
            region: config
                .storage
                .region
                .clone()
                .unwrap_or_else(|| "us-east-1".into()),
        },
        ca.as_deref(),
    )?)
}

/// Takes one backup now.
pub async fn take(config: &Config, bucket: &Bucket) -> Result<Manifest, BackupError> {
    let started = Timestamp::now();
    let id = started.strftime("%Y%m%dT%H%M%SZ").to_string();
    let prefix = &config.storage.prefix;
    let key = format!("{prefix}/{id}.db");
    let mut snapshot = Snapshot::start(&config.etcd).await?;
    let mut upload = bucket.upload(&key).await?;
    let mut hash = Sha256::new();
    let streamed: Result<(), BackupError> = async {
        while let Some(chunk) = snapshot.next().await? {
            hash.update(&chunk);
            upload.write(&chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        let _ = upload.abort().await;
        return Err(e);
    }
    let size = upload.finish().await?;
    let manifest = Manifest {
        cluster: format!("{}/{}", config.cluster.namespace, config.cluster.name),
        id: id.clone(),
        snapshot: key,
        kubernetes_version: config.cluster.kubernetes_version.clone(),
        stack_release: config.cluster.stack_release.clone(),
        revision: snapshot.revision,
        started,
        finished: Timestamp::now(),
        size,
        sha256: crate::sigv4::hex(&hash.finalize()),
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    bucket
        .put(&format!("{prefix}/{id}.json"), json.into())
        .await?;
    Ok(manifest)
}

/// The complete backups under `prefix` (those with a manifest), oldest first: (id, bytes of
/// the snapshot).
pub async fn backups(bucket: &Bucket, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
    let objects = bucket.list(&format!("{prefix}/")).await?;
    let size_of = |id: &str| {
        objects
            .iter()
            .find(|o| o.key == format!("{prefix}/{id}.db"))
            .map(|o| o.size)
    };
    let mut out: Vec<(String, u64)> = objects
        .iter()
        .filter_map(|o| {
            o.key
                .strip_prefix(&format!("{prefix}/"))?
                .strip_suffix(".json")
        })
        .filter(|id| *id != "status")
        .filter_map(|id| size_of(id).map(|s| (id.to_string(), s)))
        .collect();
    out.sort();
    Ok(out)
}

/// The ids of `backups` (oldest first) that `retain` no longer keeps at `now`. The newest is
/// always kept.
pub fn expired(backups: &[String], retain: &Retain, now: Timestamp) -> Vec<String> {
    let max_age = retain
        .max_age
        .as_deref()
        .and_then(|a| parse_duration(a).ok());
    let keep_count = retain.count.map(|c| c as usize).unwrap_or(usize::MAX);
    let n = backups.len();
    backups
        .iter()
        .enumerate()
        .filter(|(i, id)| {
            let newest = *i + 1 == n;
            let too_many = n - i > keep_count;
            let too_old = max_age.is_some_and(|age| {
                jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", id)
                    .ok()
                    .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC).ok())
                    .is_some_and(|t| now.as_second() - t.timestamp().as_second() > age as i64)
            });
            !newest && (too_many || too_old)
        })
        .map(|(_, id)| id.clone())
        .collect()
}

/// Deletes the backups past the retention; the ids deleted.
pub async fn prune(config: &Config, bucket: &Bucket) -> Result<Vec<String>, BackupError> {
    let prefix = &config.storage.prefix;
    let ids: Vec<String> = backups(bucket, prefix)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let gone = expired(&ids, &config.retain, Timestamp::now());
    for id in &gone {
        // The manifest first: a snapshot without one is an unfinished backup, never restored.
        bucket.delete(&format!("{prefix}/{id}.json")).await?;
        bucket.delete(&format!("{prefix}/{id}.db")).await?;
    }
    Ok(gone)
}

/// One scheduled attempt: backup, retention, status. The status is written whatever happened
/// (when the storage takes it); the error of the attempt is returned.
pub async fn attempt(config: &Config) -> Result<Manifest, BackupError> {
    let bucket = bucket(config)?;
    let prefix = &config.storage.prefix;
    let started = Timestamp::now();
    let result = async {
        let manifest = take(config, &bucket).await?;
        prune(config, &bucket).await?;
        Ok::<_, BackupError>(manifest)
    }
    .await;
    let kept = backups(&bucket, prefix).await.unwrap_or_default();
    let previous: Status = bucket
        .get(&format!("{prefix}/status.json"), 64 << 10)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let status = Status {
        last_attempt: Some(started),
        last_successful: match &result {
            Ok(m) => Some(m.id.clone()),
            Err(_) => previous.last_successful,
        },
        last_error: result.as_ref().err().map(ToString::to_string),
        count: kept.len() as u32,
        size: kept.iter().map(|(_, s)| s).sum(),
    };
    let json = serde_json::to_vec_pretty(&status).unwrap_or_default();
    let _ = bucket
        .put(&format!("{prefix}/status.json"), json.into())
        .await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn retention_keeps_the_newest_by_count_and_age() {
        let all = ids(&[
            "20261201T030000Z",
            "20261202T030000Z",
            "20261203T030000Z",
            "20261207T030000Z",
            "20261208T030000Z",
        ]);
        let now: Timestamp = "2026-12-08T04:00:00Z".parse().unwrap();
        let count = Retain {
            count: Some(3),
            max_age: None,
        };
        assert_eq!(
            expired(&all, &count, now),
            ids(&["20261201T030000Z", "20261202T030000Z"])
        );
        let age = Retain {
            count: None,
            max_age: Some("3d".into()),
        };
        assert_eq!(
            expired(&all, &age, now),
            ids(&["20261201T030000Z", "20261202T030000Z", "20261203T030000Z"])
        );
        let both = Retain {
            count: Some(4),
            max_age: Some("6d".into()),
        };
        assert_eq!(
            expired(&all, &both, now),
            ids(&["20261201T030000Z", "20261202T030000Z"])
        );
        assert!(expired(&all, &Retain::default(), now).is_empty());
        // The newest stays even when it is too old.
        let later: Timestamp = "2027-06-01T00:00:00Z".parse().unwrap();
        assert_eq!(expired(&all, &age, later).len(), 4);
    }
}
