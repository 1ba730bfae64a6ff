//! A small S3 client: create a bucket, put, get, list and delete objects, path-style
//! (`<endpoint>/<bucket>/<key>`), signed with [`crate::sigv4`]. It is what the backup agent
//! stores snapshots with; the tests run it against a real S3 server. Answers are bounded: an
//! object read is refused past the size the caller allows, a listing page past 8 MiB, and a
//! listing stops after 100 pages.

use std::time::Duration;

use bytes::Bytes;

pub use crate::sigv4::Credentials;
use crate::sigv4::{encode, sha256_hex, sign};

/// Largest listing page read (S3 answers at most 1000 keys a page: well under 1 MiB).
const MAX_PAGE: usize = 8 << 20;
/// Pages a listing reads at most (100,000 keys).
const MAX_PAGES: usize = 100;

/// Why a storage request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not get an answer.
    #[error("{op} {target}: {source}")]
    Http {
        /// What was asked.
        op: &'static str,
        /// The bucket or object.
        target: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The store answered with an error.
    #[error("{op} {target}: HTTP {status} {code}: {message}")]
    Refused {
        /// What was asked.
        op: &'static str,
        /// The bucket or object.
        target: String,
        /// The HTTP status.
        status: u16,
        /// S3's error code (`AccessDenied`, `NoSuchKey`, ...).
        code: String,
        /// S3's message.
        message: String,
    },
    /// An answer larger than allowed.
    #[error("{op} {target}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// What was asked.
        op: &'static str,
        /// The bucket or object.
        target: String,
        /// The limit.
        limit: usize,
    },
    /// The endpoint is no http(s) URL, or the client could not be built.
    #[error("storage endpoint {0}")]
    Endpoint(String),
}

impl Error {
    /// S3's error code, when the store answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A bucket of an S3-compatible store, as one credential sees it.
#[derive(Debug, Clone)]
pub struct Bucket {
    http: reqwest::Client,
    /// `http(s)://host[:port]`, no trailing slash.
    endpoint: String,
    host: String,
    name: String,
    credentials: Credentials,
}

impl Bucket {
    /// The bucket `name` at `endpoint` (`https://s3.example.com` or `http://127.0.0.1:8333`),
    /// with `credentials`; `ca_pem` is a CA to trust besides the system's.
    pub fn new(
        endpoint: &str,
        name: &str,
        credentials: Credentials,
        ca_pem: Option<&[u8]>,
    ) -> Result<Bucket, Error> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| Error::Endpoint(format!("{endpoint:?}: not http(s)://host[:port]")))?
            .to_string();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300));
        if let Some(pem) = ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::Endpoint(format!("CA: {e}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Endpoint(format!("client: {e}")))?;
        Ok(Bucket {
            http,
            endpoint,
            host,
            name: name.to_string(),
            credentials,
        })
    }

    fn path(&self, key: &str) -> String {
        if key.is_empty() {
            format!("/{}", encode(&self.name, true))
        } else {
            format!("/{}/{}", encode(&self.name, true), encode(key, true))
        }
    }

    fn now() -> String {
        jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string()
    }

    async fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        key: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, Error> {
        let target = format!("{}/{key}", self.name);
        let path = self.path(key);
        let payload_hash = sha256_hex(body.as_deref().unwrap_or_default());
        let headers = sign(
            &self.credentials,
            method.as_str(),
            &self.host,
            &path,
            query,
            &payload_hash,
            &Self::now(),
        );
        let query_string = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let url = if query_string.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query_string}", self.endpoint)
        };
        let mut request = self.http.request(method, url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|source| Error::Http {
            op,
            target: target.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = read_bounded(response, 64 << 10, op, &target)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Err(Error::Refused {
            op,
            target,
            status,
            code: element(&text, "Code").unwrap_or_default(),
            message: element(&text, "Message").unwrap_or_default(),
        })
    }

    /// Creates the bucket (an existing one of this owner is fine).
    pub async fn create(&self) -> Result<(), Error> {
        match self
            .send("create bucket", reqwest::Method::PUT, "", &[], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes `body` at `key`.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), Error> {
        self.send("put", reqwest::Method::PUT, key, &[], Some(body))
            .await
            .map(drop)
    }

    /// Reads the object at `key`, refusing one larger than `limit` bytes.
    pub async fn get(&self, key: &str, limit: usize) -> Result<Bytes, Error> {
        let response = self
            .send("get", reqwest::Method::GET, key, &[], None)
            .await?;
        read_bounded(response, limit, "get", &format!("{}/{key}", self.name)).await
    }

    /// Deletes the object at `key` (a missing one is no error, as S3 has it).
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.send("delete", reqwest::Method::DELETE, key, &[], None)
            .await
            .map(drop)
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, Error> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("continuation-token", t));
            }
            let response = self
                .send("list", reqwest::Method::GET, "", &query, None)
                .await?;
            let page = read_bounded(response, MAX_PAGE, "list", &self.name).await?;
            let page = String::from_utf8_lossy(&page);
            for contents in elements(&page, "Contents") {
                let key = element(contents, "Key").unwrap_or_default();
                let size = element(contents, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                objects.push(Object {
                    key: unescape(&key),
                    size,
                });
            }
            token = (element(&page, "IsTruncated").as_deref() == Some("true"))
                .then(|| element(&page, "NextContinuationToken"))
                .flatten();
            if token.is_none() {
                objects.sort_by(|a, b| a.key.cmp(&b.key));
                return Ok(objects);
            }
        }
        Err(Error::TooLarge {
            op: "list",
            target: format!("{}/{prefix}", self.name),
            limit: MAX_PAGES,
        })
    }
}

/// Parts of a multipart upload: S3 takes 5 MiB at least (but the last) and 10,000 at most, so
/// 8 MiB parts carry up to 78 GiB; one part is all an upload holds in memory.
pub const PART: usize = 8 << 20;

/// A multipart upload in progress (see [`Bucket::upload`]): chunks in, parts out, one part in
/// memory at a time. Dropped without [`Upload::finish`], it leaves an incomplete upload the
/// store discards; call [`Upload::abort`] to discard it at once.
#[derive(Debug)]
pub struct Upload<'a> {
    bucket: &'a Bucket,
    key: String,
    id: String,
    buffer: bytes::BytesMut,
    etags: Vec<String>,
    written: u64,
}

impl Bucket {
    /// Starts a multipart upload to `key`.
    pub async fn upload(&self, key: &str) -> Result<Upload<'_>, Error> {
        let response = self
            .send(
                "start upload",
                reqwest::Method::POST,
                key,
                &[("uploads", "")],
                None,
            )
            .await?;
        let text = read_bounded(response, 64 << 10, "start upload", key).await?;
        let id =
            element(&String::from_utf8_lossy(&text), "UploadId").ok_or_else(|| Error::Refused {
                op: "start upload",
                target: key.to_string(),
                status: 200,
                code: "NoUploadId".into(),
                message: "the answer names no UploadId".into(),
            })?;
        Ok(Upload {
            bucket: self,
            key: key.to_string(),
            id,
            buffer: bytes::BytesMut::with_capacity(PART),
            etags: Vec::new(),
            written: 0,
        })
    }
}

impl Upload<'_> {
    /// Adds `chunk`; a full part is sent before this returns.
    pub async fn write(&mut self, mut chunk: &[u8]) -> Result<(), Error> {
        while !chunk.is_empty() {
            let take = chunk.len().min(PART - self.buffer.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buffer.len() == PART {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), Error> {
        let number = (self.etags.len() + 1).to_string();
        let body = self.buffer.split().freeze();
        self.written += body.len() as u64;
        let response = self
            .bucket
            .send(
                "upload part",
                reqwest::Method::PUT,
                &self.key,
                &[("partNumber", &number), ("uploadId", &self.id)],
                Some(body),
            )
            .await?;
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.etags.push(etag);
        Ok(())
    }

    /// Sends what is left and completes the upload; the bytes written.
    pub async fn finish(mut self) -> Result<u64, Error> {
        if !self.buffer.is_empty() || self.etags.is_empty() {
            self.send_part().await?;
        }
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, etag) in self.etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                etag.replace('&', "&amp;").replace('<', "&lt;")
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let response = self
            .bucket
            .send(
                "complete upload",
                reqwest::Method::POST,
                &self.key,
                &[("uploadId", &self.id)],
                Some(Bytes::from(body)),
            )
            .await?;
        // A completion can fail inside a 200 answer.
        let text = read_bounded(response, 64 << 10, "complete upload", &self.key).await?;
        let text = String::from_utf8_lossy(&text);
        if let Some(code) = element(&text, "Code") {
            return Err(Error::Refused {
                op: "complete upload",
                target: self.key.clone(),
                status: 200,
                code,
                message: element(&text, "Message").unwrap_or_default(),
            });
        }
        Ok(self.written)
    }

    /// Discards the upload and what was sent of it.
    pub async fn abort(self) -> Result<(), Error> {
        self.bucket
            .send(
                "abort upload",
                reqwest::Method::DELETE,
                &self.key,
                &[("uploadId", &self.id)],
                None,
            )
            .await
            .map(drop)
    }
}

async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
    op: &'static str,
    target: &str,
) -> Result<Bytes, Error> {
    let mut out = bytes::BytesMut::new();
    loop {
        let chunk = response.chunk().await.map_err(|source| Error::Http {
            op,
            target: target.to_string(),
            source,
        })?;
        let Some(chunk) = chunk else {
            return Ok(out.freeze());
        };
        if out.len() + chunk.len() > limit {
            return Err(Error::TooLarge {
                op,
                target: target.to_string(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
}

/// The text of the first `<name>` element of `xml`.
fn element(xml: &str, name: &str) -> Option<String> {
    elements(xml, name).next().map(str::to_string)
}

/// The texts of every `<name>` element of `xml` (S3's answers: no attributes on these, no
/// nesting of the same name).
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(text)
    })
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_reads_back_its_keys_and_sizes() {
        let page = "<ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a/1&amp;2</Key><Size>10</Size></Contents>\
            <Contents><Key>a/3</Key><Size>x</Size></Contents>\
            <NextContinuationToken>t0</NextContinuationToken></ListBucketResult>";
        let keys: Vec<String> = elements(page, "Contents")
            .map(|c| unescape(&element(c, "Key").unwrap()))
            .collect();
        assert_eq!(keys, ["a/1&2", "a/3"]);
        assert_eq!(
            element(page, "NextContinuationToken").as_deref(),
            Some("t0")
        );
        assert_eq!(element(page, "Missing"), None);
        // Unclosed: nothing, not a panic.
        assert_eq!(elements("<Contents><Key>a", "Contents").count(), 0);
    }

    #[test]
    fn an_endpoint_must_be_an_http_url_of_a_host() {
        let credentials = Credentials {
            access_key: "a".into(),
            secret_key: "b".into(),
            region: "us-east-1".into(),
        };
        for bad in ["s3.example.com", "ftp://x", "https://", "https://host/path"] {
            assert!(
                Bucket::new(bad, "b", credentials.clone(), None).is_err(),
                "{bad}"
            );
        }
        assert!(Bucket::new("http://127.0.0.1:8333/", "b", credentials, None).is_ok());
    }
}
