//! The router in process, over the api crate's JSON/YAML fixtures: every admission rule gives
//! the expected verdict as an AdmissionReview, defaulting comes back as a JSON patch, conversion
//! answers ConversionReviews, and malformed input gets a well-formed 4xx, never a panic or 5xx.

use std::sync::Arc;

use axum::body::Body;
use base64::Engine;
use http_body_util::BodyExt;
use kaas_webhooks::cache::CatalogCache;
use kaas_webhooks::metrics::Metrics;
use kaas_webhooks::router::{AppState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/fixtures");

fn state() -> AppState {
    let text = std::fs::read_to_string(format!("{FIXTURES}/catalog.yaml")).expect("catalog");
    let catalog = api::Catalog::from_yaml(&text).expect("catalog parses");
    AppState {
        cache: CatalogCache::fixed(&catalog),
        metrics: Arc::new(Metrics::default()),
        draining: Default::default(),
    }
}

async fn call(state: &AppState, method: &str, path: &str, body: Vec<u8>) -> (u16, Value, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let resp = router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    )
}

/// POSTs `body` as JSON to `path`.
async fn post(state: &AppState, path: &str, body: &Value) -> (u16, Value, String) {
    call(state, "POST", path, serde_json::to_vec(body).expect("json")).await
}

fn review(kind: &str, operation: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d0a9c9e-0000-4000-8000-000000000001",
            "kind": {"group": "kaas.scs.community", "version": "v1beta1", "kind": kind},
            "resource": {"group": "kaas.scs.community", "version": "v1beta1", "resource": "x"},
            "name": "x",
            "operation": operation,
            "userInfo": {"username": "tester"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    })
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    kind: String,
    operation: String,
    errors: Vec<String>,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old: Option<Value>,
}

#[tokio::test]
async fn every_admission_case_gets_its_verdict() {
    let state = state();
    let text = std::fs::read_to_string(format!("{FIXTURES}/admission-cases.yaml")).expect("cases");
    let cases: Vec<Case> = serde_saphyr::from_str(&text).expect("cases parse");
    for case in cases {
        let body = review(
            &case.kind,
            &case.operation,
            case.object.as_ref(),
            case.old.as_ref(),
        );
        let (status, reply, raw) = post(&state, "/validate", &body).await;
        assert_eq!(status, 200, "{}: {raw}", case.name);
        assert_eq!(reply["kind"], "AdmissionReview");
        let response = &reply["response"];
        assert_eq!(response["uid"], "0d0a9c9e-0000-4000-8000-000000000001");
        let allowed = response["allowed"].as_bool().expect("allowed");
        assert_eq!(allowed, case.errors.is_empty(), "{}: {raw}", case.name);
        if !allowed {
            let message = response["status"]["message"].as_str().expect("message");
            for field in &case.errors {
                assert!(
                    message.contains(field.as_str()),
                    "{}: {field} not in {message}",
                    case.name
                );
            }
            let causes = response["status"]["details"]["causes"]
                .as_array()
                .expect("causes");
            assert_eq!(causes.len(), case.errors.len(), "{}: {raw}", case.name);
        }
    }
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains(r#"kaas_webhook_requests_total{endpoint="validate",kind="KaasCluster",operation="UPDATE",outcome="denied"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("kaas_webhook_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

fn apply_patch(object: &Value, response: &Value) -> Value {
    let mut doc = object.clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch");
        json_patch::patch(&mut doc, &patch).expect("patch applies");
    }
    doc
}

#[tokio::test]
async fn a_minimal_cluster_comes_back_defaulted() {
    let state = state();
    let object = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "minimal", "namespace": "team-a"},
        "spec": {"clusterStack": {"name": "scs"}}
    });
    let body = review("KaasCluster", "CREATE", Some(&object), None);
    let (status, reply, raw) = post(&state, "/mutate", &body).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(reply["response"]["allowed"], true);
    let defaulted = apply_patch(&object, &reply["response"]);
    assert_eq!(defaulted["spec"]["providerClassName"], "openstack");
    assert_eq!(defaulted["spec"]["clusterStack"]["version"], "1.1.0");
    assert_eq!(defaulted["spec"]["kubernetesVersion"], "1.32.1");
    assert_eq!(defaulted["spec"]["controlPlane"]["replicas"], 3);
    assert_eq!(
        defaulted["spec"]["network"]["podCIDRs"],
        json!(["192.168.0.0/16"])
    );
    assert_eq!(
        defaulted["metadata"], object["metadata"],
        "metadata untouched"
    );

    // Defaulting the defaulted object changes nothing: no patch at all.
    let again = review("KaasCluster", "CREATE", Some(&defaulted), None);
    let (_, reply, _) = post(&state, "/mutate", &again).await;
    assert_eq!(reply["response"]["allowed"], true);
    assert!(reply["response"].get("patch").is_none(), "{reply}");
}

#[tokio::test]
async fn on_update_what_is_left_out_keeps_its_value() {
    let state = state();
    let old = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "prod", "namespace": "team-a"},
        "spec": {"providerClassName": "openstack", "clusterStack": {"name": "scs", "version": "1.0.0"},
                 "kubernetesVersion": "1.31.4", "controlPlane": {"replicas": 5},
                 "network": {"podCIDRs": ["172.16.0.0/16"], "serviceCIDRs": ["172.20.0.0/16"]}}
    });
    let object = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "prod", "namespace": "team-a"},
        "spec": {"clusterStack": {"name": "scs"}, "workers": [{"name": "a", "replicas": 2, "machineType": "m"}]}
    });
    let body = review("KaasCluster", "UPDATE", Some(&object), Some(&old));
    let (_, reply, raw) = post(&state, "/mutate", &body).await;
    let defaulted = apply_patch(&object, &reply["response"]);
    assert_eq!(
        defaulted["spec"]["clusterStack"]["version"], "1.0.0",
        "{raw}"
    );
    assert_eq!(defaulted["spec"]["kubernetesVersion"], "1.31.4");
    assert_eq!(defaulted["spec"]["controlPlane"]["replicas"], 5);
    assert_eq!(
        defaulted["spec"]["network"]["serviceCIDRs"],
        json!(["172.20.0.0/16"])
    );
    assert_eq!(defaulted["spec"]["workers"][0]["replicas"], 2);
}

#[tokio::test]
async fn a_stack_comes_back_sorted() {
    let state = state();
    let object = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-scs-1-0-0"},
        "spec": {"provider": "docker", "name": "scs", "version": "1.0.0",
                 "kubernetesVersions": ["1.32.1", "1.31.4", "1.32.1"]}
    });
    let body = review("ClusterStack", "CREATE", Some(&object), None);
    let (_, reply, _) = post(&state, "/mutate", &body).await;
    let defaulted = apply_patch(&object, &reply["response"]);
    assert_eq!(
        defaulted["spec"]["kubernetesVersions"],
        json!(["1.31.4", "1.32.1"])
    );
}

#[tokio::test]
async fn wrong_shapes_are_left_to_the_schema_by_mutate_and_refused_by_validate() {
    let state = state();
    let object = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "bad", "namespace": "team-a"},
        "spec": {"clusterStack": {"name": "scs"}, "controlPlane": {"replicas": "three"}}
    });
    let body =
        serde_json::to_vec(&review("KaasCluster", "CREATE", Some(&object), None)).expect("json");
    let (_, reply, _) = call(&state, "POST", "/mutate", body.clone()).await;
    assert_eq!(reply["response"]["allowed"], true);
    let (status, reply, _) = call(&state, "POST", "/validate", body).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response"]["allowed"], false);
    let msg = reply["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("request.object"), "{msg}");
}

#[tokio::test]
async fn conversion_reviews_convert_both_ways() {
    let state = state();
    let alpha = json!({
        "apiVersion": "kaas.scs.community/v1alpha1", "kind": "KaasCluster",
        "metadata": {"name": "old", "namespace": "team-a", "uid": "u1"},
        "spec": {"providerClass": "openstack", "clusterStackName": "scs", "clusterStackVersion": "1.1.0",
                 "controlPlaneReplicas": 3, "podCIDR": "192.168.0.0/16", "serviceCIDR": "10.96.0.0/12",
                 "machineDeployments": [{"name": "md-0", "replicas": 2, "machineType": "m"}]}
    });
    let body = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c1", "desiredAPIVersion": "kaas.scs.community/v1beta1", "objects": [alpha]}
    });
    let (status, reply, raw) = post(&state, "/convert", &body).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(reply["response"]["uid"], "c1");
    assert_eq!(reply["response"]["result"]["status"], "Success", "{raw}");
    let beta = &reply["response"]["convertedObjects"][0];
    assert_eq!(beta["apiVersion"], "kaas.scs.community/v1beta1");
    assert_eq!(beta["spec"]["providerClassName"], "openstack");
    assert_eq!(beta["spec"]["workers"][0]["name"], "md-0");
    assert_eq!(
        beta["spec"]["network"]["podCIDRs"],
        json!(["192.168.0.0/16"])
    );
    assert_eq!(beta["metadata"]["uid"], "u1");

    let back = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c2", "desiredAPIVersion": "kaas.scs.community/v1alpha1", "objects": [beta]}
    });
    let (_, reply, _) = post(&state, "/convert", &back).await;
    assert_eq!(reply["response"]["convertedObjects"][0], alpha);

    // One bad object fails the review with a message naming it.
    let bad = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c3", "desiredAPIVersion": "kaas.scs.community/v9", "objects": [alpha]}
    });
    let (status, reply, raw) = post(&state, "/convert", &bad).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response"]["result"]["status"], "Failure", "{raw}");
    assert!(raw.contains("objects[0] (old)"), "{raw}");
}

#[tokio::test]
async fn malformed_input_gets_a_well_formed_4xx() {
    let state = state();
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let pod = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "operation": "CREATE", "object": object}
    });
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("POST", "/validate", b"{not json".to_vec(), 400),
        ("POST", "/mutate", b"".to_vec(), 400),
        ("POST", "/validate", b"{}".to_vec(), 400),
        ("POST", "/validate", b"[1,2,3]".to_vec(), 400),
        (
            "POST",
            "/validate",
            br#"{"request": {"uid": 5}}"#.to_vec(),
            400,
        ),
        ("POST", "/convert", b"{}".to_vec(), 400),
        ("POST", "/convert", b"\xff\xfe".to_vec(), 400),
        ("POST", "/validate", vec![b' '; 3 * 1024 * 1024 + 1], 413),
        ("POST", "/nope", b"{}".to_vec(), 404),
        ("GET", "/mutate", Vec::new(), 405),
    ];
    for (method, path, body, want) in cases {
        let (status, reply, raw) = call(&state, method, path, body.clone()).await;
        assert_eq!(
            status,
            want,
            "{method} {path} {:?}: {raw}",
            String::from_utf8_lossy(&body[..body.len().min(20)])
        );
        if want == 400 {
            let kind = reply["kind"].as_str().unwrap_or_default();
            assert!(
                kind == "AdmissionReview" || kind == "ConversionReview",
                "{raw}"
            );
        }
    }
    // A kind this server does not serve: a review carrying the refusal.
    let (status, reply, raw) = post(&state, "/validate", &pod).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response"]["allowed"], false, "{raw}");
    assert!(raw.contains("not served"), "{raw}");
    // A review without an object.
    let empty = review("KaasCluster", "CREATE", None, None);
    let (status, reply, raw) = post(&state, "/validate", &empty).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response"]["allowed"], false);
    assert!(raw.contains("request.object: required"), "{raw}");
}

#[tokio::test]
async fn health_and_readiness() {
    let state = state();
    let (status, _, body) = call(&state, "GET", "/healthz", Vec::new()).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, _) = call(&state, "GET", "/readyz", Vec::new()).await;
    assert_eq!(status, 200);
}

#[test]
fn committed_webhook_registrations_are_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/webhooks/webhook-configurations.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let expected = kaas_webhooks::registration::deployed_yaml().expect("renders");
    assert!(
        committed == expected,
        "deploy/webhooks/webhook-configurations.yaml is stale: run `make manifests` and commit the result"
    );
}

fn operator_review(operation: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    let mut r = review("KaasOperator", operation, object, old);
    r["request"]["kind"] = json!({"group": "operator.kaas.scs.community", "version": "v1alpha1", "kind": "KaasOperator"});
    r["request"]["resource"] = json!({"group": "operator.kaas.scs.community",
        "version": "v1alpha1", "resource": "kaasoperators"});
    r
}

#[tokio::test]
async fn kaas_operators_are_validated_and_one_whose_class_is_used_is_kept() {
    let cluster: api::v1beta1::KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "shop", "namespace": "team"},
        "spec": {"providerClassName": "docker-default", "clusterStack": {"name": "scs"},
                 "controlPlane": {"replicas": 1}}}))
    .expect("cluster");
    let installed: api::install::v1alpha1::KaasOperator = serde_json::from_value(json!({
        "apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": "docker"},
        "spec": {"provider": "docker", "version": api::install::bundles::CURRENT},
        "status": {"inventory": [{"apiVersion": "kaas.scs.community/v1beta1",
                                  "kind": "ProviderClass", "name": "docker-default"}]}}))
    .expect("operator");
    let state = AppState {
        cache: CatalogCache::fixed(&api::Catalog {
            clusters: vec![Arc::new(cluster)],
            operators: vec![Arc::new(installed.clone())],
            ..Default::default()
        }),
        metrics: Arc::new(Metrics::default()),
        draining: Default::default(),
    };
    let ok = json!({"apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": "openstack"},
        "spec": {"provider": "openstack", "version": api::install::bundles::CURRENT,
                 "additionalArgs": {"--concurrency": "8"}}});
    let (status, body, _) = post(
        &state,
        "/validate",
        &operator_review("CREATE", Some(&ok), None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["allowed"], true, "{body}");

    for (spec, field) in [
        (
            json!({"provider": "aws", "version": "1.0.0"}),
            "spec.provider",
        ),
        (
            json!({"provider": "hetzner", "version": "7.0.0"}),
            "spec.version",
        ),
        (
            json!({"provider": "hetzner", "version": api::install::bundles::CURRENT,
                   "additionalArgs": {"--no-such-flag": "1"}}),
            "spec.additionalArgs[--no-such-flag]",
        ),
        // A second KaasOperator for docker.
        (
            json!({"provider": "docker", "version": api::install::bundles::CURRENT}),
            "spec.provider",
        ),
    ] {
        let object = json!({"apiVersion": "operator.kaas.scs.community/v1alpha1",
            "kind": "KaasOperator", "metadata": {"name": "new"}, "spec": spec});
        let (_, body, _) = post(
            &state,
            "/validate",
            &operator_review("CREATE", Some(&object), None),
        )
        .await;
        assert_eq!(body["response"]["allowed"], false, "{spec}: {body}");
        let causes = &body["response"]["status"]["details"]["causes"];
        assert!(
            causes
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["field"] == field)),
            "{spec}: {field} not named: {body}"
        );
    }

    // Deleting the docker KaasOperator: its class is used by team/shop.
    let old = serde_json::to_value(&installed).expect("json");
    let (_, body, _) = post(
        &state,
        "/validate",
        &operator_review("DELETE", None, Some(&old)),
    )
    .await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("team/shop"), "{message}");
    // One whose classes nobody uses goes.
    let (_, body, _) = post(
        &state,
        "/validate",
        &operator_review("DELETE", None, Some(&ok)),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
}
