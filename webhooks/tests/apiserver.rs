//! The `kaas-webhooks` binary registered with a real kube-apiserver by URL with a `caBundle`,
//! for admission and for CRD conversion: `kubectl apply` of a bad object is refused by the
//! API server itself, a minimal object comes back defaulted, objects read back in either
//! version, an in-use class cannot be deleted, and certificates rotate with no failed request.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass};
use kaas_testenv::TestEnv;
use kaas_testenv::certs::TestCa;
use kaas_webhooks::registration::{self, Target};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

/// The webhook server shared by this binary's tests.
struct Webhook {
    env: &'static TestEnv,
    ca: TestCa,
    dir: PathBuf,
    addr: String,
    metrics_addr: String,
    _child: Child,
}

static WEBHOOK: OnceLock<Webhook> = OnceLock::new();
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn webhook() -> Result<(&'static Webhook, Client)> {
    if let Some(w) = WEBHOOK.get() {
        return Ok((w, w.env.client().await?));
    }
    let _guard = STARTING.lock().await;
    if let Some(w) = WEBHOOK.get() {
        return Ok((w, w.env.client().await?));
    }
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let ca = TestCa::new()?;
    let addr = format!("127.0.0.1:{}", support::free_port()?);
    let target = Target::Url(format!("https://{addr}"));
    let ca_pem = ca.pem().into_bytes();
    // The KaasCluster CRD converts through this server.
    let mut crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    for crd in &mut crds {
        if crd.spec.names.kind == "KaasCluster" {
            crd.spec.conversion = Some(registration::conversion(&target, Some(&ca_pem)));
        }
    }
    kaas_testenv::install_crds(&client, &crds).await?;

    let dir = env.dir().join("webhook-certs");
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = ca.issue_files(&dir, "kaas-webhooks")?;
    let metrics_addr = format!("127.0.0.1:{}", support::free_port()?);
    // The server runs as its own service account with only the RBAC of deploy/webhooks:
    // what is deployed is what is tested, least privilege included.
    support::apply_webhook_rbac(env)?;
    let kubeconfig = env.kubeconfig_as("system:serviceaccount:kaas-system:kaas-webhooks")?;
    let log = std::fs::File::create(env.dir().join("kaas-webhooks.log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_kaas-webhooks"))
        .args([
            "--bind-address",
            &addr,
            "--metrics-bind-address",
            &metrics_addr,
            "--metrics-insecure",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args(["--tls-reload-seconds", "0.2"])
        // Small, so a test reaches it: a namespace holds at most 3 StackRollouts.
        .args(["--max-rollouts-per-namespace", "3"])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting kaas-webhooks")?;
    env.adopt(&child)?;

    // Ready means: serving TLS and caches synced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = kaas_testenv::http::get_tls(&addr, "/readyz", &ca.pem()).await
            && r.status == 200
        {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(env.dir().join("kaas-webhooks.log"))?;
            bail!("kaas-webhooks not ready after 30 s:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    registration::apply(&client, &target, Some(&ca_pem), "webhooks-test").await?;

    // The default class and a ready stack for it; they pass through the webhook already.
    let class: ProviderClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "openstack",
                     "annotations": {"providerclass.kaas.scs.community/is-default-class": "true"}},
        "spec": {"controller": "kaas.scs.community/openstack"}
    }))?;
    retry_until_admitted(|| {
        let api = Api::<ProviderClass>::all(client.clone());
        let class = class.clone();
        async move { api.create(&PostParams::default(), &class).await.map(|_| ()) }
    })
    .await?;
    create_ready_stack(
        &client,
        "openstack-scs-1-1-0",
        "openstack",
        "1.1.0",
        &["1.31.4", "1.32.1"],
        &["1.0.0"],
    )
    .await?;
    create_ready_stack(
        &client,
        "openstack-scs-1-0-0",
        "openstack",
        "1.0.0",
        &["1.30.8", "1.31.4"],
        &[],
    )
    .await?;

    let w = WEBHOOK.get_or_init(|| Webhook {
        env,
        ca,
        dir,
        addr,
        metrics_addr,
        _child: child,
    });
    Ok((w, client))
}

/// The API server may take a moment to start calling a just-registered webhook.
async fn retry_until_admitted<F, Fut>(mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<()>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn create_ready_stack(
    client: &Client,
    name: &str,
    provider: &str,
    version: &str,
    k8s: &[&str],
    from: &[&str],
) -> Result<()> {
    let stack: ClusterStack = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": name},
        "spec": {"provider": provider, "name": "scs", "version": version,
                 "kubernetesVersions": k8s, "upgradeFrom": from}
    }))?;
    let api = Api::<ClusterStack>::all(client.clone());
    retry_until_admitted(|| {
        let api = api.clone();
        let stack = stack.clone();
        async move { api.create(&PostParams::default(), &stack).await.map(|_| ()) }
    })
    .await?;
    let status = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "Verified", "message": "test",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

fn kubectl(env: &TestEnv, args: &[&str], stdin: &str) -> Result<(bool, String)> {
    let mut child = env
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Waits until the webhook's cache has seen what the API server has (a few ms normally).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn kubectl_apply_of_an_invalid_cluster_is_refused_naming_every_bad_field() -> Result<()> {
    let (w, client) = webhook().await?;
    let ns = w.env.namespace(&client, "invalid").await?;
    let yaml = r#"
apiVersion: kaas.scs.community/v1beta1
kind: KaasCluster
metadata:
  name: broken
spec:
  clusterStack: {name: scs}
  controlPlane: {replicas: 2}
  workers:
    - {name: pool, replicas: -1, machineType: m}
    - {name: pool, replicas: 1, machineType: m}
  network: {podCIDRs: [10.0.0.0/8], serviceCIDRs: [10.96.0.0/12]}
  oidc: {issuerURL: "http://login.example.com", clientID: kubernetes}
"#;
    let (ok, out) = kubectl(w.env, &["apply", "-n", &ns, "-f", "-"], yaml)?;
    assert!(!ok, "must be refused: {out}");
    assert!(out.contains("invalid"), "{out}");
    // The CRD's own rules refuse these before the validating webhook is asked (the same
    // rules, shared validation beside them); each names its field.
    for (field, problem) in [
        ("spec.controlPlane.replicas", "must be 1, 3 or 5"),
        ("spec.workers[0].replicas", "greater than or equal to 0"),
        ("spec.workers", "pool names must be unique"),
        (
            "spec.network.podCIDRs",
            "must not overlap the Service networks",
        ),
        ("spec.oidc.issuerURL", "should match"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("{field}: ")) && l.contains(problem)),
            "{field}: {problem} missing from: {out}"
        );
    }
    let stored = Api::<KaasCluster>::namespaced(client, &ns)
        .get_opt("broken")
        .await?;
    assert!(stored.is_none(), "nothing was stored");
    Ok(())
}

#[tokio::test]
async fn a_minimal_cluster_comes_back_defaulted() -> Result<()> {
    let (w, client) = webhook().await?;
    let ns = w.env.namespace(&client, "minimal").await?;
    settle().await;
    let yaml = "apiVersion: kaas.scs.community/v1beta1\nkind: KaasCluster\nmetadata: {name: tiny}\nspec:\n  clusterStack: {name: scs}\n";
    let (ok, out) = kubectl(w.env, &["apply", "-n", &ns, "-f", "-"], yaml)?;
    assert!(ok, "{out}");
    let stored = Api::<KaasCluster>::namespaced(client, &ns)
        .get("tiny")
        .await?;
    assert_eq!(
        stored.spec.provider_class_name.as_deref(),
        Some("openstack")
    );
    assert_eq!(stored.spec.cluster_stack.version.as_deref(), Some("1.1.0"));
    assert_eq!(stored.spec.kubernetes_version.as_deref(), Some("1.32.1"));
    assert_eq!(stored.spec.control_plane.replicas, Some(3));
    assert_eq!(stored.spec.network.pod_cidrs, ["192.168.0.0/16"]);
    assert_eq!(stored.spec.network.service_cidrs, ["10.96.0.0/12"]);
    Ok(())
}

#[tokio::test]
async fn objects_read_back_in_the_other_version() -> Result<()> {
    let (w, client) = webhook().await?;
    let ns = w.env.namespace(&client, "versions").await?;
    settle().await;
    // Written as v1alpha1, read as v1beta1.
    let alpha = r#"
apiVersion: kaas.scs.community/v1alpha1
kind: KaasCluster
metadata: {name: legacy}
spec:
  providerClass: openstack
  clusterStackName: scs
  clusterStackVersion: 1.1.0
  kubernetesVersion: "1.32"
  controlPlaneReplicas: 1
  machineDeployments: [{name: md-0, replicas: 2, machineType: SCS-4V-16}]
  podCIDR: 172.16.0.0/16
  serviceCIDR: 172.20.0.0/16
"#;
    let (ok, out) = kubectl(w.env, &["apply", "-n", &ns, "-f", "-"], alpha)?;
    assert!(ok, "{out}");
    let beta = Api::<KaasCluster>::namespaced(client.clone(), &ns)
        .get("legacy")
        .await?;
    assert_eq!(beta.spec.provider_class_name.as_deref(), Some("openstack"));
    assert_eq!(beta.spec.workers[0].name, "md-0");
    assert_eq!(beta.spec.workers[0].machine_type, "SCS-4V-16");
    assert_eq!(beta.spec.network.pod_cidrs, ["172.16.0.0/16"]);
    assert_eq!(beta.spec.control_plane.replicas, Some(1));

    // Written as v1beta1 with fields v1alpha1 lacks, read as v1alpha1, and back.
    let beta_yaml = r#"
apiVersion: kaas.scs.community/v1beta1
kind: KaasCluster
metadata: {name: modern}
spec:
  providerClassName: openstack
  clusterStack: {name: scs, version: 1.1.0}
  kubernetesVersion: "1.32"
  controlPlane: {replicas: 1}
  workers: [{name: web, replicas: 2, machineType: m, minReplicas: 1, maxReplicas: 4}]
  network: {podCIDRs: [192.168.0.0/16], serviceCIDRs: [10.96.0.0/12], mtu: 1400}
"#;
    let (ok, out) = kubectl(w.env, &["apply", "-n", &ns, "-f", "-"], beta_yaml)?;
    assert!(ok, "{out}");
    let alpha_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::erase::<api::v1alpha1::KaasCluster>(&()),
    );
    let read = alpha_api.get("modern").await?;
    assert_eq!(
        read.types.as_ref().map(|t| t.api_version.as_str()),
        Some("kaas.scs.community/v1alpha1")
    );
    assert_eq!(read.data["spec"]["machineDeployments"][0]["name"], "web");
    assert_eq!(read.data["spec"]["podCIDR"], "192.168.0.0/16");
    let residue = read.annotations()[api::conversion::V1BETA1_FIELDS_ANNOTATION].clone();
    assert!(residue.contains("1400"), "{residue}");
    let (ok, out) = kubectl(
        w.env,
        &[
            "get",
            "-n",
            &ns,
            "kaasclusters.v1alpha1.kaas.scs.community",
            "modern",
            "-o",
            "jsonpath={.spec.providerClass}",
        ],
        "",
    )?;
    assert!(ok && out == "openstack", "{out}");
    let back = Api::<KaasCluster>::namespaced(client, &ns)
        .get("modern")
        .await?;
    assert_eq!(back.spec.workers[0].max_replicas, Some(4));
    assert_eq!(back.spec.network.mtu, Some(1400));
    assert!(
        !back
            .annotations()
            .contains_key(api::conversion::V1BETA1_FIELDS_ANNOTATION)
    );
    Ok(())
}

#[tokio::test]
async fn deleting_an_in_use_class_is_refused() -> Result<()> {
    let (w, client) = webhook().await?;
    let ns = w.env.namespace(&client, "inuse").await?;
    let class_name = format!("{ns}-class");
    let yaml = format!(
        "apiVersion: kaas.scs.community/v1beta1\nkind: ProviderClass\nmetadata: {{name: {class_name}}}\nspec: {{controller: kaas.scs.community/openstack}}\n"
    );
    let (ok, out) = kubectl(w.env, &["apply", "-f", "-"], &yaml)?;
    assert!(ok, "{out}");
    settle().await;
    let cluster = format!(
        "apiVersion: kaas.scs.community/v1beta1\nkind: KaasCluster\nmetadata: {{name: user}}\nspec:\n  providerClassName: {class_name}\n  clusterStack: {{name: scs}}\n  controlPlane: {{replicas: 1}}\n"
    );
    let (ok, out) = kubectl(w.env, &["apply", "-n", &ns, "-f", "-"], &cluster)?;
    assert!(ok, "{out}");
    settle().await;
    let (ok, out) = kubectl(w.env, &["delete", "providerclass", &class_name], "")?;
    assert!(!ok, "must be refused: {out}");
    assert!(
        out.contains(&format!("in use by KaasCluster {ns}/user")),
        "{out}"
    );
    assert!(
        Api::<ProviderClass>::all(client.clone())
            .get_opt(&class_name)
            .await?
            .is_some()
    );

    // Once the cluster is gone, the class can go.
    Api::<KaasCluster>::namespaced(client.clone(), &ns)
        .delete("user", &Default::default())
        .await?;
    settle().await;
    let (ok, out) = kubectl(w.env, &["delete", "providerclass", &class_name], "")?;
    assert!(ok, "{out}");
    Ok(())
}

#[tokio::test]
async fn a_rollout_past_the_namespaces_bound_is_refused() -> Result<()> {
    let (w, client) = webhook().await?;
    let ns = w.env.namespace(&client, "rollouts").await?;
    let other = w.env.namespace(&client, "rollouts-other").await?;
    let rollout = |name: &str| {
        format!(
            "apiVersion: kaas.scs.community/v1beta1\nkind: StackRollout\nmetadata: {{name: {name}}}\nspec:\n  clusterStack: {{name: scs, version: 1.0.1}}\n  waves: [{{name: all, selector: {{}}}}]\n"
        )
    };
    for name in ["r1", "r2", "r3"] {
        let (ok, out) = kubectl(w.env, &["create", "-n", &ns, "-f", "-"], &rollout(name))?;
        assert!(ok, "{out}");
    }
    // The webhook counts from its cache: the third must have reached it.
    let mut refused = String::new();
    for _ in 0..50 {
        let (ok, out) = kubectl(w.env, &["create", "-n", &ns, "-f", "-"], &rollout("r4"))?;
        if !ok {
            refused = out;
            break;
        }
        // Admitted before the cache held r3: take it back and try again.
        kubectl(w.env, &["delete", "-n", &ns, "stackrollout", "r4"], "")?;
        settle().await;
    }
    assert!(
        refused.contains(&format!(
            "namespace {ns:?} already holds 3 StackRollouts, the most kaas-webhooks admits"
        )),
        "{refused}"
    );
    // An update of one it holds, and a rollout in another namespace, are admitted.
    let (ok, out) = kubectl(
        w.env,
        &["label", "-n", &ns, "stackrollout", "r1", "ring=0"],
        "",
    )?;
    assert!(ok, "{out}");
    let (ok, out) = kubectl(w.env, &["create", "-n", &other, "-f", "-"], &rollout("r4"))?;
    assert!(ok, "{out}");
    // Once one goes, another may come.
    let (ok, out) = kubectl(w.env, &["delete", "-n", &ns, "stackrollout", "r2"], "")?;
    assert!(ok, "{out}");
    let mut admitted = false;
    for _ in 0..50 {
        settle().await;
        if kubectl(w.env, &["create", "-n", &ns, "-f", "-"], &rollout("r4"))?.0 {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a fourth rollout after one was deleted");
    Ok(())
}

#[tokio::test]
async fn certificates_rotate_while_requests_flow_and_none_fails() -> Result<()> {
    let (w, client) = webhook().await?;
    let ns = w.env.namespace(&client, "rotate").await?;
    settle().await;
    let api: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "probe"},
        "spec": {"clusterStack": {"name": "scs"}, "controlPlane": {"replicas": 1}}
    }))?;
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (api, cluster, ok, failures, stop) = (
            api.clone(),
            cluster.clone(),
            ok.clone(),
            failures.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            // Dry-run creates pass through both webhooks and store nothing.
            let params = PostParams {
                dry_run: true,
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                match api.create(&params, &cluster).await {
                    Ok(created) if created.spec.cluster_stack.version.is_some() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => failures.lock().expect("lock").push("not defaulted".into()),
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
            }
        }));
    }
    let mut last_cert = String::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        w.ca.issue_files(&w.dir, &format!("kaas-webhooks-{round}"))?;
        last_cert = std::fs::read_to_string(w.dir.join("tls.crt"))?;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }
    let failures = failures.lock().expect("lock").clone();
    let ok = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(ok >= 20, "only {ok} requests went through");

    // New connections are served the newest certificate.
    let served = kaas_testenv::http::get_tls(&w.addr, "/healthz", &w.ca.pem()).await?;
    let newest = rustls_pki_types::CertificateDer::from_pem_slice(last_cert.as_bytes())?;
    assert_eq!(served.peer_certificate.as_deref(), Some(newest.as_ref()));
    let metrics = kaas_testenv::http::get(&w.metrics_addr, "/metrics")
        .await?
        .body;
    assert!(
        metrics.contains(r#"kaas_webhook_certificate_reloads_total{result="success"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"kaas_webhook_requests_total{endpoint="mutate",kind="KaasCluster",operation="CREATE",outcome="patched"}"#), "{metrics}");
    Ok(())
}

use rustls_pki_types::pem::PemObject;

#[tokio::test]
async fn a_missing_or_invalid_certificate_refuses_to_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_kaas-webhooks"))
        .arg("--tls-cert-file")
        .arg(dir.path().join("missing.crt"))
        .arg("--tls-key-file")
        .arg(dir.path().join("missing.key"))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.crt"), "{err}");

    std::fs::write(dir.path().join("bad.crt"), "not a certificate")?;
    std::fs::write(dir.path().join("bad.key"), "not a key")?;
    let out = Command::new(env!("CARGO_BIN_EXE_kaas-webhooks"))
        .arg("--tls-cert-file")
        .arg(dir.path().join("bad.crt"))
        .arg("--tls-key-file")
        .arg(dir.path().join("bad.key"))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.crt: no PEM certificate"), "{err}");
    Ok(())
}
