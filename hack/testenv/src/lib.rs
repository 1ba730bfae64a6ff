//! Test support: a real etcd and kube-apiserver on free loopback ports in a temporary folder,
//! the same pair controller-runtime's envtest uses. Tests get a `kube::Client`, a kubeconfig
//! path and a `kubectl` command; both processes stop when the [`TestEnv`] is dropped, when a
//! test panics, and, through a guardian process, when the test binary dies without unwinding.
//!
//! Binaries come from `$KUBEBUILDER_ASSETS` when it has them, else from the cache that
//! `hack/control-plane.sh` fills (the script is run once when the cache is empty).

mod assets;
pub mod capi;
pub mod certs;
pub mod forge;
pub mod hcloud;
pub mod hostile;
pub mod http;
pub mod issuer;
mod process;
pub mod registry;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use assets::program;
use process::{Guardian, Server};

/// The bearer token of the all-powerful test user (`system:masters`).
pub const ADMIN_TOKEN: &str = "kaas-test-admin-token";

/// A running etcd + kube-apiserver pair.
#[derive(Debug)]
pub struct TestEnv {
    // Field order is drop order: the API server stops before etcd, the folder goes last.
    apiserver: Server,
    etcd: Server,
    _guardian: Guardian,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    url: String,
    etcd_url: String,
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// Starts a fresh pair. Takes a few seconds, mostly the API server's own start-up.
    pub async fn start() -> Result<TestEnv> {
        Self::start_with(&[]).await
    }

    /// Starts a fresh pair whose API server also gets `extra_args` (a later flag of the same
    /// name wins over the test server's own).
    pub async fn start_with(extra_args: &[String]) -> Result<TestEnv> {
        Self::start_on(extra_args, None).await
    }

    /// Starts a pair whose etcd is restored from the snapshot file `snapshot` (with the real
    /// `etcdutl snapshot restore`, as a cluster is restored from a backup), so the API server
    /// serves what the snapshot holds.
    pub async fn start_from_snapshot(snapshot: &Path) -> Result<TestEnv> {
        Self::start_on(&[], Some(snapshot)).await
    }

    async fn start_on(extra_args: &[String], snapshot: Option<&Path>) -> Result<TestEnv> {
        install_crypto_provider();
        let assets = assets::locate()?;
        let dir = tempdir()?;
        let root = dir.path().to_path_buf();
        let guardian = Guardian::start(&root)?;

        let [client_port, peer_port, api_port] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        if let Some(snapshot) = snapshot {
            let out = std::process::Command::new(program("etcdutl")?)
                .arg("snapshot")
                .arg("restore")
                .arg(snapshot)
                .args([
                    "--name=test",
                    &format!("--initial-cluster=test={peer_url}"),
                    &format!("--initial-advertise-peer-urls={peer_url}"),
                    &format!("--data-dir={}", root.join("etcd").display()),
                ])
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "etcdutl snapshot restore {}: {}",
                snapshot.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let etcd = Server::spawn(
            "etcd",
            &assets.etcd,
            &[
                "--name=test".into(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=test={peer_url}"),
                "--log-level=error".into(),
            ],
            &root,
        )?;
        guardian.watch(etcd.pid())?;

        write_credentials(&root)?;
        // An audit log of what the test users (the operators' and the webhook's service
        // accounts) ask of the API server: the RBAC test matches it against deploy/.
        std::fs::write(
            root.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  userGroups: [system:serviceaccounts]\n- level: None\n",
        )?;
        let apiserver = Server::spawn(
            "kube-apiserver",
            &assets.apiserver,
            &[
                format!("--etcd-servers={etcd_url}"),
                format!("--cert-dir={}", root.join("certs").display()),
                format!("--secure-port={api_port}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                // From 1.37 the `kubernetes` Service's endpoint may not be a loopback address;
                // nothing in the tests reaches the API server through that Service.
                "--endpoint-reconciler-type=none".into(),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                format!("--token-auth-file={}", root.join("tokens.csv").display()),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                format!(
                    "--service-account-key-file={}",
                    root.join("sa.pub").display()
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    root.join("sa.key").display()
                ),
                "--disable-admission-plugins=ServiceAccount".into(),
                format!(
                    "--audit-policy-file={}",
                    root.join("audit-policy.yaml").display()
                ),
                format!("--audit-log-path={}", root.join("audit.log").display()),
                "--audit-log-format=json".into(),
                "--allow-privileged=true".into(),
                "-v=0".into(),
            ]
            .into_iter()
            .chain(extra_args.iter().cloned())
            .collect::<Vec<_>>(),
            &root,
        )?;
        guardian.watch(apiserver.pid())?;

        let url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = root.join("kubeconfig");
        let mut env = TestEnv {
            apiserver,
            etcd,
            _guardian: guardian,
            kubeconfig,
            kubectl: assets.kubectl,
            url,
            etcd_url,
            dir,
        };
        env.wait_ready().await?;
        Ok(env)
    }

    /// etcd's client URL (`http://127.0.0.1:PORT`, no TLS).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// Process ids of the API server and etcd (for benchmarks that weigh their CPU).
    pub fn server_pids(&self) -> (u32, u32) {
        (self.apiserver.pid(), self.etcd.pid())
    }

    /// The one pair shared by every test of this test binary, started on first use. Each test
    /// still takes its own client ([`TestEnv::client`]) and its own namespace. The processes
    /// end with the test binary (through the guardian).
    pub async fn shared() -> Result<&'static TestEnv> {
        static SHARED: OnceLock<TestEnv> = OnceLock::new();
        static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        if let Some(env) = SHARED.get() {
            return Ok(env);
        }
        let _guard = STARTING.lock().await;
        if let Some(env) = SHARED.get() {
            return Ok(env);
        }
        let env = TestEnv::start().await?;
        Ok(SHARED.get_or_init(|| env))
    }

    /// A new client for the calling test's runtime.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig).await
    }

    /// Path of an admin kubeconfig for this API server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig acting as `user`, one of [`USERS`].
    pub fn kubeconfig_as(&self, user: &str) -> Result<PathBuf> {
        let index = USERS
            .iter()
            .position(|u| *u == user)
            .with_context(|| format!("{user} is not one of kaas_testenv::USERS"))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.kubeconfig)?)?;
        config["users"][0]["user"]["token"] = user_token(index).into();
        let path = self.dir.path().join(format!("kubeconfig-user-{index}"));
        std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
        Ok(path)
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary folder holding the pair's data, certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API server's audit log (JSON lines): every request of the users in [`USERS`].
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// `kubectl` (the version matching the API server) pointed at this API server.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Ties `child` to this environment: it is killed when the test binary goes away, like
    /// the API server (for processes a shared environment's tests start once).
    pub fn adopt(&self, child: &std::process::Child) -> Result<()> {
        self._guardian.watch(child.id())
    }

    /// Creates a namespace with a unique name starting with `prefix`.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> Result<String> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        // The API server writes its self-signed serving certificate (and its CA) on start-up.
        let ca = self.dir.path().join("certs/apiserver.crt");
        loop {
            self.etcd.check_running()?;
            self.apiserver.check_running()?;
            if ca.exists() {
                write_kubeconfig(&self.kubeconfig, &self.url, &ca)?;
                if let Ok(client) = self.client().await {
                    let req = ::http::Request::get("/readyz").body(Vec::new())?;
                    if client.request_text(req).await.is_ok_and(|t| t == "ok") {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after 90 s; its log:\n{}",
                    self.apiserver.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Installs the CRDs (create or replace) and waits until each is Established.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in crds {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        let params = kube::api::PatchParams::apply("kaas-testenv").force();
        api.patch(&name, &params, &kube::api::Patch::Apply(crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let current = api.get(&name).await?;
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {name} not Established after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Installs rustls's ring provider as the process default (several crates pull in a second
/// provider, and rustls then refuses to pick one by itself).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A temporary folder, in memory when `/dev/shm` exists: etcd's fsyncs dominate otherwise.
fn tempdir() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("kaas-testenv-");
        b
    };
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return Ok(dir);
    }
    Ok(builder.tempdir()?)
}

pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    // Hold every listener until all are picked, so the ports differ.
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let mut ports = [0u16; N];
    for (slot, l) in ports.iter_mut().zip(&listeners) {
        *slot = l.local_addr()?.port();
    }
    Ok(ports)
}

/// Users besides the admin that tests can act as (with [`TestEnv::kubeconfig_as`]): the
/// service accounts the manifests in `deploy/` create, so a test can check that their RBAC is
/// enough. Their permissions come only from RBAC objects the test applies.
pub const USERS: &[&str] = &[
    "system:serviceaccount:kaas-system:docker-kaas-operator",
    "system:serviceaccount:kaas-system:openstack-kaas-operator",
    "system:serviceaccount:kaas-system:hetzner-kaas-operator",
    "system:serviceaccount:kaas-system:kaas-webhooks",
    "system:serviceaccount:monitoring:prometheus",
    "system:serviceaccount:monitoring:nobody",
    "system:serviceaccount:kaas-system:kaas-installer",
];

/// The bearer token of `user`, one of [`USERS`] (for a scraper's token file, say).
pub fn token_of(user: &str) -> Result<String> {
    let index = USERS
        .iter()
        .position(|u| *u == user)
        .with_context(|| format!("{user} is not one of kaas_testenv::USERS"))?;
    Ok(user_token(index))
}

fn user_token(index: usize) -> String {
    format!("kaas-test-user-token-{index}")
}

fn write_credentials(root: &Path) -> Result<()> {
    let mut tokens = format!("{ADMIN_TOKEN},kaas-admin,kaas-admin-uid,\"system:masters\"\n");
    for (i, user) in USERS.iter().enumerate() {
        tokens.push_str(&format!(
            "{},{user},uid-{i},\"system:serviceaccounts,system:authenticated\"\n",
            user_token(i)
        ));
    }
    std::fs::write(root.join("tokens.csv"), tokens)?;
    let key = root.join("sa.key");
    let status = std::process::Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key)
        .status()
        .context("running openssl (hack/control-plane.sh installs it)")?;
    if !status.success() {
        bail!("openssl ecparam failed");
    }
    let status = std::process::Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(root.join("sa.pub"))
        .stderr(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("openssl ec -pubout failed");
    }
    Ok(())
}

/// Writes an admin kubeconfig with the CA inline, as Cluster API writes them: the same file
/// stands in for a workload cluster's kubeconfig Secret, which may not name files.
fn write_kubeconfig(path: &Path, url: &str, ca: &Path) -> Result<()> {
    use base64::Engine as _;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(std::fs::read(ca)?);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": url,
            "certificate-authority-data": ca_data,
        }}],
        "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    });
    std::fs::write(path, serde_json::to_string_pretty(&config)?)?;
    Ok(())
}

/// Runs the future `make` builds on a thread of its own with its own single-threaded runtime,
/// so it outlives the runtime of the test that started it (each `#[tokio::test]` has one).
pub fn on_own_thread<F, Fut>(name: &str, make: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(make());
            }
        })
}

/// A client for the kubeconfig at `path`. Its connection tasks run on the calling runtime, so
/// a thread with its own runtime makes its own clients.
pub async fn client_for(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
