//! Loading a release: from its files (a folder, an unpacked archive, the shipped stacks), its
//! `stack.yaml` parsed, an overlay composed on its base ([`crate::compose`]; the base carried
//! under `base/`, else the shipped one), and the result checked ([`crate::check`]) before a
//! [`Release`] exists.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Problem};
use crate::format::{BaseRef, STACK_FILE, StackFile};
use crate::release::{Release, digest};

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
        crate::shipped::base(&wanted.name, &wanted.version)
            .map(|(root, files)| Release::from_files(files).map_err(|e| e.within(&root)))
            .transpose()?
            .ok_or_else(|| {
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
