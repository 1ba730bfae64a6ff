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

/// The most a release may hold once unpacked: file contents, and everything the tar stream
/// holds besides them (headers, extended headers, long names) counted against it too.
pub const MAX_UNPACKED: u64 = 64 * 1024 * 1024;
/// The most one file of a release may weigh.
pub const MAX_ENTRY: u64 = 16 * 1024 * 1024;
/// The most entries (files, folders, extended headers) a release's archive may hold.
pub const MAX_ENTRIES: usize = 10_000;

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
///
/// The limits hold whatever a header claims: the decompressed stream is read through a
/// counter that stops at [`MAX_UNPACKED`] (so a lying size in an extended header, or an
/// endless extended header, costs at most that much), each file is read through a cap of
/// [`MAX_ENTRY`], and at most [`MAX_ENTRIES`] entries are looked at.
pub fn unpack(bytes: &[u8], what: &str) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let bad = |message: String| Error::invalid(what, "", message);
    let stream = Capped {
        inner: GzDecoder::new(bytes),
        left: MAX_UNPACKED,
    };
    let mut archive = tar::Archive::new(stream);
    let mut files = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a .tar.gz: {e}")))?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(bad(format!("holds more than {MAX_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| bad(read_error(&e)))?;
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(|e| bad(format!("bad path: {e}")))?
            .into_owned();
        let shown: String = path.display().to_string().chars().take(200).collect();
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
        if entry.size() > MAX_ENTRY {
            return Err(bad(format!("{shown}: larger than {MAX_ENTRY} bytes")));
        }
        let mut content = Vec::new();
        (&mut entry)
            .take(MAX_ENTRY + 1)
            .read_to_end(&mut content)
            .map_err(|e| bad(format!("{shown}: {}", read_error(&e))))?;
        if content.len() as u64 > MAX_ENTRY {
            return Err(bad(format!("{shown}: larger than {MAX_ENTRY} bytes")));
        }
        files.insert(parts.join("/"), content);
    }
    Ok(files)
}

/// What a read error says, with the cap's own error named plainly.
fn read_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        format!("unpacks to more than {MAX_UNPACKED} bytes")
    } else {
        format!("not a .tar.gz: {e}")
    }
}

/// A reader that fails once more than `left` bytes were asked of it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // Nothing more may be read; the end of the stream is fine, more is not.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge)),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}
