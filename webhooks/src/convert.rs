//! `/convert`: ConversionReview v1 for `KaasCluster` between `v1alpha1` and `v1beta1`, with the
//! lossless conversion of the `api` crate. One object that cannot be converted fails the whole
//! review with a message naming it, as the API server expects.

use kube::core::Status;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use serde_json::Value;

/// The HTTP answer to one conversion call.
#[derive(Debug)]
pub struct Answer {
    /// 200 for any review answered; 400 when the body was no review.
    pub status: u16,
    /// The `ConversionReview` response.
    pub body: Value,
    /// converted, failed or malformed (for metrics).
    pub outcome: &'static str,
}

/// Answers one ConversionReview body.
pub fn convert(body: &[u8]) -> Answer {
    let review: ConversionReview = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return malformed(&format!("body is not a ConversionReview: {e}")),
    };
    if review.types.kind != "ConversionReview" {
        return malformed(&format!(
            "kind: expected ConversionReview, got {:?}",
            review.types.kind
        ));
    }
    let request = match ConversionRequest::from_review(review) {
        Ok(r) => r,
        Err(_) => return malformed("request: required"),
    };
    let desired = request.desired_api_version.clone();
    let mut converted = Vec::with_capacity(request.objects.len());
    let mut failure = None;
    for (i, object) in request.objects.iter().enumerate() {
        match api::conversion::convert_kaas_cluster(object.clone(), &desired) {
            Ok(obj) => converted.push(obj),
            Err(e) => {
                let name = object["metadata"]["name"].as_str().unwrap_or("?");
                failure = Some(format!("objects[{i}] ({name}): {e}"));
                break;
            }
        }
    }
    let response = ConversionResponse::for_request(request);
    let (response, outcome) = match failure {
        None => (response.success(converted), "converted"),
        Some(msg) => (response.failure(Status::failure(&msg, "Invalid")), "failed"),
    };
    let mut body = serde_json::to_value(response.into_review()).unwrap_or_default();
    body["apiVersion"] = "apiextensions.k8s.io/v1".into();
    body["kind"] = "ConversionReview".into();
    Answer {
        status: 200,
        body,
        outcome,
    }
}

fn malformed(message: &str) -> Answer {
    let review = ConversionResponse::invalid(Status::failure(message, "BadRequest")).into_review();
    let mut body = serde_json::to_value(review).unwrap_or_default();
    body["apiVersion"] = "apiextensions.k8s.io/v1".into();
    body["kind"] = "ConversionReview".into();
    Answer {
        status: 400,
        body,
        outcome: "malformed",
    }
}
