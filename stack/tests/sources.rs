//! Sources: a local folder, an HTTP tarball pinned by sha256 (a loopback HTTP server), and an
//! OCI artifact pinned by digest (a real registry, Debian's docker-registry, on loopback).
//! Fetched content is verified against its pin and cached, so a second fetcher with the same
//! cache folder (a restarted operator) does not download again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api::v1beta1::{HttpSource, LocalSource, OciSource, StackSource};
use kaas_stack::signature::SigningKey;
use kaas_stack::source::Fetcher;
use kaas_stack::{Error, Release, builtin};
use sha2::{Digest, Sha256};

fn docker_release() -> Release {
    builtin::find("docker", "scs", "1.0.0")
        .unwrap()
        .expect("shipped")
}

fn sha256(bytes: &[u8]) -> String {
    kaas_stack::release::hex(&Sha256::digest(bytes))
}

/// Serves `body` at `/stack.tar.gz` and counts the requests.
async fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/stack.tar.gz",
        axum::routing::get(move || {
            let counter = counter.clone();
            let body = body.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                body
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/stack.tar.gz"), hits)
}

#[tokio::test]
async fn a_local_folder_is_loaded_and_checked() {
    kaas_testenv::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in &docker_release().files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let fetcher = Fetcher::new(None, vec![]);
    let source = StackSource {
        local: Some(LocalSource {
            path: dir.path().display().to_string(),
        }),
        ..Default::default()
    };
    let release = fetcher.fetch(&source).await.expect("loads");
    assert_eq!(release.digest, docker_release().digest);

    std::fs::remove_file(dir.path().join("addons/local-path-provisioner.yaml")).unwrap();
    let err = fetcher.fetch(&source).await.expect_err("a file is missing");
    assert!(
        err.to_string().contains(
            "stack.yaml: addons[2].manifests[0]: file \"addons/local-path-provisioner.yaml\" is not in the release"
        ),
        "{err}"
    );
    // The base travels with the release (under base/), and is checked like the rest.
    std::fs::remove_file(dir.path().join("base/addons/cilium.yaml")).unwrap();
    let err = fetcher
        .fetch(&source)
        .await
        .expect_err("a base file is missing");
    assert!(
        err.to_string().contains(
            "base/stack.yaml: addons[0].manifests[0]: file \"addons/cilium.yaml\" is not in the release"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_http_tarball_is_verified_cached_and_not_fetched_again() {
    kaas_testenv::install_crypto_provider();
    let tarball = docker_release().to_tarball();
    let (url, hits) = serve(tarball.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(Some(cache.path().to_path_buf()), vec![]);

    let wrong = "0".repeat(64);
    let err = fetcher
        .fetch_http(&url, &wrong)
        .await
        .expect_err("mismatch");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains("spec.source.http.sha256"), "{err}");
    assert!(
        std::fs::read_dir(cache.path())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "nothing cached"
    );

    let source = StackSource {
        http: Some(HttpSource {
            url: url.clone(),
            sha256: sha256(&tarball),
        }),
        ..Default::default()
    };
    let release = fetcher.fetch(&source).await.expect("fetched");
    assert_eq!(release, docker_release());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let restarted = Fetcher::new(Some(cache.path().to_path_buf()), vec![]);
    let again = restarted.fetch(&source).await.expect("from the cache");
    assert_eq!(again, release);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a restart does not download again"
    );
    assert_eq!(restarted.downloads(), 0);

    let (bad_url, _) = serve(b"not a tarball".to_vec()).await;
    let err = fetcher
        .fetch_http(&bad_url, &sha256(b"not a tarball"))
        .await
        .expect_err("not a tarball");
    assert!(err.to_string().contains("not a .tar.gz"), "{err}");
}

#[tokio::test]
async fn an_oci_artifact_is_pushed_discovered_and_pulled_by_digest() {
    kaas_testenv::install_crypto_provider();
    let registry = kaas_testenv::registry::Registry::start()
        .await
        .expect("registry");
    let cache = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(
        Some(cache.path().to_path_buf()),
        vec![registry.addr().into()],
    );
    let repository = format!("{}/stacks/docker-scs", registry.addr());

    let release = docker_release();
    let digest = fetcher.push(&repository, &release).await.expect("pushed");
    assert!(digest.starts_with("sha256:"), "{digest}");

    let mut newer = release.clone();
    newer.stack.version = "1.1.0".into();
    newer.stack.upgrade_from = vec!["1.0.0".into()];
    let text = serde_saphyr::to_string(&newer.stack).unwrap();
    newer.files.insert("stack.yaml".into(), text);
    let newer_digest = fetcher.push(&repository, &newer).await.expect("pushed");

    let found = fetcher.discover(&repository).await.expect("tags listed");
    let tags: Vec<(&str, &str)> = found
        .iter()
        .map(|d| (d.tag.as_str(), d.digest.as_str()))
        .collect();
    assert_eq!(
        tags,
        vec![("1.0.0", digest.as_str()), ("1.1.0", newer_digest.as_str())]
    );

    let source = StackSource {
        oci: Some(OciSource {
            repository: repository.clone(),
            digest: digest.clone(),
            public_key: None,
        }),
        ..Default::default()
    };
    let pulled = fetcher.fetch(&source).await.expect("pulled");
    assert_eq!(pulled, release);
    assert_eq!(fetcher.downloads(), 1);

    let restarted = Fetcher::new(
        Some(cache.path().to_path_buf()),
        vec![registry.addr().into()],
    );
    assert_eq!(restarted.fetch(&source).await.expect("cached"), release);
    assert_eq!(restarted.downloads(), 0, "a restart does not pull again");

    let missing = format!("sha256:{}", "1".repeat(64));
    let err = restarted
        .fetch_oci(&repository, &missing)
        .await
        .expect_err("no such digest");
    assert!(matches!(err, Error::Fetch(_)), "{err}");
}

/// A release signed the way cosign stores signatures (`sha256-<hex>.sig` in the same
/// repository) is taken by a fetcher requiring that key, from the cache too; an unsigned one
/// and one signed with another key are refused, naming the release and the key; a candidate
/// tagged as a pre-release is never discovered.
#[tokio::test]
async fn signatures_are_required_checked_and_kept_beside_the_release() {
    kaas_testenv::install_crypto_provider();
    let registry = kaas_testenv::registry::Registry::start()
        .await
        .expect("registry");
    let repository = format!("{}/stacks/signed", registry.addr());
    let cache = tempfile::tempdir().unwrap();
    let plain = vec![registry.addr().to_string()];
    let fetcher = Fetcher::new(Some(cache.path().to_path_buf()), plain.clone());
    let release = docker_release();
    let digest = fetcher.push(&repository, &release).await.expect("pushed");
    let mut other = release.clone();
    other.stack.version = "1.0.1".into();
    let text = serde_saphyr::to_string(&other.stack).unwrap();
    other.files.insert("stack.yaml".into(), text);
    let candidate = fetcher
        .push_tagged(&repository, &other, &["1.0.1-candidate.1".into()])
        .await
        .expect("candidate pushed");

    let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
    let stranger = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
    let requiring = Fetcher::new(Some(cache.path().to_path_buf()), plain.clone())
        .requiring_signatures(vec![key.public()]);
    let source = |digest: &str, public_key: Option<String>| StackSource {
        oci: Some(OciSource {
            repository: repository.clone(),
            digest: digest.to_string(),
            public_key,
        }),
        ..Default::default()
    };

    // Unsigned: refused as missing (worth retrying: a signature may come).
    let err = requiring
        .fetch(&source(&digest, None))
        .await
        .expect_err("unsigned");
    assert_eq!(err.category(), "SignatureMissing", "{err}");
    assert!(err.is_transient());
    assert!(
        err.to_string().contains("not signed") && err.to_string().contains(&digest),
        "{err}"
    );

    // Signed by another key: refused as invalid, naming the key wanted.
    fetcher
        .sign(&repository, &digest, &stranger)
        .await
        .expect("signed");
    let err = requiring
        .fetch(&source(&digest, None))
        .await
        .expect_err("wrong key");
    assert_eq!(err.category(), "SignatureInvalid", "{err}");
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains(&key.public().fingerprint()),
        "{err}"
    );

    // Signed by the key as well: taken, and both signatures are kept.
    fetcher
        .sign(&repository, &digest, &key)
        .await
        .expect("signed");
    assert_eq!(
        requiring
            .fetch(&source(&digest, None))
            .await
            .expect("signed release"),
        release
    );
    for k in [&key, &stranger] {
        fetcher
            .verify_signed(&repository, &digest, &[k.public()], "test")
            .await
            .expect("each signature kept");
    }

    // A key in the ClusterStack is checked by any fetcher; a signature of one digest does
    // not sign another.
    let err = fetcher
        .fetch(&source(&candidate, Some(key.public().to_pem())))
        .await
        .expect_err("candidate unsigned");
    assert!(
        err.to_string().contains("spec.source.oci.publicKey"),
        "{err}"
    );
    fetcher
        .sign(&repository, &candidate, &stranger)
        .await
        .expect("signed");
    let err = fetcher
        .fetch(&source(&candidate, Some(key.public().to_pem())))
        .await
        .expect_err("signed by another key");
    assert_eq!(err.category(), "SignatureInvalid", "{err}");

    // HTTP releases carry no signature: refused when signatures are required.
    let http = StackSource {
        http: Some(HttpSource {
            url: "http://127.0.0.1:9/stack.tar.gz".into(),
            sha256: "0".repeat(64),
        }),
        ..Default::default()
    };
    let err = requiring.fetch(&http).await.expect_err("http");
    assert!(err.to_string().contains("--stack-signing-key"), "{err}");

    // The candidate (a pre-release tag) and the signature tags are not releases.
    let found: Vec<String> = fetcher
        .discover(&repository)
        .await
        .expect("listed")
        .into_iter()
        .map(|d| d.tag)
        .collect();
    assert_eq!(found, vec!["1.0.0".to_string()]);
}

/// The release bot signs the digest of the manifest it pushed, computed from the bytes it
/// sent: a registry (behind it, a proxy lying about one tag) that names another manifest's
/// digest for the tag just pushed stops the push with an error naming both digests, and that
/// other manifest is not signed.
#[tokio::test]
async fn a_registry_naming_another_manifest_for_the_pushed_tag_gets_nothing_signed() {
    kaas_testenv::install_crypto_provider();
    let registry = kaas_testenv::registry::Registry::start()
        .await
        .expect("registry");
    let repository = |addr: &str| format!("{addr}/stacks/lied-to");
    let honest = Fetcher::new(None, vec![registry.addr().to_string()]);
    // What the registry will claim the tag is: another release, already in the repository.
    let mut other = docker_release();
    other.stack.version = "0.9.0".into();
    let text = serde_saphyr::to_string(&other.stack).unwrap();
    other.files.insert("stack.yaml".into(), text);
    let other_digest = honest
        .push_tagged(&repository(registry.addr()), &other, &["0.9.0".into()])
        .await
        .expect("the other release pushed");

    let proxy = kaas_testenv::registry::LyingProxy::start(registry.addr(), "1.0.0", &other_digest)
        .await
        .expect("proxy");
    let through_proxy = Fetcher::new(None, vec![proxy.addr().to_string()]);
    let err = through_proxy
        .push_tagged(
            &repository(proxy.addr()),
            &docker_release(),
            &["1.0.0".into()],
        )
        .await
        .expect_err("the lie must stop the push");
    let text = err.to_string();
    assert!(
        text.contains(&other_digest) && text.contains("not signed"),
        "the error must name the digest the registry claimed: {text}"
    );
    // The digest it pushed is named too: the one computed from its own manifest bytes.
    let pushed = honest
        .push_tagged(
            &repository(registry.addr()),
            &docker_release(),
            &["1.0.0-honest".into()],
        )
        .await
        .expect("pushed without the proxy");
    assert!(text.contains(&pushed), "{text}");
    let err = honest
        .verify_signed(
            &repository(registry.addr()),
            &other_digest,
            &[],
            "--signing-key",
        )
        .await
        .expect_err("nothing signed the other manifest");
    assert!(err.to_string().contains("not signed"), "{err}");
}
