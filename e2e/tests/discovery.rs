//! Releases come to the management cluster by themselves: the Docker operator, pointed at an
//! OCI repository on a real registry (Debian's docker-registry on loopback), creates a
//! `ClusterStack` pinned by digest for every release tag it finds, pulls it and marks it
//! verified; with `--install-shipped-stacks` it also installs the stacks built into it.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::ClusterStack;
use kaas_e2e::wait_for;
use kaas_stack::source::Fetcher;
use kaas_testenv::TestEnv;
use kube::api::Api;

#[tokio::test]
async fn the_operator_discovers_releases_in_a_registry_and_installs_its_shipped_stacks()
-> Result<()> {
    kaas_testenv::install_crypto_provider();
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    let registry = kaas_testenv::registry::Registry::start().await?;
    let repository = format!("{}/stacks/docker-discovered", registry.addr());

    // Two releases of a stack, built from the shipped Docker stack under another name.
    let fetcher = Fetcher::new(None, vec![registry.addr().into()]);
    let shipped = kaas_stack::builtin::find("docker", "scs", "1.0.0")?.expect("shipped");
    let mut pushed = Vec::new();
    for (version, from) in [("1.0.0", ""), ("1.1.0", "upgradeFrom: [\"1.0.0\"]\n")] {
        // The shipped overlay's own stack.yaml under another name and version; its base
        // travels along under base/.
        let overlay: String = shipped.files["stack.yaml"]
            .lines()
            .map(|l| match l {
                "name: scs" => "name: discovered".to_string(),
                "version: 1.0.0" => format!("version: {version}\n{from}"),
                other => format!("{other}\n"),
            })
            .map(|l| if l.ends_with('\n') { l } else { l + "\n" })
            .collect();
        let mut files: std::collections::BTreeMap<String, Vec<u8>> = shipped
            .files
            .iter()
            .map(|(p, c)| (p.clone(), c.clone().into_bytes()))
            .collect();
        files.insert("stack.yaml".into(), overlay.into_bytes());
        let release = kaas_stack::Release::from_files(files)?;
        let digest = fetcher.push(&repository, &release).await?;
        pushed.push((version, digest, release.digest));
    }

    let cache = tempfile::tempdir()?;
    let operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &[
            format!("--stack-repository={repository}"),
            format!("--plain-http-registry={}", registry.addr()),
            "--stack-discovery-interval=5".into(),
            "--install-shipped-stacks".into(),
        ],
        "discovery-operator",
    )?;
    let stacks: Api<ClusterStack> = Api::all(client.clone());
    for (version, digest, content) in &pushed {
        let name = format!("docker-discovered-{}", version.replace('.', "-"));
        let stack = wait_for(
            &format!("{name} discovered and verified"),
            Duration::from_secs(60),
            || async { Ok(stacks.get_opt(&name).await?.filter(|s| s.is_ready())) },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\noperator log:\n{}", operator.log_tail()))?;
        let oci = stack
            .spec
            .source
            .and_then(|s| s.oci)
            .expect("an OCI source");
        assert_eq!(
            (oci.repository.as_str(), oci.digest.as_str()),
            (repository.as_str(), digest.as_str())
        );
        assert_eq!(
            stack.status.and_then(|s| s.content_digest).as_ref(),
            Some(content)
        );
    }
    let upgrade = stacks.get("docker-discovered-1-1-0").await?;
    assert_eq!(upgrade.spec.upgrade_from, vec!["1.0.0".to_string()]);

    let shipped = wait_for(
        "the shipped stack installed and verified",
        Duration::from_secs(30),
        || async {
            Ok(stacks
                .get_opt("docker-scs-1-0-0")
                .await?
                .filter(|s| s.is_ready()))
        },
    )
    .await?;
    assert!(
        shipped.spec.source.is_none(),
        "shipped releases need no source"
    );
    Ok(())
}
