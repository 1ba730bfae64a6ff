//! `kaasctl` as a user runs it, offline: stack verify over the shipped stacks and over an
//! overlay that drops a base component, stack build, and render with its one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kaasctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaasctl"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("kaasctl runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn every_shipped_provider_stack_verifies_against_the_base() {
    for provider in ["docker", "openstack", "hetzner"] {
        let out = kaasctl(&["stack", "verify", &format!("stacks/{provider}")]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{provider}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!(
                "{provider}/scs 1.0.0 is compliant with base base/scs 1.0.0"
            )),
            "{stdout}"
        );
    }
}

#[test]
fn an_overlay_that_drops_a_base_component_fails_verify_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("stacks/openstack");
    for entry in [
        "stack.yaml",
        "addons/openstack-cloud-controller-manager.yaml",
        "addons/cinder-csi.yaml",
    ] {
        let to = dir.path().join(entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(entry), to).unwrap();
    }
    let stack = dir.path().join("stack.yaml");
    let mut yaml = std::fs::read_to_string(&stack).unwrap();
    yaml.push_str("disable: [metrics-server]\n");
    std::fs::write(&stack, yaml).unwrap();

    let out = kaasctl(&["stack", "verify", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("openstack/scs 1.0.0 is NOT compliant with base base/scs 1.0.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- base add-on \"metrics-server\" is missing: the overlay disables it"),
        "{stdout}"
    );
}

#[test]
fn verify_warns_about_oidc_flags_in_a_stack_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("stacks/docker");
    for entry in ["stack.yaml", "addons/local-path-provisioner.yaml"] {
        let to = dir.path().join(entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(entry), to).unwrap();
    }
    let stack = dir.path().join("stack.yaml");
    let yaml = std::fs::read_to_string(&stack).unwrap().replace(
        "kubeadm:\n",
        "kubeadm:\n  apiServerExtraArgs:\n    oidc-issuer-url: https://idp.example\n",
    );
    std::fs::write(&stack, yaml).unwrap();

    let out = kaasctl(&["stack", "verify", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: docker/scs 1.0.0: kubeadm.apiServerExtraArgs.oidc-issuer-url: a cluster's spec.oidc replaces"),
        "{stderr}"
    );
    // The shipped stack has no such flag: no warning.
    let shipped = kaasctl(&["stack", "verify", "stacks/docker"]);
    assert!(
        !text(&shipped).1.contains("warning"),
        "{}",
        text(&shipped).1
    );
}

#[test]
fn stack_build_writes_a_reproducible_tarball_with_its_pins() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar.gz");
    let b = dir.path().join("b.tar.gz");
    let first = kaasctl(&["stack", "build", "stacks/docker", "-o", a.to_str().unwrap()]);
    let second = kaasctl(&["stack", "build", "stacks/docker", "-o", b.to_str().unwrap()]);
    assert!(first.status.success() && second.status.success());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (stdout, _) = text(&first);
    let release = kaas_stack::builtin::find("docker", "scs", "1.0.0")
        .unwrap()
        .unwrap();
    assert!(
        stdout.contains(&format!("content digest: {}", release.digest)),
        "{stdout}"
    );
    assert!(
        stdout.contains("base:           base/scs 1.0.0"),
        "{stdout}"
    );
}

#[test]
fn render_prints_the_objects_and_addons_and_bad_input_is_one_line() {
    let out = kaasctl(&["render", "-f", "examples/docker/", "-n", "team-a"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with(
        "# KaasCluster team-a/dev: provider docker, stack scs 1.0.0, Kubernetes 1.35.0\n"
    ));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout).unwrap();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "DevCluster",
        "KubeadmControlPlane",
        "MachineDeployment",
        "Cluster",
        "DaemonSet",
        "StorageClass",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let capi: Vec<_> = docs
        .iter()
        .filter(|d| d["metadata"]["labels"]["kaas.scs.community/cluster"] == "dev")
        .collect();
    assert!(capi.len() >= 7, "{capi:?}");
    assert!(capi.iter().all(|d| d["metadata"]["namespace"] == "team-a"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: kaas.scs.community/v1beta1\nkind: KaasCluster\nmetadata: {name: bad}\nspec:\n  providerClassName: docker\n  clusterStack: {name: scs, version: 1.0.0}\n  controlPlane: {replicas: 2}\n  workers: [{name: md-0, replicas: 1, machineType: x}]\n",
    )
    .unwrap();
    let out = kaasctl(&["render", "-f", bad.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("spec.controlPlane.replicas"), "{stderr}");
}

#[test]
fn a_v1alpha1_cluster_renders_like_its_v1beta1_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.yaml");
    std::fs::write(
        &file,
        "apiVersion: kaas.scs.community/v1alpha1\nkind: KaasCluster\nmetadata: {name: old, namespace: legacy}\nspec:\n  providerClass: docker\n  clusterStackName: scs\n  clusterStackVersion: 1.0.0\n  kubernetesVersion: \"1.34\"\n  controlPlaneReplicas: 1\n  machineDeployments: [{name: md-0, replicas: 1, machineType: x}]\n",
    )
    .unwrap();
    let out = kaasctl(&["render", "-f", file.to_str().unwrap(), "--no-addons"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("# KaasCluster legacy/old: provider docker"),
        "{stdout}"
    );
    assert!(stdout.contains("kind: KubeadmControlPlane"));
    assert!(!stdout.contains("kaas.scs.community/addon"));
}

#[test]
fn stack_build_says_how_to_build_the_node_images_of_a_packer_stack() {
    let dir = tempfile::tempdir().unwrap();
    let out = kaasctl(&[
        "stack",
        "build",
        "stacks/hetzner",
        "-o",
        dir.path().join("h.tar.gz").to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for version in ["1.33.4", "1.34.1", "1.35.0"] {
        assert!(
            stdout.contains(&format!(
                "packer build -var kubernetes_version={version} -var image_name=ubuntu-2404-kube-v{version} stacks/hetzner/images/hcloud.pkr.hcl"
            )),
            "{stdout}"
        );
    }
}

#[test]
fn install_prints_the_kaas_operator_or_names_what_is_wrong() {
    let out = kaasctl(&[
        "install",
        "openstack",
        "--dry-run",
        "--class",
        "openstack",
        "--default-class",
        "openstack",
        "--cluster-api",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let op: api::install::v1alpha1::KaasOperator = serde_saphyr::from_str(&stdout).unwrap();
    assert_eq!(op.metadata.name.as_deref(), Some("openstack"));
    assert_eq!(op.spec.version, api::install::bundles::CURRENT);
    assert!(op.spec.install_cluster_api);
    assert!(op.spec.provider_classes[0].default);

    let out = kaasctl(&["install", "docker", "--version", "0.0.7", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("spec.version") && stderr.contains("0.1.0"),
        "{stderr}"
    );
}

/// What bash completes for the words `words` (the last one being completed) with the script
/// `kaasctl completion bash` prints.
fn bash_completes(script: &str, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let probe = format!(
        "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n_kaasctl kaasctl '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
        line = words.join(" "),
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_and_subcommands_and_each_shell_gets_its_script() {
    let out = kaasctl(&["completion", "bash"]);
    let (script, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(bash_completes(&script, &["kaasctl", "qu"]), ["quota"]);
    let rollout = bash_completes(&script, &["kaasctl", "rollout", ""]);
    for sub in ["status", "pause", "resume"] {
        assert!(rollout.iter().any(|w| w == sub), "{sub} in {rollout:?}");
    }
    assert!(
        bash_completes(&script, &["kaasctl", "completion", ""])
            .iter()
            .any(|w| w == "fish"),
        "the shells themselves"
    );
    for (shell, marker) in [("zsh", "#compdef kaasctl"), ("fish", "complete -c kaasctl")] {
        let out = kaasctl(&["completion", shell]);
        let (script, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {stderr}");
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["render", "quota", "rollout", "completion"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let out = kaasctl(&["completion", "tcsh"]);
    let (_, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("possible values: bash, zsh, fish"),
        "{stderr}"
    );
}
