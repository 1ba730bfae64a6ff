//! The class's credentials Secret, read on behalf of a provider that needs keys of it for
//! node images (`Provider::credential_keys`): the one place the core hands a secret to a
//! provider, so a missing Secret or key is reported the same way for every provider.

use std::collections::BTreeMap;

use api::v1beta1::ProviderClass;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::provider::ProviderError;

/// The values of `keys` in the Secret `class` names, in `namespace` (the cluster's), or why
/// they cannot be had. `None` when `keys` is empty.
pub async fn read(
    client: &Client,
    class: &ProviderClass,
    namespace: &str,
    keys: &[&str],
) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let class_name = class.metadata.name.as_deref().unwrap_or_default();
    let Some(name) = class
        .spec
        .parameters
        .as_ref()
        .filter(|p| p.kind == "Secret")
        .map(|p| p.name.as_str())
    else {
        return Err(ProviderError::Invalid(format!(
            "ProviderClass {class_name:?} must name the credentials Secret (with key {}) in spec.parameters (kind: Secret)",
            keys.join(", ")
        )));
    };
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| ProviderError::Transient(format!("reading Secret {namespace}/{name}: {e}")))?
        .ok_or_else(|| {
            ProviderError::NotReady(format!(
                "Secret {namespace}/{name}, named by ProviderClass {class_name:?} spec.parameters, does not exist"
            ))
        })?;
    pick(&secret, namespace, name, keys).map(Some)
}

/// The values of `keys` in `secret` (its `data`, or `stringData` of an object not yet stored).
fn pick(
    secret: &Secret,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Result<BTreeMap<String, String>, ProviderError> {
    let mut values = BTreeMap::new();
    for key in keys {
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(*key))
            .map(|b| String::from_utf8(b.0.clone()))
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(*key))
                    .map(|s| Ok(s.clone()))
            });
        match value {
            Some(Ok(v)) if !v.trim().is_empty() => {
                values.insert((*key).to_string(), v.trim().to_string());
            }
            Some(Ok(_)) => {
                return Err(ProviderError::NotReady(format!(
                    "Secret {namespace}/{name}: key {key:?} is empty"
                )));
            }
            Some(Err(_)) => {
                return Err(ProviderError::Invalid(format!(
                    "Secret {namespace}/{name}: key {key:?} is not UTF-8 text"
                )));
            }
            None => {
                return Err(ProviderError::NotReady(format!(
                    "Secret {namespace}/{name} has no key {key:?}"
                )));
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(data: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn a_missing_or_empty_key_is_named() {
        let err = pick(&secret(&[("other", b"x")]), "ns", "tok", &["hcloud"]).unwrap_err();
        assert_eq!(err.to_string(), "Secret ns/tok has no key \"hcloud\"");
        let err = pick(&secret(&[("hcloud", b" \n")]), "ns", "tok", &["hcloud"]).unwrap_err();
        assert_eq!(err.to_string(), "Secret ns/tok: key \"hcloud\" is empty");
        let err = pick(&secret(&[("hcloud", &[0xff])]), "ns", "tok", &["hcloud"]).unwrap_err();
        assert!(matches!(err, ProviderError::Invalid(_)), "{err}");
    }

    #[test]
    fn values_are_trimmed_text() {
        let got = pick(&secret(&[("hcloud", b"abc\n")]), "ns", "tok", &["hcloud"]).unwrap();
        assert_eq!(got["hcloud"], "abc");
    }
}
