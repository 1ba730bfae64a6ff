//! `KaasOperator` rules: a provider and version the installer has a bundle for, one object per
//! provider, flags that operator knows, well-formed image overrides and classes; and no
//! deletion while a class it created is used by a cluster.

use kube::ResourceExt;

use super::names::is_dns_subdomain;
use super::provider_class::in_use_message;
use super::{ValidationErrors, validate_provider_class};
use crate::Catalog;
use crate::install::bundles;
use crate::install::v1alpha1::KaasOperator;
use crate::v1beta1::{ProviderClass, ProviderClassSpec};

/// At most this many additional flags and classes per object.
const MAX_ARGS: usize = 32;
const MAX_CLASSES: usize = 16;
/// The longest flag value taken.
const MAX_ARG_VALUE: usize = 4096;

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// `registry.example:5000/mirror/kaas-operator-docker`: lower-case path segments, an optional
/// host with port, no tag or digest (those come from the version and `digest`).
fn is_repository(r: &str) -> bool {
    if r.is_empty() || r.len() > 255 {
        return false;
    }
    let mut parts = r.split('/').peekable();
    let first = parts.next().unwrap_or_default();
    let host_like = first.contains(['.', ':']) || first == "localhost";
    let path_ok = |seg: &str| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    let first_ok = if host_like {
        first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
    } else {
        path_ok(first)
    };
    first_ok && parts.all(path_ok)
}

/// Every rule for a `KaasOperator` being created (`old` is `None`) or updated, against the
/// other `KaasOperator`s of `catalog`.
pub fn validate_kaas_operator(
    op: &KaasOperator,
    old: Option<&KaasOperator>,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let spec = &op.spec;
    let providers = bundles::providers();
    let known_provider = providers.contains(&spec.provider.as_str());
    if !known_provider {
        errs.add(
            "spec.provider",
            format!(
                "{:?} is not a provider the installer has bundles for ({})",
                spec.provider,
                providers.join(", ")
            ),
        );
    }
    if let Some(old) = old
        && old.spec.provider != spec.provider
    {
        errs.forbidden("spec.provider", "is immutable");
    }
    let name = op.name_any();
    if let Some(other) = catalog
        .operators
        .iter()
        .find(|o| o.spec.provider == spec.provider && o.name_any() != name)
    {
        errs.forbidden(
            "spec.provider",
            format!(
                "KaasOperator {:?} already installs {:?}; one per provider",
                other.name_any(),
                spec.provider
            ),
        );
    }
    let bundle = bundles::find(&spec.provider, &spec.version);
    if known_provider && bundle.is_none() {
        errs.add(
            "spec.version",
            format!(
                "{:?} is not a version of the {} operator the installer has a bundle for ({})",
                spec.version,
                spec.provider,
                bundles::versions(&spec.provider).join(", ")
            ),
        );
    }
    if let Some(r) = spec.replicas
        && !(1..=10).contains(&r)
    {
        errs.add("spec.replicas", format!("must be 1 to 10, not {r}"));
    }
    if let Some(image) = &spec.image {
        if let Some(r) = &image.repository
            && !is_repository(r)
        {
            errs.add(
                "spec.image.repository",
                format!("{r:?} is not an image repository (no tag or digest; lower case)"),
            );
        }
        if let Some(d) = &image.digest
            && !is_digest(d)
        {
            errs.add(
                "spec.image.digest",
                format!("{d:?} must be sha256: followed by 64 lower-case hex digits"),
            );
        }
    }
    if spec.additional_args.len() > MAX_ARGS {
        errs.add(
            "spec.additionalArgs",
            format!(
                "at most {MAX_ARGS} flags, not {}",
                spec.additional_args.len()
            ),
        );
    } else {
        for (flag, value) in &spec.additional_args {
            let field = format!("spec.additionalArgs[{flag}]");
            if bundles::SET_BY_INSTALLER.contains(&flag.as_str()) {
                errs.forbidden(field, "is set by the installer");
            } else if let Some(b) = bundle
                && !b.flags.contains(&flag.as_str())
            {
                errs.add(
                    field,
                    format!(
                        "is not a flag of kaas-operator-{} {} (known: {})",
                        b.provider,
                        b.version,
                        b.flags.join(", ")
                    ),
                );
            } else if value.len() > MAX_ARG_VALUE || value.contains(['\n', '\r', '\0']) {
                errs.add(
                    field,
                    format!("must be one line of at most {MAX_ARG_VALUE} bytes"),
                );
            }
        }
    }
    validate_classes(op, &mut errs);
    validate_signing_keys(op, &mut errs);
    errs.into_result()
}

/// `spec.stackSigningKeys`: at most [`crate::install::MAX_SIGNING_KEYS`], each a ConfigMap
/// name and a key name (they become a volume and a file name in the operator's pod), each once.
fn validate_signing_keys(op: &KaasOperator, errs: &mut ValidationErrors) {
    use crate::install::MAX_SIGNING_KEYS;
    let keys = &op.spec.stack_signing_keys;
    if keys.len() > MAX_SIGNING_KEYS {
        errs.add(
            "spec.stackSigningKeys",
            format!("at most {MAX_SIGNING_KEYS} keys"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate().take(MAX_SIGNING_KEYS) {
        if !is_dns_subdomain(&k.name) {
            errs.add(
                format!("spec.stackSigningKeys[{i}].name"),
                format!("{:?} is not a ConfigMap name", k.name),
            );
        }
        let key_ok = !k.key.is_empty()
            && k.key.len() <= 253
            && k.key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !key_ok {
            errs.add(
                format!("spec.stackSigningKeys[{i}].key"),
                format!("{:?} is not a ConfigMap key", k.key),
            );
        } else if !seen.insert((&k.name, &k.key)) {
            errs.add(format!("spec.stackSigningKeys[{i}]"), "is listed twice");
        }
    }
}

fn validate_classes(op: &KaasOperator, errs: &mut ValidationErrors) {
    let classes = &op.spec.provider_classes;
    if classes.len() > MAX_CLASSES {
        errs.add(
            "spec.providerClasses",
            format!("at most {MAX_CLASSES} classes, not {}", classes.len()),
        );
        return;
    }
    let mut defaults = 0;
    for (i, class) in classes.iter().enumerate() {
        let field = format!("spec.providerClasses[{i}]");
        if !is_dns_subdomain(&class.name) {
            errs.add(
                format!("{field}.name"),
                format!("{:?} is not a valid object name", class.name),
            );
        }
        if classes[..i].iter().any(|c| c.name == class.name) {
            errs.add(
                format!("{field}.name"),
                format!("duplicate class {:?}", class.name),
            );
        }
        defaults += usize::from(class.default);
        if class.default && defaults > 1 {
            errs.add(
                format!("{field}.default"),
                "at most one class may be the default",
            );
        }
        // The class's own rules, on the class this template makes.
        let made = ProviderClass::new(
            "template",
            ProviderClassSpec {
                controller: format!("{}{}", crate::CONTROLLER_PREFIX, op.spec.provider),
                parameters: class.parameters.clone(),
                machine_types: class.machine_types.clone(),
            },
        );
        if let Err(e) = validate_provider_class(&made, None, &Catalog::default()) {
            for f in e.0 {
                if let Some(rest) = f.field.strip_prefix("spec.parameters") {
                    errs.add(format!("{field}.parameters{rest}"), f.message);
                } else if let Some(rest) = f.field.strip_prefix("spec.machineTypes") {
                    errs.add(format!("{field}.machineTypes{rest}"), f.message);
                }
            }
        }
    }
}

/// Refuses deleting a `KaasOperator` while a class it created is named by a `KaasCluster`.
pub fn validate_kaas_operator_delete(
    op: &KaasOperator,
    catalog: &Catalog,
) -> Result<(), ValidationErrors> {
    let created: Vec<&str> = op
        .status
        .iter()
        .flat_map(|s| &s.inventory)
        .filter(|o| o.kind == "ProviderClass")
        .map(|o| o.name.as_str())
        .collect();
    let mut errs = ValidationErrors::default();
    for class in created {
        let users: Vec<String> = catalog
            .clusters
            .iter()
            .filter(|c| c.spec.provider_class_name.as_deref() == Some(class))
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        if !users.is_empty() {
            errs.forbidden(
                "metadata.name",
                format!(
                    "its {}; delete those clusters first",
                    in_use_message("ProviderClass", class, &users)
                ),
            );
        }
    }
    errs.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::v1alpha1::{ImageOverride, KaasOperatorSpec, ProviderClassTemplate};

    fn others(ops: &[&KaasOperator]) -> Catalog {
        Catalog {
            operators: ops
                .iter()
                .map(|o| std::sync::Arc::new((*o).clone()))
                .collect(),
            ..Default::default()
        }
    }

    fn op(name: &str, provider: &str, version: &str) -> KaasOperator {
        KaasOperator::new(
            name,
            KaasOperatorSpec {
                provider: provider.into(),
                version: version.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_known_provider_and_version_pass() {
        let o = op("docker", "docker", bundles::CURRENT);
        assert_eq!(
            validate_kaas_operator(&o, None, &Catalog::default()),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let mut o = op("x", "docker", "9.9.9");
        o.spec.replicas = Some(0);
        o.spec.image = Some(ImageOverride {
            repository: Some("Registry/UPPER:tag".into()),
            digest: Some("sha256:abc".into()),
        });
        o.spec.additional_args = [
            ("--concurrency".to_string(), "8".to_string()),
            ("--frobnicate".to_string(), "1".to_string()),
            ("--leader-elect".to_string(), "false".to_string()),
        ]
        .into();
        o.spec.provider_classes = vec![
            ProviderClassTemplate {
                name: "a".into(),
                default: true,
                ..Default::default()
            },
            ProviderClassTemplate {
                name: "a".into(),
                default: true,
                machine_types: vec![
                    crate::v1beta1::MachineType {
                        name: "SCS-2V-4".into(),
                        cpu: 2,
                        memory: "4Gi".into(),
                        ..Default::default()
                    },
                    crate::v1beta1::MachineType {
                        name: "SCS-2V-4".into(),
                        cpu: 2,
                        memory: "4Gi".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ];
        let errs = validate_kaas_operator(&o, None, &Catalog::default()).unwrap_err();
        assert_eq!(
            errs.fields(),
            [
                "spec.version",
                "spec.replicas",
                "spec.image.repository",
                "spec.image.digest",
                "spec.additionalArgs[--leader-elect]",
                "spec.providerClasses[1].name",
                "spec.providerClasses[1].default",
                "spec.providerClasses[1].machineTypes[1].name",
            ],
            "{errs}"
        );
        // With a known version, an unknown flag is named too.
        o.spec.version = bundles::CURRENT.into();
        let errs = validate_kaas_operator(&o, None, &Catalog::default()).unwrap_err();
        assert!(errs.has("spec.additionalArgs[--frobnicate]"), "{errs}");
        assert!(!errs.has("spec.additionalArgs[--concurrency]"), "{errs}");
    }

    #[test]
    fn one_per_provider_and_the_provider_is_immutable() {
        let first = op("docker", "docker", bundles::CURRENT);
        let second = op("docker-2", "docker", bundles::CURRENT);
        let errs = validate_kaas_operator(&second, None, &others(&[&first])).unwrap_err();
        assert_eq!(errs.fields(), ["spec.provider"]);
        assert!(
            errs.to_string().contains("\"docker\" already installs"),
            "{errs}"
        );
        // Itself is no conflict (an update).
        assert_eq!(
            validate_kaas_operator(&first, None, &others(&[&first])),
            Ok(())
        );
        let moved = op("docker", "openstack", bundles::CURRENT);
        let errs = validate_kaas_operator(&moved, Some(&first), &Catalog::default()).unwrap_err();
        assert_eq!(errs.fields(), ["spec.provider"]);
        let unknown = op("aws", "aws", "1.0.0");
        let errs = validate_kaas_operator(&unknown, None, &Catalog::default()).unwrap_err();
        assert_eq!(errs.fields(), ["spec.provider"]);
        assert!(
            errs.to_string().contains("docker, openstack, hetzner"),
            "{errs}"
        );
    }

    #[test]
    fn repositories_and_digests() {
        assert!(is_repository("ghcr.io/scs-kaas/kaas-operator-docker"));
        assert!(is_repository("localhost:5000/kaas"));
        assert!(is_repository("mirror/kaas-operator-docker"));
        assert!(!is_repository("ghcr.io/kaas:0.2.0/x"));
        assert!(!is_repository("ghcr.io/Kaas"));
        assert!(!is_repository(""));
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
    }
}
