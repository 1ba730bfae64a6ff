//! The release bot, `kaasctl stack update` and `kaasctl stack pr`, on a real git repository
//! served by `git daemon` on loopback, the real OCI registry (Debian's docker-registry on
//! loopback) and a stand-in for the forge's REST API (GitHub's cannot be reached here): a new
//! base release pushed to the registry moves the Hetzner overlay onto it on a branch, with the
//! upgrade edge and a changelog, pushed with exactly one pull request, which a second run
//! updates; an up-to-date overlay has nothing to do; a base that drops a component the overlay
//! patches gives a pull request marked failed with the compliance message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies the folder `from` to `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// `git` in `dir`; its stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output()?;
    ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A git work tree (on `main`, with an identity) holding these shipped stacks, committed.
fn repository_with(stacks: &[&str]) -> Result<tempfile::TempDir> {
    let work = tempfile::tempdir()?;
    let repo = work.path();
    git(repo, &["init", "-q", "-b", "main"])?;
    git(repo, &["config", "user.email", "ci@example.invalid"])?;
    git(repo, &["config", "user.name", "ci"])?;
    for stack in stacks {
        copy_dir(&repo_root().join("stacks").join(stack), &repo.join(stack))?;
    }
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "stacks as shipped"])?;
    Ok(work)
}

const TOKEN: &str = "forge-token-never-printed";

/// `kaasctl <args>` (with the forge token in its environment): exit code and output.
fn kaasctl(args: &[&str]) -> Result<(i32, String)> {
    kaasctl_with(args, &[])
}

/// `kaasctl <args>` with the forge token and `env` in its environment.
fn kaasctl_with(args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String)> {
    let out = Command::new(kaas_e2e::binary("kaasctl")?)
        .args(args)
        .env("KAAS_FORGE_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(-1), format!("{stdout}{stderr}")))
}

/// The shipped base as release `version`, changed by `edit` on its stack.yaml, pushed to
/// `repository` with kaasctl.
/// Pushes the shipped base as `version` (edited by `edit`) to `repository`; its digest.
fn push_base(repository: &str, version: &str, edit: impl Fn(String) -> String) -> Result<String> {
    let dir = tempfile::tempdir()?;
    copy_dir(&repo_root().join("stacks/base"), dir.path())?;
    let path = dir.path().join("stack.yaml");
    let text = std::fs::read_to_string(&path)?
        .replace("\nversion: 1.0.0\n", &format!("\nversion: {version}\n"));
    std::fs::write(&path, edit(text))?;
    let dir_arg = dir.path().display().to_string();
    let (code, out) = kaasctl(&["stack", "push", "--plain-http", &dir_arg, repository])?;
    ensure!(code == 0, "push base {version}: {out}");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{repository}@")))
        .map(String::from)
        .with_context(|| format!("no digest in: {out}"))
}

/// `git daemon` serving the bare repositories under `dir` on a free loopback port, pushes
/// allowed; stopped on drop.
struct GitDaemon {
    child: std::process::Child,
    url: String,
}

impl GitDaemon {
    fn start(dir: &Path) -> Result<GitDaemon> {
        let port = kaas_e2e::free_port()?;
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", dir.display()),
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let daemon = GitDaemon {
            child,
            url: format!("git://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                std::time::Instant::now() < deadline,
                "git daemon did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(daemon)
    }
}

/// A bare repository `stacks.git` (on `main`) served by `git daemon`, set as `repo`'s
/// `origin` with `main` pushed; the folder and the daemon live as long as the pair.
fn served_remote(repo: &Path) -> Result<(tempfile::TempDir, GitDaemon)> {
    let served = tempfile::tempdir()?;
    git(
        served.path(),
        &["init", "-q", "--bare", "-b", "main", "stacks.git"],
    )?;
    let daemon = GitDaemon::start(served.path())?;
    let url = format!("{}/stacks.git", daemon.url);
    git(repo, &["remote", "add", "origin", &url])?;
    git(repo, &["push", "-q", "origin", "main"])?;
    Ok((served, daemon))
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a release-bot.sh run printed (stdout, then stderr), once it succeeded and printed no
/// token.
fn bot_said(script: &std::process::Output) -> Result<String> {
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&script.stdout),
        String::from_utf8_lossy(&script.stderr)
    );
    ensure!(script.status.success(), "release-bot.sh: {said}");
    assert!(!said.contains(TOKEN), "the token is never printed: {said}");
    Ok(said)
}

#[tokio::test]
async fn a_new_base_release_becomes_a_pull_request_with_changelog() -> Result<()> {
    let registry = kaas_testenv::registry::Registry::start().await?;
    let repository = format!("{}/stacks/base-scs", registry.addr());

    // A git repository holding the Hetzner overlay as shipped (on base scs 1.0.0).
    let work = repository_with(&["hetzner"])?;
    let repo = work.path();
    let overlay = repo.join("hetzner");
    // Its remote: a bare repository served on loopback.
    let (_served, _daemon) = served_remote(repo)?;
    let forge = kaas_testenv::forge::FakeForge::start(TOKEN)?;
    let overlay_arg = overlay.display().to_string();
    let out_dir = tempfile::tempdir()?;
    let summary = out_dir.path().join("summary.json");
    let summary_arg = summary.display().to_string();
    let update = |within: &str| {
        kaasctl(&[
            "stack",
            "update",
            &overlay_arg,
            "--base-repository",
            &repository,
            "--plain-http",
            "--within",
            within,
            "--summary",
            &summary_arg,
        ])
    };
    let pr = || {
        kaasctl(&[
            "stack",
            "pr",
            &overlay_arg,
            "--summary",
            &summary_arg,
            "--repository",
            "scs/stacks",
            "--api-url",
            &forge.api_url,
        ])
    };

    // The base's patch release 1.0.1 brings a newer metrics-server; 1.1.0 is out of the
    // patch policy.
    push_base(&repository, "1.0.0", |t| t)?;
    push_base(&repository, "1.0.1", |t| {
        t.replace("version: 0.8.0", "version: 0.8.1")
    })?;
    push_base(&repository, "1.1.0", |t| t)?;

    let (code, out) = update("patch")?;
    ensure!(code == 0, "stack update: {out}");
    assert_eq!(
        git(repo, &["branch", "--show-current"])?,
        "stack-update/hetzner-scs-1.0.1",
        "{out}"
    );
    assert_eq!(
        git(repo, &["log", "-1", "--format=%s"])?,
        "hetzner/scs 1.0.1: base scs 1.0.1"
    );
    assert_eq!(git(repo, &["status", "--porcelain"])?, "", "all committed");
    let stack = std::fs::read_to_string(overlay.join("stack.yaml"))?;
    assert!(stack.contains("\nversion: 1.0.1\n"), "{stack}");
    assert!(stack.contains("upgradeFrom: [\"1.0.0\"]"), "{stack}");
    assert!(
        stack.contains("base: {name: scs, version: 1.0.1}"),
        "{stack}"
    );
    assert!(
        stack.starts_with("# The scs cluster stack for Hetzner Cloud"),
        "comments are kept"
    );
    let release = kaas_stack::Release::load_dir(&overlay)?;
    assert_eq!(release.stack.version, "1.0.1");
    let metrics = release
        .stack
        .addons
        .iter()
        .find(|a| a.name == "metrics-server")
        .context("metrics-server")?;
    assert_eq!(metrics.version, "0.8.1", "the carried base is the new one");
    let changelog = std::fs::read_to_string(overlay.join("CHANGELOG.md"))?;
    assert!(
        changelog.starts_with("# Changelog\n\n## hetzner/scs 1.0.1 ("),
        "{changelog}"
    );
    assert!(
        changelog.contains("- base scs 1.0.0 -> scs 1.0.1\n")
            && changelog.contains("- add-on metrics-server 0.8.0 -> 0.8.1\n")
            && changelog.contains("Compliance: passed"),
        "{changelog}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
    assert_eq!(json["to"], "1.0.1");
    assert_eq!(json["compliant"], true);

    // Another user's pull request from a fork's branch of the same name (Gitea lists it for
    // the bot's head filter): never taken for the bot's.
    let fork = forge.open_from_fork(
        "scs/stacks",
        "mallory/stacks",
        "stack-update/hetzner-scs-1.0.1",
    );
    // Pushed, with exactly one pull request of its own; a second run updates it.
    for run in 1..=2 {
        let (code, out) = pr()?;
        ensure!(code == 0, "stack pr: {out}");
        assert!(!out.contains(TOKEN), "the token is never printed: {out}");
        let pulls = forge.pulls();
        assert_eq!(pulls.len(), 2, "{pulls:?}");
        let theirs = pulls
            .iter()
            .find(|p| p.number == fork)
            .context("the fork's")?;
        assert_eq!(
            (theirs.updates, theirs.labels.len(), theirs.title.as_str()),
            (0, 0, "not the bot's"),
            "another user's pull request was touched"
        );
        let pull = pulls
            .iter()
            .find(|p| p.number != fork)
            .context("the bot's")?;
        assert_eq!(pull.head_repository, "scs/stacks");
        assert_eq!(
            (pull.head.as_str(), pull.base.as_str(), pull.title.as_str()),
            (
                "stack-update/hetzner-scs-1.0.1",
                "main",
                "hetzner/scs 1.0.1: base scs 1.0.1"
            )
        );
        assert_eq!(pull.body, json["changelog"].as_str().unwrap_or_default());
        assert_eq!(pull.labels, ["stack-update"]);
        assert_eq!(pull.updates, run - 1);
    }
    let remote = git(
        repo,
        &[
            "ls-remote",
            "origin",
            "refs/heads/stack-update/hetzner-scs-1.0.1",
        ],
    )?;
    assert!(
        remote.starts_with(&git(repo, &["rev-parse", "HEAD"])?),
        "{remote}"
    );
    let statuses = forge.statuses();
    assert!(
        statuses
            .iter()
            .all(|s| s.state == "success" && s.context == "kaas/compliance"),
        "{statuses:?}"
    );
    assert_eq!(forge.unauthorized(), 0);

    // Up to date within the policy: nothing to do, nothing committed.
    let head = git(repo, &["rev-parse", "HEAD"])?;
    let (code, out) = update("patch")?;
    ensure!(code == 0, "{out}");
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(git(repo, &["rev-parse", "HEAD"])?, head);

    // Base 1.1.1 drops Cilium, which the overlay patches and builds on: the update is
    // committed and marked failed, naming why.
    push_base(&repository, "1.1.1", |t| {
        let start = t.find("  - name: cilium").expect("cilium in the base");
        let end = t
            .find("  - name: metrics-server")
            .expect("metrics-server in the base");
        let mut t = format!("{}{}", &t[..start], &t[end..]);
        t = t.replace("    dependsOn: [cilium]\n", "");
        t
    })?;
    let (code, out) = update("minor")?;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        git(repo, &["branch", "--show-current"])?,
        "stack-update/hetzner-scs-1.1.0"
    );
    let changelog = std::fs::read_to_string(overlay.join("CHANGELOG.md"))?;
    let newest = changelog.split("\n## ").nth(1).context("an entry")?;
    assert!(
        newest.starts_with("hetzner/scs 1.1.0") && newest.contains("Compliance: FAILED"),
        "{changelog}"
    );
    assert!(
        newest.contains("cilium"),
        "the failure names the component: {newest}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
    assert_eq!(json["compliant"], false);
    assert!(
        changelog.contains("## hetzner/scs 1.0.1 ("),
        "the earlier entry is kept"
    );
    // Its pull request is marked failed, with the compliance message.
    let (code, out) = pr()?;
    ensure!(code == 0, "stack pr: {out}");
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 3, "{pulls:?}");
    let failed = &pulls[2];
    assert_eq!(
        failed.title,
        "hetzner/scs 1.1.0: base scs 1.1.1 (compliance FAILED)"
    );
    assert_eq!(failed.labels, ["stack-update", "compliance-failed"]);
    assert!(
        failed.body.contains("Compliance: FAILED"),
        "{}",
        failed.body
    );
    let status = forge.statuses().pop().context("a status")?;
    assert_eq!(status.state, "failure");
    assert!(status.description.contains("cilium"), "{status:?}");
    assert_eq!(status.sha, git(repo, &["rev-parse", "HEAD"])?);

    // And it is never merged, whatever an e2e summary says.
    let keys = tempfile::tempdir()?;
    let prefix = keys.path().join("release").display().to_string();
    let (code, out) = kaasctl(&["stack", "keygen", "--prefix", &prefix])?;
    ensure!(code == 0, "keygen: {out}");
    let e2e = out_dir.path().join("e2e.json");
    std::fs::write(
        &e2e,
        serde_json::json!({
            "stack": "hetzner/scs", "version": "1.1.0", "contentDigest": "sha256:x",
            "candidate": "", "passed": true, "steps": [],
        })
        .to_string(),
    )?;
    let (code, out) = kaasctl(&[
        "stack",
        "release",
        &overlay_arg,
        "--stack-repository",
        &format!("{}/stacks/hetzner-scs", registry.addr()),
        "--signing-key",
        &format!("{prefix}.key"),
        "--auto-merge",
        "--summary",
        &summary_arg,
        "--e2e-summary",
        &e2e.display().to_string(),
        "--repository",
        "scs/stacks",
        "--api-url",
        &forge.api_url,
        "--plain-http",
    ])?;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("not merged: the update is not compliant") && out.contains("cilium"),
        "{out}"
    );
    assert!(forge.pulls().iter().all(|p| p.merged.is_none()));

    // The shell entry point for any CI, from main: the patch update again, its pull request
    // updated rather than opened twice, the work tree back on main.
    let script = Command::new(repo_root().join("deploy/release-bot/release-bot.sh"))
        .arg(&overlay)
        .env("KAASCTL", kaas_e2e::binary("kaasctl")?)
        .env("KAAS_BASE_REPOSITORY", &repository)
        .env("KAAS_PLAIN_HTTP", "1")
        .env("KAAS_FORGE_TOKEN", TOKEN)
        .env("KAAS_FORGE_REPOSITORY", "scs/stacks")
        .env("KAAS_FORGE_API", &forge.api_url)
        .output()?;
    let said = bot_said(&script)?;
    assert!(said.contains("pull request #2 updated"), "{said}");
    assert_eq!(git(repo, &["branch", "--show-current"])?, "main");
    let pulls = forge.pulls();
    assert_eq!(pulls.len(), 3, "{pulls:?}");
    assert_eq!(
        pulls[1].updates, 2,
        "the patch update's pull request, updated again"
    );
    Ok(())
}

/// With `--base-signing-key`, a base release is taken only when signed with that key: an
/// unsigned one and one signed with another key stop the update, naming the release, and
/// nothing is written; signed with the key, it is taken. The release bot passes the key
/// (`KAAS_BASE_SIGNING_KEY`).
#[tokio::test]
async fn an_unsigned_or_otherwise_signed_base_is_refused_when_a_key_is_required() -> Result<()> {
    let registry = kaas_testenv::registry::Registry::start().await?;
    let repository = format!("{}/stacks/base-scs", registry.addr());
    let keys = tempfile::tempdir()?;
    let key = |name: &str| keys.path().join(name).display().to_string();
    for name in ["base", "stranger"] {
        let (code, out) = kaasctl(&["stack", "keygen", "--prefix", &key(name)])?;
        ensure!(code == 0, "keygen: {out}");
    }
    let work = tempfile::tempdir()?;
    let overlay = work.path().join("hetzner");
    copy_dir(&repo_root().join("stacks/hetzner"), &overlay)?;
    let before = std::fs::read_to_string(overlay.join("stack.yaml"))?;
    push_base(&repository, "1.0.0", |t| t)?;
    let digest = push_base(&repository, "1.0.1", |t| t)?;
    let overlay_arg = overlay.display().to_string();
    let public = format!("{}.pub", key("base"));
    let update = || {
        kaasctl(&[
            "stack",
            "update",
            &overlay_arg,
            "--base-repository",
            &repository,
            "--plain-http",
            "--no-commit",
            "--base-signing-key",
            &public,
        ])
    };
    let sign = |name: &str| {
        kaasctl(&[
            "stack",
            "sign",
            &format!("{repository}@{digest}"),
            "--key",
            &format!("{}.key", key(name)),
            "--plain-http",
        ])
    };

    let (code, out) = update()?;
    assert_ne!(code, 0, "an unsigned base must stop the update: {out}");
    assert!(
        out.contains(&format!("base release {repository}@{digest} is refused"))
            && out.contains("not signed"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(overlay.join("stack.yaml"))?, before);

    let (code, out) = sign("stranger")?;
    ensure!(code == 0, "sign: {out}");
    let (code, out) = update()?;
    assert_ne!(
        code, 0,
        "a base signed with another key must stop the update: {out}"
    );
    assert!(
        out.contains("is refused") && out.contains("none of its 1 signature(s) verifies"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(overlay.join("stack.yaml"))?, before);

    let (code, out) = sign("base")?;
    ensure!(code == 0, "sign: {out}");
    let (code, out) = update()?;
    assert_eq!(code, 0, "a base signed with the key is taken: {out}");
    let release = kaas_stack::Release::load_dir(&overlay)?;
    assert_eq!(release.stack.base.map(|b| b.version), Some("1.0.1".into()));
    Ok(())
}

#[tokio::test]
async fn a_dirty_work_tree_is_refused_before_anything_is_written() -> Result<()> {
    let work = tempfile::tempdir()?;
    let repo = work.path();
    git(repo, &["init", "-q", "-b", "main"])?;
    let overlay = repo.join("hetzner");
    copy_dir(&repo_root().join("stacks/hetzner"), &overlay)?;
    let index = work.path().join("index");
    copy_dir(&repo_root().join("stacks/base"), &index.join("1.0.1"))?;
    let base = index.join("1.0.1/stack.yaml");
    std::fs::write(
        &base,
        std::fs::read_to_string(&base)?.replace("\nversion: 1.0.0\n", "\nversion: 1.0.1\n"),
    )?;
    let before = std::fs::read_to_string(overlay.join("stack.yaml"))?;
    let (code, out) = kaasctl(&[
        "stack",
        "update",
        &overlay.display().to_string(),
        "--base-index",
        &index.display().to_string(),
    ])?;
    assert_ne!(code, 0);
    assert!(out.contains("uncommitted changes"), "{out}");
    assert_eq!(std::fs::read_to_string(overlay.join("stack.yaml"))?, before);
    assert!(!overlay.join("base").exists());

    // With --no-commit the local index works without git.
    let (code, out) = kaasctl(&[
        "stack",
        "update",
        &overlay.display().to_string(),
        "--base-index",
        &index.display().to_string(),
        "--no-commit",
    ])?;
    assert_eq!(code, 0, "{out}");
    let release = kaas_stack::Release::load_dir(&overlay)?;
    assert_eq!(
        (
            release.stack.version.as_str(),
            release.stack.base.map(|b| b.version)
        ),
        ("1.0.1", Some("1.0.1".to_string()))
    );
    Ok(())
}

#[tokio::test]
async fn a_kubernetes_patch_reaches_the_base_then_an_overlay_with_its_node_image() -> Result<()> {
    let registry = kaas_testenv::registry::Registry::start().await?;
    let repository = format!("{}/stacks/base-scs", registry.addr());
    let work = repository_with(&["base", "openstack"])?;
    let repo = work.path();

    // Upstream: 1.34.2 is out, 1.36 too (a new minor is not an update), 1.33 has ended.
    let out_dir = tempfile::tempdir()?;
    let document = out_dir.path().join("kubernetes.yaml");
    std::fs::write(
        &document,
        "releases:\n- {version: 1.34.1, date: 2025-09-09}\n- {version: 1.34.2, date: 2026-11-12}\n\
         - {version: 1.35.0, date: 2026-08-01}\n- {version: 1.36.0, date: 2026-11-20}\n\
         endOfLife:\n  \"1.33\": \"2026-06-28\"\n",
    )?;
    let base = repo.join("base");
    let base_arg = base.display().to_string();
    let document_arg = document.display().to_string();
    let (code, out) = kaasctl(&["stack", "update", &base_arg, "--kubernetes", &document_arg])?;
    ensure!(code == 0, "stack update --kubernetes: {out}");
    assert_eq!(
        git(repo, &["log", "-1", "--format=%s"])?,
        "base/scs 1.0.1: Kubernetes 1.34.2, without 1.33.4"
    );
    let release = kaas_stack::Release::load_dir(&base)?;
    assert_eq!(
        release.stack.kubernetes_versions,
        ["1.34.1", "1.34.2", "1.35.0"]
    );
    assert_eq!(release.stack.upgrade_from, ["1.0.0"]);
    let changelog = std::fs::read_to_string(base.join("CHANGELOG.md"))?;
    assert!(
        changelog.contains("- Kubernetes 1.34.2 added\n")
            && changelog.contains("- Kubernetes 1.33.4 removed\n")
            && changelog.contains("Compliance: not checked"),
        "{changelog}"
    );
    let (code, out) = kaasctl(&["stack", "update", &base_arg, "--kubernetes", &document_arg])?;
    assert!(code == 0 && out.contains("nothing to do"), "{out}");

    // The base release is pushed; the OpenStack overlay follows it, with a node image for
    // 1.34.2 made like 1.34.1's and 1.33.4's gone.
    let (code, out) = kaasctl(&["stack", "push", "--plain-http", &base_arg, &repository])?;
    ensure!(code == 0, "push: {out}");
    git(repo, &["checkout", "-q", "main"])?;
    let overlay = repo.join("openstack");
    let (code, out) = kaasctl(&[
        "stack",
        "update",
        &overlay.display().to_string(),
        "--base-repository",
        &repository,
        "--plain-http",
    ])?;
    ensure!(code == 0, "stack update: {out}");
    let release = kaas_stack::Release::load_dir(&overlay)?;
    assert_eq!(
        release.stack.kubernetes_versions,
        ["1.34.1", "1.34.2", "1.35.0"]
    );
    let images: Vec<(&str, &str, Option<&str>)> = release
        .stack
        .node_images
        .iter()
        .map(|i| {
            (
                i.kubernetes_version.as_str(),
                i.name.as_str(),
                i.url.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        images,
        [
            (
                "1.34.1",
                "ubuntu-capi-image-v1.34.1",
                Some("https://images.example.com/capi/ubuntu-2404-kube-v1.34.1.qcow2")
            ),
            (
                "1.34.2",
                "ubuntu-capi-image-v1.34.2",
                Some("https://images.example.com/capi/ubuntu-2404-kube-v1.34.2.qcow2")
            ),
            (
                "1.35.0",
                "ubuntu-capi-image-v1.35.0",
                Some("https://images.example.com/capi/ubuntu-2404-kube-v1.35.0.qcow2")
            ),
        ]
    );
    let changelog = std::fs::read_to_string(overlay.join("CHANGELOG.md"))?;
    assert!(
        changelog.contains("- node image ubuntu-capi-image-v1.34.2 (1.34.2) added\n")
            && changelog.contains("Compliance: passed"),
        "{changelog}"
    );
    Ok(())
}

#[tokio::test]
async fn an_oversized_kubernetes_release_list_is_refused_and_nothing_written() -> Result<()> {
    // A peer that answers with 2 MiB and no length: read up to the 1 MiB bound, then refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/releases.yaml", listener.local_addr()?);
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::{Read, Write};
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let line = "- {version: 1.34.9}\n".repeat(1024);
            for _ in 0..(2 << 20) / line.len() + 1 {
                if stream.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    let dir = tempfile::tempdir()?;
    copy_dir(&repo_root().join("stacks/base"), dir.path())?;
    let before = std::fs::read_to_string(dir.path().join("stack.yaml"))?;
    let (code, out) = kaasctl(&[
        "stack",
        "update",
        &dir.path().display().to_string(),
        "--kubernetes",
        &url,
        "--no-commit",
    ])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("larger than 1048576 bytes"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stack.yaml"))?,
        before
    );
    assert!(!dir.path().join("CHANGELOG.md").exists());
    Ok(())
}

/// The Docker overlay's push for version `version` (upgrading from `from`), signed with
/// `key` when given: a release the operators find in the release repository.
async fn push_docker(
    fetcher: &kaas_stack::source::Fetcher,
    repository: &str,
    version: &str,
    from: &str,
    key: Option<&kaas_stack::signature::SigningKey>,
) -> Result<String> {
    let dir = tempfile::tempdir()?;
    copy_dir(&repo_root().join("stacks/docker"), dir.path())?;
    let path = dir.path().join("stack.yaml");
    let text = std::fs::read_to_string(&path)?.replace(
        "\nversion: 1.0.0\n",
        &format!("\nversion: {version}\nupgradeFrom: [\"{from}\"]\n"),
    );
    std::fs::write(&path, text)?;
    let release = kaas_stack::Release::load_dir(dir.path())?;
    let digest = fetcher.push(repository, &release).await?;
    if let Some(key) = key {
        fetcher.sign(repository, &digest, key).await?;
    }
    Ok(digest)
}

/// The whole bot on the whole system (real API servers, kaas-webhooks and the three operators
/// as processes, the CAPI stand-in): a new base release becomes a pull request for the Docker
/// overlay; `stack e2e` brings a canary on the candidate to Ready and Compliant and upgrades
/// another from 1.0.0, reports on the pull request and writes JUnit; `stack release
/// --auto-merge` merges, tags, pushes and signs; the operators, requiring signatures, find
/// the release and offer it to an existing cluster. Releases unsigned or signed with another
/// key are not offered, and a ClusterStack naming one says why.
#[tokio::test]
async fn a_tested_release_is_merged_signed_and_offered_and_unsigned_ones_are_refused() -> Result<()>
{
    use api::v1beta1::{ClusterStack, KaasCluster};
    use kube::api::{Api, PostParams};

    kaas_testenv::install_crypto_provider();
    let registry = kaas_testenv::registry::Registry::start().await?;
    let base_repository = format!("{}/stacks/base-scs", registry.addr());
    let releases = format!("{}/stacks/docker-scs", registry.addr());
    let candidates = format!("{}/ci/docker-scs", registry.addr());

    // Keys: the release key, a CI key for candidates, and a stranger's.
    let keys = tempfile::tempdir()?;
    let prefix = |n: &str| keys.path().join(n).display().to_string();
    for name in ["release", "ci", "stranger"] {
        let (code, out) = kaasctl(&["stack", "keygen", "--prefix", &prefix(name)])?;
        ensure!(code == 0, "keygen: {out}");
    }
    let private = |n: &str| -> Result<kaas_stack::signature::SigningKey> {
        let pem = std::fs::read_to_string(format!("{}.key", prefix(n)))?;
        kaas_stack::signature::SigningKey::from_pem(&pem).map_err(anyhow::Error::msg)
    };

    let system = kaas_e2e::system::System::start(
        &kaas_e2e::system::Options {
            operator_args: vec![
                format!("--stack-repository={releases}"),
                format!("--plain-http-registry={}", registry.addr()),
                "--stack-discovery-interval=5".into(),
                format!(
                    "--stack-signing-key={}.pub,{}.pub",
                    prefix("release"),
                    prefix("ci")
                ),
            ],
            ..Default::default()
        },
        &|_, _| {},
    )
    .await?;
    let client = system.management.client().await?;
    let kubeconfig = system.management.kubeconfig_path().display().to_string();

    // A tenant's cluster on the shipped Docker release 1.0.0.
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "team"}}))?;
    Api::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let tenant: KaasCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "metadata": {"name": "tenant", "namespace": "team"},
        "spec": {
            "providerClassName": "docker",
            "clusterStack": {"name": "scs", "version": "1.0.0"},
            "kubernetesVersion": "1.34",
            "controlPlane": {"replicas": 1},
            "workers": [{"name": "md-0", "replicas": 1, "machineType": "default"}],
        },
    }))?;
    // The ProviderClass of the examples.
    let class: api::v1beta1::ProviderClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "ProviderClass",
        "metadata": {"name": "docker"},
        "spec": {"controller": "kaas.scs.community/docker"},
    }))?;
    let classes: Api<api::v1beta1::ProviderClass> = Api::all(client.clone());
    if classes.get_opt("docker").await?.is_none() {
        classes.create(&PostParams::default(), &class).await?;
    }

    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), "team");
    // kaas-webhooks admits it once its cache has the class.
    kaas_e2e::wait_for("team/tenant created", Duration::from_secs(20), || async {
        Ok(clusters.create(&PostParams::default(), &tenant).await.ok())
    })
    .await?;
    // The Docker overlay in git, served with git daemon; the forge merges in it.
    let work = repository_with(&["docker"])?;
    let repo = work.path();
    let overlay = repo.join("docker");
    let (served, _daemon) = served_remote(repo)?;
    let forge = kaas_testenv::forge::FakeForge::start(TOKEN)?;
    forge.serve_git("scs/stacks", &served.path().join("stacks.git"));
    let out = tempfile::tempdir()?;
    let path = |n: &str| out.path().join(n).display().to_string();

    // 1-3. A new base release; the bot's shell entry point, as CI runs it: the update, its
    // pull request, the e2e run on the management cluster reported on the pull request, and
    // with a passed run the merge and the signed release.
    push_base(&base_repository, "1.0.0", |t| t)?;
    push_base(&base_repository, "1.0.1", |t| {
        t.replace("version: 0.8.0", "version: 0.8.1")
    })?;
    let script = Command::new(repo_root().join("deploy/release-bot/release-bot.sh"))
        .arg(&overlay)
        .env("KAASCTL", kaas_e2e::binary("kaasctl")?)
        .env("KUBECONFIG", &kubeconfig)
        .env("KAAS_BASE_REPOSITORY", &base_repository)
        .env("KAAS_PLAIN_HTTP", "1")
        .env("KAAS_FORGE_TOKEN", TOKEN)
        .env("KAAS_FORGE_REPOSITORY", "scs/stacks")
        .env("KAAS_FORGE_API", &forge.api_url)
        .env("KAAS_CANDIDATE_REPOSITORY", &candidates)
        .env("KAAS_CANDIDATE_KEY", format!("{}.key", prefix("ci")))
        .env("KAAS_AUTO_MERGE", "1")
        .env("KAAS_RELEASE_REPOSITORY", &releases)
        .env("KAAS_SIGNING_KEY", format!("{}.key", prefix("release")))
        .env("KAAS_REPORTS", out.path())
        .output()?;
    let said = bot_said(&script)?;
    assert!(said.contains("docker/scs 1.0.1: e2e PASSED"), "{said}");
    let junit = path("docker-e2e.xml");
    let xml = std::fs::read_to_string(&junit)?;
    assert!(
        xml.contains("tests=\"5\" failures=\"0\" errors=\"0\" skipped=\"0\""),
        "{xml}"
    );
    for step in [
        "a canary on the candidate becomes Ready and Compliant",
        "a canary on the previous release is upgraded to the candidate",
        "the canaries are deleted and nothing of them is left",
    ] {
        assert!(xml.contains(&format!("name=\"{step}\"")), "{xml}");
    }
    assert!(
        xml.contains("Ready and Compliant on 1.0.0")
            && xml.contains("then canary-1-0-1-upgrade Ready and Compliant on 1.0.1"),
        "{xml}"
    );
    let e2e_status = forge
        .statuses()
        .into_iter()
        .rfind(|s| s.context == "kaas/e2e")
        .context("an e2e status")?;
    assert_eq!(e2e_status.state, "success", "{e2e_status:?}");
    assert_eq!(
        e2e_status.sha,
        git(
            repo,
            &["rev-parse", "refs/heads/stack-update/docker-scs-1.0.1"]
        )?
    );
    let comments = forge.comments();
    assert!(
        comments
            .iter()
            .any(|(n, body)| *n == 1 && body.contains("docker/scs 1.0.1: passed")),
        "{comments:?}"
    );
    // The candidate is gone from the management cluster and never offered.
    let stacks: Api<ClusterStack> = Api::all(client.clone());
    assert!(stacks.get_opt("docker-scs-1-0-1").await?.is_none());
    let canaries: Api<KaasCluster> = Api::namespaced(client.clone(), "kaas-e2e");
    assert!(canaries.list(&Default::default()).await?.items.is_empty());

    // 3. Merged, tagged, pushed with its channel tag, signed.
    assert!(said.contains("merged pull request #1"), "{said}");
    let pull = forge
        .pulls()
        .into_iter()
        .next()
        .context("the pull request")?;
    let merge = pull.merged.context("merged")?;
    let bare = served.path().join("stacks.git");
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/main"])?, merge);
    assert_eq!(
        git(
            &bare,
            &["rev-parse", "refs/tags/docker-scs-v1.0.1^{commit}"]
        )?,
        merge,
        "the merge commit is tagged"
    );
    let fetcher = kaas_stack::source::Fetcher::new(None, vec![registry.addr().into()]);
    let digest = fetcher
        .discover(&releases)
        .await?
        .into_iter()
        .find(|d| d.tag == "1.0.1")
        .context("1.0.1 in the release repository")?
        .digest;
    assert!(said.contains(&digest) && said.contains("stable"), "{said}");
    let release_public = private("release")?.public();
    fetcher
        .verify_signed(&releases, &digest, &[release_public], "test")
        .await?;

    // 4. The operators find it, check its signature and offer it to the tenant's cluster.
    let offered = kaas_e2e::wait_for(
        "1.0.1 offered to team/tenant",
        Duration::from_secs(90),
        || async {
            Ok(clusters
                .get("tenant")
                .await?
                .status
                .filter(|s| s.available_upgrades.iter().any(|v| v == "1.0.1")))
        },
    )
    .await?;
    assert_eq!(offered.available_upgrades, ["1.0.1"]);
    let stack = stacks.get("docker-scs-1-0-1").await?;
    assert!(stack.is_ready());
    assert_eq!(
        stack
            .spec
            .source
            .clone()
            .and_then(|s| s.oci)
            .map(|o| o.digest),
        Some(digest.clone())
    );

    // 5. An unsigned release and one signed with a stranger's key are not offered...
    let unsigned = push_docker(&fetcher, &releases, "1.0.2", "1.0.0", None).await?;
    let stranger = private("stranger")?;
    let strangers = push_docker(&fetcher, &releases, "1.0.3", "1.0.0", Some(&stranger)).await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    for name in ["docker-scs-1-0-2", "docker-scs-1-0-3"] {
        assert!(stacks.get_opt(name).await?.is_none(), "{name} was offered");
    }
    // ... and a ClusterStack an administrator writes for one says why it is not used.
    for (version, digest, reason, says) in [
        (
            "1.0.2",
            &unsigned,
            "SignatureMissing",
            "the release is not signed",
        ),
        (
            "1.0.3",
            &strangers,
            "SignatureInvalid",
            "none of its 1 signature(s) verifies",
        ),
    ] {
        let name = format!("docker-scs-{}", version.replace('.', "-"));
        let mut object = stack.clone();
        object.metadata = Default::default();
        object.metadata.name = Some(name.clone());
        object.status = None;
        object.spec.version = version.into();
        object.spec.source = Some(api::v1beta1::StackSource {
            oci: Some(api::v1beta1::OciSource {
                repository: releases.clone(),
                digest: digest.clone(),
                public_key: None,
            }),
            ..Default::default()
        });
        stacks.create(&PostParams::default(), &object).await?;
        let refused = kaas_e2e::wait_for(
            &format!("{name} refused"),
            Duration::from_secs(30),
            || async {
                Ok(stacks.get(&name).await?.status.and_then(|s| {
                    s.conditions
                        .into_iter()
                        .find(|c| c.type_ == "Ready" && c.status == "False")
                }))
            },
        )
        .await?;
        assert_eq!(refused.reason, reason, "{refused:?}");
        assert!(refused.message.contains(says), "{refused:?}");
    }
    let tenant = clusters.get("tenant").await?.status.unwrap_or_default();
    assert_eq!(tenant.available_upgrades, ["1.0.1"]);
    Ok(())
}
