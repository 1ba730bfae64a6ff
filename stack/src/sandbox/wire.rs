//! What the operator and a render worker say to each other: length-prefixed JSON frames. The
//! worker reads requests of up to [`MAX_REQUEST`] (a release is at most 64 MiB unpacked); the
//! operator reads answers of up to [`MAX_ANSWER`], so what a release renders to never costs
//! the operator more than that per render in flight.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use api::v1beta1::AddonOverride;
use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::format::StackFile;
use crate::template::RenderedAddon;

/// The most a request frame (to a worker) may weigh.
pub(super) const MAX_REQUEST: usize = 96 * 1024 * 1024;
/// The most an answer frame (to the operator) may weigh: every add-on of one render, with
/// room for JSON's quoting of [`crate::template::MAX_RENDER_OUTPUT`] bytes of YAML.
pub(super) const MAX_ANSWER: usize = 2 * crate::template::MAX_RENDER_OUTPUT + 1024 * 1024;

#[derive(Serialize, Deserialize)]
pub(super) enum Request {
    Render(Box<RenderRequest>),
    Syntax { file: String, source: String },
}

#[derive(Serialize, Deserialize)]
pub(super) struct RenderRequest {
    pub digest: String,
    pub release: Option<ReleaseWire>,
    pub cluster: ClusterWire,
    pub overrides: Vec<AddonOverride>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ReleaseWire {
    pub stack: StackFile,
    pub files: BTreeMap<String, String>,
    pub digest: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ClusterWire {
    pub name: String,
    pub namespace: String,
    pub provider: String,
    pub kubernetes_version: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub mtu: Option<i32>,
}

#[derive(Serialize, Deserialize)]
pub(super) enum Answer {
    /// The first frame a worker writes: what confines it.
    Hello(super::Report),
    Rendered(Vec<RenderedAddon>),
    Invalid(Vec<Problem>),
    Failed(String),
    Syntax(Option<Problem>),
}

/// A frame past its bound: an error of kind `FileTooLarge`, which callers match on.
fn too_large(len: usize, max: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!("a frame of {len} bytes is larger than {max}"),
    )
}

/// Writes `value` as one frame; refused when it would weigh more than `max`.
pub(super) fn write_frame<T: Serialize>(
    out: &mut impl Write,
    value: &T,
    max: usize,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    if bytes.len() > max {
        return Err(too_large(bytes.len(), max));
    }
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&bytes)?;
    out.flush()
}

/// The next frame, or `None` at the end of the stream; one declared larger than `max` is
/// refused before it is read.
pub(super) fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
    max: usize,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(too_large(len, max));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_past_the_bound_is_refused_on_both_ends() {
        let mut out = Vec::new();
        assert!(write_frame(&mut out, &"x".repeat(100), 50).is_err());
        assert!(out.is_empty());
        write_frame(&mut out, &"x".repeat(100), 200).ok();
        let refused = read_frame::<String>(&mut out.as_slice(), 50)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("a frame of 102 bytes is larger than 50")
        );
        let read = read_frame::<String>(&mut out.as_slice(), 200)
            .ok()
            .flatten();
        assert_eq!(read.map(|s| s.len()), Some(100));
    }
}
