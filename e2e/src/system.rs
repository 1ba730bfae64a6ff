//! The whole system on one machine, started the same way by the demo (`kaas-demo`) and the
//! system test (`tests/system.rs`): a management API server and one workload API server per
//! named cluster (real kube-apiserver + etcd), the CRDs with `KaasCluster` conversion through
//! the webhook server, `kaas-webhooks` registered by URL with its `caBundle` and running as its
//! deployed service account, the three provider operators as processes, the Hetzner Cloud API
//! stand-in, the CAPI stand-in (on its own thread), and optionally a real Prometheus scraping
//! every component.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kaas_testenv::TestEnv;
use kaas_testenv::certs::TestCa;
use kaas_testenv::hcloud::FakeHcloud;
use kaas_webhooks::registration::{self, Target};

use crate::{Process, free_port};

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Clusters that get a workload API server of their own (by `KaasCluster` name); every
    /// other cluster shares one more.
    pub workload_clusters: Vec<String>,
    /// Start Prometheus scraping the webhook server and the operators (and the installer, when
    /// it runs), with the alert rules of deploy/monitoring loaded.
    pub prometheus: bool,
    /// Run kaas-installer too (as its deployed service account).
    pub installer: bool,
    /// Extra flags for every operator.
    pub operator_args: Vec<String>,
    /// Clusters whose workload API server is a hostile tenant's (by `KaasCluster` name): a
    /// front of the shared workload API server that answers Node lists as given.
    pub hostile: Vec<(String, kaas_testenv::hostile::Nodes)>,
}

/// One running operator.
#[derive(Debug)]
pub struct Operator {
    /// The process.
    pub process: Process,
    /// `host:port` of its metrics.
    pub metrics: String,
    args: Vec<String>,
}

/// The running system; everything stops when it is dropped.
pub struct System {
    /// The management cluster.
    pub management: TestEnv,
    /// Workload API servers by cluster name; `""` is the one shared by the others.
    pub workloads: BTreeMap<String, TestEnv>,
    /// The webhook server's `host:port` and metrics `host:port`.
    pub webhooks: (String, String),
    /// The CA behind the webhook server's certificate.
    pub ca: TestCa,
    /// The operators by provider.
    pub operators: BTreeMap<String, Operator>,
    /// The Hetzner Cloud API stand-in.
    pub hcloud: FakeHcloud,
    /// Prometheus's `host:port`, when started.
    pub prometheus: Option<String>,
    /// The hostile fronts, by cluster name.
    pub fronts: BTreeMap<String, kaas_testenv::hostile::Front>,
    /// kaas-installer and its metrics `host:port`, when asked for.
    pub installer: Option<(Process, String)>,
    _webhook_process: Process,
    _prometheus: Option<ChildGuard>,
    stand_in: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("management", &self.management.url())
            .finish_non_exhaustive()
    }
}

impl System {
    /// Starts everything; `step` hears what is being started (numbered 1 to 4).
    pub async fn start(options: &Options, step: &dyn Fn(u32, &str)) -> Result<System> {
        step(
            1,
            "Control planes: a management API server and workload API servers (real kube-apiserver + etcd)",
        );
        let management = TestEnv::start().await?;
        let client = management.client().await?;
        let mut workloads = BTreeMap::new();
        for name in options
            .workload_clusters
            .iter()
            .map(String::as_str)
            .chain([""])
        {
            workloads.insert(name.to_string(), TestEnv::start().await?);
        }

        step(
            2,
            "kaas-webhooks: CRDs converting through it, admission registered by URL with its CA",
        );
        let ca = TestCa::new()?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let target = Target::Url(format!("https://{addr}"));
        let ca_pem = ca.pem().into_bytes();
        let mut crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
        for crd in &mut crds {
            crd.spec.conversion = (crd.spec.names.kind == "KaasCluster")
                .then(|| registration::conversion(&target, Some(&ca_pem)));
        }
        crds.extend(crate::stand_in_crds());
        kaas_testenv::install_crds(&client, &crds).await?;
        crate::apply_deploy_files(
            &management,
            &[
                "namespace/namespace.yaml",
                "webhooks/serviceaccount.yaml",
                "webhooks/rbac.yaml",
            ],
        )?;
        let certs = management.dir().join("webhook-certs");
        std::fs::create_dir_all(&certs)?;
        let (cert, key) = ca.issue_files(&certs, "kaas-webhooks")?;
        let kubeconfig =
            management.kubeconfig_as("system:serviceaccount:kaas-system:kaas-webhooks")?;
        let kubeconfig = kubeconfig.to_string_lossy().into_owned();
        let webhook_process = Process::start_with_env(
            &management,
            "kaas-webhooks",
            &[
                format!("--bind-address={addr}"),
                format!("--metrics-bind-address={metrics}"),
                format!("--tls-cert-file={}", cert.display()),
                format!("--tls-key-file={}", key.display()),
            ],
            &[("KUBECONFIG", &kubeconfig)],
            "kaas-webhooks",
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = kaas_testenv::http::get_tls(&addr, "/readyz", &ca.pem()).await
                && r.status == 200
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "kaas-webhooks not ready after 30 s:\n{}",
                    webhook_process.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        registration::apply(&client, &target, Some(&ca_pem), "kaas-system").await?;

        step(
            3,
            "Operators: kaas-operator-docker, -openstack and -hetzner, each installing its shipped stacks",
        );
        let hcloud = crate::hetzner_api(&[])?;
        let cache = management.dir().join("stack-cache");
        let mut operators = BTreeMap::new();
        for provider in kaas_providers::ALL.iter().map(|p| p.name) {
            let metrics = format!("127.0.0.1:{}", free_port()?);
            let mut args = vec![
                format!("--metrics-bind-address={metrics}"),
                format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
                format!("--stack-cache-dir={}", cache.display()),
                "--install-shipped-stacks".into(),
                // Releases the suite writes to temporary folders (a stack upgrade).
                format!("--allow-local-stacks={}", std::env::temp_dir().display()),
            ];
            args.extend(options.operator_args.iter().cloned());
            let process = start_operator(&management, provider, &args, &hcloud.endpoint)?;
            operators.insert(
                provider.to_string(),
                Operator {
                    process,
                    metrics,
                    args,
                },
            );
        }

        step(
            4,
            "CAPI stand-in: Cluster API's controllers cannot run here, so a stand-in reports infrastructure, machines and the workload clusters' pods ready",
        );
        let mut per_cluster: BTreeMap<_, _> = workloads
            .iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, env)| (name.clone(), env.kubeconfig_path().to_path_buf()))
            .collect();
        let mut fronts = BTreeMap::new();
        for (name, nodes) in &options.hostile {
            let front =
                kaas_testenv::hostile::Front::start(workloads[""].kubeconfig_path(), *nodes)?;
            let path = management.dir().join(format!("hostile-{name}.kubeconfig"));
            std::fs::write(&path, front.kubeconfig())?;
            per_cluster.insert(name.clone(), path);
            fronts.insert(name.clone(), front);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stand_in = Some(crate::stand_in::StandIn::run_on_thread(
            management.kubeconfig_path().to_path_buf(),
            workloads[""].kubeconfig_path().to_path_buf(),
            per_cluster,
            stop.clone(),
        )?);

        let installer = if options.installer {
            let at = format!("127.0.0.1:{}", free_port()?);
            Some((crate::start_installer_on(&management, &at, &[])?, at))
        } else {
            None
        };
        let (prometheus, prometheus_guard) = if options.prometheus {
            let token = Some(metrics_reader_token(&management)?);
            let mut targets = vec![("kaas-webhooks".to_string(), metrics.clone(), token.clone())];
            if let Some((_, at)) = &installer {
                targets.push(("kaas-installer".to_string(), at.clone(), token.clone()));
            }
            for (p, o) in &operators {
                targets.push((
                    format!("kaas-operator-{p}"),
                    o.metrics.clone(),
                    token.clone(),
                ));
            }
            let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/monitoring/alerts.rules.yaml");
            let (addr, guard) = start_prometheus_with_rules(&management, &targets, &[rules])?;
            (Some(addr), Some(guard))
        } else {
            (None, None)
        };

        Ok(System {
            management,
            workloads,
            webhooks: (addr, metrics),
            ca,
            operators,
            hcloud,
            prometheus,
            fronts,
            installer,
            _webhook_process: webhook_process,
            _prometheus: prometheus_guard,
            stand_in,
            stop,
        })
    }

    /// The workload API server of cluster `name` (or the shared one).
    pub fn workload(&self, name: &str) -> &TestEnv {
        self.workloads.get(name).unwrap_or(&self.workloads[""])
    }

    /// Kills the operator of `provider` at once (SIGKILL, as a crash would).
    pub fn kill_operator(&mut self, provider: &str) {
        if let Some(o) = self.operators.get_mut(provider) {
            o.process.kill();
        }
    }

    /// Starts the operator of `provider` again with its flags.
    pub fn restart_operator(&mut self, provider: &str) -> Result<()> {
        let o = self
            .operators
            .get_mut(provider)
            .context("no such operator")?;
        o.process.kill();
        o.process = start_operator(&self.management, provider, &o.args, &self.hcloud.endpoint)?;
        Ok(())
    }
}

impl Drop for System {
    fn drop(&mut self) {
        // The stand-in stops after its current pass. It is not joined, so a request in flight
        // to an API server that is going away cannot hold up the teardown (joining once
        // deadlocked CI when its clients still lived on this thread's runtime); once the API
        // servers stop, its requests fail and it ends.
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(self.stand_in.take());
    }
}

fn start_operator(env: &TestEnv, provider: &str, args: &[String], hcloud: &str) -> Result<Process> {
    Process::start_with_env(
        env,
        kaas_providers::find(provider).map_or("kaas-operator-unknown", |p| p.binary),
        args,
        &[("HCLOUD_ENDPOINT", hcloud)],
        &format!("operator-{provider}"),
    )
}

/// The token file of a scraper allowed to read metrics: `deploy/metrics`' ClusterRole bound to
/// the test user `system:serviceaccount:monitoring:prometheus`, as an installation binds it
/// to its Prometheus.
pub fn metrics_reader_token(env: &TestEnv) -> Result<std::path::PathBuf> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/metrics");
    let binding = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "prometheus-kaas-metrics"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kaas-metrics-reader"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:serviceaccount:monitoring:prometheus"}]}"#;
    for args in [
        vec!["apply", "-k", &*deploy.to_string_lossy()],
        vec!["apply", "-f", "-"],
    ] {
        let mut child = env
            .kubectl()
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if args.contains(&"-") {
            std::io::Write::write_all(
                &mut child.stdin.take().context("stdin")?,
                binding.as_bytes(),
            )?;
        }
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = env.dir().join("prometheus-token");
    std::fs::write(
        &path,
        kaas_testenv::token_of("system:serviceaccount:monitoring:prometheus")?,
    )?;
    Ok(path)
}

/// Starts Debian's Prometheus scraping `targets` (job name, `host:port`, bearer token file)
/// every second over HTTPS (the components' self-signed metrics certificates are not
/// verified; the token is what is checked, as with controller-runtime's secure metrics).
pub fn start_prometheus(
    env: &TestEnv,
    targets: &[(String, String, Option<std::path::PathBuf>)],
) -> Result<(String, ChildGuard)> {
    start_prometheus_with_rules(env, targets, &[])
}

/// [`start_prometheus`] loading the rule files `rules` (evaluated every second).
pub fn start_prometheus_with_rules(
    env: &TestEnv,
    targets: &[(String, String, Option<std::path::PathBuf>)],
    rules: &[std::path::PathBuf],
) -> Result<(String, ChildGuard)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let dir = env.dir().join("prometheus");
    std::fs::create_dir_all(&dir)?;
    let mut config = "global: {scrape_interval: 1s, evaluation_interval: 1s}\n".to_string();
    if !rules.is_empty() {
        config.push_str("rule_files:\n");
        for rule in rules {
            config.push_str(&format!("  - '{}'\n", rule.display()));
        }
    }
    config.push_str("scrape_configs:\n");
    for (job, target, token) in targets {
        config.push_str(&format!(
            "- job_name: {job}\n  scheme: https\n  tls_config: {{insecure_skip_verify: true}}\n  static_configs: [{{targets: ['{target}']}}]\n"
        ));
        if let Some(token) = token {
            config.push_str(&format!(
                "  authorization: {{credentials_file: '{}'}}\n",
                token.display()
            ));
        }
    }
    std::fs::write(dir.join("prometheus.yml"), config)?;
    let bin = which("prometheus").context("prometheus is not installed: run hack/tools.sh")?;
    let log = std::fs::File::create(env.dir().join("prometheus.log"))?;
    let child = std::process::Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    env.adopt(&child)?;
    Ok((addr, ChildGuard(child)))
}

/// Runs an instant query against Prometheus at `addr`; the result vector.
pub async fn query(addr: &str, promql: &str) -> Result<Vec<serde_json::Value>> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let resp = kaas_testenv::http::get(addr, &format!("/api/v1/query?query={encoded}")).await?;
    let json: serde_json::Value =
        serde_json::from_str(&resp.body).with_context(|| resp.body.clone())?;
    anyhow::ensure!(json["status"] == "success", "{}", resp.body);
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.exists())
}

/// Kills a child process when dropped.
#[derive(Debug)]
pub struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
