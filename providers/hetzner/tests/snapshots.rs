//! Snapshot lookup through the Hetzner Cloud API, against the loopback stand-in of that API
//! (`kaas_testenv::hcloud`; the real one cannot be reached here): the operator finds the
//! stack's snapshot by its `caph-image-name` label, and says exactly what is missing when it
//! cannot.

use std::collections::BTreeMap;

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_testenv::hcloud::FakeHcloud;
use operator_core::{ClusterContext, Provider as _, ProviderError};

const TOKEN: &str = "project-token";
const IMAGE: &str = "ubuntu-2404-kube-v1.31.4";

#[derive(serde::Deserialize)]
struct Fixture {
    class: ProviderClass,
    stack: ClusterStack,
    cluster: KaasCluster,
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/prod.yaml");
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn lookup(
    provider: &kaas_provider_hetzner::Provider,
    token: Option<&str>,
) -> Result<String, ProviderError> {
    let f = fixture();
    let credentials = token.map(|t| BTreeMap::from([("hcloud".to_string(), t.to_string())]));
    let ctx = ClusterContext {
        cluster: &f.cluster,
        name: "prod",
        namespace: "shop",
        kubernetes_version: "1.31.4",
        stack: &f.stack,
        class: &f.class,
        credentials: credentials.as_ref(),
    };
    let images = provider.node_images(&ctx)?;
    provider.find_node_images(&ctx, &images).await?;
    Ok(images.reference)
}

#[tokio::test]
async fn the_snapshot_is_found_by_label_and_a_missing_one_is_named() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeHcloud::start(Some(TOKEN)).unwrap();
    let provider = kaas_provider_hetzner::Provider::new(&api.endpoint);

    let missing = lookup(&provider, Some(TOKEN)).await.unwrap_err();
    assert!(matches!(missing, ProviderError::NotReady(_)), "{missing}");
    assert_eq!(
        missing.to_string(),
        "no snapshot labelled caph-image-name=ubuntu-2404-kube-v1.31.4 in the Hetzner project of \
         Secret shop/hetzner-token: build it with the stack's image template and label it \
         caph-image-name=ubuntu-2404-kube-v1.31.4"
    );

    let id = api.add_snapshot(IMAGE, "creating");
    let creating = lookup(&provider, Some(TOKEN)).await.unwrap_err();
    assert_eq!(
        creating.to_string(),
        format!(
            "snapshot {id} labelled caph-image-name={IMAGE} is creating in the Hetzner project of Secret shop/hetzner-token"
        )
    );

    api.set_status(IMAGE, "available");
    assert_eq!(lookup(&provider, Some(TOKEN)).await.unwrap(), IMAGE);
    // A found snapshot is remembered: the next reconcile does not ask again.
    let asked = api.requests();
    assert_eq!(lookup(&provider, Some(TOKEN)).await.unwrap(), IMAGE);
    assert_eq!(api.requests(), asked);
}

#[tokio::test]
async fn a_refused_token_is_reported_with_its_secret() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeHcloud::start(Some(TOKEN)).unwrap();
    api.add_snapshot(IMAGE, "available");
    let provider = kaas_provider_hetzner::Provider::new(&api.endpoint);
    let err = lookup(&provider, Some("stale-token")).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotReady(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "the Hetzner API refused the token in Secret shop/hetzner-token (401 Unauthorized)"
    );
}

#[tokio::test]
async fn an_unreachable_api_is_transient_and_offline_builds_do_not_ask() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeHcloud::start(Some(TOKEN)).unwrap();
    let endpoint = api.endpoint.clone();
    drop(api);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let provider = kaas_provider_hetzner::Provider::new(&endpoint);
    let err = lookup(&provider, Some(TOKEN)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
    // Without credentials (golden tests, `kaasctl render`) the stack's name is used as is.
    assert_eq!(lookup(&provider, None).await.unwrap(), IMAGE);
}
