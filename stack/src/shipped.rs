//! The files of the stacks shipped with the project, built into every binary (see `build.rs`):
//! raw bytes by path under `stacks/`, and which folder holds which base. Loading them into
//! releases is [`crate::builtin`]'s (and, for an overlay's base, [`crate::load`]'s).

use std::collections::BTreeMap;

use crate::format::{BASE_PROVIDER, STACK_FILE};

mod files {
    include!(concat!(env!("OUT_DIR"), "/shipped.rs"));
}

/// The folders of `stacks/` that hold a release (a `stack.yaml`), relative to `stacks/`.
pub(crate) fn roots() -> Vec<&'static str> {
    files::FILES
        .iter()
        .filter_map(|(path, _)| {
            path.strip_suffix(STACK_FILE)
                .map(|dir| dir.trim_end_matches('/'))
        })
        .collect()
}

/// The files of the release in folder `root`, by path relative to it, and the folder as
/// problems name it (`stacks/docker/`).
pub(crate) fn release_files(root: &str) -> (String, BTreeMap<String, Vec<u8>>) {
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let files = files::FILES
        .iter()
        .filter_map(|(path, bytes)| {
            path.strip_prefix(prefix.as_str())
                .map(|rel| (rel.to_string(), bytes.to_vec()))
        })
        .collect();
    (format!("stacks/{prefix}"), files)
}

/// The files of the shipped base `name` `version`, if there is one (only the `stack.yaml`
/// files are read to find it).
pub(crate) fn base(name: &str, version: &str) -> Option<(String, BTreeMap<String, Vec<u8>>)> {
    #[derive(serde::Deserialize)]
    struct Identity {
        provider: String,
        name: String,
        version: String,
    }
    files::FILES.iter().find_map(|(path, bytes)| {
        let root = path.strip_suffix(STACK_FILE)?;
        let id = std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| serde_saphyr::from_str::<Identity>(t).ok())?;
        (id.provider == BASE_PROVIDER && id.name == name && id.version == version)
            .then(|| release_files(root.trim_end_matches('/')))
    })
}
