//! Arbitrary bytes as what a stack publisher or a tenant sends the operators (the first byte
//! picks which): a release archive (unpacked under its limits, then loaded, checked and
//! try-rendered as the operator does), or the text of a `<cluster>-kubeconfig` Secret (checked
//! by the workload access rules). Whatever arrives, the answer is a value or a named error,
//! and nothing panics; a refused kubeconfig never quotes the credential it was given.

#![no_main]

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use operator_core::workload_access::{self, CLUSTER_NAME_LABEL, Expected, SECRET_TYPE};

const MARKER: &str = "c2VjcmV0LWtleS1tYXRlcmlhbA";

fn secret(value: &[u8]) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some("dev-kubeconfig".into());
    secret.metadata.labels = Some([(CLUSTER_NAME_LABEL.to_string(), "dev".to_string())].into());
    secret.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            uid: "uid-kcp".into(),
            ..Default::default()
        },
    ]);
    secret.type_ = Some(SECRET_TYPE.into());
    secret.data = Some([("value".to_string(), ByteString(value.to_vec()))].into());
    secret
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(files) = kaas_stack::archive::unpack(rest, "fuzz.tar.gz") {
            let _ = kaas_stack::Release::from_files(files);
        }
    } else {
        let expected = Expected {
            cluster: "dev".into(),
            owners: vec!["uid-kcp".into()],
            host: "10.0.0.5".into(),
            port: 6443,
        };
        // The credential the refusal must never quote, placed where a parser error would.
        let mut value = rest.to_vec();
        value.extend_from_slice(format!("\nusers: [{{name: u, user: {{client-key-data: {MARKER}}}}}]\n").as_bytes());
        if let Err(refused) = workload_access::check(&secret(&value), &expected) {
            assert!(!refused.to_string().contains(MARKER), "{refused}");
        }
    }
});
