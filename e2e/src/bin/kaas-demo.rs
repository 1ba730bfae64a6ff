//! `kaas-demo`: the whole system on one machine for a newcomer, started by
//! [`kaas_e2e::system::System`] exactly as the system test starts it: a management API server
//! and one workload API server per example cluster (real kube-apiserver + etcd, provisioned on
//! first use), `kaas-webhooks` guarding the API, the three provider operators as processes, and
//! the CAPI stand-in (Cluster API's own controllers cannot run here: it reports machines ready
//! and hands out the workload API servers); `kaas-installer` with one `KaasOperator` per
//! provider, shown Ready; applies `examples/` and shows the clusters moving to Ready in a live
//! table.
//!
//! `--exit-when-ready` ends once every cluster is Ready (for tests); otherwise it keeps running
//! until Ctrl-C so the clusters can be explored with kubectl.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use api::install::v1alpha1::{KaasOperator, KaasOperatorSpec};
use api::v1beta1::KaasCluster;
use kaas_e2e::system::{Options, System};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

/// `(provider, example cluster)` of every registered provider.
fn examples() -> impl Iterator<Item = (&'static str, &'static str)> {
    kaas_providers::ALL
        .iter()
        .map(|p| (p.name, p.example_cluster))
}
const NAMESPACE: &str = "demo";

fn step(n: u32, text: &str) {
    println!("\n[{n}/6] {text}");
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("binary folder")?.join(name);
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` (make demo does)",
            path.display()
        );
    }
    Ok(path)
}

fn table(clusters: &[KaasCluster]) -> String {
    let mut out = format!(
        "{:<6} {:<10} {:<13} {:<11} {:<8} {:<7} {}\n",
        "NAME", "CLASS", "PHASE", "KUBERNETES", "STACK", "ADDONS", "FIRST NOT-READY CONDITION"
    );
    for c in clusters {
        let s = c.status.clone().unwrap_or_default();
        let ready = s.addons.iter().filter(|a| a.ready).count();
        let waiting = s
            .conditions
            .iter()
            .find(|c| c.status != "True" && c.type_ != "Ready" && c.type_ != "Upgrading")
            .map(|c| format!("{}: {}", c.type_, c.message))
            .unwrap_or_default();
        let mut waiting: String = waiting.chars().take(70).collect();
        if waiting.is_empty() {
            waiting = "-".into();
        }
        out.push_str(&format!(
            "{:<6} {:<10} {:<13} {:<11} {:<8} {:<7} {}\n",
            c.name_any(),
            c.spec.provider_class_name.as_deref().unwrap_or("-"),
            s.phase.as_deref().unwrap_or("-"),
            s.kubernetes_version.as_deref().unwrap_or("-"),
            s.cluster_stack_version.as_deref().unwrap_or("-"),
            format!("{ready}/{}", s.addons.len()),
            waiting,
        ));
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let exit_when_ready = std::env::args().any(|a| a == "--exit-when-ready");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let _ = sibling("kaas-webhooks")?;

    let options = Options {
        workload_clusters: examples().map(|(_, c)| c.to_string()).collect(),
        prometheus: false,
        operator_args: vec!["--addon-resync=5".into()],
        ..Default::default()
    };
    let system = System::start(&options, &|n, text| step(n, text)).await?;
    let management = &system.management;
    let client = management.client().await?;
    println!("      management cluster: {}", management.url());
    for (name, env) in &system.workloads {
        if !name.is_empty() {
            println!("      workload cluster for {name}: {}", env.url());
        }
    }
    println!(
        "      kaas-webhooks: https://{} (defaulting, validation, conversion)",
        system.webhooks.0
    );
    for (provider, o) in &system.operators {
        println!(
            "      kaas-operator-{provider}: log {}",
            o.process.log.display()
        );
    }
    println!(
        "      the Hetzner Cloud API cannot be reached here: a stand-in at {} serves the shipped stacks' snapshots",
        system.hcloud.endpoint
    );

    step(
        5,
        "kaas-installer: one KaasOperator per provider (as `kaasctl install <provider>` writes it), the installer running as its deployed service account",
    );
    println!(
        "      pods cannot run here: the operator processes of step 3 play the Deployments' pods, and the stand-in reports each Deployment available"
    );
    let installer = kaas_e2e::start_installer(management)?;
    let operators: Api<KaasOperator> = Api::all(client.clone());
    for (provider, _) in examples() {
        let op = KaasOperator::new(
            provider,
            KaasOperatorSpec {
                provider: provider.into(),
                version: api::install::bundles::CURRENT.into(),
                ..Default::default()
            },
        );
        operators.create(&Default::default(), &op).await?;
    }
    let installed = kaas_e2e::wait_for(
        "every KaasOperator Ready",
        Duration::from_secs(60),
        || async {
            let list = operators.list(&ListParams::default()).await?.items;
            let ready = list.len() == kaas_providers::ALL.len()
                && list.iter().all(|o| {
                    o.status
                        .as_ref()
                        .and_then(|s| s.condition("Ready"))
                        .is_some_and(|c| c.status == "True")
                });
            Ok(ready.then_some(list))
        },
    )
    .await
    .with_context(|| format!("kaas-installer log: {}", installer.log.display()))?;
    for o in &installed {
        let status = o.status.clone().unwrap_or_default();
        println!(
            "      KaasOperator {:<10} provider {:<10} installed {:<6} Ready ({})",
            o.name_any(),
            o.spec.provider,
            status.installed_version.as_deref().unwrap_or("-"),
            status
                .condition("Available")
                .map(|c| c.message.as_str())
                .unwrap_or_default()
        );
    }

    step(
        6,
        &format!("Examples: kubectl apply -n {NAMESPACE} -f examples/<provider>/"),
    );
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&Default::default(), &serde_json::from_value(ns)?)
        .await?;
    // Wait for the shipped stacks the operators install, so defaulting finds them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (provider, _) in examples() {
        let out = management
            .kubectl()
            .args(["apply", "-n", NAMESPACE, "-f"])
            .arg(root.join("examples").join(provider))
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!("kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    println!();
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), NAMESPACE);
    let start = Instant::now();
    let mut lines = 0;
    loop {
        let list = clusters.list(&ListParams::default()).await?.items;
        let text = table(&list);
        if lines > 0 {
            print!("\x1b[{lines}A\x1b[J");
        }
        print!("{text}");
        std::io::stdout().flush()?;
        lines = text.lines().count();
        let all_ready = list.len() == kaas_providers::ALL.len()
            && list.iter().all(|c| {
                c.status.as_ref().and_then(|s| s.current_phase())
                    == Some(api::v1beta1::ClusterPhase::Ready)
            });
        if all_ready {
            println!(
                "\nAll {} clusters are Ready after {:.0} s.",
                list.len(),
                start.elapsed().as_secs_f64()
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!(
                "not every cluster became Ready within 5 minutes; operator logs are in {}",
                management.dir().display()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if exit_when_ready {
        return Ok(());
    }
    println!("\nExplore (this keeps running until Ctrl-C):");
    println!(
        "  export KUBECONFIG={}",
        management.kubeconfig_path().display()
    );
    println!(
        "  {} get kaasclusters,clusterstacks,providerclasses -A",
        management.kubectl().get_program().to_string_lossy()
    );
    println!(
        "  ... get clusters.cluster.x-k8s.io,kubeadmcontrolplanes,machinedeployments -n {NAMESPACE}"
    );
    println!("  ... get kaascluster dev -n {NAMESPACE} -o yaml   # conditions, add-ons, versions");
    println!("  ... get kaasoperators   # the installed operators (docs/installing.md)");
    if let Ok(kaasctl) = sibling("kaasctl") {
        println!(
            "  {} status   # the installed operators; phase, versions, first failing condition of every cluster",
            kaasctl.display()
        );
        println!(
            "  {} render -f examples/openstack/   # what a cluster becomes, offline",
            kaasctl.display()
        );
    }
    for (name, env) in system.workloads.iter().filter(|(n, _)| !n.is_empty()) {
        println!(
            "  {name}'s workload cluster: --kubeconfig {} get daemonsets,deployments -A",
            env.kubeconfig_path().display()
        );
    }
    println!(
        "  Try: kubectl patch kaascluster dev -n {NAMESPACE} --type merge -p '{{\"spec\":{{\"workers\":[{{\"name\":\"md-0\",\"replicas\":3,\"machineType\":\"default\"}}]}}}}'"
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    Ok(())
}
