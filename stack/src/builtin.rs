//! The stacks shipped with the project, built into every binary (see `build.rs`): an operator
//! installs its provider's default stacks on request, and the command-line tool renders
//! without any folder at hand.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::format::STACK_FILE;
use crate::release::Release;

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped.rs"));
}

/// Every shipped release, checked. A shipped release that does not check is a build defect,
/// reported as an error rather than skipped.
pub fn releases() -> Result<Vec<Release>, Error> {
    let roots: Vec<&str> = shipped::FILES
        .iter()
        .filter_map(|(path, _)| {
            path.strip_suffix(STACK_FILE)
                .map(|dir| dir.trim_end_matches('/'))
        })
        .collect();
    roots.into_iter().map(load).collect()
}

/// Loads the shipped release in folder `root` of `stacks/`.
fn load(root: &str) -> Result<Release, Error> {
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let files: BTreeMap<String, Vec<u8>> = shipped::FILES
        .iter()
        .filter_map(|(path, bytes)| {
            path.strip_prefix(prefix.as_str())
                .map(|rel| (rel.to_string(), bytes.to_vec()))
        })
        .collect();
    Release::from_files(files).map_err(|e| e.within(&format!("stacks/{prefix}")))
}

/// The shipped base stack `name` `version`, if there is one. Only the folders of bases are
/// loaded (an overlay loads its base from here while [`releases`] runs).
pub fn base(name: &str, version: &str) -> Result<Option<Release>, Error> {
    #[derive(serde::Deserialize)]
    struct Identity {
        provider: String,
        name: String,
        version: String,
    }
    for (path, bytes) in shipped::FILES {
        let Some(root) = path.strip_suffix(STACK_FILE) else {
            continue;
        };
        let Some(id) = std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| serde_saphyr::from_str::<Identity>(t).ok())
        else {
            continue;
        };
        if id.provider == crate::format::BASE_PROVIDER && id.name == name && id.version == version {
            return load(root.trim_end_matches('/')).map(Some);
        }
    }
    Ok(None)
}

/// The shipped releases of `provider`.
pub fn for_provider(provider: &str) -> Result<Vec<Release>, Error> {
    Ok(releases()?
        .into_iter()
        .filter(|r| r.stack.provider == provider)
        .collect())
}

/// The shipped release `provider`/`name` `version`, if there is one.
pub fn find(provider: &str, name: &str, version: &str) -> Result<Option<Release>, Error> {
    Ok(for_provider(provider)?
        .into_iter()
        .find(|r| r.stack.name == name && r.stack.version == version))
}
