//! The newcomer's demo works: `kaas-demo --exit-when-ready` provisions a management and three
//! workload API servers, runs the webhook server, the three operators and the CAPI stand-in,
//! installs the three operators through `KaasOperator`s (shown Ready), applies `examples/`,
//! and every example cluster (Docker, OpenStack, Hetzner) reaches Ready with its stack's
//! add-ons healthy in its own workload API server.

use anyhow::Result;

#[test]
fn the_demo_brings_every_example_cluster_to_ready() -> Result<()> {
    let out = std::process::Command::new(kaas_e2e::binary("kaas-demo")?)
        .arg("--exit-when-ready")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kaas-demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("All 3 clusters are Ready"), "{stdout}");
    assert!(
        stdout.contains("CAPI stand-in"),
        "the stand-in is said plainly: {stdout}"
    );
    assert!(stdout.contains("kaas-webhooks: https://"), "{stdout}");
    // The operators installed through KaasOperators, Ready, and what plays their pods said.
    assert!(stdout.contains("play the Deployments' pods"), "{stdout}");
    for provider in ["docker", "openstack", "hetzner"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("KaasOperator {provider} "))
                    && l.contains(&format!("installed {}", api::install::bundles::CURRENT))
                    && l.contains("Ready")),
            "{provider} not installed and Ready: {stdout}"
        );
    }
    let last_table: Vec<&str> = stdout
        .rsplit("NAME   CLASS")
        .next()
        .unwrap_or_default()
        .lines()
        .collect();
    for (name, addons) in [("dev", "3/3"), ("shop", "4/4"), ("web", "4/4")] {
        let row = last_table
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in the final table: {stdout}"));
        assert!(row.contains("Ready") && row.contains(addons), "{row}");
    }
    Ok(())
}
