//! A stand-in for a git forge's REST API (GitHub's shape) on loopback: the real forges cannot
//! be reached from the test machines. It serves the calls the release bot makes: list, open
//! and update pull requests, add labels, set commit statuses, comment, and merge; it keeps
//! what it was sent so a test can look, and refuses any other token with 401 as GitHub does.
//! A merge is a real one in the bare git repository given with [`FakeForge::serve_git`] (a
//! merge commit of the head branch into the base, as GitHub's default merge method makes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Result;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A pull request as the stand-in holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// `owner/repo`.
    pub repository: String,
    /// The branch it merges.
    pub head: String,
    /// `owner/repo` the branch lives in: the repository itself, or another user's fork.
    pub head_repository: String,
    /// The branch it merges into.
    pub base: String,
    /// Its title.
    pub title: String,
    /// Its body.
    pub body: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// How many times it was updated after it was opened.
    pub updates: u32,
    /// The merge commit, once merged (then it is closed).
    pub merged: Option<String>,
}

/// A commit status as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitStatus {
    /// The commit.
    pub sha: String,
    /// `success`, `failure`, `pending` or `error`.
    pub state: String,
    /// Its context (the check's name).
    pub context: String,
    /// Its description.
    pub description: String,
}

#[derive(Debug, Default)]
struct Forge {
    token: String,
    pulls: Vec<PullRequest>,
    statuses: Vec<CommitStatus>,
    comments: Vec<(u64, String)>,
    unauthorized: u64,
    git: BTreeMap<String, std::path::PathBuf>,
}

/// The running stand-in; it stops when dropped.
#[derive(Debug)]
pub struct FakeForge {
    /// The API's base URL, such as `http://127.0.0.1:PORT` (GitHub's `https://api.github.com`).
    pub api_url: String,
    forge: Arc<Mutex<Forge>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeForge {
    /// Starts it; requests must carry `Authorization: Bearer <token>`.
    pub fn start(token: &str) -> Result<FakeForge> {
        let forge = Arc::new(Mutex::new(Forge {
            token: token.to_string(),
            ..Forge::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route(
                "/repos/{owner}/{repo}/pulls",
                axum::routing::get(list_pulls).post(open_pull),
            )
            .route(
                "/repos/{owner}/{repo}/pulls/{number}",
                axum::routing::patch(update_pull),
            )
            .route(
                "/repos/{owner}/{repo}/pulls/{number}/merge",
                axum::routing::put(merge_pull),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/labels",
                axum::routing::post(add_labels),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                axum::routing::post(comment),
            )
            .route(
                "/repos/{owner}/{repo}/statuses/{sha}",
                axum::routing::post(set_status),
            )
            .with_state(forge.clone());
        crate::on_own_thread("fake-forge", move || async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        })?;
        Ok(FakeForge {
            api_url,
            forge,
            stop: Some(stop),
        })
    }

    /// Every pull request opened.
    pub fn pulls(&self) -> Vec<PullRequest> {
        self.lock().pulls.clone()
    }

    /// Every commit status set, in order.
    pub fn statuses(&self) -> Vec<CommitStatus> {
        self.lock().statuses.clone()
    }

    /// Every comment, with its pull request's number.
    pub fn comments(&self) -> Vec<(u64, String)> {
        self.lock().comments.clone()
    }

    /// Merges of `owner/repo`'s pull requests happen in the bare git repository `dir` (the
    /// one the test serves to the bot as its remote).
    pub fn serve_git(&self, repository: &str, dir: &std::path::Path) {
        self.lock()
            .git
            .insert(repository.to_string(), dir.to_path_buf());
    }

    /// Requests refused for their token.
    pub fn unauthorized(&self) -> u64 {
        self.lock().unauthorized
    }

    /// Opens a pull request into `repository` from branch `head` of another user's `fork`
    /// (as that user would); its number.
    pub fn open_from_fork(&self, repository: &str, fork: &str, head: &str) -> u64 {
        let mut f = self.lock();
        let number = f.pulls.len() as u64 + 1;
        f.pulls.push(PullRequest {
            number,
            repository: repository.into(),
            head: head.into(),
            head_repository: fork.into(),
            base: "main".into(),
            title: "not the bot's".into(),
            body: String::new(),
            labels: Vec::new(),
            updates: 0,
            merged: None,
        });
        number
    }

    fn lock(&self) -> MutexGuard<'_, Forge> {
        self.forge.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Shared = State<Arc<Mutex<Forge>>>;

/// The forge when the request carries the token it was started with (else the refusal is
/// counted and `None`: answer with [`unauthorized`]).
fn authorized<'a>(
    forge: &'a Arc<Mutex<Forge>>,
    headers: &HeaderMap,
) -> Option<MutexGuard<'a, Forge>> {
    let mut f = forge.lock().unwrap_or_else(PoisonError::into_inner);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.is_empty() || token != f.token {
        f.unauthorized += 1;
        return None;
    }
    Some(f)
}

/// GitHub's answer to a bad token.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "Bad credentials"})),
    )
        .into_response()
}

fn pull_json(p: &PullRequest, api_url: &str) -> Value {
    json!({
        "number": p.number,
        "html_url": format!("{api_url}/{}/pull/{}", p.repository, p.number),
        "state": if p.merged.is_some() { "closed" } else { "open" },
        "merged": p.merged.is_some(),
        "title": p.title,
        "body": p.body,
        "head": {"ref": p.head, "repo": {"full_name": p.head_repository}},
        "base": {"ref": p.base},
        "labels": p.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
    })
}

fn host(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Pull request `number` of `owner/repo`.
fn pull_mut<'a>(
    f: &'a mut Forge,
    owner: &str,
    repo: &str,
    number: u64,
) -> Option<&'a mut PullRequest> {
    let repository = format!("{owner}/{repo}");
    f.pulls
        .iter_mut()
        .find(|p| p.repository == repository && p.number == number)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found"})),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"message": message})),
    )
        .into_response()
}

async fn list_pulls(
    State(forge): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    let repository = format!("{owner}/{repo}");
    // GitHub's `head` filter is `owner:branch`.
    let head = query
        .get("head")
        .map(|h| h.split_once(':').map_or(h.as_str(), |(_, b)| b).to_string());
    let url = host(&headers);
    let found: Vec<Value> = f
        .pulls
        .iter()
        .filter(|p| p.repository == repository && head.as_ref().is_none_or(|h| *h == p.head))
        .filter(|p| query.get("state").is_none_or(|s| s != "open") || p.merged.is_none())
        .map(|p| pull_json(p, &url))
        .collect();
    axum::Json(found).into_response()
}

async fn open_pull(
    State(forge): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(mut f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let (head, base) = (field("head"), field("base"));
    if head.is_empty() || base.is_empty() || field("title").is_empty() {
        return bad_request("title, head and base are required");
    }
    let repository = format!("{owner}/{repo}");
    if f.pulls.iter().any(|p| {
        p.repository == repository
            && p.head == head
            && p.head_repository == repository
            && p.merged.is_none()
    }) {
        return bad_request(&format!(
            "A pull request already exists for {owner}:{head}."
        ));
    }
    let pull = PullRequest {
        number: f.pulls.len() as u64 + 1,
        head_repository: repository.clone(),
        repository,
        head,
        base,
        title: field("title"),
        body: field("body"),
        labels: Vec::new(),
        updates: 0,
        merged: None,
    };
    let out = pull_json(&pull, &host(&headers));
    f.pulls.push(pull);
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn update_pull(
    State(forge): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(mut f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    let url = host(&headers);
    let Some(p) = pull_mut(&mut f, &owner, &repo, number) else {
        return not_found();
    };
    if let Some(t) = body["title"].as_str() {
        p.title = t.to_string();
    }
    if let Some(b) = body["body"].as_str() {
        p.body = b.to_string();
    }
    p.updates += 1;
    axum::Json(pull_json(p, &url)).into_response()
}

async fn add_labels(
    State(forge): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(mut f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    let Some(p) = pull_mut(&mut f, &owner, &repo, number) else {
        return not_found();
    };
    for l in body["labels"].as_array().into_iter().flatten() {
        if let Some(l) = l.as_str()
            && !p.labels.iter().any(|have| have == l)
        {
            p.labels.push(l.to_string());
        }
    }
    let labels: Vec<Value> = p.labels.iter().map(|l| json!({"name": l})).collect();
    axum::Json(labels).into_response()
}

async fn comment(
    State(forge): Shared,
    Path((_owner, _repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(mut f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    f.comments.push((
        number,
        body["body"].as_str().unwrap_or_default().to_string(),
    ));
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": f.comments.len()})),
    )
        .into_response()
}

async fn set_status(
    State(forge): Shared,
    Path((_owner, _repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(mut f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let state = field("state");
    if !["success", "failure", "pending", "error"].contains(&state.as_str()) {
        return bad_request("state must be success, failure, pending or error");
    }
    f.statuses.push(CommitStatus {
        sha,
        state,
        context: field("context"),
        description: field("description"),
    });
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}

/// `git` in the bare repository `dir`: its trimmed stdout, or its stderr as the error.
fn git_in(dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "forge stand-in")
        .env("GIT_AUTHOR_EMAIL", "forge@example.invalid")
        .env("GIT_COMMITTER_NAME", "forge stand-in")
        .env("GIT_COMMITTER_EMAIL", "forge@example.invalid")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// GitHub's `PUT .../pulls/{n}/merge`: a merge commit of the head into the base branch, when
/// the pull request is open, `sha` (if sent) is still the head, and nothing conflicts.
async fn merge_pull(
    State(forge): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some(mut f) = authorized(&forge, &headers) else {
        return unauthorized();
    };
    let repository = format!("{owner}/{repo}");
    let Some(dir) = f.git.get(&repository).cloned() else {
        return bad_request("the stand-in serves no git repository for this one");
    };
    let Some(p) = pull_mut(&mut f, &owner, &repo, number) else {
        return not_found();
    };
    let refuse = |status: StatusCode, message: &str| {
        (status, axum::Json(json!({"message": message}))).into_response()
    };
    if p.merged.is_some() {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "Pull Request is not mergeable",
        );
    }
    let (Ok(head), Ok(base)) = (
        git_in(&dir, &["rev-parse", &format!("refs/heads/{}", p.head)]),
        git_in(&dir, &["rev-parse", &format!("refs/heads/{}", p.base)]),
    ) else {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "Pull Request is not mergeable",
        );
    };
    if body["sha"].as_str().is_some_and(|s| s != head) {
        return refuse(
            StatusCode::CONFLICT,
            "Head branch was modified. Review and try the merge again.",
        );
    }
    let Ok(tree) = git_in(&dir, &["merge-tree", "--write-tree", &base, &head]) else {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "Merge conflict");
    };
    let message = format!("Merge pull request #{number} from {}", p.head);
    let merged = git_in(
        &dir,
        &[
            "commit-tree",
            &tree,
            "-p",
            &base,
            "-p",
            &head,
            "-m",
            &message,
        ],
    )
    .and_then(|c| {
        git_in(
            &dir,
            &["update-ref", &format!("refs/heads/{}", p.base), &c, &base],
        )
        .map(|_| c)
    });
    match merged {
        Ok(sha) => {
            p.merged = Some(sha.clone());
            axum::Json(
                json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}),
            )
            .into_response()
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}
