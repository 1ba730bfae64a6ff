//! The Helm chart `deploy/chart/kaas` with the real `helm` (built by hack/control-plane.sh) on
//! a real API server: `helm lint` passes; wrong values fail naming the field, installing
//! nothing; the chart is published to a real OCI registry as the release workflow does;
//! `helm install` from there brings up the CRDs, kaas-webhooks (which then refuses a bad
//! KaasCluster through the API server) and kaas-installer, and the next upgrade the KaasOperator
//! from values, which the installer acts on; an upgrade to a chart whose CRD has a new field
//! serves that field; `helm uninstall` leaves no object of the chart but the CRDs it keeps on
//! purpose, and none at all with `crds.keep=false`.
//!
//! No kubelet runs here, so the test plays it for the two Deployments: it starts each binary
//! with its pod template's arguments, as its service account, with the Secret the chart made
//! for the webhook, and publishes the webhook's address in an EndpointSlice of its Service
//! (the API server runs with `--enable-aggregator-routing`, so it calls webhooks at an endpoint
//! of their Service, as in a cluster without a kube-proxy on the control plane).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/chart/kaas")
}

/// `helm <args>` against `env`, with its own cache and configuration folders; (success,
/// stdout, stderr).
fn helm(env: &TestEnv, args: &[&str]) -> Result<(bool, String, String)> {
    let home = env.dir().join("helm-home");
    let out = Command::new(kaas_testenv::program("helm")?)
        .args(args)
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .context("running helm")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn helm_ok(env: &TestEnv, args: &[&str]) -> Result<String> {
    let (ok, stdout, stderr) = helm(env, args)?;
    anyhow::ensure!(ok, "helm {args:?}: {stderr}\n{stdout}");
    Ok(stdout)
}

/// `helm upgrade kaas <chart> -n kaas-system <values>` (`--reuse-values`, `--reset-values`).
fn upgrade(env: &TestEnv, chart: &str, values: &str) -> Result<String> {
    helm_ok(
        env,
        &["upgrade", "kaas", chart, "-n", "kaas-system", values],
    )
}

/// `kubectl get -o json` of `what`; `None` when it does not exist.
fn get(env: &TestEnv, what: &[&str]) -> Result<Option<Value>> {
    let out = env
        .kubectl()
        .arg("get")
        .args(what)
        .args(["-o", "json"])
        .output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            stderr.contains("NotFound"),
            "kubectl get {what:?}: {stderr}"
        );
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(&out.stdout)?))
}

fn kubectl_apply(env: &TestEnv, object: &Value, dry_run: bool) -> Result<(bool, String)> {
    let out = kaas_e2e::kubectl_apply(env, object, dry_run)?;
    let text = if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    };
    Ok((
        out.status.success(),
        String::from_utf8_lossy(text).into_owned(),
    ))
}

/// This machine's first IPv4 address that is not loopback: an endpoint address the API server
/// accepts (it refuses loopback ones) and reaches.
fn host_ip() -> Result<String> {
    for cmd in [vec!["hostname", "-I"], vec!["ip", "-4", "-o", "addr"]] {
        let Ok(out) = Command::new(cmd[0]).args(&cmd[1..]).output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        for word in text.split_whitespace() {
            let word = word.split('/').next().unwrap_or_default();
            if let Ok(ip) = word.parse::<std::net::Ipv4Addr>()
                && !ip.is_loopback()
                && !ip.is_link_local()
            {
                return Ok(ip.to_string());
            }
        }
    }
    anyhow::bail!("no IPv4 address but loopback on this machine: the webhook cannot be an endpoint")
}

/// The container arguments of Deployment `name`, with the listen addresses moved to `rewrite`.
fn pod_args(env: &TestEnv, name: &str, rewrite: &[(&str, String)]) -> Result<Vec<String>> {
    let deployment = get(env, &["-n", "kaas-system", "deployment", name])?
        .with_context(|| format!("no Deployment {name}"))?;
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .map(|a| {
            rewrite
                .iter()
                .find(|(flag, _)| a.starts_with(&format!("{flag}=")))
                .map(|(flag, value)| format!("{flag}={value}"))
                .unwrap_or_else(|| a.to_string())
        })
        .collect();
    Ok(args)
}

/// Plays the kubelet for the chart's two Deployments: kaas-webhooks with the chart's Secret
/// (published in an EndpointSlice of its Service) and kaas-installer.
async fn run_pods(env: &TestEnv, client: &kube::Client) -> Result<(Process, Process)> {
    let secret =
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "kaas-system")
            .get("kaas-webhooks-tls")
            .await
            .context("the chart's Secret kaas-webhooks-tls")?;
    let certs = env.dir().join("chart-certs");
    std::fs::create_dir_all(&certs)?;
    for key in ["tls.crt", "tls.key"] {
        let data = secret.data.as_ref().and_then(|d| d.get(key)).context(key)?;
        std::fs::write(certs.join(key), &data.0)?;
    }
    let ip = host_ip()?;
    let port = free_port()?;
    let args = pod_args(
        env,
        "kaas-webhooks",
        &[
            ("--bind-address", format!("{ip}:{port}")),
            (
                "--metrics-bind-address",
                format!("127.0.0.1:{}", free_port()?),
            ),
            (
                "--tls-cert-file",
                certs.join("tls.crt").display().to_string(),
            ),
            (
                "--tls-key-file",
                certs.join("tls.key").display().to_string(),
            ),
        ],
    )?;
    let kubeconfig = env.kubeconfig_as("system:serviceaccount:kaas-system:kaas-webhooks")?;
    let webhooks = Process::start_with_env(
        env,
        "kaas-webhooks",
        &args,
        &[("KUBECONFIG", &kubeconfig.to_string_lossy())],
        "chart-webhooks",
    )?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kaas-webhooks-test", "namespace": "kaas-system",
                     "labels": {"kubernetes.io/service-name": "kaas-webhooks"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    let (ok, out) = kubectl_apply(env, &slice, false)?;
    anyhow::ensure!(ok, "EndpointSlice: {out}");

    let args = pod_args(
        env,
        "kaas-installer",
        &[
            (
                "--metrics-bind-address",
                format!("127.0.0.1:{}", free_port()?),
            ),
            (
                "--health-probe-bind-address",
                format!("127.0.0.1:{}", free_port()?),
            ),
        ],
    )?;
    let kubeconfig = env.kubeconfig_as("system:serviceaccount:kaas-system:kaas-installer")?;
    let installer = Process::start_with_env(
        env,
        "kaas-installer",
        &args,
        &[
            ("KUBECONFIG", &kubeconfig.to_string_lossy()),
            ("POD_NAME", "kaas-installer-0"),
            ("POD_NAMESPACE", "kaas-system"),
        ],
        "chart-installer",
    )?;
    Ok((webhooks, installer))
}

/// The objects of the release's manifest: (resource for kubectl, namespace flag, name).
fn manifest_objects(env: &TestEnv) -> Result<Vec<(String, Option<String>, String)>> {
    let manifest = helm_ok(env, &["get", "manifest", "kaas", "-n", "kaas-system"])?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&manifest)?;
    let namespaced_kinds = [
        "Deployment",
        "Service",
        "ServiceAccount",
        "Secret",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ];
    Ok(docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let group = d["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/').map(|(g, _)| g.to_string()))
                .unwrap_or_default();
            let resource = if group.is_empty() {
                kind.clone()
            } else {
                format!("{kind}.{group}")
            };
            let ns = namespaced_kinds
                .contains(&kind.as_str())
                .then(|| "kaas-system".to_string());
            (
                resource,
                ns,
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

fn exists(env: &TestEnv, object: &(String, Option<String>, String)) -> Result<bool> {
    let (resource, ns, name) = object;
    let mut what = vec![resource.as_str(), name.as_str()];
    if let Some(ns) = ns {
        what.extend(["-n", ns.as_str()]);
    }
    Ok(get(env, &what)?.is_some())
}

/// A copy of the chart at version `version` whose TenantPolicy CRD has the string field
/// `spec.chartTestField`.
fn chart_with_new_field(env: &TestEnv, version: &str) -> Result<PathBuf> {
    let copy = env.dir().join("chart-next");
    let status = Command::new("cp")
        .arg("-r")
        .arg(chart_dir())
        .arg(&copy)
        .status()?;
    anyhow::ensure!(status.success(), "cp");
    let chart = copy.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart)?;
    std::fs::write(
        &chart,
        text.replace("version: 0.2.0", &format!("version: {version}")),
    )?;
    let crd = copy.join("templates/generated/crd-tenantpolicies.kaas.scs.community.yaml");
    let text = std::fs::read_to_string(&crd)?;
    // The spec's first property, `allowed`, gets a sibling.
    let anchor = text
        .lines()
        .find(|l| l.trim() == "allowed:")
        .context("no spec.allowed in the TenantPolicy CRD")?;
    let indent = &anchor[..anchor.len() - anchor.trim_start().len()];
    let field = format!("{indent}chartTestField:\n{indent}  type: string\n{anchor}");
    std::fs::write(&crd, text.replacen(anchor, &field, 1))?;
    Ok(copy)
}

fn tenant_policy(name: &str) -> Value {
    json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "TenantPolicy",
           "metadata": {"name": name},
           "spec": {"namespaceSelector": {"matchLabels": {"tenant": name}},
                    "chartTestField": "served"}})
}

#[tokio::test]
async fn the_chart_installs_upgrades_and_uninstalls_on_a_real_api_server() -> Result<()> {
    let env = TestEnv::start_with(&["--enable-aggregator-routing=true".to_string()]).await?;
    let client = env.client().await?;
    let chart = chart_dir();
    let chart_arg = chart.to_string_lossy().into_owned();
    // Cluster API's kinds, which the installer's preflight looks for.
    kaas_testenv::install_crds(&client, &kaas_e2e::stand_in_crds()).await?;

    // Lint.
    let lint = helm_ok(&env, &["lint", "--strict", &chart_arg, "-n", "kaas-system"])?;
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    // Wrong values fail at install, naming the field, and install nothing.
    for (args, field) in [
        (vec!["--set", "webhooks.replica=3"], "'replica'"),
        (
            vec![
                "--set-json",
                r#"kaasOperators={"docker":{"provider":"docker","versoin":"0.2.0"}}"#,
            ],
            "'versoin'",
        ),
        (
            vec!["--set", "webhooks.tls.mode=manual"],
            "/webhooks/tls/mode",
        ),
    ] {
        let mut all = vec![
            "install",
            "kaas",
            &chart_arg,
            "-n",
            "kaas-system",
            "--create-namespace",
        ];
        all.extend(args.iter().copied());
        let (ok, _, stderr) = helm(&env, &all)?;
        assert!(!ok, "{args:?} was accepted");
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
    assert!(get(&env, &["crd", "kaasclusters.kaas.scs.community"])?.is_none());

    // Published as the release workflow does (deploy/release/publish-chart.sh) to a real OCI
    // registry, and installed from there.
    let registry = kaas_testenv::registry::Registry::start().await?;
    let repository = format!("oci://{}/charts", registry.addr());
    let helm_bin = kaas_testenv::program("helm")?;
    let home = env.dir().join("helm-home");
    let published = Command::new(chart.join("../../release/publish-chart.sh"))
        .args([&repository, "--plain-http"])
        .env("HELM", &helm_bin)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()?;
    anyhow::ensure!(
        published.status.success(),
        "publish-chart.sh: {}",
        String::from_utf8_lossy(&published.stderr)
    );
    let shown = helm_ok(
        &env,
        &[
            "show",
            "chart",
            &format!("{repository}/kaas"),
            "--version",
            env!("CARGO_PKG_VERSION"),
            "--plain-http",
        ],
    )?;
    assert!(shown.contains("name: kaas"), "{shown}");
    let published_chart = format!("{repository}/kaas");

    // Install from the registry, with a KaasOperator from values.
    let operators =
        json!({"docker": {"provider": "docker", "version": api::install::bundles::CURRENT}});
    let operators_arg = format!("kaasOperators={operators}");
    let notes = helm_ok(
        &env,
        &[
            "install",
            "kaas",
            &published_chart,
            "--version",
            env!("CARGO_PKG_VERSION"),
            "--plain-http",
            "-n",
            "kaas-system",
            "--create-namespace",
            "--set-json",
            &operators_arg,
        ],
    )?;
    assert!(
        notes.contains("Not created yet: KaasOperator docker"),
        "{notes}"
    );
    for crd in api::crds::all()? {
        let name = crd.1.metadata.name.clone().unwrap_or_default();
        let live = get(&env, &["crd", &name])?.with_context(|| format!("no CRD {name}"))?;
        assert_eq!(
            live["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
    }
    let (webhooks, installer) = run_pods(&env, &client).await?;

    // The webhook refuses a bad KaasCluster, through the API server.
    let bad = json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"providerClassName": "missing", "clusterStack": {"name": "docker-scs", "version": "1.0.0"}}});
    let refusal = wait_for("kaas-webhooks answering", WAIT, || async {
        let (ok, out) = kubectl_apply(&env, &bad, true)?;
        anyhow::ensure!(
            !ok,
            "a KaasCluster of a class that does not exist was accepted: {out}"
        );
        // The schema cannot know which classes exist: only kaas-webhooks says so.
        Ok(out.contains("not found").then_some(out))
    })
    .await
    .map_err(|e| {
        let last = kubectl_apply(&env, &bad, true).map(|(_, out)| out);
        anyhow::anyhow!(
            "{e}\nlast answer: {last:?}\nwebhooks: {}\ninstaller: {}",
            webhooks.log_tail(),
            installer.log_tail()
        )
    })?;
    assert!(
        refusal.contains(r#"spec.providerClassName: ProviderClass "missing" not found"#),
        "{refusal}"
    );

    // The next upgrade creates the KaasOperator from values; the installer installs it.
    let notes = upgrade(&env, &chart_arg, "--reuse-values")?;
    assert!(!notes.contains("Not created yet"), "{notes}");
    assert!(get(&env, &["kaasoperator", "docker"])?.is_some());
    wait_for(
        "the installer installing the docker operator",
        WAIT,
        || async {
            get(
                &env,
                &["-n", "kaas-system", "deployment", "docker-kaas-operator"],
            )
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\ninstaller: {}", installer.log_tail()))?;

    // An upgrade to a chart whose CRD has a new field serves the field.
    let (ok, before) = kubectl_apply(&env, &tenant_policy("before"), true)?;
    assert!(
        !ok && before.contains(r#"unknown field "spec.chartTestField""#),
        "not served before the upgrade: {before}"
    );
    let next = chart_with_new_field(&env, "0.2.1")?;
    upgrade(&env, &next.to_string_lossy(), "--reuse-values")?;
    let served = wait_for("the new field served", WAIT, || async {
        let (ok, out) = kubectl_apply(&env, &tenant_policy("after"), false)?;
        anyhow::ensure!(ok, "{out}");
        let live: Value = serde_json::from_str(&out)?;
        Ok((live["spec"]["chartTestField"] == "served").then_some(live))
    })
    .await?;
    assert_eq!(served["spec"]["chartTestField"], "served");
    let (_, listed, _) = helm(&env, &["list", "-n", "kaas-system", "-o", "json"])?;
    assert!(listed.contains("kaas-0.2.1"), "{listed}");

    // The KaasOperators go first, while the installer runs to remove what they installed
    // (docs/helm.md: an uninstall removes the installer and its RBAC at once).
    upgrade(&env, &next.to_string_lossy(), "--reset-values")?;
    wait_for("the docker operator removed", WAIT, || async {
        let gone = get(&env, &["kaasoperator", "docker"])?.is_none()
            && get(
                &env,
                &["-n", "kaas-system", "deployment", "docker-kaas-operator"],
            )?
            .is_none();
        Ok(gone.then_some(()))
    })
    .await
    .map_err(|e| {
        let op = get(&env, &["kaasoperator", "docker"]);
        anyhow::anyhow!(
            "{e}\nKaasOperator: {op:?}\ninstaller: {}\nwebhooks: {}",
            installer.log_tail(),
            webhooks.log_tail()
        )
    })?;

    // Uninstall: nothing of the chart is left but the CRDs it keeps (crds.keep).
    let objects = manifest_objects(&env)?;
    assert!(objects.len() > 25, "{objects:?}");
    helm_ok(&env, &["uninstall", "kaas", "-n", "kaas-system", "--wait"])?;
    let left = wait_for("the release's objects gone", WAIT, || async {
        let mut left = Vec::new();
        for o in &objects {
            if exists(&env, o)? {
                left.push(o.clone());
            }
        }
        Ok(left
            .iter()
            .all(|(resource, _, _)| resource.starts_with("CustomResourceDefinition"))
            .then_some(left))
    })
    .await?;
    assert_eq!(left.len(), 6, "only the six CRDs are kept: {left:?}");
    assert!(
        get(&env, &["tenantpolicy", "after"])?.is_some(),
        "kept with its CRD"
    );

    // Installed again with crds.keep=false (the kept CRDs are taken back into the release),
    // uninstall leaves nothing at all.
    helm_ok(
        &env,
        &[
            "install",
            "kaas",
            &chart_arg,
            "-n",
            "kaas-system",
            "--set",
            "crds.keep=false",
        ],
    )?;
    let objects = manifest_objects(&env)?;
    helm_ok(&env, &["uninstall", "kaas", "-n", "kaas-system", "--wait"])?;
    wait_for("every object of the release gone", WAIT, || async {
        for o in &objects {
            if exists(&env, o)? {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    drop((webhooks, installer));
    Ok(())
}

/// `helm template` of the chart with `args`, as objects.
fn template(args: &[&str]) -> Result<Vec<Value>> {
    let home = tempfile::tempdir()?;
    let out = Command::new(kaas_testenv::program("helm")?)
        .args(["template", "kaas"])
        .arg(chart_dir())
        .args(["-n", "kaas-system"])
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "helm template {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[test]
fn under_cert_manager_the_ca_is_injected_and_monitoring_matches_deploy() -> Result<()> {
    let objects = template(&[
        "--set",
        "webhooks.tls.mode=cert-manager",
        "--set",
        "metrics.serviceMonitors.enabled=true",
        "--set",
        "metrics.podMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.dashboards.enabled=true",
    ])?;
    let of = |kind: &str| -> Vec<&Value> { objects.iter().filter(|o| o["kind"] == kind).collect() };
    // cert-manager: no CA of the chart's own anywhere, the injector named where it is needed.
    let text = serde_json::to_string(&objects)?;
    assert!(!text.contains("caBundle"), "a caBundle under cert-manager");
    assert!(
        of("Secret")
            .iter()
            .all(|s| s["metadata"]["name"] != "kaas-webhooks-tls")
    );
    let injected: Vec<String> = objects
        .iter()
        .filter(|o| {
            o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
                == "kaas-system/kaas-webhooks"
        })
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for want in [
        "MutatingWebhookConfiguration/kaas-webhooks",
        "ValidatingWebhookConfiguration/kaas-webhooks",
        "CustomResourceDefinition/kaasclusters.kaas.scs.community",
    ] {
        assert!(
            injected.iter().any(|i| i == want),
            "{want} not injected: {injected:?}"
        );
    }
    let serving = of("Certificate")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "kaas-webhooks")
        .context("the serving Certificate")?;
    assert_eq!(serving["spec"]["secretName"], "kaas-webhooks-tls");
    assert_eq!(
        serving["spec"]["dnsNames"][0],
        "kaas-webhooks.kaas-system.svc"
    );
    // Monitoring: the PrometheusRule holds the rule file's groups, each dashboard ConfigMap its
    // file, the monitors name the jobs the rules expect.
    let monitoring = chart_dir().join("../../monitoring");
    let rules: Value = serde_saphyr::from_str(&std::fs::read_to_string(
        monitoring.join("alerts.rules.yaml"),
    )?)?;
    let rule = of("PrometheusRule");
    assert_eq!(rule.len(), 1);
    assert_eq!(
        rule[0]["spec"], rules,
        "the PrometheusRule differs from alerts.rules.yaml"
    );
    let maps = of("ConfigMap");
    assert_eq!(maps.len(), 4);
    for map in maps {
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
        for (file, content) in map["data"].as_object().context("data")? {
            let committed = std::fs::read_to_string(monitoring.join("dashboards").join(file))?;
            assert_eq!(content.as_str(), Some(committed.as_str()), "{file}");
        }
    }
    let jobs: Vec<&Value> = of("ServiceMonitor")
        .iter()
        .map(|m| &m["spec"]["jobLabel"])
        .chain(of("PodMonitor").iter().map(|m| &m["spec"]["jobLabel"]))
        .collect();
    assert_eq!(
        jobs,
        [
            &json!("app.kubernetes.io/name"),
            &json!("app.kubernetes.io/name"),
            &json!("app.kubernetes.io/instance")
        ]
    );
    Ok(())
}
