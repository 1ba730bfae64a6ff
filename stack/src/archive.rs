//! A release as a `.tar.gz`: the form it takes over HTTP, in an OCI artifact and in the cache.
//! Packing is reproducible (sorted paths, zero times and owners, fixed modes), so the same
//! folder always gives the same bytes and the same sha256. Unpacking happens in memory and
//! refuses absolute paths, `..`, links and oversized content.

use std::collections::BTreeMap;
use std::io::Read;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::Error;

/// The most a release may hold once unpacked.
pub const MAX_UNPACKED: u64 = 64 * 1024 * 1024;

/// Packs `files` (relative path → content) into a reproducible `.tar.gz`.
pub fn pack(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let encoder = GzEncoder::new(Vec::new(), Compression::best());
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, content) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        // Writing to a Vec cannot fail; a path tar cannot hold is a programming error upstream
        // (release paths come from a folder walk) and is skipped rather than corrupting.
        if builder
            .append_data(&mut header, path, content.as_slice())
            .is_err()
        {
            tracing::warn!(%path, "path cannot be stored in a tarball; skipped");
        }
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .unwrap_or_default()
}

/// Unpacks a `.tar.gz` into relative path → content. `what` names the archive in errors.
pub fn unpack(bytes: &[u8], what: &str) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let bad = |message: String| Error::invalid(what, "", message);
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a .tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a .tar.gz: {e}")))?;
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(|e| bad(format!("bad path: {e}")))?
            .into_owned();
        let shown = path.display().to_string();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!(
                "{shown}: only regular files are allowed, not links or devices"
            )));
        }
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(bad(format!(
                        "{shown}: absolute paths and .. are not allowed"
                    )));
                }
            }
        }
        total += entry.header().size().unwrap_or(0);
        if total > MAX_UNPACKED {
            return Err(bad(format!("unpacks to more than {MAX_UNPACKED} bytes")));
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| bad(format!("{shown}: {e}")))?;
        files.insert(parts.join("/"), content);
    }
    Ok(files)
}
