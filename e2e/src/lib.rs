//! Support for the system tests: find the workspace's binaries (built by `cargo build
//! --workspace --bins` before the tests run), run them as processes tied to the test environment,
//! and wait for conditions with a deadline.

pub mod stand_in;
pub mod system;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kaas_testenv::TestEnv;

/// The path of workspace binary `name` next to the running test.
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // A test runs from target/<profile>/deps/, a binary (the demo) from target/<profile>/.
    let mut dir = exe.parent().context("binary location")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().context("binary location")?;
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the binaries first (`cargo build --workspace --bins`, which `make test` runs)",
            path.display()
        );
    }
    Ok(path)
}

/// A running binary whose output goes to `<env dir>/<log>.log`; killed on drop.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Process {
    /// Starts `bin` with `args` against `env`'s API server.
    pub fn start(env: &TestEnv, bin: &str, args: &[String], log: &str) -> Result<Process> {
        Self::start_with_env(env, bin, args, &[], log)
    }

    /// Starts `bin` with `args` and extra environment variables.
    pub fn start_with_env(
        env: &TestEnv,
        bin: &str,
        args: &[String],
        vars: &[(&str, &str)],
        log: &str,
    ) -> Result<Process> {
        let path = binary(bin)?;
        let log = env.dir().join(format!("{log}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(&path)
            .args(args)
            .env("KUBECONFIG", env.kubeconfig_path())
            .env("RUST_LOG", "info,kube=warn")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        env.adopt(&child)?;
        Ok(Process { child, log })
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running (not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            match last_error {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kaasctl <args>` with `KUBECONFIG`: its exit code and its output (stdout, then stderr).
pub fn kaasctl(args: &[&str], kubeconfig: &std::path::Path) -> Result<(i32, String)> {
    let out = std::process::Command::new(binary("kaasctl")?)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// `(apiVersion, kind)` of every kind the operators write: Cluster API's own, and each
/// registered provider's infrastructure and shared node image kinds.
pub fn capi_kinds() -> Vec<(&'static str, &'static str)> {
    let mut all = kaas_testenv::capi::KINDS.to_vec();
    all.extend(kaas_providers::kinds());
    all
}

/// The Cluster API operator's provider kinds, which kaas-installer writes when asked to
/// bring Cluster API (stand-in CRDs here: the Cluster API operator cannot run).
pub const CAPI_OPERATOR_KINDS: [(&str, &str); 4] = [
    ("operator.cluster.x-k8s.io/v1alpha2", "CoreProvider"),
    ("operator.cluster.x-k8s.io/v1alpha2", "BootstrapProvider"),
    ("operator.cluster.x-k8s.io/v1alpha2", "ControlPlaneProvider"),
    (
        "operator.cluster.x-k8s.io/v1alpha2",
        "InfrastructureProvider",
    ),
];

/// A CRD for every kind of [`capi_kinds`], the Cluster API kinds the operators read and
/// [`CAPI_OPERATOR_KINDS`]: Cluster API's real ones for its own kinds, stand-ins for the rest
/// (`kaas_testenv::capi`).
pub fn stand_in_crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    let real = kaas_testenv::capi::cluster_api_crds()
        .unwrap_or_else(|e| panic!("Cluster API's CRDs: {e:#}"));
    let has_real = |kind: &str| real.iter().any(|c| c.spec.names.kind == kind);
    let stand_ins: Vec<_> = capi_kinds()
        .into_iter()
        .chain(CAPI_OPERATOR_KINDS)
        .filter(|(_, k)| !has_real(k))
        .map(|(v, k)| kaas_testenv::capi::stand_in_crd(v, k))
        .collect();
    real.into_iter().chain(stand_ins).collect()
}

/// `kubectl apply -o json -f -` of `object` against `env` (a server-side dry run when asked):
/// the command's output.
pub fn kubectl_apply(
    env: &kaas_testenv::TestEnv,
    object: &serde_json::Value,
    dry_run: bool,
) -> Result<std::process::Output> {
    let mut kubectl = env.kubectl();
    kubectl.args(["apply", "-o", "json", "-f", "-"]);
    if dry_run {
        kubectl.arg("--dry-run=server");
    }
    let mut child = kubectl
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        &mut child.stdin.take().context("stdin")?,
        object.to_string().as_bytes(),
    )?;
    Ok(child.wait_with_output()?)
}

/// `kubectl apply` of these files under `deploy/`, into kaas-system.
pub fn apply_deploy_files(env: &kaas_testenv::TestEnv, files: &[&str]) -> Result<()> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for file in files {
        let out = env
            .kubectl()
            .args(["apply", "-n", "kaas-system", "-f"])
            .arg(deploy.join(file))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Starts `kaas-installer` as its deployed service account (deploy/installer's RBAC applied
/// for real; its Deployment is not, since pods cannot run here), on free local ports.
pub fn start_installer(env: &kaas_testenv::TestEnv) -> Result<Process> {
    start_installer_with(env, &[])
}

/// [`start_installer`] with `extra` flags.
pub fn start_installer_with(env: &kaas_testenv::TestEnv, extra: &[String]) -> Result<Process> {
    start_installer_on(env, &format!("127.0.0.1:{}", free_port()?), extra)
}

/// [`start_installer_with`] serving its metrics on `metrics` (`host:port`).
pub fn start_installer_on(
    env: &kaas_testenv::TestEnv,
    metrics: &str,
    extra: &[String],
) -> Result<Process> {
    apply_deploy_files(
        env,
        &[
            "namespace/namespace.yaml",
            "installer/serviceaccount.yaml",
            "installer/rbac.yaml",
            "installer/rbac-policy.yaml",
        ],
    )?;
    let kubeconfig = env.kubeconfig_as("system:serviceaccount:kaas-system:kaas-installer")?;
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    Process::start_with_env(
        env,
        "kaas-installer",
        &[
            format!("--metrics-bind-address={metrics}"),
            format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
            "--leader-elect".into(),
            "--leader-election-namespace=kaas-system".into(),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .collect::<Vec<_>>(),
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("POD_NAME", "installer-0"),
        ],
        "kaas-installer",
    )
}

/// Installs this project's CRDs (without the conversion webhook, which these suites do not
/// run) and the stand-in CRDs for the Cluster API kinds.
pub async fn install_crds(client: &kube::Client) -> Result<()> {
    let mut crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    for crd in &mut crds {
        crd.spec.conversion = None;
    }
    crds.extend(stand_in_crds());
    kaas_testenv::install_crds(client, &crds).await
}

/// Applies the `docker` class and the `docker-e2e-1-0-0` stack release (Kubernetes
/// `versions`), the release marked Ready.
pub async fn docker_class_and_stack(client: &kube::Client, versions: &[&str]) -> Result<()> {
    use api::v1beta1::ClusterStack;
    use kube::api::{Api, Patch, PatchParams};
    let apply = PatchParams::apply("e2e").force();
    docker_class(client).await?;
    let stack: ClusterStack = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-e2e-1-0-0"},
        "spec": {"provider": "docker", "name": "e2e", "version": "1.0.0", "kubernetesVersions": versions}}))?;
    let stacks = Api::<ClusterStack>::all(client.clone());
    stacks
        .patch("docker-e2e-1-0-0", &apply, &Patch::Apply(&stack))
        .await?;
    mark_ready(client, "docker-e2e-1-0-0").await
}

/// The ProviderClass `docker`, served by the docker operator.
pub async fn docker_class(client: &kube::Client) -> Result<()> {
    use api::v1beta1::ProviderClass;
    use kube::api::{Api, Patch, PatchParams};
    let class: ProviderClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "docker"}, "spec": {"controller": "kaas.scs.community/docker"}}))?;
    Api::<ProviderClass>::all(client.clone())
        .patch(
            "docker",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&class),
        )
        .await?;
    Ok(())
}

/// Creates a docker `KaasCluster` `name` in `clusters`' namespace on `stack` (name, version)
/// at `kubernetes`, with `control_plane` nodes and one worker, retrying until kaas-webhooks
/// admits it (its cache has the class and the stack) or `wait` passes.
pub async fn create_docker_cluster(
    clusters: &kube::Api<api::v1beta1::KaasCluster>,
    name: &str,
    stack: (&str, &str),
    kubernetes: &str,
    control_plane: i32,
    wait: Duration,
) -> Result<()> {
    let object: api::v1beta1::KaasCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
        "spec": {
            "providerClassName": "docker",
            "clusterStack": {"name": stack.0, "version": stack.1},
            "kubernetesVersion": kubernetes,
            "controlPlane": {"replicas": control_plane},
            "workers": [{"name": "md-0", "replicas": 1, "machineType": "default"}],
        },
    }))?;
    wait_for(&format!("{name} created"), wait, || async {
        Ok(clusters
            .create(&kube::api::PostParams::default(), &object)
            .await
            .ok())
    })
    .await?;
    Ok(())
}

/// The peak resident memory of process `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM for process {pid}"))
}

/// Sets the `Ready` condition of a stack release, as its operator would once verified.
pub async fn mark_ready(client: &kube::Client, stack: &str) -> Result<()> {
    use kube::api::{Api, Patch, PatchParams};
    let status = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "Verified", "message": "verified by the test",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    Api::<api::v1beta1::ClusterStack>::all(client.clone())
        .patch_status(stack, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

/// The value of the unlabeled counter `name` (such as `kaas_operator_writes_total`) on the
/// Prometheus endpoint at `addr`; 0 when absent.
pub async fn counter(addr: &str, name: &str) -> Result<u64> {
    let body = kaas_testenv::http::get(addr, "/metrics").await?.body;
    Ok(body
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Applies the `ClusterStack` for the release in folder `dir` (source `local`), named
/// `<provider>-<name>-<version with dashes>`, its spec taken from the release's `stack.yaml`.
/// A published release is immutable (the CRD's rule): one of that name with another spec (an
/// earlier test's folder) is deleted first.
pub async fn install_local_release(client: &kube::Client, dir: &std::path::Path) -> Result<()> {
    use kube::api::{Api, Patch, PatchParams};
    let release = kaas_stack::Release::load_dir(dir)?;
    let s = &release.stack;
    let name = format!("{}-{}-{}", s.provider, s.name, s.version.replace('.', "-"));
    let stack: api::v1beta1::ClusterStack = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": name},
        "spec": {"provider": s.provider, "name": s.name, "version": s.version,
                 "kubernetesVersions": s.kubernetes_versions, "upgradeFrom": s.upgrade_from,
                 "source": {"local": {"path": dir.display().to_string()}}}}))?;
    let stacks = Api::<api::v1beta1::ClusterStack>::all(client.clone());
    if stacks
        .get_opt(&name)
        .await?
        .is_some_and(|old| old.spec != stack.spec)
    {
        stacks.delete(&name, &Default::default()).await?;
        wait_for(
            "the earlier release deleted",
            Duration::from_secs(30),
            || async { Ok(stacks.get_opt(&name).await?.is_none().then_some(())) },
        )
        .await?;
    }
    stacks
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&stack),
        )
        .await?;
    Ok(())
}

/// An operator's flags: metrics and health probes on free loopback ports, local stacks
/// allowed from the temporary folder (where the tests write releases), then `extra`.
pub fn operator_args(extra: &[String]) -> Result<Vec<String>> {
    let mut args = vec![
        format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
        // Plain metrics on loopback: the tests read counters directly.
        "--metrics-insecure".to_string(),
        format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
        format!("--allow-local-stacks={}", std::env::temp_dir().display()),
    ];
    args.extend(extra.iter().cloned());
    Ok(args)
}

/// The stand-in for the Hetzner Cloud API (`kaas_testenv::hcloud`), accepting any token, with
/// an available snapshot for every node image of the shipped Hetzner stacks and for each of
/// `extra`. Its `endpoint` goes into the Hetzner operator's `HCLOUD_ENDPOINT`.
pub fn hetzner_api(extra: &[&str]) -> Result<kaas_testenv::hcloud::FakeHcloud> {
    let api = kaas_testenv::hcloud::FakeHcloud::start(None)?;
    for release in kaas_stack::builtin::for_provider("hetzner")? {
        for image in &release.stack.node_images {
            api.add_snapshot(&image.name, "available");
        }
    }
    for name in extra {
        api.add_snapshot(name, "available");
    }
    Ok(api)
}

/// Creates the Secret `hetzner-token` (key `hcloud`) that the e2e Hetzner class names, in `ns`.
pub async fn hetzner_token(client: &kube::Client, ns: &str) -> Result<()> {
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "hetzner-token"},
        "stringData": {"hcloud": "e2e-token"},
    }))?;
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
        .create(&kube::api::PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// Starts `kaas-operator-docker` against `env` with its stack cache in `cache`, metrics and
/// probes on free loopback ports, and `extra` flags; its log is `<env dir>/<log>.log`.
pub fn docker_operator(
    env: &TestEnv,
    cache: &std::path::Path,
    extra: &[String],
    log: &str,
) -> Result<Process> {
    let mut args = vec![format!("--stack-cache-dir={}", cache.display())];
    args.extend(extra.iter().cloned());
    Process::start(env, "kaas-operator-docker", &operator_args(&args)?, log)
}

/// `apiserver_request_total` summed by verb and resource (`"LIST kaasclusters"`,
/// `"PATCH stackrollouts/status"`), from the API server's own metrics.
pub async fn server_requests(
    client: &kube::Client,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let mut by = std::collections::BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |k: &str| {
            l.split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let value: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by.entry(format!(
            "{} {}{}",
            label("verb"),
            label("resource"),
            if label("subresource").is_empty() {
                String::new()
            } else {
                format!("/{}", label("subresource"))
            }
        ))
        .or_insert(0.0) += value;
    }
    Ok(by)
}
