//! Node images on Hetzner are snapshots in the user's project, found through the Hetzner Cloud
//! API by the label CAPH itself resolves `imageName` with (`caph-image-name`). Hetzner has no
//! image import: a stack names the snapshot, and its Packer template (or the user) prepares it.
//! Finding it before rendering lets `NodeImagesReady` say exactly what is missing instead of
//! machines failing one by one later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use operator_core::ProviderError;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The label CAPH matches `HCloudMachineTemplate.spec.template.spec.imageName` against.
pub const IMAGE_LABEL: &str = "caph-image-name";
/// The public API; `HCLOUD_ENDPOINT` overrides it, as for the `hcloud` CLI.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// How long a found snapshot is trusted before it is looked up again (the API allows 3600
/// requests an hour per project; a miss is never cached).
const FOUND_TTL: Duration = Duration::from_secs(600);

/// One snapshot, as far as the operator cares.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Snapshot {
    /// Its numeric id.
    pub id: u64,
    /// `available`, `creating` or `unavailable`.
    pub status: String,
}

/// Looks up snapshots, remembering found ones for a while.
#[derive(Debug)]
pub struct Lookup {
    endpoint: String,
    http: std::sync::OnceLock<reqwest::Client>,
    found: Mutex<HashMap<(String, String), (Snapshot, Instant)>>,
}

#[derive(Deserialize)]
struct Images {
    images: Vec<Snapshot>,
}

impl Lookup {
    /// A lookup against `endpoint` (such as [`DEFAULT_ENDPOINT`]).
    pub fn new(endpoint: &str) -> Lookup {
        Lookup {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http: std::sync::OnceLock::new(),
            found: Mutex::default(),
        }
    }

    /// The endpoint it asks.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The available snapshot labelled `caph-image-name=<name>` in the project of `token`, or
    /// a `NotReady` error saying what is missing (`secret` names where the token came from).
    pub async fn find(
        &self,
        token: &str,
        name: &str,
        secret: &str,
    ) -> Result<Snapshot, ProviderError> {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ProviderError::Invalid(format!(
                "node image {name:?} cannot be a Hetzner label value (letters, digits, '-', '_', '.')"
            )));
        }
        let key = (hex(&Sha256::digest(token.as_bytes())), name.to_string());
        if let Some((s, at)) = self.lock().get(&key)
            && at.elapsed() < FOUND_TTL
        {
            return Ok(s.clone());
        }
        let url = format!(
            "{}/images?type=snapshot&label_selector={IMAGE_LABEL}%3D%3D{name}&sort=created:desc",
            self.endpoint
        );
        let response = self
            .http()?
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ProviderError::Transient(format!("Hetzner API {}: {e}", self.endpoint)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Transient(format!("Hetzner API {}: {e}", self.endpoint)))?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ProviderError::NotReady(format!(
                "the Hetzner API refused the token in Secret {secret} ({status})"
            )));
        }
        if !status.is_success() {
            return Err(ProviderError::Transient(format!(
                "Hetzner API answered {status} to the snapshot lookup"
            )));
        }
        let images: Images = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::Transient(format!("Hetzner API sent an unreadable image list: {e}"))
        })?;
        let label = format!("{IMAGE_LABEL}={name}");
        if let Some(s) = images.images.iter().find(|s| s.status == "available") {
            self.lock().insert(key, (s.clone(), Instant::now()));
            return Ok(s.clone());
        }
        Err(ProviderError::NotReady(match images.images.first() {
            Some(s) => format!(
                "snapshot {} labelled {label} is {} in the Hetzner project of Secret {secret}",
                s.id, s.status
            ),
            None => format!(
                "no snapshot labelled {label} in the Hetzner project of Secret {secret}: build it with the stack's image template and label it {label}"
            ),
        }))
    }

    /// The HTTP client, built on first use (after `main` installed the TLS crypto provider;
    /// ring is installed here when nothing was).
    fn http(&self) -> Result<&reqwest::Client, ProviderError> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProviderError::Transient(format!("HTTP client: {e}")))?;
        Ok(self.http.get_or_init(|| client))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Snapshot, Instant)>> {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
