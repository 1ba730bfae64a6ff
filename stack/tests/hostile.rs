//! What a hostile stack publisher can send, sent: archives whose headers lie about sizes,
//! template bombs, a web server that never answers and one that streams without end. Each is
//! refused with an error naming what was refused, in bounded time; the archive and download
//! cases keep the test process under the operator pod's memory limit (256 MiB). (In process,
//! one template operation can still allocate beyond it: the operators render in workers,
//! tested in e2e/tests/trust.rs.)

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use kaas_stack::source::Fetcher;
use kaas_stack::{Error, Release};

/// The operator pod's memory limit (deploy/operators/<provider>/operator.yaml, from
/// installer/src/render.rs).
const POD_LIMIT: u64 = 256 * 1024 * 1024;

/// One hostile case at a time, so the memory high-water mark is that case's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Starts measuring the peak anew (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// The process's peak resident memory since [`reset_peak`] (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn assert_under_limit() {
    let peak = peak_rss();
    assert!(
        peak < POD_LIMIT,
        "peak RSS {} MiB reached the pod limit",
        peak >> 20
    );
}

fn refused(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Invalid(problems)) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        other => panic!("expected a refusal naming the problem, got {other:?}"),
    }
}

/// An archive entry header: `kind`, `path`, and the size it claims.
fn header(kind: tar::EntryType, path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_path(path).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

/// A pax record: `"<len> key=value\n"` where len counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

#[test]
fn an_extended_header_that_lies_about_a_size_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reset_peak();
    // The plain header says 10 bytes; the extended header says 900 MB. What follows is a
    // stream of zeros that compresses to almost nothing.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    {
        let mut tar = tar::Builder::new(&mut gz);
        let record = pax_record("size", "900000000");
        tar.append(
            &header(
                tar::EntryType::XHeader,
                "PaxHeaders/stack.yaml",
                record.len() as u64,
            ),
            record.as_slice(),
        )
        .unwrap();
        let h = header(tar::EntryType::Regular, "stack.yaml", 10);
        tar.append(&h, std::io::repeat(0).take(200_000_000))
            .unwrap();
    }
    let bytes = gz.finish().unwrap();
    assert!(bytes.len() < 1_000_000, "{} bytes", bytes.len());
    let message = refused(kaas_stack::archive::unpack(&bytes, "lying.tar.gz"));
    assert!(message.contains("lying.tar.gz"), "{message}");
    assert!(message.contains("larger than"), "{message}");
    assert_under_limit();
}

#[test]
fn an_endless_extended_header_is_cut_at_the_unpack_limit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reset_peak();
    let size = 300_000_000u64;
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        tar.append(
            &header(tar::EntryType::XHeader, "PaxHeaders/x", size),
            std::io::repeat(b'a').take(size),
        )
        .unwrap();
    }
    let bytes = gz.finish().unwrap();
    let message = refused(kaas_stack::archive::unpack(&bytes, "endless.tar.gz"));
    assert!(message.contains("unpacks to more than"), "{message}");
    assert_under_limit();
}

#[test]
fn too_many_entries_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reset_peak();
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        for i in 0..=kaas_stack::archive::MAX_ENTRIES {
            tar.append(
                &header(tar::EntryType::Regular, &format!("f{i}"), 0),
                std::io::empty(),
            )
            .unwrap();
        }
    }
    let message = refused(kaas_stack::archive::unpack(&gz.finish().unwrap(), "many"));
    assert!(message.contains("more than 10000 entries"), "{message}");
}

/// A release whose one add-on renders `template`.
fn release_with(template: &str) -> Result<Release, Error> {
    let stack = r#"
provider: docker
name: bomb
version: 1.0.0
kubernetesVersions: ["1.34.1"]
addons:
  - name: bomb
    version: 1.0.0
    manifests: [bomb.yaml]
"#;
    let files = [
        ("stack.yaml".to_string(), stack.as_bytes().to_vec()),
        ("bomb.yaml".to_string(), template.as_bytes().to_vec()),
    ]
    .into_iter()
    .collect();
    Release::from_files(files)
}

#[test]
fn template_bombs_are_refused_by_their_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reset_peak();
    let started = Instant::now();
    let loops =
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}";
    let message = refused(release_with(loops));
    assert!(message.contains("bomb.yaml"), "{message}");
    assert!(message.contains("steps to render"), "{message}");

    let repeat = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: \"{{ 'x' * 99999999 }}{{ 'y' * 99999999 }}{{ 'z' * 99999999 }}\"}\n";
    let message = refused(release_with(repeat));
    assert!(message.contains("bomb.yaml"), "{message}");
    assert!(message.contains("renders to more than"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A loopback server that accepts connections and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/stack.tar.gz")
}

/// A loopback server that answers with a body without Content-Length that never ends.
async fn endless_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'a'; 64 * 1024];
                while socket.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}/stack.tar.gz")
}

#[test]
fn a_server_that_never_answers_times_out_and_an_endless_body_is_cut() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reset_peak();
    kaas_testenv::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let fetcher = Fetcher::with_timeout(None, vec![], Duration::from_secs(2));
        let pin = "0".repeat(64);

        let started = Instant::now();
        let err = fetcher
            .fetch_http(&silent_server().await, &pin)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Fetch(_)), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let url = endless_server().await;
        let fetcher = Fetcher::with_timeout(None, vec![], Duration::from_secs(60));
        let message = refused(fetcher.fetch_http(&url, &pin).await);
        assert!(message.contains("larger than"), "{message}");
    });
    assert_under_limit();
}

#[tokio::test]
async fn sources_outside_what_the_operator_allows_are_refused() {
    use api::v1beta1::{HttpSource, LocalSource, OciSource, StackSource};
    use kaas_stack::source::Allowed;
    kaas_testenv::install_crypto_provider();
    let allowed_dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(None, vec![]).allowing(Allowed {
        local_dirs: vec![allowed_dir.path().to_path_buf()],
        prefixes: vec![
            "https://stacks.example/".into(),
            "registry.example/kaas/".into(),
        ],
    });
    let local = |path: String| StackSource {
        local: Some(LocalSource { path }),
        ..Default::default()
    };
    // The operator's own files, directly and by stepping out of an allowed folder.
    for path in [
        "/etc".to_string(),
        format!("{}/../../etc", allowed_dir.path().display()),
    ] {
        let message = refused(fetcher.fetch(&local(path.clone())).await);
        assert!(message.contains("spec.source.local.path"), "{message}");
        assert!(message.contains("--allow-local-stacks"), "{message}");
    }
    let http = StackSource {
        http: Some(HttpSource {
            url: "https://elsewhere.example/stack.tar.gz".into(),
            sha256: "0".repeat(64),
        }),
        ..Default::default()
    };
    let message = refused(fetcher.fetch(&http).await);
    assert!(message.contains("spec.source.http.url"), "{message}");
    let oci = StackSource {
        oci: Some(OciSource {
            repository: "registry.example/other/scs".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            public_key: None,
        }),
        ..Default::default()
    };
    let message = refused(fetcher.fetch(&oci).await);
    assert!(message.contains("spec.source.oci.repository"), "{message}");
    let message = refused(fetcher.discover("evil.example/stacks").await);
    assert!(message.contains("--allowed-stack-sources"), "{message}");
}
