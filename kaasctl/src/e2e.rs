//! `kaasctl stack e2e DIR`: a candidate release tried on a real management cluster before it
//! is merged. The candidate is pushed under a pre-release tag (discovery never offers it),
//! published there as a `ClusterStack` pinned by digest, and then, each a step of the JUnit
//! report: a canary `KaasCluster` on it reaches Ready and Compliant; a second canary started on
//! the previous release (the first `upgradeFrom`) is upgraded to it and reaches Ready and
//! Compliant on it; both are deleted and nothing of them is left (their Cluster API objects
//! and Secrets). The candidate's `ClusterStack` is removed again when this run made it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api::v1beta1::{ClusterCondition, ClusterStack, KaasCluster};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kaas_stack::Release;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::cli::StackE2eArgs;
use crate::error::Error;
use crate::forge::Forge;
use crate::git::git;
use crate::junit::{self, Case};
use crate::stacks::{fetcher_for, load};

/// The label on every canary: the candidate's version, dashed.
pub const CANARY_LABEL: &str = "e2e.kaas.scs.community/candidate";

/// What `stack e2e --summary` writes, and `stack release --e2e-summary` reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct E2eSummary {
    /// `<provider>/<name>`.
    pub stack: String,
    /// The candidate's version.
    pub version: String,
    /// Its content digest (what `stack release` checks it publishes).
    pub content_digest: String,
    /// Where the candidate was pushed, `repository@digest`.
    pub candidate: String,
    /// Whether every step passed.
    pub passed: bool,
    /// The steps.
    pub steps: Vec<Case>,
}

/// The steps run so far.
struct Steps {
    cases: Vec<Case>,
}

impl Steps {
    /// Runs `step` as `name` unless an earlier one failed (then it is skipped).
    async fn run<F>(&mut self, name: &str, step: F) -> bool
    where
        F: Future<Output = Result<String, String>>,
    {
        if self.failed() {
            self.skip(name, "an earlier step failed");
            return false;
        }
        self.always(name, step).await
    }

    /// Runs `step` as `name` whatever came before (cleaning up).
    async fn always<F>(&mut self, name: &str, step: F) -> bool
    where
        F: Future<Output = Result<String, String>>,
    {
        let started = Instant::now();
        eprintln!("== {name}");
        let result = step.await;
        let seconds = started.elapsed().as_secs_f64();
        let (result, message) = match result {
            Ok(m) => ("passed", m),
            Err(m) => ("failed", m),
        };
        eprintln!("   {result} after {seconds:.1} s: {message}");
        self.cases.push(Case {
            name: name.to_string(),
            seconds,
            result: result.to_string(),
            message,
        });
        result == "passed"
    }

    fn skip(&mut self, name: &str, why: &str) {
        eprintln!("== {name}: skipped ({why})");
        self.cases.push(Case {
            name: name.to_string(),
            seconds: 0.0,
            result: "skipped".into(),
            message: why.to_string(),
        });
    }

    fn failed(&self) -> bool {
        self.cases.iter().any(Case::failed)
    }
}

/// What the canary steps share.
struct Ctx<'a> {
    client: Client,
    args: &'a StackE2eArgs,
    release: &'a Release,
    class: String,
    timeout: Duration,
}

/// `kaasctl stack e2e`: exit 0 when every step passed, 2 when one failed.
pub async fn run(args: &StackE2eArgs) -> Result<u8, Error> {
    let release = load(&args.dir)?;
    let s = &release.stack;
    let stack = format!("{}/{}", s.provider, s.name);
    let client = crate::connect::client().await?;
    let key = args
        .signing_key
        .as_deref()
        .map(crate::input::signing_key)
        .transpose()?;
    let commit =
        git(&args.dir, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|_| "local".into());
    let ctx = Ctx {
        client: client.clone(),
        args,
        release: &release,
        class: args.class.clone().unwrap_or_else(|| s.provider.clone()),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let mut steps = Steps { cases: Vec::new() };
    let mut candidate = String::new();
    let mut created_stack = None;

    steps
        .run("push the candidate", async {
            let tag = format!("{}-candidate.{commit}", s.version);
            let fetcher = fetcher_for(&args.candidate_repository, args.plain_http);
            let digest = fetcher
                .push_tagged(
                    &args.candidate_repository,
                    &release,
                    std::slice::from_ref(&tag),
                )
                .await
                .map_err(|e| e.to_string())?;
            if let Some(key) = &key {
                fetcher
                    .sign(&args.candidate_repository, &digest, key)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            candidate = format!("{}@{digest}", args.candidate_repository);
            Ok(format!("{}:{tag} is {digest}", args.candidate_repository))
        })
        .await;
    steps
        .run("publish the candidate on the management cluster", async {
            let (name, created) = publish(&ctx, &candidate).await?;
            if created {
                created_stack = Some(name.clone());
            }
            Ok(format!("ClusterStack {name} is Ready"))
        })
        .await;
    let version_dashed = s.version.replace(['.', '+'], "-");
    let fresh = format!("canary-{version_dashed}");
    let upgraded = format!("canary-{version_dashed}-upgrade");
    steps
        .run(
            "a canary on the candidate becomes Ready and Compliant",
            async {
                let minor = newest_minor(&s.kubernetes_versions, None)
                    .ok_or("the candidate offers no Kubernetes version")?;
                create_canary(&ctx, &fresh, &s.version, &minor).await?;
                wait_ready(&ctx, &fresh, &s.version).await
            },
        )
        .await;
    match s.upgrade_from.first() {
        None => steps.skip(
            "a canary on the previous release is upgraded to the candidate",
            "the candidate has no upgradeFrom",
        ),
        Some(previous) => {
            steps
                .run(
                    "a canary on the previous release is upgraded to the candidate",
                    upgrade_canary(&ctx, &upgraded, previous),
                )
                .await;
        }
    }
    steps
        .always(
            "the canaries are deleted and nothing of them is left",
            async {
                let mut found = Vec::new();
                for name in [&fresh, &upgraded] {
                    found.extend(delete_canary(&ctx, name).await?);
                }
                if let Some(name) = &created_stack {
                    delete_stack(&ctx, name).await?;
                }
                if found.is_empty() {
                    Ok("no Cluster API object or Secret of the canaries is left".into())
                } else {
                    Err(format!("left behind: {}", found.join(", ")))
                }
            },
        )
        .await;

    let passed = !steps.failed();
    let summary = E2eSummary {
        stack: stack.clone(),
        version: s.version.clone(),
        content_digest: release.digest.clone(),
        candidate,
        passed,
        steps: steps.cases,
    };
    let suite = format!("kaas stack e2e {stack} {}", s.version);
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::document(&suite, &summary.steps))
            .map_err(|e| Error::io(path, e))?;
    }
    if let Some(path) = &args.summary {
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    if args.report {
        report(args, &summary).await?;
    }
    println!(
        "{stack} {}: e2e {}",
        s.version,
        if passed { "PASSED" } else { "FAILED" }
    );
    Ok(if passed { 0 } else { 2 })
}

/// The `X.Y` of the newest of `versions` (full versions) whose minor `also` offers too.
fn newest_minor(versions: &[String], also: Option<&[String]>) -> Option<String> {
    let minor = |v: &String| semver::Version::parse(v).ok().map(|v| (v.major, v.minor));
    let mut minors: Vec<(u64, u64)> = versions.iter().filter_map(minor).collect();
    if let Some(also) = also {
        let theirs: Vec<(u64, u64)> = also.iter().filter_map(minor).collect();
        minors.retain(|m| theirs.contains(m));
    }
    minors.into_iter().max().map(|(a, b)| format!("{a}.{b}"))
}

/// Makes the candidate (`repository@digest`) a Ready `ClusterStack`; its name and whether this
/// run created it.
async fn publish(ctx: &Ctx<'_>, candidate: &str) -> Result<(String, bool), String> {
    let (repository, digest) = candidate
        .split_once('@')
        .ok_or("the candidate was not pushed")?;
    let source = api::v1beta1::StackSource {
        oci: Some(api::v1beta1::OciSource {
            repository: repository.to_string(),
            digest: digest.to_string(),
            public_key: None,
        }),
        ..Default::default()
    };
    let object = operator_core::stacks::object_for(ctx.release, Some(source.clone()));
    let name = object.name_any();
    let stacks: Api<ClusterStack> = Api::all(ctx.client.clone());
    let created = match stacks.get_opt(&name).await.map_err(|e| e.to_string())? {
        Some(existing) if existing.spec.source.as_ref() == Some(&source) => false,
        Some(_) => {
            return Err(format!(
                "ClusterStack {name} already publishes {} from another source on this management cluster: the release exists",
                ctx.release.id()
            ));
        }
        None => {
            stacks
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| format!("creating ClusterStack {name}: {e}"))?;
            true
        }
    };
    let deadline = Instant::now() + ctx.timeout;
    loop {
        let stack = stacks.get(&name).await.map_err(|e| e.to_string())?;
        if stack.is_ready() {
            return Ok((name, created));
        }
        let ready = stack
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
        let permanent = [
            "StackInvalid",
            "StackIntegrity",
            "SignatureInvalid",
            "ContentMismatch",
        ];
        if let Some(c) = &ready
            && c.status == "False"
            && permanent.contains(&c.reason.as_str())
        {
            return Err(format!("ClusterStack {name}: {}: {}", c.reason, c.message));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "ClusterStack {name} not Ready after {} s: {}",
                ctx.timeout.as_secs(),
                ready.map_or("no status yet".into(), |c| format!(
                    "{}: {}",
                    c.reason, c.message
                ))
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Creates canary `name` on stack version `version` and Kubernetes `minor` (deleting one left
/// from an earlier run first).
async fn create_canary(
    ctx: &Ctx<'_>,
    name: &str,
    version: &str,
    minor: &str,
) -> Result<(), String> {
    let ns = &ctx.args.namespace;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if namespaces
        .get_opt(ns)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        let object: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).map_err(|e| e.to_string())?;
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| format!("creating namespace {ns}: {e}"))?;
    }
    delete_canary(ctx, name).await?;
    let s = &ctx.release.stack;
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {CANARY_LABEL: s.version.replace(['.', '+'], "-")},
        },
        "spec": {
            "providerClassName": ctx.class,
            "clusterStack": {"name": s.name, "version": version},
            "kubernetesVersion": minor,
            "controlPlane": {"replicas": 1},
            "workers": [{"name": "md-0", "replicas": 1, "machineType": ctx.args.machine_type}],
        },
    }))
    .map_err(|e| e.to_string())?;
    Api::<KaasCluster>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &cluster)
        .await
        .map_err(|e| format!("creating canary {ns}/{name}: {e}"))?;
    Ok(())
}

/// Waits until canary `name` runs stack `version`, Ready and Compliant, with no upgrade left.
async fn wait_ready(ctx: &Ctx<'_>, name: &str, version: &str) -> Result<String, String> {
    let api: Api<KaasCluster> = Api::namespaced(ctx.client.clone(), &ctx.args.namespace);
    let deadline = Instant::now() + ctx.timeout;
    let started = Instant::now();
    loop {
        let cluster = api.get(name).await.map_err(|e| e.to_string())?;
        let status = cluster.status.clone().unwrap_or_default();
        let is_true = |t| status.condition(t).is_some_and(|c| c.status == "True");
        let current = status.observed_generation == cluster.metadata.generation;
        if current
            && is_true(ClusterCondition::Ready)
            && is_true(ClusterCondition::Compliant)
            && status.cluster_stack_version.as_deref() == Some(version)
            && status.upgrade.is_none()
        {
            return Ok(format!(
                "{name} Ready and Compliant on {version} (Kubernetes {}) after {:.0} s",
                status.kubernetes_version.unwrap_or_default(),
                started.elapsed().as_secs_f64()
            ));
        }
        let failing = crate::clusters::first_failing(&status).map_or_else(
            || "-".to_string(),
            |c| format!("{} {}: {}", c.type_, c.reason, c.message),
        );
        if status.current_phase() == Some(api::v1beta1::ClusterPhase::Failed) {
            return Err(format!("{name} Failed: {failing}"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} not Ready and Compliant on {version} after {} s: phase {}, {failing}",
                ctx.timeout.as_secs(),
                status.phase.unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Canary `name` on release `previous`, Ready, then moved to the candidate.
async fn upgrade_canary(ctx: &Ctx<'_>, name: &str, previous: &str) -> Result<String, String> {
    let s = &ctx.release.stack;
    let stacks: Api<ClusterStack> = Api::all(ctx.client.clone());
    let catalog = stacks
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let old = catalog
        .items
        .iter()
        .find(|c| {
            c.spec.provider == s.provider && c.spec.name == s.name && c.spec.version == previous
        })
        .ok_or_else(|| {
            format!(
                "the previous release {}/{} {previous} is not on this management cluster",
                s.provider, s.name
            )
        })?;
    let minor = newest_minor(&old.spec.kubernetes_versions, Some(&s.kubernetes_versions))
        .ok_or_else(|| format!("{previous} and {} share no Kubernetes minor", s.version))?;
    create_canary(ctx, name, previous, &minor).await?;
    let before = wait_ready(ctx, name, previous).await?;
    Api::<KaasCluster>::namespaced(ctx.client.clone(), &ctx.args.namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusterStack": {"version": s.version}}})),
        )
        .await
        .map_err(|e| format!("upgrading {name} to {}: {e}", s.version))?;
    let after = wait_ready(ctx, name, &s.version).await?;
    Ok(format!("{before}; then {after}"))
}

/// Deletes canary `name` and waits until it is gone; what of it is left behind.
async fn delete_canary(ctx: &Ctx<'_>, name: &str) -> Result<Vec<String>, String> {
    let ns = &ctx.args.namespace;
    let api: Api<KaasCluster> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(format!("deleting {ns}/{name}: {e}")),
    }
    let deadline = Instant::now() + ctx.timeout;
    while api
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        if Instant::now() > deadline {
            return Err(format!(
                "{ns}/{name} still there {} s after its deletion",
                ctx.timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // What Cluster API and the garbage collector remove after the cluster (its Machines,
    // objects owned by it) may take a moment longer: left behind is what is still there
    // after a grace period.
    let grace = Instant::now() + LEFTOVER_GRACE;
    loop {
        let found = leftovers(ctx, name).await?;
        if found.is_empty() || Instant::now() > grace {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long objects of a deleted canary may linger before they count as left behind.
const LEFTOVER_GRACE: Duration = Duration::from_secs(15);

/// The Cluster API objects and Secrets still labelled as canary `name`'s.
async fn leftovers(ctx: &Ctx<'_>, name: &str) -> Result<Vec<String>, String> {
    let selector = format!("{}={name}", operator_core::render::CLUSTER_LABEL);
    let params = ListParams::default().labels(&selector);
    let ns = &ctx.args.namespace;
    let mut found = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for s in secrets.list(&params).await.map_err(|e| e.to_string())? {
        found.push(format!("Secret {ns}/{}", s.name_any()));
    }
    let groups = [
        "cluster.x-k8s.io",
        "controlplane.cluster.x-k8s.io",
        "bootstrap.cluster.x-k8s.io",
        "infrastructure.cluster.x-k8s.io",
    ];
    let discovery = kube::discovery::Discovery::new(ctx.client.clone())
        .filter(&groups)
        .run()
        .await
        .map_err(|e| e.to_string())?;
    let mut kinds = BTreeMap::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.scope == kube::discovery::Scope::Namespaced {
                kinds.insert(resource.kind.clone(), resource);
            }
        }
    }
    for (kind, resource) in kinds {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &resource);
        for o in api.list(&params).await.map_err(|e| e.to_string())? {
            found.push(format!("{kind} {ns}/{}", o.name_any()));
        }
    }
    Ok(found)
}

/// Deletes the candidate's `ClusterStack` this run created (retrying while kaas-webhooks
/// still counts a canary as using it).
async fn delete_stack(ctx: &Ctx<'_>, name: &str) -> Result<(), String> {
    let stacks: Api<ClusterStack> = Api::all(ctx.client.clone());
    let deadline = Instant::now() + Duration::from_secs(60).min(ctx.timeout);
    loop {
        match stacks.delete(name, &DeleteParams::default()).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("deleting ClusterStack {name}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Posts the result on the pull request of the checked-out branch: a commit status
/// `kaas/e2e` and a comment with the steps.
async fn report(args: &StackE2eArgs, summary: &E2eSummary) -> Result<(), Error> {
    let forge = Forge::new(&args.forge)?;
    let sha = git(&args.dir, &["rev-parse", "HEAD"])?;
    let branch = git(&args.dir, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    let failed = summary.steps.iter().find(|s| s.failed());
    let (state, description) = match failed {
        None => (
            "success",
            format!(
                "{} steps passed in {:.0} s",
                summary.steps.len(),
                summary.steps.iter().map(|s| s.seconds).sum::<f64>()
            ),
        ),
        Some(s) => ("failure", format!("{}: {}", s.name, s.message)),
    };
    forge.status(&sha, "kaas/e2e", state, &description).await?;
    let mut body = format!(
        "### e2e of {} {}: {}\n\nCandidate `{}`\n\n| step | result | seconds | |\n|---|---|---|---|\n",
        summary.stack,
        summary.version,
        if summary.passed { "passed" } else { "FAILED" },
        summary.candidate
    );
    for s in &summary.steps {
        body.push_str(&format!(
            "| {} | {} | {:.0} | {} |\n",
            s.name,
            s.result,
            s.seconds,
            s.message.replace('|', "\\|").replace('\n', " ")
        ));
    }
    match forge.pull_of(&branch).await? {
        Some(number) => forge.comment(number, &body).await?,
        None => {
            eprintln!("no open pull request for {branch}: the result is only in the commit status")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_use_the_newest_minor_both_releases_offer() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let new = v(&["1.33.4", "1.34.2", "1.35.0"]);
        assert_eq!(newest_minor(&new, None).as_deref(), Some("1.35"));
        let old = v(&["1.33.4", "1.34.1"]);
        assert_eq!(newest_minor(&old, Some(&new)).as_deref(), Some("1.34"));
        assert_eq!(newest_minor(&v(&["1.30.0"]), Some(&new)), None);
    }
}
