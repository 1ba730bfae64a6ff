//! What an operator installed from a `KaasOperator` runs and trusts, decided by the installer
//! (as its deployed service account, on the real API server):
//!
//! - `spec.image.repository` outside the installer's `--allowed-image-repository` is refused
//!   by the preflight, naming the field, and nothing is installed; a repository under it is
//!   installed;
//! - `spec.stackSigningKeys` (keys of a ConfigMap) are mounted into the operator's Deployment
//!   and given as `--stack-signing-key`: the operator, started with exactly the rendered
//!   arguments (the mounted file where the kubelet would put it), refuses an unsigned release
//!   from the real registry (`SignatureMissing`) and takes it once signed with that key.

use std::time::Duration;

use anyhow::{Context, Result};
use api::install::v1alpha1::KaasOperator;
use api::v1beta1::ClusterStack;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kaas_e2e::{Process, free_port, wait_for};
use kaas_testenv::TestEnv;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const MIRROR: &str = "registry.example.com/mirror";

fn condition(op: &KaasOperator, type_: &str) -> Option<(String, String, String)> {
    op.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn the_installer_decides_the_operators_image_and_its_stack_signing_keys() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    let _installer =
        kaas_e2e::start_installer_with(env, &[format!("--allowed-image-repository={MIRROR}")])?;
    let operators: Api<KaasOperator> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kaas-system");

    // An image from elsewhere: refused by the preflight, nothing installed.
    let op: KaasOperator = serde_json::from_value(json!({
        "apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": "docker"},
        "spec": {"provider": "docker", "version": api::install::bundles::CURRENT,
                 "image": {"repository": "evil.example.com/kaas-operator-docker"}},
    }))?;
    operators.create(&PostParams::default(), &op).await?;
    let (_, reason, message) = wait_for("the preflight refusal", WAIT, || async {
        Ok(
            condition(&operators.get("docker").await?, "PreflightPassed")
                .filter(|c| c.0 == "False"),
        )
    })
    .await?;
    assert_eq!(reason, "PreflightFailed");
    assert!(
        message.contains(
            "spec.image.repository \"evil.example.com/kaas-operator-docker\" is not allowed"
        ) && message.contains(MIRROR),
        "{message}"
    );
    assert!(
        deployments.get_opt("docker-kaas-operator").await?.is_none(),
        "nothing is installed from a refused image"
    );

    // A key releases must be signed with, in a ConfigMap; the image from the allowed mirror.
    let keys = tempfile::tempdir()?;
    let pem = kaas_stack::signature::SigningKey::generate_pem().map_err(anyhow::Error::msg)?;
    let key = kaas_stack::signature::SigningKey::from_pem(&pem).map_err(anyhow::Error::msg)?;
    let config_map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "stack-keys", "namespace": "kaas-system"},
        "data": {"release.pub": key.public().to_pem()},
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), "kaas-system")
        .create(&PostParams::default(), &config_map)
        .await?;
    operators
        .patch(
            "docker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "image": {"repository": format!("{MIRROR}/kaas-operator-docker")},
                "stackSigningKeys": [{"name": "stack-keys", "key": "release.pub"}],
            }})),
        )
        .await?;
    let deployment = wait_for("the operator's Deployment", WAIT, || async {
        Ok(deployments.get_opt("docker-kaas-operator").await?)
    })
    .await?;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .context("pod spec")?;
    let container = &pod.containers[0];
    assert!(
        container
            .image
            .as_deref()
            .is_some_and(|i| i.starts_with(&format!("{MIRROR}/kaas-operator-docker:"))),
        "{:?}",
        container.image
    );
    let args = container.args.clone().unwrap_or_default();
    let flag = "--stack-signing-key=/etc/kaas/stack-signing-keys/0/key.pem";
    assert!(args.iter().any(|a| a == flag), "{args:?}");
    let volume = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "stack-signing-key-0")
        .context("the key's volume")?;
    let source = volume.config_map.context("a ConfigMap volume")?;
    assert_eq!(source.name, "stack-keys");
    let item = &source.items.unwrap_or_default()[0];
    assert_eq!(
        (item.key.as_str(), item.path.as_str()),
        ("release.pub", "key.pem")
    );
    assert!(
        container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "stack-signing-key-0"
                && m.mount_path == "/etc/kaas/stack-signing-keys/0"
                && m.read_only == Some(true)),
        "{:?}",
        container.volume_mounts
    );

    // The operator as that pod would run it: the rendered arguments, the ConfigMap's key
    // where the kubelet mounts it (a folder of the test), free ports, the test registry.
    let mounted = keys.path().join("0");
    std::fs::create_dir_all(&mounted)?;
    std::fs::write(mounted.join("key.pem"), key.public().to_pem())?;
    let cache = tempfile::tempdir()?;
    let registry = kaas_testenv::registry::Registry::start().await?;
    let mut run: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace(
                "/etc/kaas/stack-signing-keys",
                &keys.path().display().to_string(),
            )
            .replace(
                "/var/cache/kaas-stacks",
                &cache.path().display().to_string(),
            )
        })
        .filter(|a| {
            !a.starts_with("--metrics-bind-address")
                && !a.starts_with("--health-probe-bind-address")
        })
        .collect();
    run.extend([
        format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
        format!("--health-probe-bind-address=127.0.0.1:{}", free_port()?),
        format!("--plain-http-registry={}", registry.addr()),
        "--leader-election-namespace=kaas-system".into(),
    ]);
    let operator = Process::start_with_env(
        env,
        "kaas-operator-docker",
        &run,
        &[
            ("POD_NAME", "docker-kaas-operator-0"),
            ("POD_NAMESPACE", "kaas-system"),
        ],
        "supply-chain-operator",
    )?;

    // An unsigned release in the registry, named by an administrator's ClusterStack.
    let fetcher = kaas_stack::source::Fetcher::new(None, vec![registry.addr().to_string()]);
    let repository = format!("{}/stacks/docker-scs", registry.addr());
    let dir = tempfile::tempdir()?;
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/docker");
    std::fs::create_dir_all(dir.path().join("addons"))?;
    for entry in std::fs::read_dir(shipped.join("addons"))? {
        let entry = entry?;
        std::fs::copy(
            entry.path(),
            dir.path().join("addons").join(entry.file_name()),
        )?;
    }
    std::fs::write(
        dir.path().join("stack.yaml"),
        std::fs::read_to_string(shipped.join("stack.yaml"))?
            .replace("\nversion: 1.0.0\n", "\nversion: 1.0.7\n"),
    )?;
    let release = kaas_stack::Release::load_dir(dir.path())?;
    anyhow::ensure!(
        release.stack.version == "1.0.7",
        "the shipped overlay changed shape"
    );
    let digest = fetcher.push(&repository, &release).await?;
    let stacks: Api<ClusterStack> = Api::all(client.clone());
    let stack: ClusterStack = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-scs-1-0-7"},
        "spec": {"provider": "docker", "name": "scs", "version": "1.0.7",
                 "kubernetesVersions": release.stack.kubernetes_versions,
                 "source": {"oci": {"repository": repository, "digest": digest}}},
    }))?;
    stacks.create(&PostParams::default(), &stack).await?;
    let ready = |stack: Option<ClusterStack>| {
        stack.and_then(|s| s.status).and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| (c.status, c.reason, c.message))
        })
    };
    let refused = wait_for("the unsigned release refused", WAIT, || async {
        Ok(ready(stacks.get_opt("docker-scs-1-0-7").await?).filter(|c| c.0 == "False"))
    })
    .await
    .with_context(|| operator.log_tail())?;
    assert_eq!(refused.1, "SignatureMissing", "{refused:?}");
    assert!(
        refused.2.contains("the release is not signed"),
        "{refused:?}"
    );

    // Signed with the key of the ConfigMap, it is taken (the operator retries every 30 s).
    fetcher.sign(&repository, &digest, &key).await?;
    let taken = wait_for(
        "the signed release taken",
        Duration::from_secs(90),
        || async { Ok(ready(stacks.get_opt("docker-scs-1-0-7").await?).filter(|c| c.0 == "True")) },
    )
    .await
    .with_context(|| operator.log_tail())?;
    assert_eq!(taken.0, "True");
    Ok(())
}
