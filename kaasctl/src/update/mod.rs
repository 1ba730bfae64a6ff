//! `kaasctl stack update DIR`: the release bot's engine, runnable in any CI. For a provider
//! overlay in a git work tree it finds newer releases of its base (an OCI repository's tags,
//! or a local index folder), picks the newest the policy allows, carries that base under
//! `base/`, rewrites the overlay's base reference, bumps the provider release (patch for a
//! base patch, minor for a minor, major for a major), makes the previous release the one it
//! upgrades from, writes a changelog entry computed from the two effective releases, runs the
//! static compliance check and commits on the branch `stack-update/<provider>-<name>-<version>`.
//!
//! With `--kubernetes` it moves a stack's own Kubernetes versions (the base's) to the newest
//! upstream patches instead ([`kubernetes`]); an overlay that lists a node image per version
//! gets one for each new version either way.
//!
//! The pure steps (which version, which bump, the text edits of `stack.yaml` that keep its
//! comments, in [`edit`]) are functions with unit tests; only [`run`] touches files, the
//! registry and git.

use std::path::{Path, PathBuf};

pub mod edit;
pub mod kubernetes;

use kaas_stack::Release;
use kaas_stack::format::{STACK_FILE, StackFile};
use semver::Version;

use crate::cli::{StackUpdateArgs, Within};
use crate::error::Error;
use crate::git::git;

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
    /// What moved: `base scs 1.0.1`, `Kubernetes 1.34.3`.
    pub reason: String,
    /// The branch committed to (none with `--no-commit`).
    pub branch: Option<String>,
    /// Whether the new release passed the static compliance check.
    pub compliant: bool,
    /// Why not, one line each.
    pub findings: Vec<String>,
    /// The changelog entry (Markdown).
    pub changelog: String,
}

/// The stack file of `dir`: its path, text and parsed content.
fn read_stack(dir: &Path) -> Result<(PathBuf, String, StackFile), Error> {
    let path = dir.join(STACK_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let file = serde_saphyr::from_str(&text).map_err(|e| Error::Input {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok((path, text, file))
}

/// An edit's failure as an error naming the file.
fn in_file(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Input {
        file: path.display().to_string(),
        message,
    }
}

/// `kaasctl stack update`: exit 0 when updated (or nothing to do), 2 when the new release
/// fails its compliance check (it is committed all the same, so the pull request shows it).
pub async fn run(args: &StackUpdateArgs) -> Result<u8, Error> {
    let (path, text, file) = read_stack(&args.dir)?;
    if args.kubernetes.is_none() && file.base.is_none() {
        return Err(in_file(&path)(
            "base: the release names no base; update moves a provider overlay to a newer base \
             (or a stack's Kubernetes versions with --kubernetes)"
                .into(),
        ));
    }
    if !args.no_commit {
        ensure_clean(&args.dir)?;
    }
    let before = Release::load_dir(&args.dir)?;
    let update = match &args.kubernetes {
        Some(source) => kubernetes_update(source, &path, &text, &file).await?,
        None => base_update(args, &path, &text, &file, &before).await?,
    };
    let Some(update) = update else {
        return Ok(0);
    };
    finish(args, &path, &file, &before, update)
}

/// What an update wrote, for [`finish`] to check, describe and commit.
struct Update {
    /// The new `stack.yaml`.
    text: String,
    /// The new release.
    version: String,
    /// What moved, for titles.
    reason: String,
    /// The base to check compliance against (an overlay's new base).
    base: Option<Release>,
    /// What needs a person (an image that cannot be derived), as changelog lines.
    notes: Vec<String>,
}

/// The overlay moved onto the newest base the policy allows (carried under `base/`); `None`
/// when there is none.
async fn base_update(
    args: &StackUpdateArgs,
    path: &Path,
    text: &str,
    file: &StackFile,
    before: &Release,
) -> Result<Option<Update>, Error> {
    let base = file.base.clone().expect("checked by run");
    let current_base = parse_version("base.version", &base.version)?;
    let current = parse_version("version", &file.version)?;
    let offered = offered(args, &base.name).await?;
    let versions: Vec<Version> = offered.iter().map(|o| o.version().clone()).collect();
    let Some(next) = pick(&current_base, &versions, args.within) else {
        println!(
            "nothing to do: base {} {} is the newest {} allows",
            base.name,
            base.version,
            args.within.describe()
        );
        return Ok(None);
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
    let version = bump(&current, &current_base, &next).to_string();
    let mut edited = edit::edit_stack_file(text, &version, &next.to_string(), &file.version)
        .map_err(in_file(path))?;
    // An overlay that takes its base's Kubernetes versions and lists an image per version
    // gets an image for each new one.
    let mut notes = Vec::new();
    if file.kubernetes_versions.is_empty() && !file.node_images.is_empty() {
        let old = &before.stack.kubernetes_versions;
        let new = &new_base.stack.kubernetes_versions;
        let added = follows(old, new, &mut notes);
        let dropped: Vec<String> = old.iter().filter(|v| !new.contains(v)).cloned().collect();
        let (text, more) = edit::node_images(&edited, &added, &dropped).map_err(in_file(path))?;
        edited = text;
        notes.extend(more);
    }
    let carried = args
        .dir
        .join(kaas_stack::compose::BASE_DIR.trim_end_matches('/'));
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
    Ok(Some(Update {
        text: edited,
        version,
        reason: format!("base {} {next}", base.name),
        base: Some(new_base),
        notes,
    }))
}

/// Each version of `new` not in `old`, with the newest of its minor in `old` (whose node
/// image it follows); a version of a new minor goes to `notes` instead.
fn follows(old: &[String], new: &[String], notes: &mut Vec<String>) -> Vec<(String, String)> {
    let minor = |v: &str| {
        v.rsplit_once('.')
            .map_or(v.to_string(), |(m, _)| m.to_string())
    };
    let mut out = Vec::new();
    for v in new.iter().filter(|v| !old.contains(v)) {
        let from = old
            .iter()
            .filter(|o| minor(o) == minor(v))
            .filter_map(|o| Version::parse(o).ok())
            .max();
        match from {
            Some(from) => out.push((v.clone(), from.to_string())),
            None => notes.push(format!(
                "node image for {v}: a new minor; build its image and add its entry"
            )),
        }
    }
    out
}

/// The stack's Kubernetes versions moved to the newest patches `source` lists (a file, or an
/// http(s) URL); `None` when nothing changes.
async fn kubernetes_update(
    source: &str,
    path: &Path,
    text: &str,
    file: &StackFile,
) -> Result<Option<Update>, Error> {
    if file.kubernetes_versions.is_empty() {
        return Err(in_file(path)(
            "kubernetesVersions: none here (an overlay takes its base's): update the base, \
             then its overlays with --base-repository"
                .into(),
        ));
    }
    let document = read_source(source).await?;
    let releases: kubernetes::Releases =
        serde_saphyr::from_str(&document).map_err(|e| Error::Input {
            file: source.to_string(),
            message: e.to_string(),
        })?;
    let today = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d")
        .to_string();
    let change =
        kubernetes::plan(&file.kubernetes_versions, &releases, &today).map_err(|message| {
            Error::Input {
                file: source.to_string(),
                message,
            }
        })?;
    if change.added.is_empty() && change.dropped.is_empty() {
        println!(
            "nothing to do: {} offers the newest patch of each of its minors",
            file.id()
        );
        return Ok(None);
    }
    let current = parse_version("version", &file.version)?;
    let version = Version::new(current.major, current.minor, current.patch + 1).to_string();
    let edited = edit::set_release(text, &version, &file.version).map_err(in_file(path))?;
    let edited = edit::set_kubernetes_versions(&edited, &change.versions).map_err(in_file(path))?;
    let (edited, notes) =
        edit::node_images(&edited, &change.added, &change.dropped).map_err(in_file(path))?;
    let parsed = edit::checked(&edited).map_err(in_file(path))?;
    if parsed.kubernetes_versions != change.versions || parsed.version != version {
        return Err(in_file(path)(
            "the edited kubernetesVersions do not read back as planned".into(),
        ));
    }
    let mut reason: Vec<String> = change.added.iter().map(|(v, _)| v.clone()).collect();
    reason.extend(change.dropped.iter().map(|v| format!("without {v}")));
    Ok(Some(Update {
        text: edited,
        version,
        reason: format!("Kubernetes {}", reason.join(", ")),
        base: None,
        notes,
    }))
}

/// The text at `source`: a file, or the body of an http(s) URL (at most 1 MiB, 30 s).
async fn read_source(source: &str) -> Result<String, Error> {
    const MAX: usize = 1 << 20;
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return std::fs::read_to_string(source).map_err(|e| Error::io(source, e));
    }
    let fetch = async {
        let response = reqwest::Client::new()
            .get(source)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let bytes = crate::http::read_capped(response, MAX).await?;
        String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), fetch)
        .await
        .unwrap_or_else(|_| Err("no answer within 30 s".to_string()))
        .map_err(|message| Error::Input {
            file: source.to_string(),
            message,
        })
}

/// Writes the update, loads the new release, checks it, writes the changelog, commits and
/// reports. Exit code 2 when the new release is not compliant.
fn finish(
    args: &StackUpdateArgs,
    path: &Path,
    file: &StackFile,
    before: &Release,
    update: Update,
) -> Result<u8, Error> {
    let dir = &args.dir;
    let Update {
        text,
        version,
        reason,
        base,
        notes,
    } = update;
    std::fs::write(path, &text).map_err(|e| Error::io(path, e))?;
    let (mut changes, findings) = match Release::load_dir(dir) {
        Ok(after) => {
            let findings = base
                .as_ref()
                .map(|b| kaas_stack::compliance::verify(&after, b))
                .unwrap_or_default();
            (kaas_stack::changelog::changes(before, &after), findings)
        }
        Err(e) => (Vec::new(), vec![format!("the release does not build: {e}")]),
    };
    changes.extend(notes.into_iter().map(|n| format!("needs a person: {n}")));
    let stack = format!("{}/{}", file.provider, file.name);
    let changelog = entry(
        &stack,
        &version,
        &reason,
        &changes,
        &findings,
        base.is_some(),
    );
    write_changelog(dir, &changelog)?;
    let branch = if args.no_commit {
        None
    } else {
        let branch = format!("stack-update/{}-{}-{version}", file.provider, file.name);
        commit(
            dir,
            &branch,
            &format!("{stack} {version}: {reason}"),
            &changelog,
        )?;
        Some(branch)
    };
    let summary = Summary {
        stack: stack.clone(),
        from: file.version.clone(),
        to: version.clone(),
        reason: reason.clone(),
        branch: branch.clone(),
        compliant: findings.is_empty(),
        findings: findings.clone(),
        changelog: changelog.clone(),
    };
    if let Some(out) = &args.summary {
        let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
        std::fs::write(out, json).map_err(|e| Error::io(out, e))?;
    }
    println!("{stack} {} -> {version}: {reason}", file.version);
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

/// The public keys of `--base-signing-key`.
fn base_keys(args: &StackUpdateArgs) -> Result<Vec<kaas_stack::signature::PublicKey>, Error> {
    args.base_signing_key
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            kaas_stack::signature::PublicKey::from_pem(&pem).map_err(|e| Error::Input {
                file: path.display().to_string(),
                message: format!("--base-signing-key: {e}"),
            })
        })
        .collect()
}

async fn fetch(args: &StackUpdateArgs, offered: Offered) -> Result<Release, Error> {
    match offered {
        Offered::Oci { digest, .. } => {
            let repository = args.base_repository.as_deref().unwrap_or_default();
            let keys = base_keys(args)?;
            if keys.is_empty() {
                return Ok(fetcher(args, repository)
                    .fetch_oci(repository, &digest)
                    .await?);
            }
            // The operators' own check: a signature by one of the keys over this digest.
            let source = api::v1beta1::StackSource {
                oci: Some(api::v1beta1::OciSource {
                    repository: repository.to_string(),
                    digest: digest.clone(),
                    public_key: None,
                }),
                ..Default::default()
            };
            fetcher(args, repository)
                .requiring_signatures(keys)
                .fetch(&source)
                .await
                .map_err(|e| match e {
                    kaas_stack::Error::Signature { what, message, .. } => Error::Invalid(format!(
                        "base release {repository}@{digest} is refused: {message} ({what}, --base-signing-key)"
                    )),
                    other => other.into(),
                })
        }
        Offered::Folder { dir, .. } => Ok(Release::load_dir(&dir)?),
    }
}

/// The changelog entry (Markdown) for release `version` of `stack`.
fn entry(
    stack: &str,
    version: &str,
    reason: &str,
    changes: &[String],
    findings: &[String],
    checked: bool,
) -> String {
    let date = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%d");
    let mut out = format!("## {stack} {version} ({date})\n\nUpdate: {reason}.\n\n");
    if changes.is_empty() {
        out.push_str("No change in what the release offers.\n");
    }
    for c in changes {
        out.push_str(&format!("- {c}\n"));
    }
    if !checked {
        out.push_str("\nCompliance: not checked (a stack without a base is the reference).\n");
    } else if findings.is_empty() {
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
    fn a_new_changelog_entry_goes_first_and_the_earlier_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        write_changelog(dir.path(), "## a 1.0.1\n\n- one\n").unwrap();
        write_changelog(dir.path(), "## a 1.0.2\n\n- two\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("CHANGELOG.md")).unwrap(),
            "# Changelog\n\n## a 1.0.2\n\n- two\n\n## a 1.0.1\n\n- one\n"
        );
    }
}
