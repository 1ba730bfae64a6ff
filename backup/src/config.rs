//! The agent's configuration file (YAML): which cluster, its etcd and the client certificate
//! kubeadm wrote, the storage and the credential scoped to this cluster's prefix, the schedule
//! and what to keep. The operator renders it onto each control plane node; a test writes it by
//! hand. Every wrong value is an error naming its field.

use std::path::PathBuf;

use serde::Deserialize;

use crate::schedule::{Schedule, parse_duration};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The cluster the backups are of (written into every manifest).
    pub cluster: Cluster,
    /// The etcd to snapshot.
    pub etcd: Etcd,
    /// Where backups go.
    pub storage: Storage,
    /// A cron expression (or `@every <duration>`).
    pub schedule: String,
    /// The time zone the schedule is read in (IANA name); UTC when left out.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// What to keep.
    #[serde(default)]
    pub retain: Retain,
}

/// The cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// The `KaasCluster`'s namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The Kubernetes version it runs.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// Its cluster stack release.
    #[serde(default)]
    pub stack_release: Option<String>,
}

/// The etcd member of this node.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Etcd {
    /// `https://127.0.0.1:2379` (or `http://` for an etcd without TLS).
    pub endpoint: String,
    /// The etcd CA (`/etc/kubernetes/pki/etcd/ca.crt`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate etcd accepts (kubeadm's `apiserver-etcd-client.crt`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The S3-compatible storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    /// `https://s3.example.com`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// This cluster's prefix in it (`<namespace>/<name>` by default of the operator).
    pub prefix: String,
    /// The region; `us-east-1` when left out.
    #[serde(default)]
    pub region: Option<String>,
    /// A file holding the access key id.
    pub access_key_file: PathBuf,
    /// A file holding the secret key.
    pub secret_key_file: PathBuf,
    /// A CA to trust for the endpoint besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// What to keep: the newest `count` backups, and none older than `maxAge`; both when both are
/// set. Neither: every backup is kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retain {
    /// How many backups to keep (1 to 1000).
    #[serde(default)]
    pub count: Option<u32>,
    /// How old a backup may get (`720h`, `30d`).
    #[serde(default)]
    pub max_age: Option<String>,
}

/// What a configuration file got wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is no configuration (unknown or missing fields, wrong types).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's words (they name the field).
        message: String,
    },
    /// Values break rules: `(field, what is wrong)`.
    #[error("{path}: {}", .problems.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file.
        path: String,
        /// Each field and its problem.
        problems: Vec<(String, String)>,
    },
}

/// Largest configuration file read.
const MAX_FILE: u64 = 64 << 10;

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let read = |source| ConfigError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE + 1), &mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE {
            return Err(ConfigError::Parse {
                path: shown,
                message: format!("larger than {MAX_FILE} bytes"),
            });
        }
        Config::parse(&text, &shown)
    }

    /// Parses and checks `text` (named `path` in errors).
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_string(),
                problems,
            })
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |f: &str, m: String| out.push((f.to_string(), m));
        if let Err(e) = self.schedule.parse::<Schedule>() {
            add("schedule", e.to_string());
        }
        if let Some(tz) = &self.time_zone
            && jiff::tz::TimeZone::get(tz).is_err()
        {
            add("timeZone", format!("{tz:?} is no IANA time zone"));
        }
        for (field, url) in [
            ("etcd.endpoint", &self.etcd.endpoint),
            ("storage.endpoint", &self.storage.endpoint),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                add(field, format!("{url:?} is no http(s) URL"));
            }
        }
        if self.etcd.cert_file.is_some() != self.etcd.key_file.is_some() {
            add(
                "etcd.certFile",
                "a client certificate needs its key (etcd.keyFile), and a key its certificate"
                    .into(),
            );
        }
        let bucket = &self.storage.bucket;
        if bucket.len() < 3
            || bucket.len() > 63
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            add(
                "storage.bucket",
                format!("{bucket:?}: 3 to 63 lowercase letters, digits, dots and dashes"),
            );
        }
        let prefix = &self.storage.prefix;
        if prefix.is_empty()
            || prefix.len() > 512
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            add(
                "storage.prefix",
                format!(
                    "{prefix:?}: path segments such as tenant-a/prod, no leading or trailing /"
                ),
            );
        }
        if let Some(count) = self.retain.count
            && !(1..=1000).contains(&count)
        {
            add("retain.count", format!("{count}: from 1 to 1000"));
        }
        if let Some(age) = &self.retain.max_age
            && let Err(e) = parse_duration(age)
        {
            add("retain.maxAge", e);
        }
        for (field, value) in [
            ("cluster.namespace", &self.cluster.namespace),
            ("cluster.name", &self.cluster.name),
        ] {
            if value.is_empty() || value.len() > 253 {
                add(field, "required, at most 253 characters".into());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
cluster: {namespace: tenant-a, name: prod, kubernetesVersion: v1.35.0, stackRelease: docker-scs-1-0-0}
etcd: {endpoint: 'https://127.0.0.1:2379', caFile: /pki/ca.crt, certFile: /pki/c.crt, keyFile: /pki/c.key}
storage: {endpoint: 'https://s3.example.com', bucket: backups, prefix: tenant-a/prod,
          accessKeyFile: /creds/access, secretKeyFile: /creds/secret}
schedule: '0 3 * * *'
timeZone: Europe/Berlin
retain: {count: 7, maxAge: 30d}
";

    #[test]
    fn a_good_file_reads() {
        let config = Config::parse(GOOD, "good.yaml").unwrap();
        assert_eq!(config.retain.count, Some(7));
        assert_eq!(config.storage.prefix, "tenant-a/prod");
    }

    #[test]
    fn each_wrong_value_is_named() {
        for (from, to, field) in [
            ("'0 3 * * *'", "'0 25 * * *'", "schedule"),
            ("Europe/Berlin", "Mars/Olympus", "timeZone"),
            (
                "'https://s3.example.com'",
                "s3.example.com",
                "storage.endpoint",
            ),
            ("bucket: backups", "bucket: Backups", "storage.bucket"),
            (
                "prefix: tenant-a/prod",
                "prefix: tenant-a/../b",
                "storage.prefix",
            ),
            ("count: 7", "count: 0", "retain.count"),
            ("maxAge: 30d", "maxAge: forever", "retain.maxAge"),
            (", keyFile: /pki/c.key", "", "etcd.certFile"),
        ] {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "{from}");
            let e = Config::parse(&text, "bad.yaml").unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let e = Config::parse(&GOOD.replace("schedule:", "schedul:"), "x").unwrap_err();
        assert!(e.to_string().contains("schedul"), "{e}");
    }
}
