//! `git` as the release bot runs it: in a folder, its output or an error with git's own
//! message. The error names the subcommand only: the other arguments can carry a remote's URL,
//! and with it credentials.

use std::path::Path;

use crate::error::Error;

/// `git <args>` in `dir`: its trimmed stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Error::io("git", e))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "git {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
