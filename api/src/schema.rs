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
