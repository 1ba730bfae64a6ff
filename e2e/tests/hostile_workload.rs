//! A tenant's own workload cluster turned against the operator: its API server answers the
//! list of Nodes with a million Nodes in pages, with a GiB of Nodes in one reply, or with a
//! list that trickles and never ends (a TLS front of a real kube-apiserver, standing in for
//! the tenant's endpoint). The operator serving every tenant must stay under its memory
//! bound, say in each cluster's `StandardsCompliant` condition which read it refused and why,
//! and keep converging a calm cluster meanwhile.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use k8s_openapi::api::core::v1::Namespace;
use kaas_e2e::system::{Options, System};
use kaas_e2e::wait_for;
use kaas_testenv::hostile::Nodes;
use kube::api::{Api, PostParams};
use serde_json::json;

const NS: &str = "tenants";
const WAIT: Duration = Duration::from_secs(120);

/// The StandardsCompliant condition's message of `name` once it contains `says`.
async fn refusal(clusters: &Api<KaasCluster>, name: &str, says: &str) -> Result<String> {
    let found = wait_for(&format!("{name}: {says}"), WAIT, || async {
        Ok(clusters.get(name).await?.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| {
                    c.type_ == "StandardsCompliant"
                        && c.status == "False"
                        && c.message.contains(says)
                })
                .map(|c| c.message)
        }))
    })
    .await;
    match found {
        Ok(m) => Ok(m),
        Err(e) => {
            let status = clusters.get(name).await?.status.unwrap_or_default();
            anyhow::bail!("{e}\nconditions now: {:#?}", status.conditions)
        }
    }
}

#[tokio::test]
async fn a_hostile_workload_api_server_is_read_within_bounds() -> Result<()> {
    let system = System::start(
        &Options {
            hostile: vec![
                ("many".into(), Nodes::Many),
                ("large".into(), Nodes::Large),
                ("endless".into(), Nodes::Endless),
            ],
            operator_args: vec!["--addon-resync=3".into()],
            ..Default::default()
        },
        &|_, _| {},
    )
    .await?;
    let client = system.management.client().await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    kaas_e2e::docker_class(&client).await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), NS);
    // Three control plane nodes: no standard fails on the spec alone, so the condition
    // names the first standard the refused read left unknown.
    for (name, control_plane) in [("many", 3), ("large", 3), ("endless", 3), ("calm", 1)] {
        kaas_e2e::create_docker_cluster(
            &clusters,
            name,
            ("scs", "1.0.0"),
            "1.35",
            control_plane,
            WAIT,
        )
        .await?;
    }

    // Each refusal names the resource and the bound it passed.
    let many = refusal(&clusters, "many", "Nodes").await?;
    assert!(
        many.contains("listing the workload cluster's Nodes: it has more than 5000"),
        "{many}"
    );
    let large = refusal(&clusters, "large", "Nodes").await?;
    assert!(
        large.contains("listing the workload cluster's Nodes")
            && large.contains("reply is larger than 4 MiB"),
        "{large}"
    );
    let endless = refusal(&clusters, "endless", "Nodes").await?;
    assert!(
        endless.contains("listing the workload cluster's Nodes")
            && endless.contains("did not answer in full within 20 s"),
        "{endless}"
    );

    // The calm cluster converged meanwhile.
    wait_for("calm Ready", WAIT, || async {
        Ok(clusters.get("calm").await?.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")
        }))
    })
    .await?;

    // A few more resyncs of every hostile cluster, then the operator's peak memory.
    tokio::time::sleep(Duration::from_secs(25)).await;
    for (name, front) in &system.fronts {
        println!(
            "{name}: the front sent {} MiB of Node lists",
            front.node_bytes_sent() >> 20
        );
    }
    let operator = &system.operators["docker"].process;
    let peak_kb = kaas_e2e::peak_rss_kib(operator.id())?;
    println!("operator peak RSS {} MiB", peak_kb >> 10);
    // The pod's 384 MiB hold the operator (96) and two render workers of 128 MiB.
    assert!(
        peak_kb < 96 * 1024,
        "the operator peaked at {} MiB",
        peak_kb >> 10
    );
    Ok(())
}
