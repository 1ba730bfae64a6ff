//! A real Prometheus (Debian's, installed by `hack/tools.sh`) scrapes the webhook server and a
//! provider operator running as processes, over HTTPS with a bearer token allowed by
//! `deploy/metrics`' ClusterRole, and the `kaas_*` series they export are read back through
//! Prometheus's HTTP API. The same targets scraped without a token, or with the token of a user
//! without that role, are refused (`up` 0, the scrape error saying 401 or 403).

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use kaas_e2e::system::{query, start_prometheus};
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use kaas_testenv::certs::TestCa;
use kube::api::{Api, PostParams};
use serde_json::json;

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
    let token = kaas_e2e::system::metrics_reader_token(env)?;
    let stranger = env.dir().join("stranger-token");
    std::fs::write(
        &stranger,
        kaas_testenv::token_of("system:serviceaccount:monitoring:nobody")?,
    )?;
    let (prometheus, _prometheus) = start_prometheus(
        env,
        &[
            (
                "kaas-operator-docker".to_string(),
                operator_metrics.clone(),
                Some(token.clone()),
            ),
            (
                "kaas-webhooks".to_string(),
                webhook_metrics.clone(),
                Some(token),
            ),
            ("no-token".to_string(), operator_metrics.clone(), None),
            (
                "no-role".to_string(),
                webhook_metrics.clone(),
                Some(stranger),
            ),
        ],
    )?;

    for (promql, what) in [
        (
            r#"up{job="kaas-operator-docker"} == 1"#,
            "the operator target up",
        ),
        (r#"up{job="kaas-webhooks"} == 1"#, "the webhook target up"),
        (
            r#"up{job="no-token"} == 0"#,
            "a scrape without a token refused",
        ),
        (
            r#"up{job="no-role"} == 0"#,
            "a scrape by a user without the role refused",
        ),
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
    // Why they were refused, as Prometheus saw it.
    for (job, code) in [("no-token", "401"), ("no-role", "403")] {
        let error = wait_for(
            &format!("{job}'s scrape error"),
            Duration::from_secs(30),
            || async {
                // One pool's targets: a small answer (the test client reads no chunked bodies).
                let r = kaas_testenv::http::get(
                    &prometheus,
                    &format!("/api/v1/targets?state=active&scrapePool={job}"),
                )
                .await?;
                let targets: serde_json::Value = serde_json::from_str(&r.body)?;
                Ok(targets["data"]["activeTargets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["labels"]["job"] == job)
                    .and_then(|t| t["lastError"].as_str().map(str::to_string))
                    .filter(|e| !e.is_empty()))
            },
        )
        .await?;
        assert!(error.contains(code), "{job}: {error}");
    }
    Ok(())
}
