//! Where releases come from: a local folder, an HTTP(S) tarball pinned by sha256, or an OCI
//! artifact pinned by manifest digest. What is downloaded is verified against its pin, kept in
//! a cache folder under its hash (written atomically, so a crash never leaves half a file),
//! and read from there next time: a restarted operator does not fetch again.
//!
//! The OCI form: an artifact whose one layer is the release's `.tar.gz`
//! ([`LAYER_MEDIA_TYPE`]), tagged with the release version; [`Fetcher::discover`] lists the
//! tags of a repository to find new releases.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;

use api::v1beta1::StackSource;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::archive;
use crate::error::Error;
use crate::release::{Release, hex};
use crate::signature::{self, PublicKey, SigningKey};

/// Media type of the layer holding a release's `.tar.gz`.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.kaas.scs.community.stack.layer.v1.tar+gzip";
/// Media type of the artifact's config: the release's `stack.yaml` identity as JSON.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kaas.scs.community.stack.config.v1+json";

/// The most a downloaded tarball may weigh.
pub const MAX_DOWNLOAD: usize = 32 * 1024 * 1024;

/// How long connecting to a registry or web server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry or web server may stay silent in the middle of an answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one fetch, discovery or push may take in all: a registry that accepts and never
/// answers, or answers a byte at a time, holds one reconcile no longer than this.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where releases may come from. A `ClusterStack`'s source is written by the platform team,
/// and discovery writes them from repositories; the operator still checks each source against
/// what it is configured to allow, so a mistaken or hostile `ClusterStack` cannot make it read
/// arbitrary local files or reach arbitrary hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Folders under which `local` sources may lie (none: `local` sources are refused).
    pub local_dirs: Vec<PathBuf>,
    /// Prefixes that HTTP URLs and OCI repositories must start with (`https://stacks.example/`,
    /// `registry.example/kaas/`); empty: any.
    pub prefixes: Vec<String>,
}

impl Allowed {
    /// Any source: every local folder and every URL (tests, and `kaasctl` on a user's own
    /// machine).
    pub fn any() -> Self {
        Allowed {
            local_dirs: vec![PathBuf::from("/")],
            prefixes: Vec::new(),
        }
    }

    /// Whether the local folder `path` lies under an allowed folder (both resolved, so `..`
    /// and links cannot step out).
    pub fn local(&self, path: &Path) -> Result<PathBuf, Error> {
        let refused = |why: &str| {
            Error::invalid(
                "ClusterStack",
                "spec.source.local.path",
                format!("{}: {why}", path.display()),
            )
        };
        let resolved = path
            .canonicalize()
            .map_err(|e| refused(&format!("cannot be read: {e}")))?;
        let allowed = self.local_dirs.iter().any(|dir| {
            dir.canonicalize()
                .is_ok_and(|dir| resolved.starts_with(dir))
        });
        if allowed {
            Ok(resolved)
        } else {
            Err(refused(
                "is not under a folder this operator allows local stacks from (--allow-local-stacks)",
            ))
        }
    }

    /// Whether an HTTP URL or OCI repository starts with an allowed prefix.
    pub fn remote(&self, field: &str, location: &str) -> Result<(), Error> {
        if self.prefixes.is_empty()
            || self
                .prefixes
                .iter()
                .any(|p| location.starts_with(p.as_str()))
        {
            Ok(())
        } else {
            Err(Error::invalid(
                "ClusterStack",
                field,
                format!(
                    "{location} is not under a source this operator allows (--allowed-stack-sources: {})",
                    self.prefixes.join(", ")
                ),
            ))
        }
    }
}

/// A release found in a repository by [`Fetcher::discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The tag (the release version).
    pub tag: String,
    /// The manifest digest to pin.
    pub digest: String,
}

/// Fetches releases and caches what it downloaded.
pub struct Fetcher {
    cache_dir: Option<PathBuf>,
    http: reqwest::Client,
    oci: Client,
    downloads: AtomicU64,
    total: Duration,
    allowed: Allowed,
    required_keys: Vec<PublicKey>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cache_dir", &self.cache_dir)
            .field("downloads", &self.downloads())
            .finish()
    }
}

impl Fetcher {
    /// A fetcher caching under `cache_dir` (no cache when `None`). Registries named in
    /// `plain_http` (`127.0.0.1:5000`) are spoken to over plain HTTP; all others over HTTPS.
    pub fn new(cache_dir: Option<PathBuf>, plain_http: Vec<String>) -> Self {
        Self::with_timeout(cache_dir, plain_http, TOTAL_TIMEOUT)
    }

    /// As [`Fetcher::new`], with `total` instead of [`TOTAL_TIMEOUT`] for one fetch in all
    /// (silences within an answer are cut at the lesser of it and [`READ_TIMEOUT`]).
    pub fn with_timeout(
        cache_dir: Option<PathBuf>,
        plain_http: Vec<String>,
        total: Duration,
    ) -> Self {
        // The HTTP clients need a TLS crypto provider; binaries install ring first, and a
        // library user that did not gets it here rather than a panic.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if plain_http.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(plain_http)
        };
        let read = READ_TIMEOUT.min(total);
        Fetcher {
            cache_dir,
            http: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT.min(total))
                .read_timeout(read)
                .timeout(total)
                .build()
                .unwrap_or_default(),
            oci: Client::new(ClientConfig {
                protocol,
                connect_timeout: Some(CONNECT_TIMEOUT.min(total)),
                read_timeout: Some(read),
                max_concurrent_download: 1,
                ..ClientConfig::default()
            }),
            downloads: AtomicU64::new(0),
            total,
            allowed: Allowed::any(),
            required_keys: Vec::new(),
        }
    }

    /// This fetcher, taking only sources `allowed` allows.
    pub fn allowing(mut self, allowed: Allowed) -> Self {
        self.allowed = allowed;
        self
    }

    /// This fetcher, taking an OCI release only when one of `keys` signed it (and refusing
    /// HTTP releases, which carry no signature). Local folders are the operator's own.
    pub fn requiring_signatures(mut self, keys: Vec<PublicKey>) -> Self {
        self.required_keys = keys;
        self
    }

    /// How many downloads this fetcher made (cache hits do not count).
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The release `source` points at, verified and checked.
    pub async fn fetch(&self, source: &StackSource) -> Result<Release, Error> {
        if let Some(local) = &source.local {
            let dir = self.allowed.local(Path::new(&local.path))?;
            return tokio::task::spawn_blocking(move || Release::load_dir(&dir))
                .await
                .map_err(|e| Error::Fetch(e.to_string()))?;
        }
        if let Some(http) = &source.http {
            if !self.required_keys.is_empty() {
                return Err(Error::Signature {
                    what: http.url.clone(),
                    message: "the operator requires signed releases (--stack-signing-key) and an HTTP release carries no signature: publish it to an OCI registry".into(),
                    missing: true,
                });
            }
            return self.fetch_http(&http.url, &http.sha256).await;
        }
        if let Some(oci) = &source.oci {
            if !self.required_keys.is_empty() {
                self.verify_signed(
                    &oci.repository,
                    &oci.digest,
                    &self.required_keys,
                    "--stack-signing-key",
                )
                .await?;
            }
            if let Some(pem) = &oci.public_key {
                let key = PublicKey::from_pem(pem)
                    .map_err(|e| Error::invalid("ClusterStack", "spec.source.oci.publicKey", e))?;
                self.verify_signed(
                    &oci.repository,
                    &oci.digest,
                    &[key],
                    "spec.source.oci.publicKey",
                )
                .await?;
            }
            return self.fetch_oci(&oci.repository, &oci.digest).await;
        }
        Err(Error::invalid(
            "ClusterStack",
            "spec.source",
            "names no source (local, http or oci)",
        ))
    }

    /// A `.tar.gz` at `url` whose sha256 must be `sha256` (64 hex digits).
    pub async fn fetch_http(&self, url: &str, sha256: &str) -> Result<Release, Error> {
        self.allowed.remote("spec.source.http.url", url)?;
        within(self.total, url, self.fetch_http_unbounded(url, sha256)).await
    }

    async fn fetch_http_unbounded(&self, url: &str, sha256: &str) -> Result<Release, Error> {
        let key = format!("sha256-{sha256}.tar.gz");
        if let Some(bytes) = self.cached(&key).await
            && hex(&Sha256::digest(&bytes)) == sha256
        {
            return unpack_release(bytes, url).await;
        }
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Error::Fetch(format!("{url}: {e}")))?;
        if response
            .content_length()
            .is_some_and(|l| l > MAX_DOWNLOAD as u64)
        {
            return Err(too_large(url));
        }
        // Streamed under the cap: a body without Content-Length is never read whole first.
        let stream = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| Error::Fetch(format!("{url}: {e}"))));
        let bytes = capped(stream, url).await?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(Error::Integrity {
                what: format!("sha256 of {url} (spec.source.http.sha256)"),
                expected: sha256.to_string(),
                actual,
            });
        }
        let release = unpack_release(bytes.clone(), url).await?;
        self.store(&key, &bytes).await?;
        Ok(release)
    }

    /// The artifact `repository@digest`.
    pub async fn fetch_oci(&self, repository: &str, digest: &str) -> Result<Release, Error> {
        self.allowed
            .remote("spec.source.oci.repository", repository)?;
        within(
            self.total,
            repository,
            self.fetch_oci_unbounded(repository, digest),
        )
        .await
    }

    async fn fetch_oci_unbounded(&self, repository: &str, digest: &str) -> Result<Release, Error> {
        let what = format!("{repository}@{digest}");
        let key = format!("oci-{}.tar.gz", digest.replace(':', "-"));
        if let Some(bytes) = self.cached(&key).await {
            return unpack_release(bytes, &what).await;
        }
        let reference: Reference = what.parse().map_err(|e| {
            Error::invalid("ClusterStack", "spec.source.oci", format!("{what}: {e}"))
        })?;
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let (manifest, got) = self
            .oci
            .pull_manifest(&reference, &RegistryAuth::Anonymous)
            .await
            .map_err(|e| Error::Fetch(format!("{what}: {e}")))?;
        // The manifest against the pin is ours to check; the layer against the manifest too.
        if got != digest {
            return Err(Error::Integrity {
                what: format!("manifest digest of {repository} (spec.source.oci.digest)"),
                expected: digest.to_string(),
                actual: got,
            });
        }
        let layers = match manifest {
            OciManifest::Image(image) => image.layers,
            OciManifest::ImageIndex(_) => Vec::new(),
        };
        let [layer] = layers.as_slice() else {
            return Err(one_layer(&what));
        };
        if layer.media_type != LAYER_MEDIA_TYPE {
            return Err(one_layer(&what));
        }
        if u64::try_from(layer.size).map_or(true, |s| s > MAX_DOWNLOAD as u64) {
            return Err(too_large(&what));
        }
        let stream = self
            .oci
            .pull_blob_stream(&reference, layer)
            .await
            .map_err(|e| Error::Fetch(format!("{what}: {e}")))?
            .stream
            .map(|chunk| chunk.map_err(|e| Error::Fetch(format!("{what}: {e}"))));
        let data = capped(stream, &what).await?;
        let actual = format!("sha256:{}", hex(&Sha256::digest(&data)));
        if actual != layer.digest {
            return Err(Error::Integrity {
                what: format!("layer of {what}"),
                expected: layer.digest.clone(),
                actual,
            });
        }
        let release = unpack_release(data.clone(), &what).await?;
        self.store(&key, &data).await?;
        Ok(release)
    }

    /// Pushes `release` to `repository` tagged with its version; returns the manifest digest
    /// to pin.
    pub async fn push(&self, repository: &str, release: &Release) -> Result<String, Error> {
        self.push_tagged(
            repository,
            release,
            std::slice::from_ref(&release.stack.version),
        )
        .await
    }

    /// Pushes `release` to `repository` under each of `tags` (the same manifest: one digest);
    /// returns the manifest digest to pin.
    pub async fn push_tagged(
        &self,
        repository: &str,
        release: &Release,
        tags: &[String],
    ) -> Result<String, Error> {
        within(self.total, repository, async {
            let mut digest = None;
            for tag in tags {
                let pushed = self.push_unbounded(repository, release, tag).await?;
                if digest.as_ref().is_some_and(|d| d != &pushed) {
                    return Err(Error::Fetch(format!(
                        "{repository}:{tag} got {pushed}, another tag of the same push {}",
                        digest.unwrap_or_default()
                    )));
                }
                digest = Some(pushed);
            }
            digest.ok_or_else(|| Error::invalid("push", "tags", "names no tag"))
        })
        .await
    }

    /// Pushes `release` as `repository:tag` and returns the manifest's digest, computed here
    /// from the manifest bytes this push sent: never what the registry says it holds. The
    /// registry must then serve those very bytes by that digest, and name that digest for the
    /// tag; otherwise the push fails naming both digests (so nothing but what was pushed is
    /// ever signed).
    async fn push_unbounded(
        &self,
        repository: &str,
        release: &Release,
        tag: &str,
    ) -> Result<String, Error> {
        let what = format!("{repository}:{tag}");
        let reference: Reference = what
            .parse()
            .map_err(|e| Error::invalid("repository", "", format!("{what}: {e}")))?;
        let layer = ImageLayer::new(release.to_tarball(), LAYER_MEDIA_TYPE.into(), None);
        let identity = serde_json::json!({
            "provider": release.stack.provider,
            "name": release.stack.name,
            "version": release.stack.version,
            "kubernetesVersions": release.stack.kubernetes_versions,
            "contentDigest": release.digest,
        });
        let config = Config::new(
            identity.to_string().into_bytes(),
            CONFIG_MEDIA_TYPE.into(),
            None,
        );
        let manifest = oci_client::manifest::OciImageManifest::build(
            std::slice::from_ref(&layer),
            &config,
            None,
        );
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Fetch(format!("{what}: the manifest: {e}")))?;
        let digest = format!("sha256:{}", hex(&crate::release::sha256(&bytes)));
        let push =
            |e: oci_client::errors::OciDistributionError| Error::Fetch(format!("push {what}: {e}"));
        self.oci
            .push_blob(&reference, layer.data.clone(), &manifest.layers[0].digest)
            .await
            .map_err(push)?;
        self.oci
            .push_blob(&reference, config.data.clone(), &manifest.config.digest)
            .await
            .map_err(push)?;
        self.oci
            .push_manifest_raw(
                &reference,
                bytes,
                http::HeaderValue::from_static(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE),
            )
            .await
            .map_err(push)?;
        // What the registry serves by that digest is what was pushed...
        let by_digest: Reference = format!("{repository}@{digest}")
            .parse()
            .map_err(|e| Error::invalid("repository", "", format!("{what}: {e}")))?;
        let (served, _) = self
            .oci
            .pull_manifest_raw(
                &by_digest,
                &RegistryAuth::Anonymous,
                &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .map_err(|e| Error::Fetch(format!("{repository}@{digest}: {e}")))?;
        let served_digest = format!("sha256:{}", hex(&crate::release::sha256(&served)));
        if served_digest != digest {
            return Err(Error::Fetch(format!(
                "{repository}@{digest}: the registry serves other content ({served_digest}) under the digest of what was pushed: not signed"
            )));
        }
        // ... and the tag names it.
        let tagged = self
            .oci
            .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
            .await
            .map_err(|e| Error::Fetch(format!("{what}: {e}")))?;
        if tagged != digest {
            return Err(Error::Fetch(format!(
                "{what}: the registry says the tag is {tagged}, but this push sent {digest}: not signed"
            )));
        }
        Ok(digest)
    }

    /// Signs `repository@digest` with `key`: adds a signature layer to the manifest tagged
    /// `sha256-<hex>.sig` (cosign's place; signatures by other keys stay).
    pub async fn sign(
        &self,
        repository: &str,
        digest: &str,
        key: &SigningKey,
    ) -> Result<(), Error> {
        within(
            self.total,
            repository,
            self.sign_unbounded(repository, digest, key),
        )
        .await
    }

    async fn sign_unbounded(
        &self,
        repository: &str,
        digest: &str,
        key: &SigningKey,
    ) -> Result<(), Error> {
        let reference = signature_reference(repository, digest)?;
        let payload = signature::payload(repository, digest);
        let ours = signature::sign_payload(key, &payload)
            .map_err(|e| Error::invalid("signing key", "", e))?;
        // Signatures already there (by other keys) stay; an earlier one by this key is
        // replaced.
        let mut layers = Vec::new();
        for (payload, annotation) in self.signatures(&reference).await? {
            let by_key = signature::verifies(&key.public(), &payload, &annotation);
            if !by_key {
                layers.push(signature_layer(payload, annotation));
            }
        }
        layers.push(signature_layer(payload, ours));
        let diff_ids: Vec<String> = layers.iter().map(ImageLayer::sha256_digest).collect();
        let config = serde_json::json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        });
        let config = Config::new(
            config.to_string().into_bytes(),
            "application/vnd.oci.image.config.v1+json".into(),
            None,
        );
        self.oci
            .push(&reference, &layers, config, &RegistryAuth::Anonymous, None)
            .await
            .map_err(|e| Error::Fetch(format!("push signature {reference}: {e}")))?;
        Ok(())
    }

    /// Succeeds when a signature of `repository@digest` verifies with one of `keys`; `flag`
    /// names who asks (for the error).
    pub async fn verify_signed(
        &self,
        repository: &str,
        digest: &str,
        keys: &[PublicKey],
        flag: &str,
    ) -> Result<(), Error> {
        within(self.total, repository, async {
            let what = format!("signature of {repository}@{digest} ({flag})");
            let reference = signature_reference(repository, digest)?;
            let found = self.signatures(&reference).await?;
            if found.is_empty() {
                return Err(Error::Signature {
                    what,
                    message: format!("the release is not signed (no {reference})"),
                    missing: true,
                });
            }
            let good = found.iter().any(|(payload, sig)| {
                signature::check_payload(payload, digest).is_ok()
                    && keys.iter().any(|k| signature::verifies(k, payload, sig))
            });
            if good {
                return Ok(());
            }
            let wanted: Vec<String> = keys.iter().map(PublicKey::fingerprint).collect();
            Err(Error::Signature {
                what,
                message: format!(
                    "none of its {} signature(s) verifies with the required key {}",
                    found.len(),
                    wanted.join(" or ")
                ),
                missing: false,
            })
        })
        .await
    }

    /// The signature layers (payload, base64 signature) at `reference`; none when the tag does
    /// not exist. Bounded: at most [`signature::MAX_SIGNATURES`] layers of
    /// [`signature::MAX_PAYLOAD`] bytes each are read.
    async fn signatures(&self, reference: &Reference) -> Result<Vec<(Vec<u8>, String)>, Error> {
        let manifest = match self
            .oci
            .pull_manifest(reference, &RegistryAuth::Anonymous)
            .await
        {
            Ok((manifest, _)) => manifest,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(Error::Fetch(format!("{reference}: {e}"))),
        };
        let OciManifest::Image(image) = manifest else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for layer in image
            .layers
            .iter()
            .filter(|l| l.media_type == signature::SIGNATURE_MEDIA_TYPE)
            .take(signature::MAX_SIGNATURES)
        {
            let Some(annotation) = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(signature::SIGNATURE_ANNOTATION))
            else {
                continue;
            };
            if u64::try_from(layer.size).map_or(true, |s| s > signature::MAX_PAYLOAD as u64) {
                continue;
            }
            let stream = self
                .oci
                .pull_blob_stream(reference, layer)
                .await
                .map_err(|e| Error::Fetch(format!("{reference}: {e}")))?
                .stream
                .map(|chunk| chunk.map_err(|e| Error::Fetch(format!("{reference}: {e}"))));
            let payload =
                capped_at(stream, reference.whole().as_str(), signature::MAX_PAYLOAD).await?;
            if format!("sha256:{}", hex(&Sha256::digest(&payload))) != layer.digest {
                continue;
            }
            found.push((payload, annotation.clone()));
        }
        Ok(found)
    }

    /// The releases tagged in `repository`: every tag that is a semantic version and no
    /// pre-release, with the digest to pin it by, oldest first.
    pub async fn discover(&self, repository: &str) -> Result<Vec<Discovered>, Error> {
        self.allowed.remote("--stack-repository", repository)?;
        within(self.total, repository, self.discover_unbounded(repository)).await
    }

    async fn discover_unbounded(&self, repository: &str) -> Result<Vec<Discovered>, Error> {
        let reference: Reference = format!("{repository}:latest")
            .parse()
            .map_err(|e| Error::invalid("repository", "", format!("{repository}: {e}")))?;
        let tags = self
            .oci
            .list_tags(&reference, &RegistryAuth::Anonymous, None, None)
            .await
            .map_err(|e| Error::Fetch(format!("{repository}: {e}")))?;
        let mut versions: Vec<semver::Version> = tags
            .tags
            .iter()
            .filter_map(|t| semver::Version::parse(t).ok())
            // A pre-release (a release bot's candidate) is never offered.
            .filter(|v| v.pre.is_empty())
            .collect();
        versions.sort();
        let mut found = Vec::new();
        for version in versions {
            let tag = version.to_string();
            let tagged: Reference = format!("{repository}:{tag}")
                .parse()
                .map_err(|e| Error::invalid("repository", "", format!("{repository}: {e}")))?;
            let digest = self
                .oci
                .fetch_manifest_digest(&tagged, &RegistryAuth::Anonymous)
                .await
                .map_err(|e| Error::Fetch(format!("{repository}:{tag}: {e}")))?;
            found.push(Discovered { tag, digest });
        }
        Ok(found)
    }

    async fn cached(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.cache_dir.as_ref()?.join(key);
        tokio::fs::read(path).await.ok()
    }

    async fn store(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let Some(dir) = &self.cache_dir else {
            return Ok(());
        };
        let dir = dir.clone();
        let key = key.to_string();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &key, &bytes))
            .await
            .map_err(|e| Error::Fetch(e.to_string()))?
    }
}

fn write_atomically(dir: &Path, key: &str, bytes: &[u8]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(dir, e))?;
    tmp.persist(dir.join(key))
        .map_err(|e| Error::io(dir.join(key), e.error))?;
    Ok(())
}

/// Unpacks and checks a release off the async threads (a release is decompressed, parsed
/// and its templates try-rendered: seconds of CPU at worst).
async fn unpack_release(bytes: Vec<u8>, what: &str) -> Result<Release, Error> {
    let what = what.to_string();
    tokio::task::spawn_blocking(move || Release::from_files(archive::unpack(&bytes, &what)?))
        .await
        .map_err(|e| Error::Fetch(e.to_string()))?
}

/// `work` on `what`, or a fetch error once `total` has passed.
async fn within<T>(
    total: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(total, work).await.unwrap_or_else(|_| {
        Err(Error::Fetch(format!(
            "{what}: no complete answer within {} s",
            total.as_secs_f32()
        )))
    })
}

/// The bytes of `stream`, refused as soon as they pass [`MAX_DOWNLOAD`].
async fn capped(
    stream: impl futures::Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
    what: &str,
) -> Result<Vec<u8>, Error> {
    capped_at(stream, what, MAX_DOWNLOAD).await
}

async fn capped_at(
    mut stream: impl futures::Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
    what: &str,
    max: usize,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > max {
            return Err(Error::invalid(what, "", format!("larger than {max} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Where `repository@digest`'s signatures are: `repository:sha256-<hex>.sig`.
fn signature_reference(repository: &str, digest: &str) -> Result<Reference, Error> {
    let tag = signature::signature_tag(digest).ok_or_else(|| {
        Error::invalid(
            "ClusterStack",
            "spec.source.oci.digest",
            "must be sha256: and 64 hex digits",
        )
    })?;
    format!("{repository}:{tag}").parse().map_err(|e| {
        Error::invalid(
            "ClusterStack",
            "spec.source.oci.repository",
            format!("{repository}: {e}"),
        )
    })
}

/// A signature layer: the payload with its signature annotation.
fn signature_layer(payload: Vec<u8>, signature: String) -> ImageLayer {
    let annotations = std::collections::BTreeMap::from([(
        signature::SIGNATURE_ANNOTATION.to_string(),
        signature,
    )]);
    ImageLayer::new(
        payload,
        signature::SIGNATURE_MEDIA_TYPE.into(),
        Some(annotations),
    )
}

/// Whether the registry said the manifest does not exist.
fn not_found(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::ServerError { code, .. } => *code == 404,
        E::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

fn too_large(what: &str) -> Error {
    Error::invalid(what, "", format!("larger than {MAX_DOWNLOAD} bytes"))
}

fn one_layer(what: &str) -> Error {
    Error::invalid(
        what,
        "layers",
        format!("must hold exactly one {LAYER_MEDIA_TYPE} layer"),
    )
}
