//! The release cache: each `ClusterStack`'s content loaded once per generation (from its
//! source, the shipped stacks, or the object alone for a bare release) and checked against
//! what the object claims.

use std::collections::HashMap;
use std::sync::Arc;

use api::v1beta1::{ClusterStack, ClusterStackSpec};
use kaas_stack::source::Fetcher;
use kaas_stack::{Release, StackFile};
use kube::ResourceExt;

/// One release, loaded once by whoever asks first.
type Slot = Arc<tokio::sync::OnceCell<Arc<Release>>>;

/// The releases of one provider, by `ClusterStack` uid and generation.
pub struct Releases {
    pub(super) provider: String,
    pub(super) fetcher: Fetcher,
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

    /// The Kubernetes dates of `release` and of every release loaded so far, merged (a newer
    /// release knows newer patches' dates; where two disagree, `release`'s own wins).
    pub fn calendar(&self, release: &Release) -> kaas_stack::format::KubernetesCalendar {
        let mut calendar = kaas_stack::format::KubernetesCalendar::default();
        let loaded: Vec<Arc<Release>> = {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            loaded
                .values()
                .filter_map(|cell| cell.get().cloned())
                .collect()
        };
        for other in loaded.iter().map(Arc::as_ref).chain([release]) {
            if let Some(c) = &other.stack.kubernetes_calendar {
                calendar.released.extend(c.released.clone());
                calendar.end_of_life.extend(c.end_of_life.clone());
            }
        }
        calendar
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacks::object_for;
    use kaas_stack::source::Fetcher;

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
