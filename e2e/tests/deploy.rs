//! The manifests users install, rendered with kustomize and applied with a server-side dry
//! run to the real API server: they are accepted, RBAC has no wildcard and reads Secrets only by name (get),
//! every container runs under the restricted pod security profile, the operators take no
//! ingress but metrics and keep a replica through drains, and the webhook takes ingress on its
//! HTTPS and metrics ports only, with its serving certificate signed by a CA of its own.

use anyhow::{Context, Result};
use kaas_testenv::TestEnv;
use serde_json::Value;

/// The objects of kustomize folder `dir`, applied with a server-side dry run (or for real), as
/// the API server returned them.
fn apply(env: &TestEnv, dir: &str, dry_run: bool) -> Result<Vec<Value>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let rendered = env.kubectl().arg("kustomize").arg(&root).output()?;
    anyhow::ensure!(
        rendered.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&rendered.stdout))?;
    let items: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let out = kaas_e2e::kubectl_apply(env, &list, dry_run)?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl apply (dry run: {dry_run}) of {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).context("kubectl output")?;
    Ok(match json["kind"].as_str() {
        Some("List") => json["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![json],
    })
}

fn dry_run(env: &TestEnv, dir: &str) -> Result<Vec<Value>> {
    apply(env, dir, true)
}

/// Ingress to the pods of the Deployment in `objects` only on `ports`, and (for operators)
/// a disruption budget keeping one replica.
fn check_network(dir: &str, objects: &[Value], ports: &[i64], budget: bool) {
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector["matchLabels"]
            .as_object()
            .is_some_and(|m| m.iter().all(|(k, v)| &pod_labels[k] == v))
    };
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy")
        .unwrap_or_else(|| panic!("{dir}: no NetworkPolicy"));
    assert!(selects(&policy["spec"]["podSelector"]), "{dir}: {policy}");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    let mut allowed: Vec<i64> = policy["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    allowed.sort();
    assert_eq!(allowed, ports, "{dir}: ingress ports");
    if budget {
        let pdb = objects
            .iter()
            .find(|o| o["kind"] == "PodDisruptionBudget")
            .unwrap_or_else(|| panic!("{dir}: no PodDisruptionBudget"));
        assert_eq!(pdb["apiVersion"], "policy/v1");
        assert_eq!(pdb["spec"]["minAvailable"], 1, "{dir}: {pdb}");
        assert!(selects(&pdb["spec"]["selector"]), "{dir}: {pdb}");
    }
}

fn check_rbac(dir: &str, objects: &[Value]) {
    for obj in objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("ClusterRole" | "Role")))
    {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        for rule in obj["rules"].as_array().into_iter().flatten() {
            for field in ["verbs", "resources", "apiGroups"] {
                for v in rule[field].as_array().into_iter().flatten() {
                    assert_ne!(v, "*", "{dir}: {name} has a wildcard in {field}: {rule}");
                }
            }
            // Granting RBAC (the installer): bind and escalate only on named roles.
            let verbs = rule["verbs"].as_array().cloned().unwrap_or_default();
            for v in ["bind", "escalate", "impersonate"] {
                if verbs.contains(&v.into()) {
                    assert!(
                        rule["resourceNames"]
                            .as_array()
                            .is_some_and(|n| !n.is_empty() && !n.contains(&"cluster-admin".into())),
                        "{dir}: {name} may {v} without naming the roles: {rule}"
                    );
                }
            }
            // Secrets: `get` by name at most (kubeconfigs, credentials), never list or watch.
            let resources = rule["resources"].as_array().cloned().unwrap_or_default();
            if resources.contains(&"secrets".into()) {
                assert_eq!(
                    rule["verbs"],
                    serde_json::json!(["get"]),
                    "{dir}: {name} may only get Secrets: {rule}"
                );
            }
        }
    }
}

fn check_pods(dir: &str, objects: &[Value]) {
    for obj in objects.iter().filter(|o| o["kind"] == "Deployment") {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let pod = &obj["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"], true,
            "{dir}: {name}"
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{dir}: {name}"
        );
        for c in pod["containers"].as_array().into_iter().flatten() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{dir}: {name}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{dir}: {name}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{dir}: {name}"
            );
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{dir}: {name} has no memory limit"
            );
            assert!(
                c["resources"]["requests"]["cpu"].is_string(),
                "{dir}: {name} has no cpu request"
            );
            assert!(
                c["readinessProbe"].is_object() && c["livenessProbe"].is_object(),
                "{dir}: {name} lacks probes"
            );
        }
    }
}

#[tokio::test]
async fn operator_manifests_are_accepted_least_privilege_and_restricted() -> Result<()> {
    let env = TestEnv::shared().await?;
    // The namespace for real: a dry run of namespaced objects needs it to exist.
    let out = env
        .kubectl()
        .args(["apply", "-k"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/namespace"))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crds = dry_run(env, "deploy/crds")?;
    assert_eq!(crds.len(), 6);
    // Tenants read their TenantPolicies and write none.
    let tenancy = dry_run(env, "deploy/tenancy")?;
    check_rbac("deploy/tenancy", &tenancy);
    for rule in tenancy
        .iter()
        .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
    {
        assert_eq!(
            rule["verbs"],
            serde_json::json!(["get", "list", "watch"]),
            "deploy/tenancy: {rule}"
        );
    }
    // The installer: least privilege though it writes RBAC.
    let installer = dry_run(env, "deploy/installer")?;
    check_rbac("deploy/installer", &installer);
    check_pods("deploy/installer", &installer);
    check_network("deploy/installer", &installer, &[8080], true);
    for provider in ["docker", "openstack", "hetzner"] {
        let dir = format!("deploy/operators/{provider}");
        let objects = dry_run(env, &dir)?;
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
        ] {
            assert!(kinds.contains(&kind), "{dir}: no {kind} in {kinds:?}");
        }
        check_rbac(&dir, &objects);
        check_pods(&dir, &objects);
        // No ingress but metrics; a drain keeps one replica.
        check_network(&dir, &objects, &[8080], true);
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        assert!(
            image.contains(&format!("kaas-operator-{provider}")),
            "{image}"
        );
    }
    Ok(())
}

#[test]
fn a_wildcard_is_caught() {
    let role = serde_json::json!([{"kind": "ClusterRole", "metadata": {"name": "bad"},
        "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]}]);
    let result = std::panic::catch_unwind(|| check_rbac("test", role.as_array().expect("array")));
    assert!(result.is_err(), "a wildcard resource must fail the check");
}

#[test]
fn an_unnamed_escalate_is_caught() {
    let role = serde_json::json!([{"kind": "ClusterRole", "metadata": {"name": "bad"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                   "verbs": ["create", "escalate"]}]}]);
    let result = std::panic::catch_unwind(|| check_rbac("test", role.as_array().expect("array")));
    assert!(
        result.is_err(),
        "escalate without resourceNames must fail the check"
    );
}

/// The docker operator acting as its own service account, with nothing but the RBAC of
/// `deploy/operators/docker`, still does its whole job: least privilege is also enough.
#[tokio::test]
async fn the_operator_works_with_only_its_deployed_rbac() -> Result<()> {
    use api::v1beta1::KaasCluster;
    use kube::api::{Api, PostParams};
    use std::time::Duration;

    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    apply(env, "deploy/namespace", false)?;
    let deployed = apply(env, "deploy/operators/docker", false)?;
    let kubeconfig = env.kubeconfig_as(OPERATOR_USER)?;
    let args = kaas_e2e::operator_args(&[
        "--leader-elect".to_string(),
        "--leader-election-namespace=kaas-system".to_string(),
    ])?;
    let kubeconfig = kubeconfig.to_string_lossy().to_string();
    let operator = kaas_e2e::Process::start_with_env(
        env,
        "kaas-operator-docker",
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("POD_NAME", "rbac-test"),
        ],
        "rbac-operator",
    )?;
    let ns = env.namespace(&client, "rbac").await?;
    let cluster: KaasCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "least"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e", "version": "1.0.0"},
                 "controlPlane": {"replicas": 1}, "workers": [{"name": "md-0", "replicas": 1, "machineType": "x"}]}}))?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    clusters.create(&PostParams::default(), &cluster).await?;
    let served = kaas_e2e::wait_for(
        "the cluster served under least privilege",
        Duration::from_secs(60),
        || async {
            Ok(clusters
                .get("least")
                .await?
                .status
                .filter(|s| s.phase.as_deref() == Some("Provisioning")))
        },
    )
    .await;
    if let Err(e) = served {
        anyhow::bail!("{e:#}\noperator log:\n{}", operator.log_tail());
    }
    // And it can delete what it made.
    clusters.delete("least", &Default::default()).await?;
    kaas_e2e::wait_for("the cluster deleted", Duration::from_secs(60), || async {
        Ok(clusters.get_opt("least").await?.is_none().then_some(()))
    })
    .await?;
    let forbidden = std::fs::read_to_string(&operator.log)?
        .lines()
        .filter(|l| l.contains("forbidden"))
        .count();
    assert_eq!(
        forbidden,
        0,
        "the operator hit RBAC denials:\n{}",
        operator.log_tail()
    );

    // Every permission deployed is one the operator used, and the reverse (the API server's
    // audit log of this run), but for those this run cannot reach, each named with why.
    let used = used_by(&env.audit_log(), OPERATOR_USER)?;
    let granted = granted(&deployed);
    let denied: Vec<_> = used.iter().filter(|u| !granted.contains(*u)).collect();
    assert!(denied.is_empty(), "used but not granted: {denied:?}");
    // A server-side apply that creates an object is authorized as create too, though
    // audited as patch.
    let implied: std::collections::BTreeSet<String> = used
        .iter()
        .filter_map(|u| u.strip_suffix(" patch"))
        .filter(|r| !r.contains('/'))
        .map(|r| format!("{r} create"))
        .collect();
    let unused: Vec<_> = granted
        .iter()
        .filter(|g| {
            !used.contains(*g)
                && !implied.contains(*g)
                && !NOT_REACHED_HERE.iter().any(|(n, _)| *n == g.as_str())
        })
        .collect();
    assert!(
        unused.is_empty(),
        "granted in deploy/ but never used by the operator: {unused:?}\nused: {used:?}"
    );
    Ok(())
}

const OPERATOR_USER: &str = "system:serviceaccount:kaas-system:docker-kaas-operator";

/// Permissions of deploy/operators/docker this test's run does not reach, and what uses them.
const NOT_REACHED_HERE: &[(&str, &str)] = &[
    (
        "kaas.scs.community stackrollouts/status patch",
        "a StackRollout's status: e2e/tests/rollout.rs",
    ),
    (
        " secrets get",
        "a workload cluster's kubeconfig (add-ons: e2e/tests/trust.rs) and a class's credentials",
    ),
    (
        "authentication.k8s.io tokenreviews create",
        "secure metrics (this run serves them plainly on loopback): e2e/tests/prometheus.rs",
    ),
    (
        "authorization.k8s.io subjectaccessreviews create",
        "secure metrics: e2e/tests/prometheus.rs",
    ),
    (
        "events.k8s.io events create",
        "Events on phase changes past Provisioning",
    ),
    ("events.k8s.io events patch", "a repeated Event"),
    (
        "kaas.scs.community clusterstacks create",
        "--install-shipped-stacks and discovery",
    ),
    (
        "kaas.scs.community clusterstacks get",
        "--install-shipped-stacks and discovery",
    ),
];

/// `group resource verb` of every request `user` made, from the audit log at `path`.
fn used_by(path: &std::path::Path, user: &str) -> Result<std::collections::BTreeSet<String>> {
    let mut used = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let event: Value = serde_json::from_str(line)?;
        if event["user"]["username"] != user {
            continue;
        }
        let object = &event["objectRef"];
        let Some(resource) = object["resource"].as_str() else {
            continue;
        };
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        used.insert(format!(
            "{} {resource} {}",
            object["apiGroup"].as_str().unwrap_or(""),
            event["verb"].as_str().unwrap_or_default()
        ));
    }
    Ok(used)
}

/// `group resource verb` of every rule of the roles in `objects`.
fn granted(objects: &[Value]) -> std::collections::BTreeSet<String> {
    let mut granted = std::collections::BTreeSet::new();
    for role in objects
        .iter()
        .filter(|o| matches!(o["kind"].as_str(), Some("ClusterRole" | "Role")))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let list = |f: &str| -> Vec<String> {
                rule[f]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        granted.insert(format!("{group} {resource} {verb}"));
                    }
                }
            }
        }
    }
    granted
}

/// Every binary the manifests deploy has a container build file that builds exactly that
/// binary, statically, onto a minimal non-root base, and the manifests name its image.
#[test]
fn every_deployed_binary_has_a_static_minimal_container_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    for (bin, manifest) in [
        (
            "kaas-operator-docker",
            "deploy/operators/docker/operator.yaml",
        ),
        (
            "kaas-operator-openstack",
            "deploy/operators/openstack/operator.yaml",
        ),
        (
            "kaas-operator-hetzner",
            "deploy/operators/hetzner/operator.yaml",
        ),
        ("kaas-webhooks", "deploy/webhooks/deployment.yaml"),
        ("kaas-installer", "deploy/installer/deployment.yaml"),
        ("kaasctl", ""),
        ("kaas-etcd-backup", ""),
    ] {
        let file = read(&format!("deploy/images/{bin}.Containerfile"));
        for needle in [
            format!("--bin {bin} "),
            "crt-static".to_string(),
            "FROM gcr.io/distroless/static".to_string(),
            "USER 65532".to_string(),
            format!("ENTRYPOINT [\"/{bin}\"]"),
        ] {
            assert!(
                file.contains(&needle),
                "deploy/images/{bin}.Containerfile lacks {needle:?}"
            );
        }
        assert!(
            manifest.is_empty() || read(manifest).contains(&format!("ghcr.io/scs-kaas/{bin}")),
            "{manifest} deploys the image of {bin}"
        );
    }
}

#[tokio::test]
async fn the_webhook_takes_only_its_ports_trusts_a_stable_ca_and_never_blocks_a_cluster_delete()
-> Result<()> {
    let env = TestEnv::shared().await?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/webhooks");
    let rendered = env.kubectl().arg("kustomize").arg(&root).output()?;
    anyhow::ensure!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let objects: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&rendered.stdout))?;
    check_network("deploy/webhooks", &objects, &[8080, 9443], true);

    // The serving certificate is signed by a CA issuer whose CA is a self-signed CA
    // certificate: renewing the serving certificate keeps the CA the API server trusts.
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let serving = find("Certificate", "kaas-webhooks");
    let issuer = find(
        "Issuer",
        serving["spec"]["issuerRef"]["name"]
            .as_str()
            .unwrap_or_default(),
    );
    let ca_secret = issuer["spec"]["ca"]["secretName"]
        .as_str()
        .expect("the serving certificate's issuer is a CA issuer");
    let ca = objects
        .iter()
        .find(|o| o["kind"] == "Certificate" && o["spec"]["secretName"] == ca_secret)
        .expect("a Certificate makes the CA");
    assert_eq!(ca["spec"]["isCA"], true);
    let root_issuer = find(
        "Issuer",
        ca["spec"]["issuerRef"]["name"].as_str().unwrap_or_default(),
    );
    assert!(root_issuer["spec"]["selfSigned"].is_object());

    // Registrations: the CA comes from the serving certificate's secret (its ca.crt); a
    // KaasCluster DELETE is not sent to the webhook, a class or stack DELETE is.
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = objects.iter().find(|o| o["kind"] == kind).expect(kind);
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "kaas-system/kaas-webhooks"
        );
        for rule in config["webhooks"][0]["rules"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let deletes = rule["operations"]
                .as_array()
                .is_some_and(|o| o.contains(&"DELETE".into()));
            let clusters = rule["resources"]
                .as_array()
                .is_some_and(|r| r.contains(&"kaasclusters".into()));
            assert!(!(deletes && clusters), "{kind}: {rule}");
        }
    }
    let validating = objects
        .iter()
        .find(|o| o["kind"] == "ValidatingWebhookConfiguration")
        .expect("validating");
    assert!(
        validating["webhooks"][0]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["operations"] == serde_json::json!(["DELETE"])
                && r["resources"] == serde_json::json!(["providerclasses", "clusterstacks"])),
        "{validating}"
    );
    Ok(())
}
