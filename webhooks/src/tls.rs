//! TLS for the webhook listener: the certificate and key come from files and are picked up
//! without a restart when their content changes. Kubernetes swaps a Secret volume's files
//! through a symlink, which file-event watchers miss, so the files are polled. A reload that
//! fails (half-written files, a key that does not match) keeps serving the old certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::{Metrics, ReloadLabels};

/// Why a certificate could not be loaded; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    /// The key file holds no usable PEM private key.
    #[error("{path}: no usable PEM private key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("{key} does not match the certificate in {cert}")]
    Mismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
}

/// Loads and checks a certificate chain and its key.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<(CertifiedKey, Vec<u8>), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let certified =
        CertifiedKey::from_der(certs, key, &provider).map_err(|_| TlsError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        })?;
    let mut fingerprint = cert_pem;
    fingerprint.extend_from_slice(&key_pem);
    Ok((certified, fingerprint))
}

/// A certificate resolver whose certificate can be swapped while connections are served.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Vec<u8>)>,
}

impl ReloadingCert {
    /// Loads the files once; fails when they are missing or invalid.
    pub fn new(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let (key, fingerprint) = load(cert_path, key_path)?;
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new((Arc::new(key), fingerprint)),
        }))
    }

    /// Reloads when the files' content changed. `Ok(true)` when a new certificate is served.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let (key, fingerprint) = load(&self.cert_path, &self.key_path)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.1 == fingerprint {
            return Ok(false);
        }
        *current = (Arc::new(key), fingerprint);
        Ok(true)
    }

    /// Polls the files every `interval`, forever.
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = String::new();
        loop {
            tick.tick().await;
            let this = self.clone();
            let result = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            match result {
                Ok(Ok(true)) => {
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                    metrics
                        .reloads
                        .get_or_create(&ReloadLabels { result: "success" })
                        .inc();
                    last_error.clear();
                }
                Ok(Ok(false)) => last_error.clear(),
                Ok(Err(e)) => {
                    // Files are often replaced one at a time: only report a lasting problem once.
                    let msg = e.to_string();
                    if msg != last_error {
                        tracing::warn!(error = %msg, "certificate reload failed; serving the previous one");
                        metrics
                            .reloads
                            .get_or_create(&ReloadLabels { result: "failure" })
                            .inc();
                        last_error = msg;
                    }
                }
                Err(e) => tracing::error!(error = %e, "certificate reload task failed"),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

/// The server configuration: HTTP/2 and HTTP/1.1, the reloading certificate.
pub fn server_config(cert: Arc<ReloadingCert>) -> Arc<ServerConfig> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
