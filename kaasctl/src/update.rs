//! `kaasctl stack update DIR`: the release bot's engine, runnable in any CI. For a provider
//! overlay in a git work tree it finds newer releases of its base (an OCI repository's tags,
//! or a local index folder), picks the newest the policy allows, carries that base under
//! `base/`, rewrites the overlay's base reference, bumps the provider release (patch for a
//! base patch, minor for a minor, major for a major), makes the previous release the one it
//! upgrades from, writes a changelog entry computed from the two effective releases, runs the
//! static compliance check and commits on the branch `stack-update/<provider>-<name>-<version>`.
//!
//! The pure steps (which version, which bump, the text edits of `stack.yaml` that keep its
//! comments) are functions with unit tests; only [`run`] touches files, the registry and git.

use std::path::{Path, PathBuf};
use std::process::Command;

use kaas_stack::Release;
use kaas_stack::format::{STACK_FILE, StackFile};
use semver::Version;

use crate::cli::{StackUpdateArgs, Within};
use crate::error::Error;

/// The newest of `available` newer than `current` that `within` allows (pre-releases never).
pub fn pick(current: &Version, available: &[Version], within: Within) -> Option<Version> {
    available
        .iter()
        .filter(|v| v.pre.is_empty() && *v > current)
        .filter(|v| match within {
            Within::Patch => v.major == current.major && v.minor == current.minor,
            Within::Minor => v.major == current.major,
            Within::Any => true,
        })
        .max()
        .cloned()
}

/// The provider release after `current` when its base moves from `from` to `to`: the same
/// level of change (patch, minor or major) as the base's.
pub fn bump(current: &Version, from: &Version, to: &Version) -> Version {
    if to.major != from.major {
        Version::new(current.major + 1, 0, 0)
    } else if to.minor != from.minor {
        Version::new(current.major, current.minor + 1, 0)
    } else {
        Version::new(current.major, current.minor, current.patch + 1)
    }
}

/// `text` (a `stack.yaml`) with its top-level `version` set to `version`, its base's version
/// to `base_version` and `upgradeFrom` to `[previous]`; comments and everything else kept.
/// The result is parsed again and must say exactly that, else this is an error (a layout the
/// edit does not know, such as a multi-line flow mapping).
pub fn edit_stack_file(
    text: &str,
    version: &str,
    base_version: &str,
    previous: &str,
) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let top = |l: &str, key: &str| l.starts_with(&format!("{key}:"));
    // version: the top-level line.
    let at = lines
        .iter()
        .position(|l| top(l, "version"))
        .ok_or("version: no top-level line")?;
    lines[at] = format!("version: {version}");
    // base: `base: {name: x, version: y}` or a block with an indented `version:` line.
    let base_at = lines
        .iter()
        .position(|l| top(l, "base"))
        .ok_or("base: no top-level line")?;
    let rest = lines[base_at]["base:".len()..].trim().to_string();
    if rest.starts_with('{') {
        lines[base_at] = format!("base: {}", set_flow_version(&rest, base_version)?);
    } else {
        let block_end = block_end(&lines, base_at);
        let v = (base_at + 1..block_end)
            .find(|&i| lines[i].trim_start().starts_with("version:"))
            .ok_or("base.version: no line")?;
        let indent = lines[v].len() - lines[v].trim_start().len();
        lines[v] = format!("{}version: {base_version}", " ".repeat(indent));
    }
    // upgradeFrom: replaced by the previous release alone (older ones upgrade through it).
    if let Some(u) = lines.iter().position(|l| top(l, "upgradeFrom")) {
        let end = block_end(&lines, u);
        lines.drain(u..end);
    }
    let at = lines
        .iter()
        .position(|l| top(l, "version"))
        .ok_or("version: no top-level line")?;
    lines.insert(at + 1, format!("upgradeFrom: [\"{previous}\"]"));
    let mut out = lines.join("\n");
    out.push('\n');
    // Parsed back, it must say what was asked.
    let parsed: StackFile = serde_saphyr::from_str(&out).map_err(|e| e.to_string())?;
    let base_ok = parsed
        .base
        .as_ref()
        .is_some_and(|b| b.version == base_version);
    if parsed.version != version || !base_ok || parsed.upgrade_from != [previous] {
        return Err(format!(
            "the edited {STACK_FILE} does not read back as version {version}, base {base_version}, upgradeFrom [{previous}]"
        ));
    }
    Ok(out)
}

/// The line after the block that starts at `start` (its indented or list continuation lines).
fn block_end(lines: &[String], start: usize) -> usize {
    let mut end = start + 1;
    while end < lines.len() {
        let l = &lines[end];
        let continues = l.starts_with(' ') || l.starts_with('-') || l.trim().is_empty();
        if !continues {
            break;
        }
        end += 1;
    }
    // Trailing blank lines belong to what follows.
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    end
}

/// `{name: x, version: y}` with `version` set.
fn set_flow_version(flow: &str, version: &str) -> Result<String, String> {
    let inner = flow
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("base: a flow mapping on one line is expected")?;
    let mut found = false;
    let parts: Vec<String> = inner
        .split(',')
        .map(|p| {
            let (k, _) = p.split_once(':').unwrap_or((p, ""));
            if k.trim() == "version" {
                found = true;
                format!("{k}: {version}")
            } else {
                p.to_string()
            }
        })
        .collect();
    if !found {
        return Err("base.version: missing".into());
    }
    Ok(format!("{{{}}}", parts.join(",")))
}

/// A base release on offer: its version and where it comes from.
enum Offered {
    Oci { version: Version, digest: String },
    Folder { version: Version, dir: PathBuf },
}

impl Offered {
    fn version(&self) -> &Version {
        match self {
            Offered::Oci { version, .. } | Offered::Folder { version, .. } => version,
        }
    }
}

fn parse_version(field: &str, v: &str) -> Result<Version, Error> {
    Version::parse(v).map_err(|e| Error::Invalid(format!("{field}: {v:?} is not a version: {e}")))
}

/// What the update did, as `--summary` writes it (JSON) for the steps after it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `<provider>/<name>`.
    pub stack: String,
    /// The release before.
    pub from: String,
    /// The new release.
    pub to: String,
    /// The base before and after.
    pub base_from: String,
    /// The new base.
    pub base_to: String,
    /// The branch committed to (none with `--no-commit`).
    pub branch: Option<String>,
    /// Whether the new release passed the static compliance check.
    pub compliant: bool,
    /// Why not, one line each.
    pub findings: Vec<String>,
    /// The changelog entry (Markdown).
    pub changelog: String,
}

/// `kaasctl stack update`: exit 0 when updated (or nothing to do), 2 when the new release
/// fails its compliance check (it is committed all the same, so the pull request shows it).
pub async fn run(args: &StackUpdateArgs) -> Result<u8, Error> {
    let dir = &args.dir;
    let path = dir.join(STACK_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let file: StackFile = serde_saphyr::from_str(&text).map_err(|e| Error::Input {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    let base = file.base.clone().ok_or_else(|| Error::Input {
        file: path.display().to_string(),
        message: "base: the release names no base; update moves a provider overlay to a newer base"
            .into(),
    })?;
    let current_base = parse_version("base.version", &base.version)?;
    let current = parse_version("version", &file.version)?;
    if !args.no_commit {
        ensure_clean(dir)?;
    }
    let before = Release::load_dir(dir)?;

    let offered = offered(args, &base.name).await?;
    let versions: Vec<Version> = offered.iter().map(|o| o.version().clone()).collect();
    let Some(next) = pick(&current_base, &versions, args.within) else {
        println!(
            "nothing to do: base {} {} is the newest {} allows",
            base.name,
            base.version,
            args.within.describe()
        );
        return Ok(0);
    };
    let chosen = offered
        .into_iter()
        .find(|o| *o.version() == next)
        .expect("picked from the offered versions");
    let new_base = fetch(args, chosen).await?;
    if new_base.stack.provider != kaas_stack::format::BASE_PROVIDER
        || new_base.stack.name != base.name
        || new_base.stack.version != next.to_string()
    {
        return Err(Error::Invalid(format!(
            "the base offered as {} {next} is {}",
            base.name,
            new_base.id()
        )));
    }

    // The files: the base carried under base/, the overlay's stack.yaml edited.
    let version = bump(&current, &current_base, &next).to_string();
    let edited =
        edit_stack_file(&text, &version, &next.to_string(), &file.version).map_err(|message| {
            Error::Input {
                file: path.display().to_string(),
                message,
            }
        })?;
    let carried = dir.join(kaas_stack::compose::BASE_DIR.trim_end_matches('/'));
    if carried.exists() {
        std::fs::remove_dir_all(&carried).map_err(|e| Error::io(&carried, e))?;
    }
    for (rel, content) in &new_base.files {
        let target = carried.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&target, content).map_err(|e| Error::io(&target, e))?;
    }
    std::fs::write(&path, &edited).map_err(|e| Error::io(&path, e))?;

    // The new effective release, its compliance and what changed.
    let (changes, findings) = match Release::load_dir(dir) {
        Ok(after) => {
            let findings = kaas_stack::compliance::verify(&after, &new_base);
            (kaas_stack::changelog::changes(&before, &after), findings)
        }
        Err(e) => (
            Vec::new(),
            vec![format!("the release does not build on the new base: {e}")],
        ),
    };
    let stack = format!("{}/{}", file.provider, file.name);
    let changelog = entry(&stack, &version, &base.name, &next, &changes, &findings);
    write_changelog(dir, &changelog)?;

    let branch = if args.no_commit {
        None
    } else {
        let branch = format!("stack-update/{}-{}-{version}", file.provider, file.name);
        commit(
            dir,
            &branch,
            &format!("{stack} {version}: base {} {next}", base.name),
            &changelog,
        )?;
        Some(branch)
    };
    let summary = Summary {
        stack: stack.clone(),
        from: file.version.clone(),
        to: version.clone(),
        base_from: base.version.clone(),
        base_to: next.to_string(),
        branch: branch.clone(),
        compliant: findings.is_empty(),
        findings: findings.clone(),
        changelog: changelog.clone(),
    };
    if let Some(out) = &args.summary {
        let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        std::fs::write(out, json).map_err(|e| Error::io(out, e))?;
    }
    println!(
        "{stack} {} -> {version}: base {} {} -> {next}",
        file.version, base.name, base.version
    );
    if let Some(branch) = &branch {
        println!("committed on branch {branch}");
    }
    print!("{changelog}");
    Ok(if findings.is_empty() { 0 } else { 2 })
}

/// The base releases on offer: tags of `--base-repository`, or sub-folders of `--base-index`
/// (each a base release folder).
async fn offered(args: &StackUpdateArgs, name: &str) -> Result<Vec<Offered>, Error> {
    if let Some(repository) = &args.base_repository {
        let found = fetcher(args, repository).discover(repository).await?;
        return Ok(found
            .into_iter()
            .filter_map(|d| {
                Some(Offered::Oci {
                    version: Version::parse(&d.tag).ok()?,
                    digest: d.digest,
                })
            })
            .collect());
    }
    let Some(index) = &args.base_index else {
        return Err(Error::Invalid(
            "where are newer bases? give --base-repository or --base-index".into(),
        ));
    };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(index).map_err(|e| Error::io(index, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(index, e))?;
        let stack = entry.path().join(STACK_FILE);
        let Ok(text) = std::fs::read_to_string(&stack) else {
            continue;
        };
        let file: StackFile = serde_saphyr::from_str(&text).map_err(|e| Error::Input {
            file: stack.display().to_string(),
            message: e.to_string(),
        })?;
        if file.provider == kaas_stack::format::BASE_PROVIDER && file.name == name {
            out.push(Offered::Folder {
                version: parse_version(&format!("{}: version", stack.display()), &file.version)?,
                dir: entry.path(),
            });
        }
    }
    Ok(out)
}

fn fetcher(args: &StackUpdateArgs, repository: &str) -> kaas_stack::source::Fetcher {
    let registry = repository.split('/').next().unwrap_or_default().to_string();
    let plain = if args.plain_http {
        vec![registry]
    } else {
        Vec::new()
    };
    kaas_stack::source::Fetcher::new(None, plain)
}

async fn fetch(args: &StackUpdateArgs, offered: Offered) -> Result<Release, Error> {
    match offered {
        Offered::Oci { digest, .. } => {
            let repository = args.base_repository.as_deref().unwrap_or_default();
            Ok(fetcher(args, repository)
                .fetch_oci(repository, &digest)
                .await?)
        }
        Offered::Folder { dir, .. } => Ok(Release::load_dir(&dir)?),
    }
}

/// The changelog entry (Markdown) for release `version` of `stack` on base `base` `next`.
fn entry(
    stack: &str,
    version: &str,
    base: &str,
    next: &Version,
    changes: &[String],
    findings: &[String],
) -> String {
    let date = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%d");
    let mut out = format!("## {stack} {version} ({date})\n\nBase {base} {next}.\n\n");
    if changes.is_empty() {
        out.push_str("No change in what the release offers.\n");
    }
    for c in changes {
        out.push_str(&format!("- {c}\n"));
    }
    if findings.is_empty() {
        out.push_str("\nCompliance: passed (every base component is there).\n");
    } else {
        out.push_str("\nCompliance: FAILED\n");
        for f in findings {
            out.push_str(&format!("- {f}\n"));
        }
    }
    out
}

/// `entry` put first in `dir/CHANGELOG.md` (under its title, which is created if missing).
fn write_changelog(dir: &Path, entry: &str) -> Result<(), Error> {
    let path = dir.join("CHANGELOG.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let title = "# Changelog\n\n";
    let rest = old.strip_prefix(title).unwrap_or(&old);
    let text = format!("{title}{entry}\n{rest}");
    std::fs::write(&path, text.trim_end().to_string() + "\n").map_err(|e| Error::io(&path, e))
}

/// `git` in `dir`, its stdout; an error with its stderr when it fails.
fn git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Error::io("git", e))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The release folder must be in a git work tree without uncommitted changes: the commit
/// must hold the update and nothing else.
fn ensure_clean(dir: &Path) -> Result<(), Error> {
    git(dir, &["rev-parse", "--is-inside-work-tree"])?;
    let dirty = git(dir, &["status", "--porcelain", "--", "."])?;
    if !dirty.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "{}: uncommitted changes ({}); commit or stash them, or use --no-commit",
            dir.display(),
            dirty.lines().next().unwrap_or_default().trim()
        )));
    }
    Ok(())
}

/// Commits everything under `dir` on `branch` (created from, or reset to, the current commit).
fn commit(dir: &Path, branch: &str, subject: &str, body: &str) -> Result<(), Error> {
    git(dir, &["checkout", "-B", branch])?;
    git(dir, &["add", "-A", "--", "."])?;
    let mut args = Vec::new();
    // A CI runner often has no git identity: the bot's, unless one is configured.
    if git(dir, &["config", "user.email"]).is_err() {
        args.extend([
            "-c",
            "user.name=kaas release bot",
            "-c",
            "user.email=release-bot@kaas.invalid",
        ]);
    }
    args.extend(["commit", "-q", "-m", subject, "-m", body]);
    git(dir, &args)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn the_newest_version_the_policy_allows_is_picked() {
        let offered = [
            v("1.0.0"),
            v("1.0.3"),
            v("1.0.4-rc.1"),
            v("1.1.2"),
            v("2.0.0"),
        ];
        assert_eq!(pick(&v("1.0.0"), &offered, Within::Patch), Some(v("1.0.3")));
        assert_eq!(pick(&v("1.0.0"), &offered, Within::Minor), Some(v("1.1.2")));
        assert_eq!(pick(&v("1.0.0"), &offered, Within::Any), Some(v("2.0.0")));
        assert_eq!(pick(&v("2.0.0"), &offered, Within::Any), None);
        assert_eq!(
            pick(&v("1.0.3"), &offered, Within::Patch),
            None,
            "no pre-release"
        );
    }

    #[test]
    fn the_provider_release_moves_as_far_as_its_base() {
        assert_eq!(bump(&v("1.2.3"), &v("1.0.0"), &v("1.0.1")), v("1.2.4"));
        assert_eq!(bump(&v("1.2.3"), &v("1.0.4"), &v("1.1.0")), v("1.3.0"));
        assert_eq!(bump(&v("1.2.3"), &v("1.0.4"), &v("2.0.0")), v("2.0.0"));
    }

    #[test]
    fn the_stack_file_is_edited_in_place_keeping_comments() {
        let flow = "# comment kept\nprovider: hetzner\nname: scs\nversion: 1.0.0\n\
                    base: {name: scs, version: 1.0.0}\n# images\nnodeImages: []\n";
        let out = edit_stack_file(flow, "1.0.1", "1.0.2", "1.0.0").unwrap();
        assert_eq!(
            out,
            "# comment kept\nprovider: hetzner\nname: scs\nversion: 1.0.1\nupgradeFrom: [\"1.0.0\"]\n\
             base: {name: scs, version: 1.0.2}\n# images\nnodeImages: []\n"
        );
        let block = "provider: docker\nname: scs\nversion: 1.1.0\nupgradeFrom:\n  - 1.0.0\n  - 0.9.0\n\
                     base:\n  name: scs\n  version: 1.0.0\naddons: []\n";
        let out = edit_stack_file(block, "1.2.0", "1.1.0", "1.1.0").unwrap();
        assert_eq!(
            out,
            "provider: docker\nname: scs\nversion: 1.2.0\nupgradeFrom: [\"1.1.0\"]\n\
             base:\n  name: scs\n  version: 1.1.0\naddons: []\n"
        );
    }

    #[test]
    fn a_layout_the_edit_does_not_know_is_an_error_not_a_wrong_file() {
        let nested =
            "provider: docker\nname: scs\nversion: 1.0.0\nbase: {name: scs,\n  version: 1.0.0}\n";
        assert!(edit_stack_file(nested, "1.0.1", "1.0.1", "1.0.0").is_err());
    }
}
