//! A real Prometheus (Debian's, installed by `hack/tools.sh`) scrapes the webhook server and a
//! provider operator running as processes, and the `kaas_*` series they export are read back
//! through Prometheus's HTTP API.

use std::time::Duration;

use anyhow::{Context, Result};
use api::v1beta1::KaasCluster;
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use kaas_testenv::certs::TestCa;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// Runs an instant query and returns its result vector.
async fn query(prometheus: &str, promql: &str) -> Result<Vec<Value>> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let resp =
        kaas_testenv::http::get(prometheus, &format!("/api/v1/query?query={encoded}")).await?;
    let json: Value = serde_json::from_str(&resp.body).with_context(|| resp.body.clone())?;
    anyhow::ensure!(json["status"] == "success", "{}", resp.body);
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[tokio::test]
async fn prometheus_scrapes_kaas_series_from_every_running_component() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;

    let operator_metrics = format!("127.0.0.1:{}", free_port()?);
    let _operator = Process::start(
        env,
        "kaas-operator-docker",
        &[
            format!("--metrics-bind-address={operator_metrics}"),
            format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
        ],
        "prom-operator",
    )?;
    let ca = TestCa::new()?;
    let certs = env.dir().join("prom-certs");
    std::fs::create_dir_all(&certs)?;
    let (cert, key) = ca.issue_files(&certs, "kaas-webhooks")?;
    let webhook = format!("127.0.0.1:{}", free_port()?);
    let webhook_metrics = format!("127.0.0.1:{}", free_port()?);
    let _webhooks = Process::start(
        env,
        "kaas-webhooks",
        &[
            format!("--bind-address={webhook}"),
            format!("--metrics-bind-address={webhook_metrics}"),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-key-file={}", key.display()),
        ],
        "prom-webhooks",
    )?;

    // Work for both: a cluster to reconcile, an admission request to answer.
    let ns = env.namespace(&client, "prom").await?;
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "watched"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e", "version": "1.0.0"},
                 "controlPlane": {"replicas": 1}}}))?;
    Api::<KaasCluster>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cluster)
        .await?;
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "kaas.scs.community", "version": "v1beta1", "kind": "KaasCluster"},
                    "operation": "CREATE", "object": serde_json::to_value(&cluster)?}});
    let body = serde_json::to_vec(&review)?;
    wait_for("the webhook answering", Duration::from_secs(30), || async {
        let r = kaas_testenv::http::post_tls(&webhook, "/validate", &body, &ca.pem()).await?;
        Ok((r.status == 200).then_some(()))
    })
    .await?;

    // Prometheus, scraping both every second.
    let prometheus = format!("127.0.0.1:{}", free_port()?);
    let dir = env.dir().join("prometheus");
    std::fs::create_dir_all(&dir)?;
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n\
         - job_name: kaas-operator-docker\n  static_configs: [{{targets: ['{operator_metrics}']}}]\n\
         - job_name: kaas-webhooks\n  static_configs: [{{targets: ['{webhook_metrics}']}}]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config)?;
    let prometheus_bin =
        which("prometheus").context("prometheus is not installed: run hack/tools.sh")?;
    let log = std::fs::File::create(env.dir().join("prometheus.log"))?;
    let child = std::process::Command::new(prometheus_bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prometheus}"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    env.adopt(&child)?;
    let _prometheus = ChildGuard(child);

    for (promql, what) in [
        (
            r#"up{job="kaas-operator-docker"} == 1"#,
            "the operator target up",
        ),
        (r#"up{job="kaas-webhooks"} == 1"#, "the webhook target up"),
        (
            r#"kaas_reconcile_total{job="kaas-operator-docker",result="success"} > 0"#,
            "operator reconciles",
        ),
        (
            r#"kaas_cluster_info{name="watched",kubernetes_version="1.31.4"}"#,
            "the cluster's info series",
        ),
        (
            r#"sum(kaas_webhook_requests_total{job="kaas-webhooks",endpoint="validate",kind="KaasCluster"}) > 0"#,
            "admission requests",
        ),
        (
            r#"kaas_webhook_request_duration_seconds_count{endpoint="validate"} > 0"#,
            "admission latency",
        ),
    ] {
        let result = wait_for(what, Duration::from_secs(60), || async {
            let r = query(&prometheus, promql).await?;
            Ok((!r.is_empty()).then_some(r))
        })
        .await?;
        assert!(!result.is_empty(), "{what}");
    }
    Ok(())
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.exists())
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
