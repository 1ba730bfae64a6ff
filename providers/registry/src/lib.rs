//! The providers this project ships, registered once. `kaasctl` builds through [`build`], the
//! system tests start each registered binary and install stand-ins for its kinds, and the demo
//! applies each example; `tests/packaging.rs` checks that every registered provider has what a
//! release needs (stack overlay, examples, deploy overlay, container file). Adding a provider is
//! its folder under `providers/`, its files in those places, and one line in [`ALL`]; see
//! `docs/writing-a-provider.md`.

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::Release;
use operator_core::offline::{self, Built};
use operator_core::{InfrastructureKinds, Provider};

/// One shipped provider.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    /// Its name: the last segment of its controller name and the `provider` of its stacks.
    pub name: &'static str,
    /// Its operator binary.
    pub binary: &'static str,
    /// The kinds of its infrastructure objects (the provider's own declaration).
    pub kinds: InfrastructureKinds,
    /// The kinds of its shared node image objects (the provider's own declaration).
    pub shared_kinds: &'static [(&'static str, &'static str)],
    /// `examples/<name>/1-providerclass.yaml`: the class `kaasctl` assumes offline.
    pub example_class: &'static str,
    /// The name of the `KaasCluster` in `examples/<name>/`.
    pub example_cluster: &'static str,
    /// Builds a cluster of this provider offline ([`build`] picks it by the class).
    pub build: BuildFn,
}

/// A provider's offline build, as [`Registered::build`] holds it.
pub type BuildFn =
    fn(&ProviderClass, &[ClusterStack], KaasCluster, &[Release]) -> Result<Built, String>;

fn build_with<P: Provider + Default>(
    class: &ProviderClass,
    stacks: &[ClusterStack],
    cluster: KaasCluster,
    releases: &[Release],
) -> Result<Built, String> {
    offline::build(&P::default(), class, stacks, cluster, releases)
}

const fn entry<P: Provider + Default>(
    name: &'static str,
    binary: &'static str,
    example_class: &'static str,
    example_cluster: &'static str,
) -> Registered {
    Registered {
        name,
        binary,
        kinds: P::KINDS,
        shared_kinds: P::SHARED_KINDS,
        example_class,
        example_cluster,
        build: build_with::<P>,
    }
}

/// Every shipped provider.
pub const ALL: [Registered; 3] = [
    entry::<kaas_provider_docker::Provider>(
        "docker",
        "kaas-operator-docker",
        include_str!("../../../examples/docker/1-providerclass.yaml"),
        "dev",
    ),
    entry::<kaas_provider_openstack::Provider>(
        "openstack",
        "kaas-operator-openstack",
        include_str!("../../../examples/openstack/1-providerclass.yaml"),
        "shop",
    ),
    entry::<kaas_provider_hetzner::Provider>(
        "hetzner",
        "kaas-operator-hetzner",
        include_str!("../../../examples/hetzner/1-providerclass.yaml"),
        "web",
    ),
];

/// The registered provider of that name.
pub fn find(name: &str) -> Option<&'static Registered> {
    ALL.iter().find(|p| p.name == name)
}

/// The registered names, for messages (`docker, openstack, hetzner`).
pub fn names() -> String {
    ALL.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// `(apiVersion, kind)` of every provider kind the operators write: infrastructure and shared
/// node image kinds, each once.
pub fn kinds() -> Vec<(&'static str, &'static str)> {
    let mut all = Vec::new();
    for p in &ALL {
        for kind in [
            (p.kinds.api_version, p.kinds.cluster),
            (p.kinds.api_version, p.kinds.machine_template),
        ]
        .into_iter()
        .chain(p.shared_kinds.iter().copied())
        {
            if !all.contains(&kind) {
                all.push(kind);
            }
        }
    }
    all
}

/// Builds `cluster` of `class` offline with the provider the class names (the operator's own
/// path: see [`operator_core::offline::build`]); a provider nobody registered is refused by
/// name.
pub fn build(
    class: &ProviderClass,
    stacks: &[ClusterStack],
    cluster: KaasCluster,
    releases: &[Release],
) -> Result<Built, String> {
    let provider = class.spec.provider();
    let Some(registered) = find(provider) else {
        return Err(format!(
            "ProviderClass {:?}: provider {provider:?} is not one this build knows ({})",
            class.metadata.name.as_deref().unwrap_or_default(),
            names()
        ));
    };
    (registered.build)(class, stacks, cluster, releases)
}
