//! Base + overlay composition and static compliance: the shipped provider stacks are overlays
//! of the one shipped base and comply with it; an overlay that drops or alters a base
//! component is reported by name; a malformed overlay is refused naming file and field.

use std::collections::BTreeMap;

use kaas_stack::{ClusterValues, Release, builtin, compliance, template};

fn shipped(provider: &str) -> Release {
    builtin::find(provider, "scs", "1.0.0")
        .unwrap()
        .expect("shipped")
}

/// An overlay of the shipped base with `stack` (after the identity lines) and `files`.
fn overlay(stack: &str, files: &[(&str, &str)]) -> Result<Release, kaas_stack::Error> {
    let mut all: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, c)| ((*p).to_string(), c.as_bytes().to_vec()))
        .collect();
    let head = "provider: docker\nname: test\nversion: 1.0.0\nbase: {name: scs, version: 1.0.0}\n";
    all.insert("stack.yaml".into(), format!("{head}{stack}").into_bytes());
    Release::from_files(all)
}

const STORAGE: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/csi\n";
const CSI_ADDON: &str = "addons:\n  - {name: csi, version: 1.0.0, manifests: [addons/csi.yaml]}\n";

#[test]
fn the_shipped_provider_stacks_are_compliant_overlays_of_one_base() {
    let base = builtin::base("scs", "1.0.0")
        .unwrap()
        .expect("a shipped base");
    for provider in ["docker", "openstack", "hetzner"] {
        let release = shipped(provider);
        let its_base = release.base.as_deref().expect("an overlay");
        assert_eq!(its_base.digest, base.digest, "{provider}");
        assert_eq!(
            compliance::verify(&release, &base),
            Vec::<String>::new(),
            "{provider}"
        );
        let names: Vec<&str> = release
            .stack
            .addons
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            &names[..2],
            ["cilium", "metrics-server"],
            "{provider}: base first"
        );
        assert_eq!(
            release.stack.kubernetes_versions,
            base.stack.kubernetes_versions
        );
        assert_eq!(
            release.stack.kubeadm.api_server_extra_args["profiling"], "false",
            "{provider}: base kubeadm settings"
        );
    }
}

#[test]
fn overlays_set_variables_add_settings_and_patch_base_manifests() {
    let cilium_config = |release: &Release| {
        let cluster = ClusterValues::sample(&release.stack.provider, "1.34.1");
        let addons = template::render_addons(release, &cluster, &[]).unwrap();
        addons[0]
            .objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "cilium-config")
            .cloned()
            .expect("cilium-config")
    };
    let docker = shipped("docker");
    assert_eq!(cilium_config(&docker)["data"]["mtu"], "1500");
    assert_eq!(
        docker.stack.kubeadm.scheduler_extra_args["bind-address"],
        "0.0.0.0"
    );
    let hetzner = shipped("hetzner");
    let config = cilium_config(&hetzner);
    assert_eq!(config["data"]["mtu"], "1450", "the overlay's MTU default");
    assert_eq!(
        config["data"]["routing-mode"], "native",
        "the overlay's patch"
    );
    assert_eq!(config["data"]["ipv4-native-routing-cidr"], "192.168.0.0/16");
    assert_eq!(
        config["data"]["ipam"], "cluster-pool",
        "the base's own settings stay"
    );
}

#[test]
fn an_overlay_that_drops_a_base_component_is_not_compliant() {
    let base = builtin::base("scs", "1.0.0").unwrap().unwrap();
    let good = overlay(CSI_ADDON, &[("addons/csi.yaml", STORAGE)]).unwrap();
    assert!(compliance::verify(&good, &base).is_empty());

    let dropped = overlay(
        &format!("{CSI_ADDON}disable: [metrics-server]\n"),
        &[("addons/csi.yaml", STORAGE)],
    )
    .expect("loads: a non-compliant release still runs");
    assert_eq!(
        compliance::verify(&dropped, &base),
        ["base add-on \"metrics-server\" is missing: the overlay disables it"]
    );

    let no_storage = overlay("", &[]).unwrap();
    assert_eq!(
        compliance::verify(&no_storage, &base),
        ["StorageClass \"standard\" of the application surface is not provided by any add-on"]
    );
}

#[test]
fn an_overlay_that_swaps_a_base_image_is_altered() {
    let base = builtin::base("scs", "1.0.0").unwrap().unwrap();
    let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: metrics-server, namespace: kube-system}\nspec:\n  template:\n    spec:\n      containers:\n        - name: metrics-server\n          image: example.com/fork:1\n";
    let swapped = overlay(
        &format!("{CSI_ADDON}patches:\n  - {{addon: metrics-server, file: patches/ms.yaml}}\n"),
        &[("addons/csi.yaml", STORAGE), ("patches/ms.yaml", patch)],
    )
    .unwrap();
    let findings = compliance::verify(&swapped, &base);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].starts_with(
            "base add-on \"metrics-server\": Deployment kube-system/metrics-server is altered: runs example.com/fork:1"
        ),
        "{findings:?}"
    );
}

#[test]
fn a_malformed_overlay_is_refused_naming_file_and_field() {
    let err = overlay(
        "kubernetesVersions: [\"1.36.0\"]\naddons:\n  - {name: cilium, version: 9.9.9, manifests: [addons/x.yaml]}\ndisable: [nginx]\npatches:\n  - {addon: cilium, file: patches/none.yaml}\n",
        &[("addons/x.yaml", STORAGE)],
    )
    .unwrap_err()
    .to_string();
    for expected in [
        "stack.yaml: kubernetesVersions[0]: 1.36.0 is not supported by base scs 1.0.0",
        "stack.yaml: addons[0].name: \"cilium\" is an add-on of the base; an overlay changes it with patches",
        "stack.yaml: disable[0]: \"nginx\" is not an add-on of base scs 1.0.0",
        "stack.yaml: patches[0].file: file \"patches/none.yaml\" is not in the release",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }

    let err = overlay("nodeImageBuild: {packer: images/none.pkr.hcl}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stack.yaml: nodeImageBuild.packer: file \"images/none.pkr.hcl\" is not in the release")
            && err.contains("stack.yaml: nodeImageBuild: names a Packer template, but nodeImages lists no image for it to build"),
        "{err}"
    );

    let miss = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nope, namespace: kube-system}\ndata: {a: b}\n";
    let err = overlay(
        "patches:\n  - {addon: cilium, file: patches/miss.yaml}\n",
        &[("patches/miss.yaml", miss)],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("patches/miss.yaml: document 1: patches no object of add-on cilium: it has no ConfigMap kube-system/nope"),
        "{err}"
    );

    let err = Release::from_files(BTreeMap::from([(
        "stack.yaml".to_string(),
        b"provider: docker\nname: t\nversion: 1.0.0\nbase: {name: scs, version: 9.0.0}\n".to_vec(),
    )]))
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "stack.yaml: base: no base scs 9.0.0 is shipped and the release carries none under base/"
    );
}

#[test]
fn a_built_overlay_carries_its_base_and_loads_alone() {
    let release = shipped("hetzner");
    let files = kaas_stack::archive::unpack(&release.to_tarball(), "hetzner").unwrap();
    assert!(files.contains_key("base/stack.yaml"));
    let again = Release::from_files(files).unwrap();
    assert_eq!(again.digest, release.digest);
    assert_eq!(again.stack, release.stack);
}
