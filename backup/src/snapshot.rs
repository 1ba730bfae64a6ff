//! A snapshot of etcd, read as a stream: etcd's maintenance `Snapshot` call through its HTTP
//! gateway (`POST /v3/maintenance/snapshot`), which answers with one JSON message per line,
//! each carrying a base64 chunk of the database (32 KiB). Read line by line, so memory holds
//! one line, never the snapshot; a line longer than 1 MiB or an error message ends it.

use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};

use crate::config::Etcd;

/// Longest line read (a 32 KiB chunk is 44 KiB of base64).
const MAX_LINE: usize = 1 << 20;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading a certificate or key file.
    #[error("{0}: {1}")]
    File(String, std::io::Error),
    /// The client could not be built (a certificate or key that does not parse).
    #[error("etcd client: {0}")]
    Client(String),
    /// The request failed.
    #[error("etcd {endpoint}: {source}")]
    Http {
        /// The endpoint.
        endpoint: String,
        /// Why.
        source: reqwest::Error,
    },
    /// etcd answered with an error.
    #[error("etcd {endpoint}: {message}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// etcd's words.
        message: String,
    },
    /// The stream is not what etcd sends.
    #[error("etcd {endpoint}: unreadable snapshot stream: {message}")]
    Stream {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
}

/// A snapshot being read.
#[derive(Debug)]
pub struct Snapshot {
    response: reqwest::Response,
    endpoint: String,
    pending: BytesMut,
    done: bool,
    /// etcd's revision just before the snapshot: the snapshot holds it and maybe later writes.
    pub revision: Option<i64>,
}

impl Snapshot {
    /// Asks `etcd` for a snapshot.
    pub async fn start(etcd: &Etcd) -> Result<Snapshot, SnapshotError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| SnapshotError::File(p.display().to_string(), e))
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60));
        if let Some(ca) = &etcd.ca_file {
            let ca = reqwest::Certificate::from_pem(&read(ca)?)
                .map_err(|e| SnapshotError::Client(format!("etcd.caFile: {e}")))?;
            builder = builder.add_root_certificate(ca);
        }
        if let (Some(cert), Some(key)) = (&etcd.cert_file, &etcd.key_file) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| SnapshotError::Client(format!("etcd.certFile/keyFile: {e}")))?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| SnapshotError::Client(e.to_string()))?;
        let endpoint = etcd.endpoint.trim_end_matches('/').to_string();
        // The snapshot stream carries no revision: etcd's answer to a read just before it
        // gives the revision the snapshot holds at least.
        let revision = match client
            .post(format!("{endpoint}/v3/kv/range"))
            .body(r#"{"key":"AA==","count_only":true}"#)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| {
                    let rev = &v["header"]["revision"];
                    rev.as_str()
                        .and_then(|r| r.parse().ok())
                        .or_else(|| rev.as_i64())
                }),
            _ => None,
        };
        let response = client
            .post(format!("{endpoint}/v3/maintenance/snapshot"))
            .body("{}")
            .send()
            .await
            .map_err(|source| SnapshotError::Http {
                endpoint: endpoint.clone(),
                source,
            })?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(SnapshotError::Refused {
                endpoint,
                message: format!(
                    "HTTP {status}: {}",
                    text.chars().take(512).collect::<String>()
                ),
            });
        }
        Ok(Snapshot {
            response,
            endpoint,
            pending: BytesMut::new(),
            done: false,
            revision,
        })
    }

    /// The next chunk of the database; `None` at its end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, SnapshotError> {
        loop {
            if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                let line = self.pending.split_to(at + 1);
                if let Some(chunk) = self.message(&line[..at])? {
                    return Ok(Some(chunk));
                }
                continue;
            }
            if self.pending.len() > MAX_LINE {
                return Err(self.stream_error(format!("a line longer than {MAX_LINE} bytes")));
            }
            if self.done {
                let rest = self.pending.split();
                if rest.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return match self.message(&rest)? {
                    Some(chunk) => Ok(Some(chunk)),
                    None => Ok(None),
                };
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|source| SnapshotError::Http {
                    endpoint: self.endpoint.clone(),
                    source,
                })? {
                Some(bytes) => self.pending.extend_from_slice(&bytes),
                None => self.done = true,
            }
        }
    }

    fn stream_error(&self, message: String) -> SnapshotError {
        SnapshotError::Stream {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    /// One message: its chunk, or `None` for one without data.
    fn message(&mut self, line: &[u8]) -> Result<Option<Bytes>, SnapshotError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| self.stream_error(format!("a message that is no JSON: {e}")))?;
        if let Some(error) = value.get("error") {
            return Err(SnapshotError::Refused {
                endpoint: self.endpoint.clone(),
                message: error["message"].as_str().unwrap_or("an error").to_string(),
            });
        }
        let result = &value["result"];
        let Some(blob) = result["blob"].as_str() else {
            return Ok(None);
        };
        let chunk = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|e| self.stream_error(format!("a chunk that is no base64: {e}")))?;
        Ok(Some(Bytes::from(chunk)))
    }
}
