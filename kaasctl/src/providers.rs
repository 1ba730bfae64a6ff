//! The three providers behind one call, and what `kaasctl` assumes when the input leaves
//! something out: the class of a known provider is the one in `examples/<provider>/`, and the
//! stacks are those built into `kaasctl` (or the `--stack` folder).

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::Release;
use operator_core::offline::{self, Built};

use crate::error::Error;

/// The providers `kaasctl` knows.
pub const KNOWN: [&str; 3] = ["docker", "openstack", "hetzner"];

/// Builds `cluster` offline with the provider of `class`.
pub async fn build(
    class: &ProviderClass,
    stacks: &[ClusterStack],
    cluster: KaasCluster,
    releases: &[Release],
) -> Result<Built, Error> {
    let built = match class.spec.provider() {
        "docker" => {
            offline::build(
                &kaas_provider_docker::Provider,
                class,
                stacks,
                cluster,
                releases,
            )
            .await
        }
        "openstack" => {
            offline::build(
                &kaas_provider_openstack::Provider,
                class,
                stacks,
                cluster,
                releases,
            )
            .await
        }
        "hetzner" => {
            offline::build(
                &kaas_provider_hetzner::Provider::default(),
                class,
                stacks,
                cluster,
                releases,
            )
            .await
        }
        other => {
            return Err(Error::Invalid(format!(
                "ProviderClass {:?}: provider {other:?} is not one kaasctl knows ({})",
                class.metadata.name.as_deref().unwrap_or_default(),
                KNOWN.join(", ")
            )));
        }
    };
    built.map_err(Error::Invalid)
}

/// The class named `name`: from `classes`, else the example class of the provider of that
/// name.
pub fn class(name: &str, classes: &[ProviderClass]) -> Result<ProviderClass, Error> {
    if let Some(c) = classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
    {
        return Ok(c.clone());
    }
    let example = match name {
        "docker" => include_str!("../../examples/docker/1-providerclass.yaml"),
        "openstack" => include_str!("../../examples/openstack/1-providerclass.yaml"),
        "hetzner" => include_str!("../../examples/hetzner/1-providerclass.yaml"),
        _ => {
            return Err(Error::Invalid(format!(
                "spec.providerClassName: ProviderClass {name:?} is not in the input; add it to -f (the classes {} are known without)",
                KNOWN.join(", ")
            )));
        }
    };
    serde_saphyr::from_str(example).map_err(|e| Error::Invalid(e.to_string()))
}

/// The stacks to choose from for `provider`: those of the input, the `--stack` releases',
/// and the shipped ones, each verified as the operator's stack controller would.
pub fn stacks(
    provider: &str,
    input: &[ClusterStack],
    releases: &[Release],
) -> Result<Vec<ClusterStack>, Error> {
    let mut all: Vec<ClusterStack> = input.to_vec();
    let mut add = |stack: ClusterStack| {
        let s = &stack.spec;
        if !all.iter().any(|x| {
            x.spec.provider == s.provider && x.spec.name == s.name && x.spec.version == s.version
        }) {
            all.push(stack);
        }
    };
    for r in releases {
        add(operator_core::stacks::object_for(r, None));
    }
    for r in kaas_stack::builtin::for_provider(provider)? {
        add(operator_core::stacks::object_for(&r, None));
    }
    Ok(all
        .into_iter()
        .map(|s| offline::verified(s, releases))
        .collect())
}
