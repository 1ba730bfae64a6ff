//! A real S3-compatible server on loopback: SeaweedFS (`weed server -s3`, built from its Go
//! module by hack/control-plane.sh), with its data in a temporary folder and the identities a
//! test gives: each an access key, its secret and the actions it may take, such as
//! `Read:backups/tenant-a/prod/*` (SeaweedFS scopes an action to a bucket, or with a wildcard to
//! the keys under a path in it).
//! Stopped on drop.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::process::Server;

/// One identity the server knows.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its name.
    pub name: String,
    /// The access key id.
    pub access_key: String,
    /// The secret.
    pub secret_key: String,
    /// `Admin`, `Read`, `Write`, `List`, `Tagging`, each optionally `:<bucket>[/<path>]`.
    pub actions: Vec<String>,
}

impl Identity {
    /// An identity allowed `actions`, with keys made from its name.
    pub fn new(name: &str, actions: &[&str]) -> Identity {
        Identity {
            name: name.to_string(),
            access_key: format!("AK{}", name.to_uppercase().replace('-', "")),
            secret_key: format!("secret-of-{name}-0123456789"),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct S3 {
    endpoint: String,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl S3 {
    /// Starts SeaweedFS (master, volume server, filer and S3 gateway in one process) on free
    /// loopback ports with `identities`, and waits until its S3 gateway answers.
    pub async fn start(identities: &[Identity]) -> Result<S3> {
        let weed = crate::program("weed")?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let config = serde_json::json!({
            "identities": identities.iter().map(|i| serde_json::json!({
                "name": i.name,
                "credentials": [{"accessKey": i.access_key, "secretKey": i.secret_key}],
                "actions": i.actions,
            })).collect::<Vec<_>>(),
        });
        let config_path = dir.path().join("s3.json");
        std::fs::write(&config_path, config.to_string())?;
        let [
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            s3,
            s3_grpc,
        ] = crate::free_ports()?;
        let args: Vec<String> = vec![
            "server".into(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-dir={}", data.display()),
            format!("-master.port={master}"),
            format!("-master.port.grpc={master_grpc}"),
            "-master.volumeSizeLimitMB=64".into(),
            format!("-volume.port={volume}"),
            format!("-volume.port.grpc={volume_grpc}"),
            "-volume.max=0".into(),
            "-filer".into(),
            format!("-filer.port={filer}"),
            format!("-filer.port.grpc={filer_grpc}"),
            "-s3".into(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={s3_grpc}"),
            format!("-s3.config={}", config_path.display()),
        ];
        let mut server = Server::spawn("weed", &weed, &args, dir.path())?;
        let addr = format!("127.0.0.1:{s3}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            server.check_running()?;
            // Anonymous: refused (403) once the gateway runs with its identities.
            if let Ok(r) = crate::http::get(&addr, "/").await
                && (r.status == 403 || r.status == 200)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "SeaweedFS's S3 gateway did not answer on {addr}:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(S3 {
            endpoint: format!("http://{addr}"),
            _server: server,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}
