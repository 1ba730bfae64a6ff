//! A loaded release: its `stack.yaml`, every file it carries, and a digest over all of them.
//! Loading checks the release ([`crate::check`]), so a `Release` value is always usable: a bad
//! one never gets this far, and nothing of it is applied.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Problem};
use crate::format::{BaseRef, STACK_FILE, StackFile};

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
    /// Parses and checks a release from its files.
    pub fn from_files(files: BTreeMap<String, Vec<u8>>) -> Result<Self, Error> {
        let mut text = BTreeMap::new();
        let mut problems = Vec::new();
        for (path, bytes) in files {
            match String::from_utf8(bytes) {
                Ok(s) => {
                    text.insert(path, s);
                }
                Err(_) => problems.push(Problem::new(&path, "", "is not UTF-8 text")),
            }
        }
        let Some(raw) = text.get(STACK_FILE) else {
            return Err(Error::invalid(
                STACK_FILE,
                "",
                "missing: every release has a stack.yaml at its root",
            ));
        };
        let stack: StackFile = serde_saphyr::from_str(raw).map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            Error::invalid(STACK_FILE, "", first.trim_start_matches("error: "))
        })?;
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let (stack, text, base) = match stack.base.clone() {
            None => (stack, text, None),
            Some(_) if stack.provider == crate::format::BASE_PROVIDER => {
                return Err(Error::invalid(
                    STACK_FILE,
                    "base",
                    "a base cannot build on another base",
                ));
            }
            Some(wanted) => {
                let base = base_of(&wanted, &text)?;
                let own: BTreeMap<String, String> = text
                    .into_iter()
                    .filter(|(p, _)| !p.starts_with(crate::compose::BASE_DIR))
                    .collect();
                let (effective, files) =
                    crate::compose::compose(&base, &stack, &own).map_err(Error::Invalid)?;
                (effective, files, Some(Box::new(base)))
            }
        };
        let problems = crate::check::check(&stack, &text);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let digest = digest(&text);
        Ok(Release {
            stack,
            files: text,
            digest,
            base,
        })
    }

    /// Loads and checks the release in folder `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, Error> {
        Self::from_files(read_dir(dir)?)
    }

    /// The release as a reproducible `.tar.gz` (see [`crate::archive`]).
    pub fn to_tarball(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|(path, content)| (path.clone(), content.clone().into_bytes()))
            .collect();
        crate::archive::pack(&files)
    }

    /// The release's identity for messages: `docker/scs 1.0.0`.
    pub fn id(&self) -> String {
        format!(
            "{}/{} {}",
            self.stack.provider, self.stack.name, self.stack.version
        )
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

/// Every regular file under `dir` (hidden files and folders skipped), by relative path.
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| Error::io(&current, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&current, e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                files.insert(relative, bytes);
            }
        }
    }
    Ok(files)
}

/// The base `wanted` names: the one carried under `base/` (a built artifact), else the
/// shipped one.
fn base_of(wanted: &BaseRef, files: &BTreeMap<String, String>) -> Result<Release, Error> {
    let dir = crate::compose::BASE_DIR;
    let carried: BTreeMap<String, Vec<u8>> = files
        .iter()
        .filter_map(|(p, c)| {
            p.strip_prefix(dir)
                .map(|rel| (rel.to_string(), c.clone().into_bytes()))
        })
        .collect();
    let base = if carried.is_empty() {
        crate::builtin::base(&wanted.name, &wanted.version)?.ok_or_else(|| {
            Error::invalid(
                STACK_FILE,
                "base",
                format!(
                    "no base {} {} is shipped and the release carries none under {dir}",
                    wanted.name, wanted.version
                ),
            )
        })?
    } else {
        Release::from_files(carried).map_err(|e| e.within(dir))?
    };
    if base.stack.name != wanted.name || base.stack.version != wanted.version {
        return Err(Error::invalid(
            STACK_FILE,
            "base",
            format!(
                "names {} {}, but the release carries {} {} under {dir}",
                wanted.name, wanted.version, base.stack.name, base.stack.version
            ),
        ));
    }
    Ok(base)
}
