//! `kaas-etcd-backup` as a process, on a real etcd (a workload cluster's: a kube-apiserver
//! writes into it) and a real S3 server (SeaweedFS), with a credential scoped to the cluster's
//! prefix: it takes backups on its schedule; retention keeps exactly two after more; while the
//! storage cannot be reached nothing is lost and the next schedule succeeds again; a failed
//! snapshot keeps the backups and says why in the status; the newest backup's snapshot matches
//! its manifest's checksum, restores with `etcdutl snapshot restore` into a new etcd, and a
//! kube-apiserver started on it serves the objects written before the backup. And on an etcd
//! serving TLS that asks for client certificates (as kubeadm's does), the agent is refused
//! without one and takes its backup with one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kaas_backup::agent::{Manifest, Status};
use kaas_backup::s3::{Bucket, Credentials};
use kaas_testenv::TestEnv;
use kaas_testenv::s3::{Identity, S3};
use kube::api::{Api, PostParams};
use sha2::Digest;

/// A TCP forwarder that can be switched off (connections are then closed at once), standing
/// for a network that fails between the agent and a server.
struct Switch {
    addr: String,
    up: Arc<AtomicBool>,
}

async fn switch(target: String) -> Result<Switch> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let up = Arc::new(AtomicBool::new(true));
    let on = up.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !on.load(Ordering::SeqCst) {
                continue; // dropped: closed
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(Switch { addr, up })
}

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status(admin: &Bucket) -> Option<Status> {
    let bytes = admin.get("tenant-a/prod/status.json", 1 << 16).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn until<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn scheduled_backups_keep_their_retention_survive_failures_and_restore() -> Result<()> {
    // The workload cluster, with objects to find again.
    let workload = TestEnv::start().await?;
    let client = workload.client().await?;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 1..=3 {
        let map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("proof-{i}")}, "data": {"n": i.to_string()}}))?;
        maps.create(&PostParams::default(), &map).await?;
    }

    // Storage: the admin makes the bucket; the agent's credential reaches its prefix only.
    let admin = Identity::new("admin", &["Admin", "Read", "Write", "List"]);
    let cluster = Identity::new(
        "tenant-a-prod",
        &[
            "Read:backups/tenant-a/prod/*",
            "Write:backups/tenant-a/prod/*",
            "List:backups/tenant-a/prod/*",
        ],
    );
    let s3 = S3::start(&[admin.clone(), cluster.clone()]).await?;
    let admin = Bucket::new(
        s3.endpoint(),
        "backups",
        Credentials {
            access_key: admin.access_key.clone(),
            secret_key: admin.secret_key.clone(),
            region: "us-east-1".into(),
        },
        None,
    )?;
    admin.create().await?;
    let storage = switch(s3.endpoint().trim_start_matches("http://").to_string()).await?;
    let etcd = switch(
        workload
            .etcd_url()
            .trim_start_matches("http://")
            .to_string(),
    )
    .await?;

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("access"), &cluster.access_key)?;
    std::fs::write(dir.path().join("secret"), &cluster.secret_key)?;
    let config = format!(
        "cluster: {{namespace: tenant-a, name: prod, kubernetesVersion: v1.37.2, stackRelease: docker-scs-1-0-0}}\n\
         etcd: {{endpoint: 'http://{}'}}\n\
         storage: {{endpoint: 'http://{}', bucket: backups, prefix: tenant-a/prod,\n  \
           accessKeyFile: {}, secretKeyFile: {}}}\n\
         schedule: '@every 2s'\n\
         retain: {{count: 2}}\n",
        etcd.addr,
        storage.addr,
        dir.path().join("access").display(),
        dir.path().join("secret").display(),
    );
    std::fs::write(dir.path().join("config.yaml"), config)?;
    let log = std::fs::File::create(dir.path().join("agent.log"))?;
    let _agent = Agent(
        std::process::Command::new(env!("CARGO_BIN_EXE_kaas-etcd-backup"))
            .arg("--config")
            .arg(dir.path().join("config.yaml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();

    // On schedule, three backups and more; retention keeps exactly two.
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let kept = until("three scheduled backups", || async {
        let s = status(&admin).await?;
        seen.borrow_mut().insert(s.last_successful.clone()?);
        (seen.borrow().len() >= 3 && s.last_error.is_none()).then_some(s)
    })
    .await
    .with_context(agent_log)?;
    assert_eq!(kept.count, 2, "{kept:?}");
    let listed = admin.list("tenant-a/prod/").await?;
    let snapshots = listed.iter().filter(|o| o.key.ends_with(".db")).count();
    let manifests = listed
        .iter()
        .filter(|o| o.key.ends_with(".json") && !o.key.ends_with("status.json"))
        .count();
    assert_eq!((snapshots, manifests), (2, 2), "{listed:?}");

    // The storage unreachable for a while: nothing is lost, and the next schedule succeeds.
    storage.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(agent_log().contains("backup failed"), "{}", agent_log());
    let during = admin.list("tenant-a/prod/").await?;
    assert_eq!(during, admin.list("tenant-a/prod/").await?);
    assert_eq!(
        during.iter().filter(|o| o.key.ends_with(".db")).count(),
        2,
        "{during:?}"
    );
    storage.up.store(true, Ordering::SeqCst);
    let last = kept.last_successful.clone();
    let after = until("a backup after the storage came back", || async {
        let s = status(&admin).await?;
        (s.last_successful != last && s.last_error.is_none()).then_some(s)
    })
    .await
    .with_context(agent_log)?;
    assert_eq!(after.count, 2);

    // etcd unreachable: the status says why; the backups stay; it succeeds again after.
    etcd.up.store(false, Ordering::SeqCst);
    let failed = until("a failed snapshot in the status", || async {
        let s = status(&admin).await?;
        s.last_error.is_some().then_some(s)
    })
    .await
    .with_context(agent_log)?;
    assert!(
        failed.last_error.as_deref().unwrap_or("").contains("etcd"),
        "{failed:?}"
    );
    assert_eq!(failed.count, 2);
    assert!(failed.last_successful.is_some());
    etcd.up.store(true, Ordering::SeqCst);
    let recovered = until("a backup after etcd came back", || async {
        let s = status(&admin).await?;
        (s.last_error.is_none() && s.last_successful != failed.last_successful).then_some(s)
    })
    .await
    .with_context(agent_log)?;

    // The newest backup: its checksum, then restored into a new etcd and API server.
    let id = recovered.last_successful.context("an id")?;
    let manifest: Manifest = serde_json::from_slice(
        &admin
            .get(&format!("tenant-a/prod/{id}.json"), 1 << 16)
            .await?,
    )?;
    assert_eq!(manifest.cluster, "tenant-a/prod");
    assert_eq!(manifest.kubernetes_version.as_deref(), Some("v1.37.2"));
    assert!(manifest.revision.is_some_and(|r| r > 0), "{manifest:?}");
    let snapshot = admin.get(&manifest.snapshot, 512 << 20).await?;
    assert_eq!(snapshot.len() as u64, manifest.size);
    assert_eq!(
        kaas_backup_hex(&sha2::Sha256::digest(&snapshot)),
        manifest.sha256
    );
    let file = dir.path().join("restore.db");
    std::fs::write(&file, &snapshot)?;
    let restored = TestEnv::start_from_snapshot(&file).await?;
    let maps: Api<ConfigMap> = Api::namespaced(restored.client().await?, "default");
    for i in 1..=3 {
        let map = maps.get(&format!("proof-{i}")).await?;
        assert_eq!(
            map.data.unwrap_or_default().get("n").map(String::as_str),
            Some(i.to_string().as_str())
        );
    }
    Ok(())
}

fn kaas_backup_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An etcd serving TLS that asks for client certificates, as kubeadm's does.
struct TlsEtcd {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::test]
async fn the_agent_reads_an_etcd_that_asks_for_its_client_certificate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = kaas_testenv::certs::TestCa::new()?;
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(pki.join("server"))?;
    std::fs::create_dir_all(pki.join("client"))?;
    std::fs::write(pki.join("ca.crt"), ca.pem())?;
    let (server_cert, server_key) = ca.issue_files(&pki.join("server"), "etcd")?;
    let (client_cert, client_key) =
        ca.issue_files(&pki.join("client"), "kube-apiserver-etcd-client")?;
    let (client, peer) = (free_port()?, free_port()?);
    let endpoint = format!("https://127.0.0.1:{client}");
    let log = std::fs::File::create(dir.path().join("etcd.log"))?;
    let etcd = TlsEtcd {
        child: std::process::Command::new(kaas_testenv::program("etcd")?)
            .args([
                "--name=tls".to_string(),
                format!("--data-dir={}", dir.path().join("data").display()),
                format!("--listen-client-urls={endpoint}"),
                format!("--advertise-client-urls={endpoint}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=tls=http://127.0.0.1:{peer}"),
                format!("--cert-file={}", server_cert.display()),
                format!("--key-file={}", server_key.display()),
                "--client-cert-auth".into(),
                format!("--trusted-ca-file={}", pki.join("ca.crt").display()),
                "--log-level=error".into(),
            ])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
        endpoint,
    };

    let admin = Identity::new("admin", &["Admin", "Read", "Write", "List"]);
    let s3 = S3::start(std::slice::from_ref(&admin)).await?;
    let bucket = Bucket::new(
        s3.endpoint(),
        "backups",
        Credentials {
            access_key: admin.access_key.clone(),
            secret_key: admin.secret_key.clone(),
            region: "us-east-1".into(),
        },
        None,
    )?;
    bucket.create().await?;
    std::fs::write(dir.path().join("access"), &admin.access_key)?;
    std::fs::write(dir.path().join("secret"), &admin.secret_key)?;
    let config = |etcd_tls: &str| {
        format!(
            "cluster: {{namespace: tenant-a, name: tls}}\n\
             etcd: {{endpoint: '{}', caFile: {}{etcd_tls}}}\n\
             storage: {{endpoint: '{}', bucket: backups, prefix: tenant-a/tls,\n  \
               accessKeyFile: {}, secretKeyFile: {}}}\n\
             schedule: '@daily'\n",
            etcd.endpoint,
            pki.join("ca.crt").display(),
            s3.endpoint(),
            dir.path().join("access").display(),
            dir.path().join("secret").display(),
        )
    };
    let once = |name: &str, text: String| -> Result<std::process::Output> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_kaas-etcd-backup"))
                .arg("--once")
                .arg("--config")
                .arg(&path)
                .output()?,
        )
    };

    // Without a client certificate etcd refuses the agent; with kubeadm's kind, it is read.
    let refused = until(
        "etcd up and refusing a client without a certificate",
        || async {
            let out = once("without.yaml", config("")).ok()?;
            let text = String::from_utf8_lossy(&out.stderr).into_owned();
            (!out.status.success() && text.contains("etcd")).then_some(text)
        },
    )
    .await?;
    assert!(!refused.is_empty());
    let with = format!(
        ", certFile: {}, keyFile: {}",
        client_cert.display(),
        client_key.display()
    );
    let taken = until("a backup over TLS", || async {
        let out = once("with.yaml", config(&with)).ok()?;
        out.status.success().then_some(out)
    })
    .await?;
    assert!(String::from_utf8_lossy(&taken.stdout).contains("backup stored"));

    // The snapshot is a database etcdutl reads.
    let listed = bucket.list("tenant-a/tls/").await?;
    let key = listed
        .iter()
        .find(|o| o.key.ends_with(".db"))
        .context("a snapshot")?
        .key
        .clone();
    let file = dir.path().join("tls.db");
    std::fs::write(&file, bucket.get(&key, 64 << 20).await?)?;
    let status = std::process::Command::new(kaas_testenv::program("etcdutl")?)
        .args(["snapshot", "status", "-w", "json"])
        .arg(&file)
        .output()?;
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    // A fresh etcd holds no keys yet: a readable database of its version is what is checked.
    assert!(
        status["totalSize"].as_u64().is_some_and(|s| s > 0),
        "{status}"
    );
    assert!(
        status["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{status}"
    );
    Ok(())
}
