//! A read-only snapshot of the objects a validation or defaulting decision depends on. The
//! webhook server fills it from watch-backed caches, the operator from its reflectors, the
//! tests from fixtures: the rules themselves never talk to the API server.

use std::sync::Arc;

use crate::install::v1alpha1::KaasOperator;
use crate::v1beta1::{ClusterStack, KaasCluster, ProviderClass};

/// The classes, stacks and clusters known to the caller.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Every `ProviderClass`.
    pub classes: Vec<Arc<ProviderClass>>,
    /// Every `ClusterStack`.
    pub stacks: Vec<Arc<ClusterStack>>,
    /// Every `KaasCluster` (for the "in use" checks on delete).
    pub clusters: Vec<Arc<KaasCluster>>,
    /// Every `KaasOperator` (one per provider).
    pub operators: Vec<Arc<KaasOperator>>,
}

/// The YAML form of a catalog: `{classes: [...], stacks: [...], clusters: [...]}`.
#[derive(serde::Deserialize)]
struct CatalogFile {
    #[serde(default)]
    classes: Vec<ProviderClass>,
    #[serde(default)]
    stacks: Vec<ClusterStack>,
    #[serde(default)]
    clusters: Vec<KaasCluster>,
}

impl Catalog {
    /// Reads a catalog from YAML with the lists `classes`, `stacks` and `clusters` (each
    /// optional), as fixtures and offline tools keep it.
    pub fn from_yaml(text: &str) -> Result<Self, serde_saphyr::Error> {
        let file: CatalogFile = serde_saphyr::from_str(text)?;
        Ok(Catalog {
            classes: file.classes.into_iter().map(Arc::new).collect(),
            stacks: file.stacks.into_iter().map(Arc::new).collect(),
            clusters: file.clusters.into_iter().map(Arc::new).collect(),
            operators: Vec::new(),
        })
    }

    /// The class of that name.
    pub fn class(&self, name: &str) -> Option<&ProviderClass> {
        self.classes
            .iter()
            .map(AsRef::as_ref)
            .find(|c| c.metadata.name.as_deref() == Some(name))
    }

    /// The class a cluster uses: the one it names, else the one default class (none when
    /// several classes are annotated as the default).
    pub fn class_for(&self, name: Option<&str>) -> Option<&ProviderClass> {
        match name {
            Some(name) => self.class(name),
            None => {
                let mut defaults = self.default_classes();
                match (defaults.next(), defaults.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }

    /// Classes carrying the default-class annotation.
    pub fn default_classes(&self) -> impl Iterator<Item = &ProviderClass> {
        self.classes
            .iter()
            .map(AsRef::as_ref)
            .filter(|c| c.is_default())
    }

    /// Every release of stack `name` for `provider`.
    pub fn releases<'a, 'q>(
        &'a self,
        provider: &'q str,
        name: &'q str,
    ) -> impl Iterator<Item = &'a ClusterStack> + use<'a, 'q> {
        self.stacks
            .iter()
            .map(AsRef::as_ref)
            .filter(move |s| s.spec.provider == provider && s.spec.name == name)
    }

    /// The release `version` of stack `name` for `provider`.
    pub fn release(&self, provider: &str, name: &str, version: &str) -> Option<&ClusterStack> {
        self.releases(provider, name)
            .find(|s| s.spec.version == version)
    }

    /// The newest ready release of stack `name` for `provider`, by semantic version.
    pub fn newest_ready_release(&self, provider: &str, name: &str) -> Option<&ClusterStack> {
        self.releases(provider, name)
            .filter(|s| s.is_ready())
            .filter_map(|s| semver::Version::parse(&s.spec.version).ok().map(|v| (v, s)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, s)| s)
    }

    /// The provider serving `cluster`, when its class is known.
    pub fn provider_of(&self, cluster: &KaasCluster) -> Option<&str> {
        let class = cluster.spec.provider_class_name.as_deref()?;
        self.class(class).map(|c| c.spec.provider())
    }
}
