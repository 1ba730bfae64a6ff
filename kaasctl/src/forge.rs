//! `kaasctl stack pr DIR`: the release bot's second step. Pushes the branch `stack update`
//! committed to the git remote and opens its pull request through the forge's REST API
//! (GitHub's; Gitea's and Forgejo's take the same calls under their `/api/v1`), with the
//! changelog as its body, a label, and a commit status saying whether the release passed its
//! compliance check. A second run finds the open pull request of that branch and updates it
//! instead of opening another.
//!
//! The token comes from `KAAS_FORGE_TOKEN` and goes only into the `Authorization` header:
//! no message of this module prints it, and a forge's error is reported by status and
//! message only.

use serde_json::{Value, json};

use crate::cli::{ForgeArgs, ForgeKind, StackPrArgs};
use crate::error::Error;
use crate::git::git;
use crate::update::Summary;

/// A forge's REST API for one repository.
pub(crate) struct Forge {
    http: reqwest::Client,
    api: String,
    repository: String,
    kind: ForgeKind,
    token: String,
}

impl Forge {
    /// The forge `args` name, with the token from `KAAS_FORGE_TOKEN`.
    pub(crate) fn new(args: &ForgeArgs) -> Result<Forge, Error> {
        let repository = args.repository.clone().ok_or_else(|| {
            Error::Invalid("--repository (owner/name on the forge) is required here".into())
        })?;
        if repository
            .split_once('/')
            .is_none_or(|(o, n)| o.is_empty() || n.is_empty())
        {
            return Err(Error::Invalid(format!(
                "--repository {repository}: owner/name expected"
            )));
        }
        let token = std::env::var("KAAS_FORGE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Config("KAAS_FORGE_TOKEN is not set: the forge token".into()))?;
        Ok(Forge {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| Error::Invalid(format!("HTTP client: {e}")))?,
            api: args.api_url.trim_end_matches('/').to_string(),
            repository,
            kind: args.forge,
            token,
        })
    }

    fn owner(&self) -> &str {
        self.repository.split('/').next().unwrap_or_default()
    }

    /// Sets the commit status `context` of `sha` (GitHub caps a description at 140
    /// characters).
    pub(crate) async fn status(
        &self,
        sha: &str,
        context: &str,
        state: &str,
        description: &str,
    ) -> Result<(), Error> {
        let description: String = description.chars().take(140).collect();
        self.call(
            reqwest::Method::POST,
            &format!("statuses/{sha}"),
            Some(json!({"state": state, "context": context, "description": description})),
        )
        .await
        .map(drop)
    }

    /// Comments on pull request `number`.
    pub(crate) async fn comment(&self, number: u64, body: &str) -> Result<(), Error> {
        self.call(
            reqwest::Method::POST,
            &format!("issues/{number}/comments"),
            Some(json!({ "body": body })),
        )
        .await
        .map(drop)
    }

    /// Merges pull request `number` if its head is still `sha` (a merge commit); the merge
    /// commit when the forge says it (GitHub does, Gitea does not).
    pub(crate) async fn merge(&self, number: u64, sha: &str) -> Result<Option<String>, Error> {
        let answer = match self.kind {
            ForgeKind::Github => {
                self.call(
                    reqwest::Method::PUT,
                    &format!("pulls/{number}/merge"),
                    Some(json!({"sha": sha, "merge_method": "merge"})),
                )
                .await?
            }
            ForgeKind::Gitea => {
                self.call(
                    reqwest::Method::POST,
                    &format!("pulls/{number}/merge"),
                    Some(json!({"Do": "merge", "head_commit_id": sha})),
                )
                .await?
            }
        };
        Ok(answer["sha"].as_str().map(str::to_string))
    }

    /// The number of the open pull request of `branch`, if there is one.
    pub(crate) async fn pull_of(&self, branch: &str) -> Result<Option<u64>, Error> {
        self.open_pull(self.owner(), branch).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let url = format!("{}/repos/{}/{path}", self.api, self.repository);
        let auth = match self.kind {
            ForgeKind::Github => format!("Bearer {}", self.token),
            ForgeKind::Gitea => format!("token {}", self.token),
        };
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("authorization", auth)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "kaasctl-release-bot");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let what = format!("{method} {url}");
        let response = request
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("{what}: {}", crate::http::without_url(&e))))?;
        let status = response.status();
        let bytes = crate::http::read_capped(response, MAX_ANSWER)
            .await
            .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or("no message");
            return Err(Error::Invalid(format!("{what}: {status}: {message}")));
        }
        Ok(value)
    }

    /// The number of the open pull request of `branch` of this very repository (not of a
    /// fork: another user's pull request from a branch of the same name is never taken), if
    /// there is one.
    async fn open_pull(&self, owner: &str, branch: &str) -> Result<Option<u64>, Error> {
        // GitHub filters by `head`; Gitea ignores it: filter here as well, by the branch and
        // the repository it lives in.
        let found = self
            .call(
                reqwest::Method::GET,
                &format!("pulls?state=open&per_page=100&head={owner}:{branch}"),
                None,
            )
            .await?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["head"]["ref"] == branch
                    && p["head"]["repo"]["full_name"].as_str() == Some(self.repository.as_str())
            })
            .and_then(|p| p["number"].as_u64()))
    }
}

/// The most of a forge's answer read (a pull request list of 100 is far less).
const MAX_ANSWER: usize = 4 << 20;

/// The pull request's title for `summary`.
pub fn title(summary: &Summary) -> String {
    let mut t = format!("{} {}: {}", summary.stack, summary.to, summary.reason);
    if !summary.compliant {
        t.push_str(" (compliance FAILED)");
    }
    t
}

/// `kaasctl stack pr`: exit 0 when the pull request is open and current.
pub async fn run(args: &StackPrArgs) -> Result<u8, Error> {
    let text = std::fs::read_to_string(&args.summary).map_err(|e| Error::io(&args.summary, e))?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| Error::Input {
        file: args.summary.display().to_string(),
        message: e.to_string(),
    })?;
    let Some(branch) = summary.branch.clone() else {
        return Err(Error::Input {
            file: args.summary.display().to_string(),
            message: "branch: none (stack update ran with --no-commit)".into(),
        });
    };
    let forge = Forge::new(&args.forge)?;

    // The branch, pushed (forced: a second run replaces the bot's earlier commit).
    let sha = git(&args.dir, &["rev-parse", &format!("refs/heads/{branch}")])?;
    git(
        &args.dir,
        &[
            "push",
            "--force",
            "--quiet",
            &args.remote,
            &format!("refs/heads/{branch}:refs/heads/{branch}"),
        ],
    )?;

    let title = title(&summary);
    let body = summary.changelog.clone();
    let (number, verb) = match forge.pull_of(&branch).await? {
        Some(n) => {
            forge
                .call(
                    reqwest::Method::PATCH,
                    &format!("pulls/{n}"),
                    Some(json!({"title": title, "body": body})),
                )
                .await?;
            (n, "updated")
        }
        None => {
            let opened = forge
                .call(
                    reqwest::Method::POST,
                    "pulls",
                    Some(json!({"title": title, "head": branch, "base": args.base, "body": body})),
                )
                .await?;
            let n = opened["number"].as_u64().ok_or_else(|| {
                Error::Invalid("the forge opened a pull request without a number".into())
            })?;
            (n, "opened")
        }
    };
    let mut labels = vec![args.label.clone()];
    if !summary.compliant {
        labels.push("compliance-failed".into());
    }
    forge
        .call(
            reqwest::Method::POST,
            &format!("issues/{number}/labels"),
            Some(json!({"labels": labels})),
        )
        .await?;
    let (state, description) = if summary.compliant {
        ("success", "every base component is there".to_string())
    } else {
        (
            "failure",
            summary.findings.first().cloned().unwrap_or_default(),
        )
    };
    forge
        .status(&sha, "kaas/compliance", state, &description)
        .await?;
    println!("pull request #{number} {verb} for {branch} ({state}: {description})");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_update_says_so_in_its_title() {
        let mut s = Summary {
            stack: "hetzner/scs".into(),
            from: "1.0.0".into(),
            to: "1.0.1".into(),
            reason: "base scs 1.0.1".into(),
            branch: Some("stack-update/hetzner-scs-1.0.1".into()),
            compliant: true,
            findings: Vec::new(),
            changelog: String::new(),
        };
        assert_eq!(title(&s), "hetzner/scs 1.0.1: base scs 1.0.1");
        s.compliant = false;
        assert_eq!(
            title(&s),
            "hetzner/scs 1.0.1: base scs 1.0.1 (compliance FAILED)"
        );
    }
}
