//! The stacks shipped with the project as releases: an operator installs its provider's
//! default stacks on request, and the command-line tool renders without any folder at hand.
//! Their files are [`crate::shipped`]'s.

use crate::error::Error;
use crate::release::Release;

/// Every shipped release, checked. A shipped release that does not check is a build defect,
/// reported as an error rather than skipped.
pub fn releases() -> Result<Vec<Release>, Error> {
    crate::shipped::roots().into_iter().map(load).collect()
}

/// Loads the shipped release in folder `root` of `stacks/`.
fn load(root: &str) -> Result<Release, Error> {
    let (at, files) = crate::shipped::release_files(root);
    Release::from_files(files).map_err(|e| e.within(&at))
}

/// The shipped base stack `name` `version`, if there is one.
pub fn base(name: &str, version: &str) -> Result<Option<Release>, Error> {
    crate::shipped::base(name, version)
        .map(|(at, files)| Release::from_files(files).map_err(|e| e.within(&at)))
        .transpose()
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
