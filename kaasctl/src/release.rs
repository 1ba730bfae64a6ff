//! `kaasctl stack release|keygen|sign`: the release bot's last step. A release is pushed with
//! its version tag and a moving channel tag, signed in cosign's layout (operators started with
//! `--stack-signing-key` use nothing else), and its commit tagged
//! `<provider>-<name>-v<version>`. With `--auto-merge` the pull request is merged first through
//! the forge's API, and only when the update was compliant and the e2e run passed on exactly
//! this content.

use std::io::Write as _;
use std::path::Path;

use kaas_stack::signature::SigningKey;

use crate::cli::{StackKeygenArgs, StackReleaseArgs, StackSignArgs};
use crate::e2e::E2eSummary;
use crate::error::Error;
use crate::forge::Forge;
use crate::git::git;
use crate::stacks::{fetcher_for, load};
use crate::update::Summary;

/// `kaasctl stack keygen`: `<prefix>.key` (mode 0600) and `<prefix>.pub`; never overwrites.
pub fn keygen(args: &StackKeygenArgs) -> Result<u8, Error> {
    let private = args.prefix.with_extension("key");
    let public = args.prefix.with_extension("pub");
    let pem = SigningKey::generate_pem().map_err(Error::Invalid)?;
    let key = SigningKey::from_pem(&pem).map_err(Error::Invalid)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&private)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .map_err(|e| Error::io(&private, e))?;
    std::fs::write(&public, key.public().to_pem()).map_err(|e| Error::io(&public, e))?;
    println!(
        "wrote {} (keep it secret) and {} ({})",
        private.display(),
        public.display(),
        key.public().fingerprint()
    );
    Ok(0)
}

/// `repository@sha256:...` split in two.
fn split_reference(reference: &str) -> Result<(&str, &str), Error> {
    reference
        .split_once('@')
        .filter(|(r, d)| !r.is_empty() && d.starts_with("sha256:"))
        .ok_or_else(|| Error::Invalid(format!("{reference}: repository@sha256:<digest> expected")))
}

/// `kaasctl stack sign`.
pub async fn sign(args: &StackSignArgs) -> Result<u8, Error> {
    let (repository, digest) = split_reference(&args.reference)?;
    let key = crate::input::signing_key(&args.key)?;
    let fetcher = fetcher_for(repository, args.plain_http);
    fetcher.sign(repository, digest, &key).await?;
    println!(
        "signed {repository}@{digest} with {}",
        key.public().fingerprint()
    );
    Ok(0)
}

/// Reads a JSON summary written by an earlier step.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Input {
        file: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Why `--auto-merge` must not merge, if it must not.
pub fn merge_refusal(update: &Summary, e2e: &E2eSummary) -> Option<String> {
    if !update.compliant {
        return Some(format!(
            "the update is not compliant: {}",
            update.findings.first().cloned().unwrap_or_default()
        ));
    }
    if !e2e.passed {
        let failed = e2e.steps.iter().find(|s| s.failed());
        return Some(format!(
            "the e2e run failed{}",
            failed.map_or(String::new(), |s| format!(
                " at {:?}: {}",
                s.name, s.message
            ))
        ));
    }
    if e2e.version != update.to {
        return Some(format!(
            "the e2e run tested {}, the update made {}",
            e2e.version, update.to
        ));
    }
    None
}

/// `kaasctl stack release`: exit 0 released, 2 refused to merge.
pub async fn run(args: &StackReleaseArgs) -> Result<u8, Error> {
    let key = crate::input::signing_key(&args.signing_key)?;
    let e2e: Option<E2eSummary> = args.e2e_summary.as_deref().map(read_json).transpose()?;
    if args.auto_merge {
        let (Some(update_path), Some(e2e)) = (&args.summary, &e2e) else {
            return Err(Error::Invalid(
                "--auto-merge needs --summary and --e2e-summary".into(),
            ));
        };
        let update: Summary = read_json(update_path)?;
        if let Some(why) = merge_refusal(&update, e2e) {
            println!("not merged: {why}");
            return Ok(2);
        }
        let branch = update.branch.clone().ok_or_else(|| Error::Input {
            file: update_path.display().to_string(),
            message: "branch: none (stack update ran with --no-commit)".into(),
        })?;
        let forge = Forge::new(&args.forge)?;
        let number = forge.pull_of(&branch).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "no open pull request for {branch}: nothing to merge"
            ))
        })?;
        let head = git(&args.dir, &["rev-parse", &format!("refs/heads/{branch}")])?;
        forge.merge(number, &head).await?;
        println!("merged pull request #{number} ({branch})");
        git(&args.dir, &["fetch", "--quiet", &args.remote, &args.base])?;
        git(
            &args.dir,
            &["checkout", "--quiet", "--detach", "FETCH_HEAD"],
        )?;
    }
    let release = load(&args.dir)?;
    if let Some(e2e) = &e2e
        && e2e.content_digest != release.digest
    {
        return Err(Error::Invalid(format!(
            "{} has content {}, the e2e run tested {}: not published",
            release.id(),
            release.digest,
            e2e.content_digest
        )));
    }
    let commit = git(&args.dir, &["rev-parse", "HEAD"])?;
    let s = &release.stack;
    let tags = [s.version.clone(), args.channel_tag.clone()];
    let fetcher = fetcher_for(&args.stack_repository, args.plain_http);
    let digest = fetcher
        .push_tagged(&args.stack_repository, &release, &tags)
        .await?;
    fetcher.sign(&args.stack_repository, &digest, &key).await?;
    // What an operator requiring this key will do, done once here.
    fetcher
        .verify_signed(
            &args.stack_repository,
            &digest,
            &[key.public()],
            "--signing-key",
        )
        .await?;
    let git_tag = format!("{}-{}-v{}", s.provider, s.name, s.version);
    git(
        &args.dir,
        &[
            "tag",
            "-a",
            &git_tag,
            "-m",
            &format!("{} {}", release.id(), digest),
            &commit,
        ],
    )?;
    git(
        &args.dir,
        &[
            "push",
            "--quiet",
            &args.remote,
            &format!("refs/tags/{git_tag}"),
        ],
    )?;
    println!(
        "released {} as {}@{digest} (tags {}), signed with {}; commit {commit} tagged {git_tag}",
        release.id(),
        args.stack_repository,
        tags.join(", "),
        key.public().fingerprint()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(compliant: bool) -> Summary {
        Summary {
            stack: "docker/scs".into(),
            from: "1.0.0".into(),
            to: "1.0.1".into(),
            reason: "base scs 1.0.1".into(),
            branch: Some("stack-update/docker-scs-1.0.1".into()),
            compliant,
            findings: if compliant {
                vec![]
            } else {
                vec!["cilium is missing".into()]
            },
            changelog: String::new(),
        }
    }

    fn e2e(version: &str, passed: bool) -> E2eSummary {
        E2eSummary {
            stack: "docker/scs".into(),
            version: version.into(),
            content_digest: "sha256:1".into(),
            candidate: String::new(),
            passed,
            steps: vec![crate::junit::Case {
                name: "canary".into(),
                seconds: 1.0,
                result: if passed { "passed" } else { "failed" }.into(),
                message: "Ready False".into(),
            }],
        }
    }

    #[test]
    fn only_a_compliant_update_with_a_passed_e2e_of_that_version_is_merged() {
        assert_eq!(merge_refusal(&update(true), &e2e("1.0.1", true)), None);
        let why = merge_refusal(&update(false), &e2e("1.0.1", true)).unwrap();
        assert!(why.contains("not compliant: cilium"), "{why}");
        let why = merge_refusal(&update(true), &e2e("1.0.1", false)).unwrap();
        assert!(why.contains("failed at \"canary\": Ready False"), "{why}");
        let why = merge_refusal(&update(true), &e2e("1.0.2", true)).unwrap();
        assert!(why.contains("tested 1.0.2"), "{why}");
    }
}
