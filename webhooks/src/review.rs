//! The AdmissionReview wire format: just the request fields admission needs (parsed in one
//! pass, objects kept as JSON until a rule asks for its kind's type) and the response builder.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// An `AdmissionReview` as the API server sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// `admission.k8s.io/v1` (or `v1beta1` from old API servers).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `AdmissionReview`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The request; absent in a malformed review.
    #[serde(default)]
    pub request: Option<Request>,
}

/// The group, version and kind of the object under admission.
#[derive(Debug, Deserialize, Default)]
pub struct Gvk {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// An admission request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Echoed in the response.
    pub uid: String,
    /// Kind of the object (in the version the webhook is registered for).
    #[serde(default)]
    pub kind: Gvk,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: String,
    /// The subresource, when the request is for one.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object as it would be stored.
    #[serde(default)]
    pub object: Option<Value>,
    /// The object as it is stored (UPDATE, DELETE).
    #[serde(default)]
    pub old_object: Option<Value>,
}

/// A response to one admission request.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// HTTP-like code the API server reports with a denial.
    pub code: u16,
    /// One line for the user.
    pub message: String,
    /// Field-level causes: `(type, field, message)`.
    pub causes: Vec<(String, String, String)>,
    /// A JSON patch to apply (mutation only).
    pub patch: Option<json_patch::Patch>,
}

impl Verdict {
    /// Allowed, unchanged.
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            code: 200,
            message: String::new(),
            causes: Vec::new(),
            patch: None,
        }
    }

    /// Allowed with a patch (none when the patch is empty).
    pub fn patched(patch: json_patch::Patch) -> Self {
        let patch = (!patch.0.is_empty()).then_some(patch);
        Verdict {
            patch,
            ..Verdict::allow()
        }
    }

    /// Denied with `message` and the HTTP-like `code`.
    pub fn deny(code: u16, message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            code,
            message: message.into(),
            causes: Vec::new(),
            patch: None,
        }
    }

    /// Denied for the field errors, all of them in the message.
    pub fn invalid(kind: &str, errors: &api::ValidationErrors) -> Self {
        Verdict {
            causes: errors
                .0
                .iter()
                .map(|e| {
                    (
                        e.kind.cause_type().to_string(),
                        e.field.clone(),
                        e.message.clone(),
                    )
                })
                .collect(),
            ..Verdict::deny(422, format!("{kind} is invalid: {errors}"))
        }
    }

    /// The `AdmissionReview` carrying this verdict for request `uid`.
    pub fn into_review(self, api_version: &str, uid: &str) -> Value {
        let mut response = json!({ "uid": uid, "allowed": self.allowed });
        if !self.allowed {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|(t, f, m)| json!({"reason": t, "field": f, "message": m}))
                .collect();
            response["status"] = json!({
                "code": self.code,
                "message": self.message,
                "reason": if self.code == 422 { "Invalid" } else if self.code == 403 { "Forbidden" } else { "BadRequest" },
                "details": {"causes": causes},
            });
        }
        if let Some(patch) = &self.patch {
            // A patch of plain JSON values always serializes.
            let bytes = serde_json::to_vec(patch).unwrap_or_default();
            response["patchType"] = "JSONPatch".into();
            response["patch"] = base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into();
        }
        json!({
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "response": response,
        })
    }
}

/// `admission.k8s.io/v1`, the version answered when the request does not say.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";
