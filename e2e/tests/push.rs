//! `kaasctl stack push` to a real registry (Debian's docker-registry on loopback), then the
//! Docker operator pulls that release by the digest kaasctl printed and verifies it.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::ClusterStack;
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn a_release_pushed_by_kaasctl_is_pulled_by_the_operator_by_digest() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    let registry = kaas_testenv::registry::Registry::start().await?;
    let repository = format!("{}/stacks/docker-pushed", registry.addr());

    // A release folder: the shipped Docker overlay renamed, built on the shipped base.
    let dir = tempfile::tempdir()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/docker");
    let stack = std::fs::read_to_string(root.join("stack.yaml"))?
        .replace("\nname: scs\n", "\nname: pushed\n");
    std::fs::write(dir.path().join("stack.yaml"), stack)?;
    std::fs::create_dir_all(dir.path().join("addons"))?;
    std::fs::copy(
        root.join("addons/local-path-provisioner.yaml"),
        dir.path().join("addons/local-path-provisioner.yaml"),
    )?;
    let release = kaas_stack::Release::load_dir(dir.path())?;

    let out = std::process::Command::new(kaas_e2e::binary("kaasctl")?)
        .args(["stack", "push", "--plain-http"])
        .arg(dir.path())
        .arg(&repository)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "kaasctl stack push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = stdout
        .lines()
        .find_map(|l| {
            l.split_once(&format!("{repository}@"))
                .map(|(_, d)| d.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest in {stdout}"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert!(
        stdout.contains(&format!("content digest: {}", release.digest)),
        "{stdout}"
    );

    let cache = tempfile::tempdir()?;
    let operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &[format!("--plain-http-registry={}", registry.addr())],
        "push-operator",
    )?;
    let object: ClusterStack = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-pushed-1-0-0"},
        "spec": {"provider": "docker", "name": "pushed", "version": "1.0.0",
                 "kubernetesVersions": release.stack.kubernetes_versions,
                 "source": {"oci": {"repository": repository, "digest": digest}}}}))?;
    let stacks: Api<ClusterStack> = Api::all(client.clone());
    stacks
        .patch(
            "docker-pushed-1-0-0",
            &PatchParams::apply("e2e"),
            &Patch::Apply(&object),
        )
        .await?;
    let ready = wait_for(
        "the pushed release pulled and verified",
        Duration::from_secs(60),
        || async {
            Ok(stacks.get("docker-pushed-1-0-0").await?.status.filter(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            }))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\noperator log:\n{}", operator.log_tail()))?;
    assert_eq!(
        ready.content_digest.as_deref(),
        Some(release.digest.as_str())
    );
    Ok(())
}
