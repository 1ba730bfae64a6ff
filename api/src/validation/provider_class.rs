//! `ProviderClass` rules: the controller name's form, its immutability, a single default class,
//! and no deletion while a cluster uses the class.

use kube::ResourceExt;

use super::ValidationErrors;
use super::names::{is_dns_label, is_dns_subdomain};
use crate::Catalog;
use crate::v1beta1::ProviderClass;

/// Whether `controller` is a domain-prefixed path such as `kaas.scs.community/openstack`.
fn is_controller_name(controller: &str) -> bool {
    let Some((domain, path)) = controller.split_once('/') else {
        return false;
    };
    domain.contains('.')
        && is_dns_subdomain(domain)
        && !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        })
        && controller.len() <= 253
}

/// Every rule for a `ProviderClass` being created (`old` is `None`) or updated.
pub fn validate_provider_class(
    class: &ProviderClass,
    old: Option<&ProviderClass>,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if !is_controller_name(&class.spec.controller) {
        errs.add(
            "spec.controller",
            format!(
                "{:?} must be a domain-prefixed path such as kaas.scs.community/openstack",
                class.spec.controller
            ),
        );
    }
    if let Some(p) = &class.spec.parameters {
        if p.kind.is_empty() {
            errs.add("spec.parameters.kind", "must not be empty");
        }
        if !is_dns_subdomain(&p.name) {
            errs.add(
                "spec.parameters.name",
                format!("{:?} is not a valid object name", p.name),
            );
        }
        if let Some(ns) = &p.namespace
            && !is_dns_label(ns)
        {
            errs.add(
                "spec.parameters.namespace",
                format!("{ns:?} is not a valid namespace"),
            );
        }
        if let Some(group) = &p.api_group
            && !group.is_empty()
            && !is_dns_subdomain(group)
        {
            errs.add(
                "spec.parameters.apiGroup",
                format!("{group:?} is not a valid API group"),
            );
        }
    }
    let types = &class.spec.machine_types;
    for (i, t) in types.iter().enumerate() {
        if types[..i].iter().any(|o| o.name == t.name) {
            errs.add(
                format!("spec.machineTypes[{i}].name"),
                format!("duplicate machine type {:?}", t.name),
            );
        }
        if t.default == Some(true) && types[..i].iter().any(|o| o.default == Some(true)) {
            errs.add(
                format!("spec.machineTypes[{i}].default"),
                "at most one machine type may be the default",
            );
        }
        if crate::tenancy::memory_mib(&t.memory).is_none() {
            errs.add(
                format!("spec.machineTypes[{i}].memory"),
                format!("{:?} is not a quantity such as 16Gi", t.memory),
            );
        }
    }
    if let Some(old) = old
        && old.spec.controller != class.spec.controller
    {
        errs.forbidden("spec.controller", "is immutable");
    }
    if class.is_default() {
        let name = class.name_any();
        if let Some(other) = catalog.default_classes().find(|c| c.name_any() != name) {
            errs.forbidden(
                format!("metadata.annotations[{}]", crate::DEFAULT_CLASS_ANNOTATION),
                format!(
                    "ProviderClass {:?} is already the default; at most one class may be",
                    other.name_any()
                ),
            );
        }
    }
    errs.into_result()
}

/// Refuses deleting a class that a `KaasCluster` still names.
pub fn validate_provider_class_delete(
    class: &ProviderClass,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let name = class.name_any();
    let users: Vec<String> = catalog
        .clusters
        .iter()
        .filter(|c| c.spec.provider_class_name.as_deref() == Some(name.as_str()))
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    let mut errs = ValidationErrors::default();
    if !users.is_empty() {
        errs.add(
            "metadata.name",
            in_use_message("ProviderClass", &name, &users),
        );
    }
    errs.into_result()
}

/// "X is in use by KaasCluster a/b, c/d and 3 more".
pub(super) fn in_use_message(kind: &str, name: &str, users: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut msg = format!(
        "{kind} {name:?} is in use by KaasCluster {}",
        users[..users.len().min(SHOWN)].join(", ")
    );
    if users.len() > SHOWN {
        msg.push_str(&format!(" and {} more", users.len() - SHOWN));
    }
    msg
}
