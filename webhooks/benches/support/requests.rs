//! The AdmissionReviews both webhook benchmarks send: a KaasCluster of about 2 KB (four
//! pools with labels and taints, OIDC, an add-on with values), two of them per UPDATE review.

use bytes::Bytes;
use serde_json::json;

/// A cluster as a user writes it; `with_defaults` adds what defaulting would fill in.
pub fn cluster(name: &str, with_defaults: bool) -> serde_json::Value {
    let mut spec = json!({
        "providerClassName": "openstack",
        "clusterStack": {"name": "scs", "version": "1.1.0"},
        "controlPlane": {"replicas": 3, "machineType": "SCS-4V-8"},
        "workers": (0..4).map(|i| json!({
            "name": format!("pool-{i}"), "replicas": 3, "machineType": "SCS-4V-16",
            "minReplicas": 1, "maxReplicas": 10,
            "labels": {"example.com/team": "platform", "example.com/tier": format!("tier-{i}")},
            "taints": [{"key": "example.com/dedicated", "value": "web", "effect": "NoSchedule"}]
        })).collect::<Vec<_>>(),
        "network": {"podCIDRs": ["192.168.0.0/16"], "mtu": 1400},
        "oidc": {"issuerURL": "https://login.example.com/realms/kaas", "clientID": "kubernetes",
                 "usernameClaim": "email", "groupsClaim": "groups"},
        "addons": [{"name": "cilium", "values": {"hubble": {"enabled": true}}}]
    });
    if with_defaults {
        spec["kubernetesVersion"] = "1.32".into();
        spec["network"]["serviceCIDRs"] = json!(["10.96.0.0/12"]);
    }
    json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name, "namespace": "team-a", "uid": "5c6f1b2e-8d1a-4a55-9a57-1f1e2c3d4e5f",
                     "generation": 7, "resourceVersion": "123456",
                     "labels": {"app.kubernetes.io/part-of": "shop", "environment": "production"},
                     "annotations": {"example.com/owner": "team-a@example.com"}},
        "spec": spec,
    })
}

pub fn review(operation: &str, object: serde_json::Value, old: Option<serde_json::Value>) -> Bytes {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "7f0b4b1a-9f49-4b8a-8d1f-3a6f1c2b9e01",
            "kind": {"group": "kaas.scs.community", "version": "v1beta1", "kind": "KaasCluster"},
            "resource": {"group": "kaas.scs.community", "version": "v1beta1", "resource": "kaasclusters"},
            "requestKind": {"group": "kaas.scs.community", "version": "v1beta1", "kind": "KaasCluster"},
            "name": "shop-prod", "namespace": "team-a", "operation": operation,
            "userInfo": {"username": "system:serviceaccount:flux-system:kustomize-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object, "oldObject": old, "dryRun": false,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kustomize-controller"}
        }
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// The catalog of the admission fixtures (classes and stacks the clusters refer to).
pub fn catalog() -> anyhow::Result<api::Catalog> {
    Ok(api::Catalog::from_yaml(&std::fs::read_to_string(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../api/tests/fixtures/catalog.yaml"
        ),
    )?)?)
}

/// The `/validate` review: an UPDATE of a defaulted cluster.
pub fn validate_body() -> Bytes {
    review(
        "UPDATE",
        cluster("shop-prod", true),
        Some(cluster("shop-prod", true)),
    )
}

/// The `/mutate` review: an UPDATE that leaves out what defaulting fills in.
pub fn mutate_body() -> Bytes {
    review(
        "UPDATE",
        cluster("shop-prod", false),
        Some(cluster("shop-prod", true)),
    )
}

/// The least a valid webhook must read of a review: its uid (serde skips the rest).
#[derive(serde::Deserialize)]
pub struct UidOnly<'a> {
    /// The request.
    #[serde(borrow)]
    pub request: UidRequest<'a>,
}

/// The request's uid.
#[derive(serde::Deserialize)]
pub struct UidRequest<'a> {
    /// Echoed in the response.
    #[serde(borrow)]
    pub uid: std::borrow::Cow<'a, str>,
}

/// `object` as the API server stores it after a while: managed fields of two managers and a
/// status with eight conditions (what a real UPDATE carries besides the spec).
#[allow(dead_code)] // used by one of the two benchmarks
pub fn stored(mut object: serde_json::Value) -> serde_json::Value {
    object["metadata"]["managedFields"] = json!([
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "kaas.scs.community/v1beta1",
         "time": "2026-11-24T10:00:00Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:providerClassName": {}, "f:clusterStack": {"f:name": {}, "f:version": {}},
            "f:controlPlane": {"f:replicas": {}, "f:machineType": {}},
            "f:workers": {"k:{\"name\":\"pool-0\"}": {".": {}, "f:name": {}, "f:replicas": {}, "f:machineType": {}},
                          "k:{\"name\":\"pool-1\"}": {".": {}, "f:name": {}, "f:replicas": {}, "f:machineType": {}}}}}},
        {"manager": "kaas-operator-openstack", "operation": "Apply", "subresource": "status",
         "apiVersion": "kaas.scs.community/v1beta1", "time": "2026-11-24T10:00:00Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:observedGeneration": {}, "f:phase": {}, "f:conditions": {},
            "f:controlPlane": {"f:replicas": {}, "f:readyReplicas": {}}}}}
    ]);
    let conditions: Vec<serde_json::Value> = [
        "Ready",
        "StackResolved",
        "NodeImagesReady",
        "InfrastructureReady",
        "ControlPlaneReady",
        "WorkersReady",
        "AddonsReady",
        "Compliant",
    ]
    .into_iter()
    .map(|t| {
        json!({"type": t, "status": "True", "reason": "Ready", "observedGeneration": 7,
                    "message": "all replicas are ready and up to date",
                    "lastTransitionTime": "2026-11-24T10:00:00Z"})
    })
    .collect();
    object["status"] = json!({"observedGeneration": 7, "phase": "Ready", "kubernetesVersion": "1.32.4",
        "clusterStackVersion": "1.1.0", "conditions": conditions,
        "controlPlane": {"desired": 3, "replicas": 3, "readyReplicas": 3, "upToDateReplicas": 3}});
    object
}

/// The least a *validating* webhook must read of a review: its uid and the new object's spec,
/// typed (serde skips the rest, the old object included). Nothing is checked.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // used by one of the two benchmarks
pub struct SpecOnly<'a> {
    /// The request.
    #[serde(borrow)]
    pub request: SpecRequest<'a>,
}

/// The request's uid and new object.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // used by one of the two benchmarks
pub struct SpecRequest<'a> {
    /// Echoed in the response.
    #[serde(borrow)]
    pub uid: std::borrow::Cow<'a, str>,
    /// The object under admission.
    pub object: SpecObject,
}

/// An object reduced to its typed spec.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // used by one of the two benchmarks
pub struct SpecObject {
    /// The spec, as the shared rules take it.
    pub spec: api::v1beta1::KaasClusterSpec,
}

/// The answer of a webhook that only echoes the review's uid and allows: the least a webhook
/// the API server accepts can do. (The breakdown bench has no use for it.)
#[allow(dead_code)]
pub fn echo_uid_allowed(body: &[u8]) -> String {
    let uid = serde_json::from_slice::<UidOnly<'_>>(body)
        .map(|r| r.request.uid.into_owned())
        .unwrap_or_default();
    serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": uid, "allowed": true}})
    .to_string()
}
