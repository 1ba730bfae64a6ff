//! A loaded release: its `stack.yaml`, every file it carries, and a digest over all of them.
//! Loading ([`crate::load`]) checks the release, so a `Release` value is always usable: a bad
//! one never gets this far, and nothing of it is applied.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::format::StackFile;

/// A checked release.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// Its `stack.yaml`.
    pub stack: StackFile,
    /// Every file of the release by its path relative to the root (`/`-separated).
    pub files: BTreeMap<String, String>,
    /// `sha256:` and the hex digest over every path and content: two releases with the same
    /// digest are the same release.
    pub digest: String,
    /// The base of an overlay (its files are also in `files`, under `base/`).
    pub base: Option<Box<Release>>,
}

impl Release {
    /// The release as a reproducible `.tar.gz` (see [`crate::archive`]).
    pub fn to_tarball(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|(path, content)| (path.clone(), content.clone().into_bytes()))
            .collect();
        crate::archive::pack(&files)
    }

    /// The release's identity (`docker/scs 1.0.0` in messages).
    pub fn id(&self) -> api::ReleaseId {
        self.stack.id()
    }
}

/// `sha256:` and the hex digest over every path and its content, in path order.
pub fn digest(files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (path, content) in files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content.as_bytes());
    }
    format!("sha256:{}", hex(&hasher.finalize()))
}

/// The sha256 of `bytes` (what an HTTP source pins a tarball by).
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
