//! The SCS standards on the whole system (real API servers, kaas-webhooks and the operators as
//! processes, the CAPI stand-in, which also registers the workload clusters' Nodes and plays
//! their kubelets): a Docker cluster on the shipped stack passes every standard, and fails
//! each one while the world is made to violate it: a worker Node loses its zone label
//! (scs-0214), the default StorageClass is deleted until the operator puts it back
//! (scs-0211); an overlay turning kubelet anonymous auth on fails scs-0217 in `kaasctl stack
//! verify --standards` and on its cluster; a cluster pinned to an old patch fails scs-0210
//! naming the version to move to and passes after the upgrade. `kaasctl conformance` writes
//! JUnit XML that an XML parser reads back, and the operator's metrics count the results.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use api::v1beta1::{KaasCluster, StandardResult};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kaas_e2e::system::{Options, System};
use kaas_e2e::wait_for;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "std";
const WAIT: Duration = Duration::from_secs(90);

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Creates KaasCluster `name` (one worker; `control_plane` nodes).
async fn cluster(
    clusters: &Api<KaasCluster>,
    name: &str,
    stack: (&str, &str),
    kubernetes: &str,
    control_plane: i32,
) -> Result<()> {
    kaas_e2e::create_docker_cluster(clusters, name, stack, kubernetes, control_plane, WAIT).await
}

/// Waits until standard `id` of cluster `name` is `result` with a message containing `says`.
async fn standard(
    clusters: &Api<KaasCluster>,
    name: &str,
    id: &str,
    result: &str,
    says: &str,
) -> Result<StandardResult> {
    let found = wait_for(&format!("{name}: {id} {result} ({says})"), WAIT, || async {
        Ok(clusters
            .get(name)
            .await?
            .status
            .unwrap_or_default()
            .standards
            .into_iter()
            .find(|s| s.id == id && s.result == result && s.message.contains(says)))
    })
    .await;
    match found {
        Ok(s) => Ok(s),
        Err(e) => {
            let now = clusters
                .get(name)
                .await?
                .status
                .unwrap_or_default()
                .standards;
            anyhow::bail!("{e}\nstandards now: {now:#?}")
        }
    }
}

/// A standalone Docker release `pinned <version>` offering `kubernetes`, with its calendar.
fn pinned_release(
    root: &Path,
    version: &str,
    kubernetes: &[&str],
    from: &[&str],
) -> Result<std::path::PathBuf> {
    let today = operator_core::conformance::today();
    let released_new = today.checked_sub(jiff::Span::new().days(60))?;
    let end = today.checked_add(jiff::Span::new().days(365))?;
    let dir = root.join(version);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("stack.yaml"),
        format!(
            "provider: docker\nname: pinned\nversion: {version}\nkubernetesVersions: {kubernetes:?}\nupgradeFrom: {from:?}\nkubernetesCalendar:\n  released: {{\"1.35.0\": \"2025-12-17\", \"1.35.2\": \"{released_new}\"}}\n  endOfLife: {{\"1.35\": \"{end}\"}}\naddons: []\n"
        ),
    )?;
    Ok(dir)
}

#[tokio::test]
async fn clusters_prove_the_scs_standards_and_fail_each_when_broken() -> Result<()> {
    let system = System::start(
        &Options {
            workload_clusters: vec!["zones".into(), "insecure".into()],
            // Plain metrics on loopback: the test reads the standards series directly.
            operator_args: vec!["--addon-resync=3".into(), "--metrics-insecure".into()],
            ..Default::default()
        },
        &|_, _| {},
    )
    .await?;
    let client = system.management.client().await?;
    let kubeconfig = system.management.kubeconfig_path().to_path_buf();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    kaas_e2e::docker_class(&client).await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), NS);

    // 1. The shipped Docker stack, three control plane nodes: every standard passes
    //    (scs-0210 only while Kubernetes 1.35 is supported upstream, until 2027-02-28).
    cluster(&clusters, "zones", ("scs", "1.0.0"), "1.35", 3).await?;
    let supported = operator_core::conformance::today() <= "2027-02-28".parse()?;
    for (id, says) in [
        ("scs-0211-v1", "StorageClass \"standard\" is the default"),
        (
            "scs-0214-v2",
            "3 control plane nodes over zones zone-a, zone-b, zone-c",
        ),
        ("scs-0217-v1", "Pod Security enforce=baseline"),
        ("scs-0219-v1", "cilium enforced the probe's NetworkPolicy"),
    ] {
        standard(&clusters, "zones", id, "Pass", says).await?;
    }
    if supported {
        standard(
            &clusters,
            "zones",
            "scs-0210-v2",
            "Pass",
            "1.35.0 is the newest patch of 1.35",
        )
        .await?;
        let ok = wait_for("zones StandardsCompliant", WAIT, || async {
            Ok(clusters.get("zones").await?.status.and_then(|s| {
                s.conditions
                    .into_iter()
                    .find(|c| c.type_ == "StandardsCompliant" && c.status == "True")
            }))
        })
        .await?;
        assert_eq!(ok.reason, "AllPass");
    } else {
        standard(
            &clusters,
            "zones",
            "scs-0210-v2",
            "Fail",
            "reached its end of life",
        )
        .await?;
    }
    // The probe ran in the workload cluster: its policy and both Jobs are there.
    let workload = system.workload("zones").client().await?;
    let policy: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
        Api::namespaced(workload.clone(), "kaas-conformance");
    assert!(policy.get_opt("netpol-server").await?.is_some());
    let jobs: Api<k8s_openapi::api::batch::v1::Job> =
        Api::namespaced(workload.clone(), "kaas-conformance");
    for job in ["netpol-allowed", "netpol-denied"] {
        let job = jobs.get(job).await?;
        assert_eq!(job.spec.and_then(|s| s.backoff_limit), Some(3));
    }

    // `kaasctl conformance` prints the table and writes JUnit XML a parser reads back.
    let junit = tempfile::NamedTempFile::new()?;
    let junit_path = junit.path().display().to_string();
    let (code, out) = kaas_e2e::kaasctl(
        &["conformance", "zones", "-n", NS, "--junit", &junit_path],
        &kubeconfig,
    )?;
    assert!(out.contains("scs-0214-v2  Pass"), "{out}");
    assert_eq!(code, if supported { 0 } else { 2 }, "{out}");
    let xml = std::fs::read_to_string(junit.path())?;
    let doc = roxmltree::Document::parse(&xml).context("the JUnit XML parses")?;
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .context("a testsuite")?;
    assert_eq!(suite.attribute("tests"), Some("5"));
    assert_eq!(
        suite.attribute("failures"),
        Some(if supported { "0" } else { "1" })
    );
    let cases: Vec<&str> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(
        cases,
        [
            "scs-0210-v2",
            "scs-0211-v1",
            "scs-0214-v2",
            "scs-0217-v1",
            "scs-0219-v1"
        ]
    );

    // 2. A worker Node without its zone label fails scs-0214 until it is labelled again.
    let nodes: Api<Node> = Api::all(workload.clone());
    let worker = "zones-md-0-0";
    let zone_label = |value: serde_json::Value| {
        Patch::Merge(json!({"metadata": {"labels": {"topology.kubernetes.io/zone": value}}}))
    };
    nodes
        .patch(worker, &PatchParams::default(), &zone_label(json!(null)))
        .await?;
    let failed = standard(&clusters, "zones", "scs-0214-v2", "Fail", worker).await?;
    assert_eq!(
        failed.message,
        format!("Node {worker} has no topology.kubernetes.io/zone label")
    );
    let condition = clusters
        .get("zones")
        .await?
        .status
        .unwrap_or_default()
        .conditions;
    let condition = condition
        .iter()
        .find(|c| c.type_ == "StandardsCompliant")
        .context("the condition")?;
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "Scs0214Failed")
    );
    nodes
        .patch(
            worker,
            &PatchParams::default(),
            &zone_label(json!("zone-a")),
        )
        .await?;
    standard(
        &clusters,
        "zones",
        "scs-0214-v2",
        "Pass",
        "every node labelled",
    )
    .await?;

    // 3. The default StorageClass deleted: scs-0211 fails for the sync that puts it back. The
    //    failure may last only until the next sync, so every status written is watched.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let watching = {
        let seen = seen.clone();
        let stream = kube::runtime::watcher(
            clusters.clone(),
            kube::runtime::watcher::Config::default().fields("metadata.name=zones"),
        );
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut stream = kube::runtime::WatchStreamExt::applied_objects(stream).boxed();
            while let Some(Ok(c)) = stream.next().await {
                let status = c.status.unwrap_or_default();
                if let Some(s) = status.standards.iter().find(|s| s.id == "scs-0211-v1") {
                    seen.lock()
                        .unwrap()
                        .push((s.result.clone(), s.message.clone()));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    Api::<StorageClass>::all(workload.clone())
        .delete("standard", &DeleteParams::default())
        .await?;
    let saw = |result: &str, says: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .position(|(r, m)| r == result && m.contains(says))
    };
    wait_for("scs-0211 failing, then passing again", WAIT, || async {
        let failed = saw(
            "Fail",
            "\"standard\" was missing from the workload cluster; put back",
        );
        let passed_after = failed.and_then(|f| {
            seen.lock().unwrap()[f..]
                .iter()
                .position(|(r, m)| r == "Pass" && m.contains("\"standard\" is the default"))
        });
        Ok(passed_after.map(|_| ()))
    })
    .await
    .with_context(|| format!("scs-0211 as written: {:?}", seen.lock().unwrap()))?;
    watching.abort();
    assert!(
        Api::<StorageClass>::all(workload.clone())
            .get_opt("standard")
            .await?
            .is_some()
    );

    // 4. An overlay with kubelet anonymous auth on fails scs-0217 before any cluster runs it,
    //    and on the cluster that does.
    let releases = tempfile::tempdir_in(std::env::temp_dir())?;
    let insecure = releases.path().join("insecure");
    std::fs::create_dir_all(insecure.join("addons"))?;
    let file = "addons/local-path-provisioner.yaml";
    std::fs::copy(
        repo_root().join("stacks/docker").join(file),
        insecure.join(file),
    )?;
    let overlay = std::fs::read_to_string(repo_root().join("stacks/docker/stack.yaml"))?
        .replace("\nname: scs\n", "\nname: insecure\n")
        .replace(
            "\nkubeadm:\n",
            "\nkubeadm:\n  kubeletExtraArgs:\n    anonymous-auth: \"true\"\n",
        );
    std::fs::write(insecure.join("stack.yaml"), overlay)?;
    let (code, out) = kaas_e2e::kaasctl(
        &[
            "stack",
            "verify",
            "--standards",
            &insecure.display().to_string(),
        ],
        &kubeconfig,
    )?;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("scs-0217-v1  Fail") && out.contains("kubelet anonymous auth is on"),
        "{out}"
    );
    kaas_e2e::install_local_release(&client, &insecure).await?;
    cluster(&clusters, "insecure", ("insecure", "1.0.0"), "1.35", 3).await?;
    let failed = standard(
        &clusters,
        "insecure",
        "scs-0217-v1",
        "Fail",
        "kubelet anonymous auth is on",
    )
    .await?;
    assert!(failed.message.contains("anonymous-auth=true"), "{failed:?}");

    // 5. A cluster pinned to 1.35.0 while 1.35.2 came out 60 days ago fails scs-0210, naming
    //    the patch and the stack release to move to, which availableUpgrades offers; after the
    //    upgrade it passes.
    let pinned = tempfile::tempdir_in(std::env::temp_dir())?;
    let old = pinned_release(pinned.path(), "1.0.0", &["1.35.0"], &[])?;
    let new = pinned_release(pinned.path(), "1.1.0", &["1.35.0", "1.35.2"], &["1.0.0"])?;
    kaas_e2e::install_local_release(&client, &old).await?;
    kaas_e2e::install_local_release(&client, &new).await?;
    cluster(&clusters, "pinned", ("pinned", "1.0.0"), "1.35.0", 3).await?;
    let failed = standard(
        &clusters,
        "pinned",
        "scs-0210-v2",
        "Fail",
        "move to 1.35.2 (stack version 1.1.0)",
    )
    .await?;
    assert!(
        failed
            .message
            .starts_with("1.35.0 is behind 1.35.2, released"),
        "{failed:?}"
    );
    let offered = clusters
        .get("pinned")
        .await?
        .status
        .unwrap_or_default()
        .available_upgrades;
    assert_eq!(offered, ["1.1.0"]);
    clusters
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusterStack": {"version": "1.1.0"}, "kubernetesVersion": "1.35.2"}})),
        )
        .await?;
    standard(
        &clusters,
        "pinned",
        "scs-0210-v2",
        "Pass",
        "1.35.2 is the newest patch of 1.35",
    )
    .await?;

    // 6. The operator's metrics count clusters per standard and result: scs-0217 passes on
    //    "zones" and fails on "insecure" and on the standalone "pinned" stack (which enforces
    //    no Pod Security).
    let metrics = kaas_testenv::http::get(&system.operators["docker"].metrics, "/metrics")
        .await?
        .body;
    let series = |result: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("kaas_cluster_standards{")
                    && l.contains("standard=\"scs-0217-v1\"")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(
        (series("Pass").as_deref(), series("Fail").as_deref()),
        (Some("1"), Some("2")),
        "{metrics}"
    );
    Ok(())
}
