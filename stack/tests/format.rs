//! The stack format: the shipped stacks load and render; a bad release is refused with every
//! problem named by file and field; per-cluster overrides are checked against the add-on's
//! schema; a release packs into the same tarball every time.

use std::collections::BTreeMap;

use api::v1beta1::AddonOverride;
use kaas_stack::{ClusterValues, Error, Release, builtin, template::ADDON_LABEL};
use serde_json::json;

const STACK: &str = r#"
provider: docker
name: scs
version: 1.0.0
kubernetesVersions: ["1.33.4", "1.34.1"]
variables:
  mtu: {type: integer, default: 1500, minimum: 1280, maximum: 9000}
addons:
  - name: cni
    version: 1.0.0
    stage: preUpgrade
    manifests: [addons/cni.yaml]
  - name: app
    version: 2.0.0
    dependsOn: [cni]
    optional: true
    manifests: [addons/app.yaml]
    values:
      replicas: {type: integer, default: 1, minimum: 1, maximum: 3}
"#;

const CNI: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cni, namespace: kube-system}\ndata:\n  mtu: \"{{ vars.mtu }}\"\n  pods: \"{{ cluster.podCIDR }}\"\n";
const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: default}\nspec:\n  replicas: {{ values.replicas }}\n";

fn files(extra: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = [
        ("stack.yaml", STACK),
        ("addons/cni.yaml", CNI),
        ("addons/app.yaml", APP),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
    .collect();
    for (p, c) in extra {
        if c.is_empty() {
            files.remove(*p);
        } else {
            files.insert(p.to_string(), c.as_bytes().to_vec());
        }
    }
    files
}

fn problems(err: Error) -> String {
    match err {
        Error::Invalid(p) => p.iter().map(|p| format!("{p}\n")).collect(),
        other => panic!("expected an invalid release, got {other}"),
    }
}

#[test]
fn every_shipped_stack_loads_and_renders_on_each_of_its_versions() {
    let releases = builtin::releases().expect("shipped stacks check");
    let providers: Vec<&str> = releases.iter().map(|r| r.stack.provider.as_str()).collect();
    for p in ["docker", "hetzner", "openstack"] {
        assert!(
            providers.contains(&p),
            "a stack for {p} is shipped: {providers:?}"
        );
    }
    for release in &releases {
        assert!(
            release.stack.kubernetes_versions.len() >= 2,
            "{} serves several minors",
            release.id()
        );
        for version in &release.stack.kubernetes_versions {
            let cluster = ClusterValues::sample(&release.stack.provider, version);
            let addons =
                kaas_stack::template::render_addons(release, &cluster, &[]).expect("renders");
            assert!(
                addons.iter().any(|a| a.name == "cilium"),
                "{} has a CNI",
                release.id()
            );
            assert!(addons.iter().all(|a| !a.objects.is_empty()));
        }
    }
    let openstack = builtin::find("openstack", "scs", "1.0.0")
        .unwrap()
        .expect("shipped");
    let names: Vec<&str> = openstack
        .stack
        .addons
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert!(
        names.contains(&"openstack-cloud-controller-manager") && names.contains(&"cinder-csi"),
        "{names:?}"
    );
}

#[test]
fn a_release_renders_with_cluster_values_and_labels_every_object() {
    let release = Release::from_files(files(&[])).expect("valid");
    let mut cluster = ClusterValues::sample("docker", "1.34.1");
    cluster.mtu = Some(1400);
    let addons = kaas_stack::template::render_addons(&release, &cluster, &[]).expect("renders");
    assert_eq!(addons.len(), 2);
    let cni = &addons[0].objects[0];
    assert_eq!(
        cni["data"]["mtu"], "1400",
        "the cluster's MTU overrides the stack default"
    );
    assert_eq!(cni["data"]["pods"], "192.168.0.0/16");
    assert_eq!(cni["metadata"]["labels"][ADDON_LABEL], "cni");
    assert_eq!(
        addons[1].objects[0]["spec"]["replicas"], 1,
        "the value's default"
    );
}

#[test]
fn overrides_are_checked_against_the_addon_schema() {
    let release = Release::from_files(files(&[])).expect("valid");
    let cluster = ClusterValues::sample("docker", "1.34.1");
    let set = |name: &str, enabled: Option<bool>, values: serde_json::Value| AddonOverride {
        name: name.into(),
        enabled,
        values: Some(values),
    };
    let addons = kaas_stack::template::render_addons(
        &release,
        &cluster,
        &[set("app", None, json!({"replicas": 3}))],
    )
    .expect("a valid override");
    assert_eq!(addons[1].objects[0]["spec"]["replicas"], 3);
    let off = kaas_stack::template::render_addons(
        &release,
        &cluster,
        &[set("app", Some(false), json!({}))],
    )
    .expect("an optional add-on can be turned off");
    assert_eq!(off.len(), 1);

    let err = kaas_stack::template::render_addons(
        &release,
        &cluster,
        &[
            set("app", None, json!({"replicas": 9, "colour": "red"})),
            set("cni", Some(false), json!({})),
            set("nope", None, json!({})),
        ],
    )
    .expect_err("bad overrides");
    let text = problems(err);
    for needle in [
        "spec.addons[0].values.replicas: add-on app: 9 is above the maximum 3",
        "spec.addons[0].values.colour: add-on app: unknown value (known: replicas)",
        "spec.addons[1].enabled: add-on \"cni\" is mandatory",
        "spec.addons[2].name: stack docker/scs 1.0.0 has no add-on \"nope\"",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
}

#[test]
fn a_bad_release_is_refused_with_every_problem_named_by_file_and_field() {
    let stack = STACK
        .replace("version: 1.0.0\nkubernetes", "version: one\nkubernetes")
        .replace("default: 1500", "default: \"wide\"")
        .replace("dependsOn: [cni]", "dependsOn: [missing]")
        .replace("[addons/app.yaml]", "[addons/app.yaml, addons/gone.yaml]");
    let text = problems(Release::from_files(files(&[("stack.yaml", &stack)])).expect_err("bad"));
    for needle in [
        "stack.yaml: version:",
        "stack.yaml: variables.mtu.default: \"wide\" is not of type integer",
        "stack.yaml: addons[1].dependsOn[0]: \"missing\" must be an add-on listed before \"app\"",
        "stack.yaml: addons[1].manifests[1]: file \"addons/gone.yaml\" is not in the release",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }

    let unknown_var = CNI.replace("vars.mtu", "vars.mut");
    let text = problems(
        Release::from_files(files(&[("addons/cni.yaml", &unknown_var)]))
            .expect_err("unknown variable"),
    );
    assert!(text.starts_with("addons/cni.yaml: line 5:"), "{text}");
    assert!(text.contains("undefined"), "{text}");

    let syntax = CNI.replace("{{ vars.mtu }}", "{{ vars.mtu");
    let text =
        problems(Release::from_files(files(&[("addons/cni.yaml", &syntax)])).expect_err("syntax"));
    assert!(text.starts_with("addons/cni.yaml: line 5:"), "{text}");

    let not_object = "just: text\n";
    let text = problems(
        Release::from_files(files(&[("addons/app.yaml", not_object)])).expect_err("shape"),
    );
    assert!(
        text.contains("addons/app.yaml: document 1: must be a Kubernetes object"),
        "{text}"
    );

    let text = problems(Release::from_files(files(&[("stack.yaml", "")])).expect_err("no stack"));
    assert!(text.contains("stack.yaml: missing"), "{text}");
    let text = problems(
        Release::from_files(files(&[("stack.yaml", &format!("{STACK}\ncolour: red\n"))]))
            .expect_err("unknown field"),
    );
    assert!(
        text.starts_with("stack.yaml:") && text.contains("colour"),
        "{text}"
    );
}

#[test]
fn a_release_packs_reproducibly_and_unpacks_to_the_same_release() {
    let release = Release::from_files(files(&[])).expect("valid");
    let tarball = release.to_tarball();
    assert_eq!(tarball, release.to_tarball(), "same bytes every time");
    let back =
        Release::from_files(kaas_stack::archive::unpack(&tarball, "t.tar.gz").unwrap()).unwrap();
    assert_eq!(back, release);
    let changed =
        Release::from_files(files(&[("addons/app.yaml", &APP.replace("app", "app2"))])).unwrap();
    assert_ne!(
        changed.digest, release.digest,
        "the digest covers the content"
    );
}
