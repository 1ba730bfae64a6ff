//! Stack releases as the operator knows them: the content behind each `ClusterStack` of its
//! provider, fetched once (from its source, or from the stacks built into the binary), checked
//! against what the object claims, and kept in memory. The stack controller reports the result
//! in the object's `Ready` condition and `contentDigest`; cluster reconciles read the content
//! from [`Releases::get`], which fetches on a miss so a restarted operator needs no ordering.
//!
//! A `ClusterStack` without a source that is not a shipped release is a *bare* release: its
//! object is all there is (versions, node images), with no add-ons and no kubeadm settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api::v1beta1::{ClusterStack, ClusterStackSpec, ClusterStackStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kaas_stack::source::Fetcher;
use kaas_stack::{Release, StackFile};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;

/// One release, loaded once by whoever asks first.
type Slot = Arc<tokio::sync::OnceCell<Arc<Release>>>;

/// The releases of one provider, by `ClusterStack` uid and generation.
pub struct Releases {
    provider: String,
    fetcher: Fetcher,
    loaded: std::sync::Mutex<HashMap<(String, i64), Slot>>,
}

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releases")
            .field("provider", &self.provider)
            .finish()
    }
}

/// Why a stack's content cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Fetching, verifying or checking the content failed.
    #[error(transparent)]
    Content(#[from] kaas_stack::Error),
    /// The content is a different release than the object says.
    #[error("the content does not match the ClusterStack: {0}")]
    Mismatch(String),
}

impl StackError {
    /// A constant condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            StackError::Content(e) => e.category(),
            StackError::Mismatch(_) => "ContentMismatch",
        }
    }

    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, StackError::Content(e) if e.is_transient())
    }
}

impl Releases {
    /// The registry of `provider`'s releases, fetching with `fetcher`.
    pub fn new(provider: &str, fetcher: Fetcher) -> Self {
        Releases {
            provider: provider.to_string(),
            fetcher,
            loaded: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The fetcher (for discovery).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// The checked content of `stack`, fetched on first use.
    pub async fn get(&self, stack: &ClusterStack) -> Result<Arc<Release>, StackError> {
        let key = (
            stack.uid().unwrap_or_default(),
            stack.metadata.generation.unwrap_or_default(),
        );
        // One fetch per release: a thousand clusters on a new release wait for one download,
        // while other releases load alongside. A failed fetch leaves the cell empty for the
        // next try.
        let cell = {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            if !loaded.contains_key(&key) {
                // A new generation of the object replaces the content of the old one.
                loaded.retain(|(uid, _), _| uid != &key.0);
            }
            loaded.entry(key).or_default().clone()
        };
        cell.get_or_try_init(|| async { self.fetch(&stack.spec).await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn fetch(&self, spec: &ClusterStackSpec) -> Result<Release, StackError> {
        match &spec.source {
            Some(source) => verified(spec, self.fetcher.fetch(source).await?),
            None => offline_release(&self.provider, spec),
        }
    }
}

/// `release` if it is the release `spec` describes, else the fields where they differ.
fn verified(spec: &ClusterStackSpec, release: Release) -> Result<Release, StackError> {
    let problems = mismatches(spec, &release.stack);
    if problems.is_empty() {
        Ok(release)
    } else {
        Err(StackError::Mismatch(problems.join("; ")))
    }
}

/// The release of a source-less `ClusterStack` without any fetching: the shipped release it
/// names, else a bare one. For offline builds (golden tests, the command-line tool).
pub fn offline_release(provider: &str, spec: &ClusterStackSpec) -> Result<Release, StackError> {
    let release = kaas_stack::builtin::find(provider, &spec.name, &spec.version)?
        .unwrap_or_else(|| bare(spec));
    verified(spec, release)
}

/// Gives `stack` the release's node images when the object lists none (the usual case: the
/// release carries them).
pub fn fill_node_images(stack: &mut ClusterStack, release: &Release) {
    if stack.spec.node_images.is_empty() {
        stack.spec.node_images = release.stack.node_images.clone();
    }
}

/// A release made of the object alone.
fn bare(spec: &ClusterStackSpec) -> Release {
    Release {
        stack: StackFile {
            provider: spec.provider.clone(),
            name: spec.name.clone(),
            version: spec.version.clone(),
            kubernetes_versions: spec.kubernetes_versions.clone(),
            upgrade_from: spec.upgrade_from.clone(),
            node_images: spec.node_images.clone(),
            ..StackFile::default()
        },
        files: Default::default(),
        digest: String::new(),
        base: None,
    }
}

/// Where the object and its content disagree, by field.
pub fn mismatches(spec: &ClusterStackSpec, content: &StackFile) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |field: &str, object: String, release: String| {
        if object != release {
            out.push(format!(
                "spec.{field}: the object says {object}, the release says {release}"
            ));
        }
    };
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        format!("{v:?}")
    };
    differ("provider", spec.provider.clone(), content.provider.clone());
    differ("name", spec.name.clone(), content.name.clone());
    differ("version", spec.version.clone(), content.version.clone());
    differ(
        "kubernetesVersions",
        sorted(&spec.kubernetes_versions),
        sorted(&content.kubernetes_versions),
    );
    differ(
        "upgradeFrom",
        sorted(&spec.upgrade_from),
        sorted(&content.upgrade_from),
    );
    if !spec.node_images.is_empty() && spec.node_images != content.node_images {
        out.push("spec.nodeImages: differ from the release's node images".into());
    }
    out
}

/// What the stack controller shares.
pub struct StackContext {
    /// The provider's releases.
    pub releases: Arc<Releases>,
    /// Client for status writes.
    pub client: Client,
    /// Field manager.
    pub manager: String,
}

impl std::fmt::Debug for StackContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackContext")
            .field("manager", &self.manager)
            .finish()
    }
}

/// Loads `stack`'s content (when it is this provider's) and reports it in its status.
pub async fn reconcile_stack(
    stack: Arc<ClusterStack>,
    ctx: Arc<StackContext>,
) -> Result<Action, kube::Error> {
    if stack.spec.provider != ctx.releases.provider {
        return Ok(Action::await_change());
    }
    let result = ctx.releases.get(&stack).await;
    let (ready, reason, message, digest, action) = match &result {
        Ok(release) => (
            true,
            "Verified",
            if release.digest.is_empty() {
                "bare release: no source and not shipped with this operator, so no add-ons"
                    .to_string()
            } else {
                format!(
                    "{} add-ons, content {}",
                    release.stack.addons.len(),
                    release.digest
                )
            },
            Some(release.digest.clone()).filter(|d| !d.is_empty()),
            Action::await_change(),
        ),
        Err(e) => (
            false,
            e.reason(),
            e.to_string(),
            None,
            if e.is_transient() {
                Action::requeue(Duration::from_secs(30))
            } else {
                Action::await_change()
            },
        ),
    };
    if let Err(e) = &result {
        tracing::warn!(stack = %stack.name_any(), error = %e, "stack release unusable");
    }
    let status = stack.status.clone().unwrap_or_default();
    let previous = status.conditions.iter().find(|c| c.type_ == "Ready");
    let status_word = if ready { "True" } else { "False" };
    let unchanged = previous.is_some_and(|c| {
        c.status == status_word
            && c.reason == reason
            && c.message == message
            && c.observed_generation == stack.metadata.generation
    }) && status.content_digest == digest
        && status.observed_generation == stack.metadata.generation;
    if unchanged {
        return Ok(action);
    }
    let transition = previous
        .filter(|c| c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(crate::reconcile::now);
    let new = ClusterStackStatus {
        observed_generation: stack.metadata.generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status_word.into(),
            reason: reason.into(),
            message,
            observed_generation: stack.metadata.generation,
            last_transition_time: transition,
        }],
        content_digest: digest,
    };
    let api: Api<ClusterStack> = Api::all(ctx.client.clone());
    api.patch_status(
        &stack.name_any(),
        &PatchParams::apply(&ctx.manager).force(),
        &Patch::Apply(json!({
            "apiVersion": "kaas.scs.community/v1beta1",
            "kind": "ClusterStack",
            "status": new,
        })),
    )
    .await?;
    Ok(action)
}

/// Retries failed status writes.
pub fn stack_error_policy(
    _stack: Arc<ClusterStack>,
    error: &kube::Error,
    _ctx: Arc<StackContext>,
) -> Action {
    tracing::warn!(%error, "writing a ClusterStack status failed");
    Action::requeue(Duration::from_secs(10))
}

/// The `ClusterStack` object for a shipped or discovered release.
pub fn object_for(release: &Release, source: Option<api::v1beta1::StackSource>) -> ClusterStack {
    let s = &release.stack;
    let name = format!(
        "{}-{}-{}",
        s.provider,
        s.name,
        s.version.replace(['.', '+'], "-")
    );
    ClusterStack::new(
        &name,
        ClusterStackSpec {
            provider: s.provider.clone(),
            name: s.name.clone(),
            version: s.version.clone(),
            kubernetes_versions: s.kubernetes_versions.clone(),
            upgrade_from: s.upgrade_from.clone(),
            node_images: s.node_images.clone(),
            source,
        },
    )
}

/// Creates the `ClusterStack` objects of `releases` that do not exist yet (by name); returns
/// how many it created. Existing objects are left alone: a release is immutable.
pub async fn install(
    client: &Client,
    objects: Vec<ClusterStack>,
    manager: &str,
) -> Result<usize, kube::Error> {
    let api: Api<ClusterStack> = Api::all(client.clone());
    let mut created = 0;
    for object in objects {
        let name = object.name_any();
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        let pp = kube::api::PostParams {
            field_manager: Some(manager.to_string()),
            ..Default::default()
        };
        match api.create(&pp, &object).await {
            Ok(_) => {
                created += 1;
                tracing::info!(stack = %name, "installed ClusterStack");
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// Lists the releases in the OCI `repository` and installs those of this provider that have
/// no `ClusterStack` yet, pinned by digest.
pub async fn discover(
    client: &Client,
    releases: &Releases,
    repository: &str,
    manager: &str,
) -> Result<usize, StackError> {
    let found = releases.fetcher.discover(repository).await?;
    let mut objects = Vec::new();
    for d in found {
        let source = api::v1beta1::StackSource {
            oci: Some(api::v1beta1::OciSource {
                repository: repository.to_string(),
                digest: d.digest.clone(),
            }),
            ..Default::default()
        };
        let release = releases.fetcher.fetch(&source).await?;
        if release.stack.provider == releases.provider {
            objects.push(object_for(&release, Some(source)));
        }
    }
    install(client, objects, manager)
        .await
        .map_err(|e| StackError::Content(kaas_stack::Error::Fetch(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples' `ClusterStack` objects are exactly the shipped releases, so applying the
    /// examples gives verified stacks.
    #[test]
    fn the_examples_name_the_shipped_releases() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for provider in ["docker", "openstack", "hetzner"] {
            let path = root.join(provider).join("2-clusterstack.yaml");
            let text = std::fs::read_to_string(&path).expect("example exists");
            let object: ClusterStack = serde_saphyr::from_str(&text).expect("parses");
            let release = offline_release(provider, &object.spec).expect("shipped stacks check");
            assert!(
                !release.digest.is_empty(),
                "{} is a shipped release",
                path.display()
            );
            assert_eq!(
                mismatches(&object.spec, &release.stack),
                Vec::<String>::new()
            );
            assert_eq!(
                object_for(&release, None).metadata.name,
                object.metadata.name
            );
        }
    }

    /// Many clusters asking for one release at once load it once; a new generation of the
    /// object loads again.
    #[tokio::test]
    async fn a_release_is_loaded_once_per_generation() {
        let releases = Releases::new("docker", Fetcher::new(None, Vec::new()));
        let shipped = kaas_stack::builtin::find("docker", "scs", "1.0.0")
            .unwrap()
            .unwrap();
        let mut stack = object_for(&shipped, None);
        stack.metadata.uid = Some("uid-1".into());
        stack.metadata.generation = Some(1);
        let all = futures::future::join_all((0..16).map(|_| releases.get(&stack))).await;
        let first = all[0].as_ref().unwrap().clone();
        for r in &all {
            assert!(
                Arc::ptr_eq(r.as_ref().unwrap(), &first),
                "loaded more than once"
            );
        }
        stack.metadata.generation = Some(2);
        let again = releases.get(&stack).await.unwrap();
        assert!(!Arc::ptr_eq(&again, &first), "a new generation loads again");
        assert_eq!(again.digest, first.digest);
    }

    #[test]
    fn a_mismatch_names_the_field() {
        let release = kaas_stack::builtin::find("docker", "scs", "1.0.0")
            .unwrap()
            .unwrap();
        let mut spec = object_for(&release, None).spec;
        spec.kubernetes_versions = vec!["1.31.4".into()];
        let found = mismatches(&spec, &release.stack);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("spec.kubernetesVersions: the object says [\"1.31.4\"]"),
            "{found:?}"
        );
    }
}
