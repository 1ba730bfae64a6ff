//! The registered providers (`kaas_providers`) behind one call, and what `kaasctl` assumes
//! when the input leaves something out: the class of a known provider is the one in
//! `examples/<provider>/`, and the stacks are those built into `kaasctl` (and the `--stack`
//! folders).

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_stack::Release;
use operator_core::offline::{self, Built};

use crate::error::Error;

/// Builds `cluster` offline with the provider of `class` (one of the registered providers).
pub fn build(
    class: &ProviderClass,
    stacks: &[ClusterStack],
    cluster: KaasCluster,
    releases: &[Release],
) -> Result<Built, Error> {
    kaas_providers::build(class, stacks, cluster, releases).map_err(Error::Invalid)
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
    let Some(registered) = kaas_providers::find(name) else {
        return Err(Error::Invalid(format!(
            "spec.providerClassName: ProviderClass {name:?} is not in the input; add it to -f (the classes {} are known without)",
            kaas_providers::names()
        )));
    };
    serde_saphyr::from_str(registered.example_class).map_err(|e| Error::Invalid(e.to_string()))
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
        if !all.iter().any(|x| x.spec.id() == stack.spec.id()) {
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
