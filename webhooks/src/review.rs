//! The AdmissionReview response: a verdict and its wire form (the request side is
//! [`crate::request`]).

use base64::Engine;
use serde_json::{Value, json};

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
    /// A serialized JSON patch document to apply (mutation only).
    pub patch: Option<Vec<u8>>,
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

    /// Allowed with `/spec` replaced by `spec`.
    pub fn with_spec<S: serde::Serialize>(spec: &S) -> Self {
        #[derive(serde::Serialize)]
        struct Op<'a, S> {
            op: &'static str,
            path: &'static str,
            value: &'a S,
        }
        match serde_json::to_vec(&[Op {
            op: "add",
            path: "/spec",
            value: spec,
        }]) {
            Ok(patch) => Verdict {
                patch: Some(patch),
                ..Verdict::allow()
            },
            Err(e) => Verdict::deny(500, format!("serializing the defaults: {e}")),
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
            response["patchType"] = "JSONPatch".into();
            response["patch"] = base64::engine::general_purpose::STANDARD
                .encode(patch)
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
