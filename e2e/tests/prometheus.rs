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

/// Work for an operator and the webhook server: a docker cluster `name` in a new namespace
/// (`prefix`) to reconcile, and its create reviewed by the webhook at `webhook` (served with a
/// certificate of `ca`), retried until it answers.
async fn give_work(
    env: &TestEnv,
    client: &kube::Client,
    prefix: &str,
    name: &str,
    webhook: &str,
    ca: &TestCa,
) -> Result<()> {
    let ns = env.namespace(client, prefix).await?;
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
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
        let r = kaas_testenv::http::post_tls(webhook, "/validate", &body, &ca.pem()).await?;
        Ok((r.status == 200).then_some(()))
    })
    .await?;
    Ok(())
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
    give_work(env, &client, "prom", "watched", &webhook, &ca).await?;

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
                // One pool's targets.
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

/// What Prometheus sends: OpenMetrics first, the classic format as a fallback.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool_check(text: &str) -> Result<(bool, String)> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("promtool (hack/tools.sh installs it): {e}"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("promtool's stdin"))?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), said))
}

/// Every binary's `/metrics` (an operator, the webhook server, the installer), each after some
/// work: without an `Accept` header, or asking for `text/plain`, the classic text format,
/// which `promtool check metrics` accepts (it refuses OpenMetrics' `info` type, which the
/// cluster and release series use); OpenMetrics, ending in `# EOF`, to a scraper that asks for
/// it as Prometheus does.
#[tokio::test]
async fn every_binary_answers_in_the_format_its_scraper_reads() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    let plain = |addr: &str| {
        vec![
            format!("--metrics-bind-address={addr}"),
            "--metrics-insecure".to_string(),
            format!(
                "--health-probe-bind-address=127.0.0.1:{}",
                free_port().unwrap_or(0)
            ),
        ]
    };
    let operator = format!("127.0.0.1:{}", free_port()?);
    let _operator = Process::start(
        env,
        "kaas-operator-docker",
        &plain(&operator),
        "fmt-operator",
    )?;
    let installer = format!("127.0.0.1:{}", free_port()?);
    let _installer = Process::start(env, "kaas-installer", &plain(&installer), "fmt-installer")?;
    let ca = TestCa::new()?;
    let certs = env.dir().join("fmt-certs");
    std::fs::create_dir_all(&certs)?;
    let (cert, key) = ca.issue_files(&certs, "kaas-webhooks")?;
    let webhook = format!("127.0.0.1:{}", free_port()?);
    let webhooks = format!("127.0.0.1:{}", free_port()?);
    let mut webhook_args = plain(&webhooks);
    webhook_args.truncate(2);
    webhook_args.extend([
        format!("--bind-address={webhook}"),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-key-file={}", key.display()),
    ]);
    let _webhooks = Process::start(env, "kaas-webhooks", &webhook_args, "fmt-webhooks")?;

    give_work(env, &client, "fmt", "scraped", &webhook, &ca).await?;
    // And a KaasOperator for the installer to reconcile (it installs nothing that runs here).
    let kaas_operator: api::install::v1alpha1::KaasOperator = serde_json::from_value(json!({
        "apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": "fmt-hetzner"},
        "spec": {"provider": "hetzner", "version": api::install::bundles::CURRENT}}))?;
    Api::<api::install::v1alpha1::KaasOperator>::all(client.clone())
        .create(&PostParams::default(), &kaas_operator)
        .await?;

    for (binary, addr, series, process) in [
        (
            "kaas-operator-docker",
            &operator,
            "kaas_cluster_info{",
            &_operator,
        ),
        (
            "kaas-webhooks",
            &webhooks,
            "kaas_webhook_requests_total{",
            &_webhooks,
        ),
        (
            "kaas-installer",
            &installer,
            "kaas_installer_reconcile_total{",
            &_installer,
        ),
    ] {
        let classic = wait_for(
            &format!("{binary}'s metrics with {series}"),
            Duration::from_secs(60),
            || async {
                let r = kaas_testenv::http::get_with(addr, "/metrics", &[]).await?;
                Ok((r.status == 200 && r.body.contains(series)).then_some(r))
            },
        )
        .await;
        let classic = match classic {
            Ok(c) => c,
            Err(e) => anyhow::bail!("{e:#}\n{binary}'s log:\n{}", process.log_tail()),
        };
        assert_eq!(
            classic.content_type.as_deref(),
            Some(kaas_listener::exposition::CLASSIC),
            "{binary}"
        );
        assert!(!classic.body.contains("# EOF"), "{binary}");
        let (accepted, said) = promtool_check(&classic.body)?;
        assert!(
            accepted && said.trim().is_empty(),
            "promtool check metrics on {binary}'s classic answer: {said}\n{}",
            classic.body
        );
        let asked = kaas_testenv::http::get_with(
            addr,
            "/metrics",
            &[("Accept", "text/plain;version=0.0.4")],
        )
        .await?;
        assert_eq!(
            asked.content_type.as_deref(),
            Some(kaas_listener::exposition::CLASSIC),
            "{binary}"
        );
        let open = kaas_testenv::http::get_with(addr, "/metrics", &[("Accept", PROMETHEUS_ACCEPT)])
            .await?;
        assert_eq!(
            open.content_type.as_deref(),
            Some(kaas_listener::exposition::OPENMETRICS),
            "{binary}"
        );
        assert!(open.body.ends_with("# EOF\n"), "{binary}: {}", open.body);
    }
    Ok(())
}
