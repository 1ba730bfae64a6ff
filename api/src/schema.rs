//! Schema helpers for fields whose shape the API does not fix (provider blobs, add-on values)
//! and for list-maps, which schemars cannot express by itself.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A free-form JSON object kept as is by the API server.
pub(crate) fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A number or a percentage (`3`, `"25%"`), Kubernetes' int-or-string.
pub(crate) fn int_or_percent(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "maxLength": 4,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",
            "message": "must be a number >= 0 or a percentage from 0% to 100%",
        }],
    })
}

/// `metav1.Condition` list, merged by `type` under server-side apply.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

// Patterns the API server checks itself (OpenAPI `pattern`, Go's RE2 syntax). They say what
// the shared validation in `crate::validation` says, which stays the precise word: these
// refuse the obviously wrong early, with kaas-webhooks down as well.

/// An RFC 1123 label (`crate::validation::names::is_dns_label`), with `maxLength: 63`.
pub(crate) const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// An RFC 1123 subdomain, with `maxLength: 253`.
pub(crate) const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A semantic version (semver.org's expression).
pub(crate) const SEMVER: &str = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$";
/// `1.31` or `1.31.4` (`crate::version::KubeVersion::parse`).
pub(crate) const KUBE_VERSION: &str = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?$";
/// `1.31.4` only.
pub(crate) const FULL_KUBE_VERSION: &str = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$";
/// A label key or taint key: `[prefix/]name`.
pub(crate) const QUALIFIED_NAME: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
/// A label value (empty allowed), with `maxLength: 63`.
pub(crate) const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// An issuer URL: `https://` and a host, no user name or password, no query or fragment.
pub(crate) const ISSUER_URL: &str = r"^https://[^/?#@]+(/[^?#]*)?$";
/// A registry as image references name it: a host with an optional port, or `_default`.
pub(crate) const REGISTRY_HOST: &str =
    r"^(_default|[A-Za-z0-9]([-A-Za-z0-9]*)(\.[A-Za-z0-9][-A-Za-z0-9]*)*(:[0-9]{1,5})?)$";
/// A mirror endpoint: `http(s)://`, a host with an optional port, an optional path without
/// spaces, quotes or backslashes.
pub(crate) const MIRROR_URL: &str = r#"^https?://[A-Za-z0-9]([-A-Za-z0-9]*)(\.[A-Za-z0-9][-A-Za-z0-9]*)*(:[0-9]{1,5})?(/[^\s"\\]*)?$"#;
/// A time of day, `HH:MM`.
pub(crate) const TIME_OF_DAY: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// A list of networks in CIDR form (pod or Service networks): each a CIDR with no host bits
/// set, at most one IPv4 and one IPv6. The CIDR functions are Kubernetes' CEL library (1.31+).
pub(crate) fn cidr_list_rules() -> serde_json::Value {
    serde_json::json!([
        {
            "rule": "self.all(c, isCIDR(c))",
            "message": "must be networks in CIDR form, such as 10.96.0.0/12",
        },
        {
            "rule": "self.all(c, !isCIDR(c) || cidr(c) == cidr(c).masked())",
            "message": "host bits are set past the prefix (10.0.0.0/8, not 10.0.0.1/8)",
        },
        {
            "rule": "self.size() < 2 || !isCIDR(self[0]) || !isCIDR(self[1]) || cidr(self[0]).ip().family() != cidr(self[1]).ip().family()",
            "message": "at most one IPv4 and one IPv6 network",
        },
    ])
}

/// Node labels: at most [`crate::validation::MAX_LABELS`], keys qualified names, values label
/// values.
pub(crate) fn labels(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": crate::validation::MAX_LABELS,
        "additionalProperties": {
            "type": "string",
            "maxLength": 63,
            "pattern": LABEL_VALUE,
        },
        "x-kubernetes-validations": [{
            "rule": format!("self.all(k, size(k) <= 317 && k.matches(r'{QUALIFIED_NAME}'))"),
            "message": "keys must be qualified names such as example.com/role",
        }],
    })
}
/// A controller name: a domain-prefixed path such as `kaas.scs.community/openstack`.
pub(crate) const CONTROLLER_NAME: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+(/[-a-z0-9._]+)+$";
/// An API group, or empty for the core group.
pub(crate) const API_GROUP: &str =
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$";

/// A memory quantity as the policy and the machine type catalogue take it: a whole number
/// with an optional binary (`Ki`..`Pi`) or decimal (`k`..`P`) suffix.
pub const QUANTITY: &str = r"^[0-9]{1,15}(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$";
