//! The manifests users install, rendered with kustomize and applied with a server-side dry
//! run to the real API server: they are accepted, RBAC has no wildcard and reads Secrets only by name (get),
//! and every container runs under the restricted pod security profile.

use anyhow::{Context, Result};
use kaas_testenv::TestEnv;
use serde_json::Value;

fn dry_run(env: &TestEnv, dir: &str) -> Result<Vec<Value>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let out = env
        .kubectl()
        .args(["apply", "--dry-run=server", "-o", "json", "-k"])
        .arg(&root)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl apply --dry-run=server -k {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).context("kubectl output")?;
    Ok(match json["kind"].as_str() {
        Some("List") => json["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![json],
    })
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
    assert_eq!(crds.len(), 3);
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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["deploy/namespace", "deploy/operators/docker"] {
        let out = env
            .kubectl()
            .args(["apply", "-k"])
            .arg(root.join(dir))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kubeconfig = env.kubeconfig_as("system:serviceaccount:kaas-system:docker-kaas-operator")?;
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
    Ok(())
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
            "deploy/operators/docker/kustomization.yaml",
        ),
        (
            "kaas-operator-openstack",
            "deploy/operators/openstack/kustomization.yaml",
        ),
        (
            "kaas-operator-hetzner",
            "deploy/operators/hetzner/kustomization.yaml",
        ),
        ("kaas-webhooks", "deploy/webhooks/deployment.yaml"),
        ("kaasctl", ""),
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
