//! What the operators render for a workload cluster's nodes, read by the programs that read it
//! there, for the three examples and for clusters that set every day-2 field:
//!
//! - kube-apiserver (the pinned release) starts with the rendered `AuthenticationConfiguration`,
//!   `AdmissionConfiguration` and the rendered API server flags that apply to a loopback server;
//!   a token of a configured issuer (a local issuer serving discovery and keys over TLS) is
//!   accepted with the mapped user and groups, one for another audience is not, and the Pod
//!   Security defaults are enforced;
//! - kubeadm (of the cluster's minor: it reads no other) validates the `InitConfiguration`,
//!   `ClusterConfiguration` and `JoinConfiguration` Cluster API's kubeadm bootstrap provider
//!   would write from the rendered `KubeadmControlPlane` and `KubeadmConfigTemplate`s (the
//!   mapping is below, a stand-in for that provider, which cannot run here);
//! - containerd's own code reads every `hosts.toml` (strictly: a key it does not read fails)
//!   and tries the cluster's mirrors, in order and with their CA, before the registry.
//!
//! A node's `/` is a temporary folder: the files go there, and the paths in flags and files
//! that point into them are moved along.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kaas_testenv::TestEnv;
use kaas_testenv::issuer::Issuer;
use serde_json::{Value, json};

/// Rendered API server flags the test's loopback server does not take, and why. Every other
/// rendered flag is passed on.
const LEFT_OUT: &[(&str, &str)] = &[
    ("etcd-servers", "the test server's own etcd"),
    (
        "secure-port",
        "the test server listens on a free loopback port",
    ),
    ("bind-address", "the test server listens on loopback"),
    ("advertise-address", "the test server advertises loopback"),
    (
        "tls-cert-file",
        "kubeadm's serving certificate exists on nodes only",
    ),
    (
        "tls-private-key-file",
        "kubeadm's serving key exists on nodes only",
    ),
    ("client-ca-file", "kubeadm's CA exists on nodes only"),
    ("cloud-provider", "no cloud here"),
];

/// The node paths the rendered files are written to and flags point into.
const NODE_DIRS: &[&str] = &["/etc/kubernetes/kaas/", "/etc/containerd/certs.d/"];

fn on_node(root: &Path, text: &str) -> String {
    NODE_DIRS.iter().fold(text.to_string(), |t, dir| {
        t.replace(dir, &format!("{}{dir}", root.display()))
    })
}

/// `kaasctl render -f dir`: every object the operator would write, as JSON.
fn render(dir: &Path) -> Result<Vec<Value>> {
    render_with(dir, &[])
}

/// `kaasctl render -f dir --stack S...` (releases besides the shipped ones).
fn render_with(dir: &Path, stacks: &[&Path]) -> Result<Vec<Value>> {
    let mut cmd = std::process::Command::new(kaas_e2e::binary("kaasctl")?);
    cmd.arg("render").arg("-f").arg(dir);
    for stack in stacks {
        cmd.arg("--stack").arg(stack);
    }
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "kaasctl render -f {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// A node: its `/`, with the rendered files of its kubeadm configuration written under it.
struct Node {
    name: String,
    root: tempfile::TempDir,
}

impl Node {
    fn with_files(name: &str, files: &Value) -> Result<Node> {
        let root = tempfile::tempdir()?;
        for file in files.as_array().into_iter().flatten() {
            let path = file["path"].as_str().context("a file without a path")?;
            let target = root.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().context("a file at /")?)?;
            let content = file["content"].as_str().unwrap_or_default();
            std::fs::write(&target, on_node(root.path(), content))?;
        }
        Ok(Node {
            name: name.into(),
            root,
        })
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }
}

/// Cluster API's kubeadm bootstrap provider, as far as these tests need it (a stand-in: its
/// controllers cannot run here). It writes kubeadm's `v1beta4` documents from a
/// `KubeadmConfigSpec` of `bootstrap.cluster.x-k8s.io/v1beta2`, whose `clusterConfiguration`,
/// `initConfiguration` and `joinConfiguration` keep kubeadm's field names, adding what it knows
/// from the `Cluster` (name, networks, endpoint) and a bootstrap token. A field of the rendered
/// spec it does not map fails the test, so the mapping cannot silently fall behind.
mod kubeadm_bootstrap_stand_in {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const ENDPOINT: &str = "cluster-endpoint.example.com:6443";
    const CLUSTER_KEYS: &[&str] = &["apiServer", "controllerManager", "scheduler"];
    const COMPONENT_KEYS: &[&str] = &["extraArgs", "extraVolumes"];
    const REGISTRATION_KEYS: &[&str] = &["kubeletExtraArgs", "taints"];
    const SPEC_KEYS: &[&str] = &[
        "clusterConfiguration",
        "initConfiguration",
        "joinConfiguration",
        "files",
        "preKubeadmCommands",
        "postKubeadmCommands",
    ];

    fn only(value: &Value, keys: &[&str], what: &str) -> Result<()> {
        for key in value.as_object().into_iter().flatten().map(|(k, _)| k) {
            ensure!(
                keys.contains(&key.as_str()),
                "{what}.{key}: not mapped by the kubeadm bootstrap stand-in"
            );
        }
        Ok(())
    }

    fn registration(spec: &Value, part: &str) -> Result<Value> {
        let registration = &spec[part]["nodeRegistration"];
        only(
            registration,
            REGISTRATION_KEYS,
            &format!("{part}.nodeRegistration"),
        )?;
        Ok(if registration.is_null() {
            json!({})
        } else {
            registration.clone()
        })
    }

    /// The control plane's first node: `InitConfiguration` and `ClusterConfiguration`.
    pub fn init(kcp: &Value, cluster: &Value) -> Result<String> {
        let spec = &kcp["spec"]["kubeadmConfigSpec"];
        only(spec, SPEC_KEYS, "kubeadmConfigSpec")?;
        let rendered = &spec["clusterConfiguration"];
        only(rendered, CLUSTER_KEYS, "clusterConfiguration")?;
        let mut configuration = json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "ClusterConfiguration",
            "clusterName": cluster["metadata"]["name"],
            "kubernetesVersion": kcp["spec"]["version"],
            "controlPlaneEndpoint": ENDPOINT,
            "networking": {
                "podSubnet": cidrs(&cluster["spec"]["clusterNetwork"]["pods"]),
                "serviceSubnet": cidrs(&cluster["spec"]["clusterNetwork"]["services"]),
            },
        });
        for key in CLUSTER_KEYS {
            if !rendered[key].is_null() {
                only(
                    &rendered[key],
                    COMPONENT_KEYS,
                    &format!("clusterConfiguration.{key}"),
                )?;
                configuration[key] = rendered[key].clone();
            }
        }
        let init = json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "InitConfiguration",
            "bootstrapTokens": [{"token": TOKEN}],
            "nodeRegistration": registration(spec, "initConfiguration")?,
        });
        Ok(format!("{init}\n---\n{configuration}\n"))
    }

    /// A node joining: the control plane's other nodes (`control_plane`) or a pool's.
    pub fn join(spec: &Value, control_plane: bool) -> Result<String> {
        only(spec, SPEC_KEYS, "kubeadmConfigSpec")?;
        let mut join = json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "JoinConfiguration",
            "discovery": {"bootstrapToken": {
                "apiServerEndpoint": ENDPOINT, "token": TOKEN, "unsafeSkipCAVerification": true,
            }},
            "nodeRegistration": registration(spec, "joinConfiguration")?,
        });
        if control_plane {
            join["controlPlane"] = json!({});
        }
        Ok(format!("{join}\n"))
    }

    fn cidrs(network: &Value) -> String {
        network["cidrBlocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// kubeadm of the cluster's minor validates `config`.
fn kubeadm_validates(version: &str, config: &str, what: &str) -> Result<()> {
    let minor = version
        .trim_start_matches('v')
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let kubeadm = kaas_testenv::program(&format!("kubeadm-{minor}"))
        .with_context(|| format!("kubeadm for Kubernetes {minor} (the cluster runs {version})"))?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), config)?;
    let out = std::process::Command::new(kubeadm)
        .args(["config", "validate", "--config"])
        .arg(file.path())
        .output()?;
    ensure!(
        out.status.success(),
        "kubeadm {minor} refuses the {what}: {}{}\n{config}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// What containerd tries for each registry with a `hosts.toml` on `node`, by containerd's
/// own code: `{registry: [{url, capabilities, ca}]}`.
fn containerd_hosts(node: &Node) -> Result<Value> {
    let certs = node.path("/etc/containerd/certs.d");
    let registries: Vec<String> = std::fs::read_dir(&certs)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if registries.is_empty() {
        return Ok(json!({}));
    }
    // `_default` applies to every registry without a folder of its own: ask for one.
    let asked: Vec<String> = registries
        .iter()
        .map(|r| {
            if r == "_default" {
                "unlisted.example.com".to_string()
            } else {
                r.clone()
            }
        })
        .collect();
    let out = std::process::Command::new(kaas_testenv::program("containerd-hosts")?)
        .arg(&certs)
        .args(&asked)
        .output()?;
    ensure!(
        out.status.success(),
        "{}: containerd does not read the hosts files: {}",
        node.name,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The hosts containerd must try for `registry` with `mirrors` (`(endpoint, with CA)`):
/// the mirrors in order for pulls, then the registry itself.
fn expected_hosts(registry: &str, mirrors: &[(String, bool)]) -> Value {
    let mut hosts: Vec<Value> = mirrors
        .iter()
        .map(|(url, ca)| {
            let url = url.trim_end_matches('/');
            let url = if url.ends_with("/v2") {
                url.to_string()
            } else {
                format!("{url}/v2")
            };
            json!({"url": url, "capabilities": ["pull", "resolve"], "ca": ca})
        })
        .collect();
    let upstream = match registry {
        "docker.io" => "registry-1.docker.io",
        r => r,
    };
    hosts.push(json!({"url": format!("https://{upstream}/v2"), "capabilities": ["pull", "resolve", "push"], "ca": false}));
    Value::Array(hosts)
}

/// A token check: the claims, the user and groups the API server must map them to.
struct TokenCheck {
    claims: Value,
    username: String,
    groups: Vec<String>,
}

/// Everything a case checks, for the objects `kaasctl render` made of it.
async fn check(case: &str, objects: &[Value], issuer: Option<(&Issuer, TokenCheck)>) -> Result<()> {
    let kcp = *of_kind(objects, "KubeadmControlPlane")
        .first()
        .with_context(|| format!("{case}: no KubeadmControlPlane rendered"))?;
    let cluster = *of_kind(objects, "Cluster")
        .first()
        .with_context(|| format!("{case}: no Cluster rendered"))?;
    let version = kcp["spec"]["version"].as_str().unwrap_or_default();
    let spec = &kcp["spec"]["kubeadmConfigSpec"];
    let control_plane = Node::with_files(&format!("{case} control plane"), &spec["files"])?;

    // kube-apiserver with the rendered flags and files.
    let mut args = Vec::new();
    for arg in spec["clusterConfiguration"]["apiServer"]["extraArgs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = arg["name"].as_str().unwrap_or_default();
        if LEFT_OUT.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = on_node(
            control_plane.root.path(),
            arg["value"].as_str().unwrap_or_default(),
        );
        args.push(format!("--{name}={value}"));
    }
    let env = TestEnv::start_with(&args)
        .await
        .with_context(|| format!("{case}: kube-apiserver does not start with {args:?}"))?;

    let admission = control_plane.path("/etc/kubernetes/kaas/admission.yaml");
    if admission.exists() {
        pod_security_is_enforced(case, &env, &admission).await?;
    }
    if let Some((issuer, token)) = issuer {
        tokens_of_the_issuer_are_accepted(case, &env, issuer, &token).await?;
    }

    // kubeadm, first control plane node, the others, each pool's.
    kubeadm_validates(
        version,
        &kubeadm_bootstrap_stand_in::init(kcp, cluster)?,
        &format!("{case} control plane's init configuration"),
    )?;
    kubeadm_validates(
        version,
        &kubeadm_bootstrap_stand_in::join(spec, true)?,
        &format!("{case} control plane's join configuration"),
    )?;
    let mut nodes = vec![control_plane];
    for template in of_kind(objects, "KubeadmConfigTemplate") {
        let name = template["metadata"]["name"].as_str().unwrap_or_default();
        let spec = &template["spec"]["template"]["spec"];
        kubeadm_validates(
            version,
            &kubeadm_bootstrap_stand_in::join(spec, false)?,
            &format!("{case} pool template {name}"),
        )?;
        nodes.push(Node::with_files(&format!("{case} {name}"), &spec["files"])?);
    }

    // containerd: every node tries the cluster's mirrors first.
    let hosts: Vec<Value> = nodes.iter().map(containerd_hosts).collect::<Result<_>>()?;
    for (node, h) in nodes.iter().zip(&hosts) {
        ensure!(
            h == &hosts[0],
            "{}: containerd reads other mirrors than on the control plane: {h} vs {}",
            node.name,
            hosts[0]
        );
    }
    Ok(())
}

/// The rendered Pod Security defaults are in force: a privileged pod and a pod that only the
/// baseline level allows are admitted or refused by the level enforced, outside the exempt
/// namespaces; in an exempt one, even the privileged pod is admitted.
async fn pod_security_is_enforced(case: &str, env: &TestEnv, admission: &Path) -> Result<()> {
    let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(admission)?)?;
    let plugin = &config["plugins"][0]["configuration"];
    let enforce = plugin["defaults"]["enforce"]
        .as_str()
        .unwrap_or("privileged")
        .to_string();
    let exempt = plugin["exemptions"]["namespaces"]
        .as_array()
        .and_then(|n| n.first())
        .and_then(Value::as_str)
        .map(String::from);
    let pod = |ns: &str, name: &str, security: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
               "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": security}]}})
    };
    let privileged = |ns: &str| pod(ns, "privileged", json!({"privileged": true}));
    // Baseline allows it; restricted wants a non-root user, no privilege escalation, all
    // capabilities dropped and a seccomp profile.
    let baseline_only = |ns: &str| pod(ns, "baseline-only", json!({}));
    let client = env.client().await?;
    let ns = env.namespace(&client, "psa").await?;
    let create = |pod: Value| {
        let mut cmd = env.kubectl();
        cmd.args(["create", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        std::io::Write::write_all(
            &mut child.stdin.take().context("stdin")?,
            pod.to_string().as_bytes(),
        )?;
        let out = child.wait_with_output()?;
        anyhow::Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let refusal = format!("violates PodSecurity \"{enforce}:latest\"");
    for (pod, admitted) in [
        (privileged(&ns), enforce == "privileged"),
        (baseline_only(&ns), enforce != "restricted"),
    ] {
        let name = pod["metadata"]["name"].clone();
        let (created, err) = create(pod)?;
        if admitted {
            ensure!(created, "{case}: pod {name} refused under {enforce}: {err}");
        } else {
            ensure!(
                !created && err.contains(&refusal),
                "{case}: pod {name} must be refused by PodSecurity {enforce}: {err}"
            );
        }
    }
    if let Some(exempt) = exempt {
        let (created, err) = create(privileged(&exempt))?;
        ensure!(created, "{case}: {exempt} is exempt, yet: {err}");
    }
    Ok(())
}

async fn tokens_of_the_issuer_are_accepted(
    case: &str,
    env: &TestEnv,
    issuer: &Issuer,
    check: &TokenCheck,
) -> Result<()> {
    let whoami = |token: &str| -> Result<(bool, String)> {
        let out = env
            .kubectl()
            .args(["auth", "whoami", "-o", "json", "--token", token])
            .output()?;
        Ok((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    let token = issuer.token(check.claims.clone())?;
    // The API server fetches the issuer's discovery document and keys after it starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let (ok, answer) = whoami(&token)?;
        if ok {
            break answer;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(env.dir().join("kube-apiserver.log"))?;
            let jwt: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("jwt") || l.contains("oidc") || l.contains("authenticat"))
                .collect();
            bail!(
                "{case}: a token of {} is not accepted: {answer}\nthe API server logged:\n{}",
                issuer.url(),
                jwt.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let review: Value = serde_json::from_str(&answer)?;
    let user = &review["status"]["userInfo"];
    ensure!(
        user["username"] == check.username.as_str(),
        "{case}: the token's user is {}, not {}",
        user["username"],
        check.username
    );
    for group in &check.groups {
        ensure!(
            user["groups"]
                .as_array()
                .is_some_and(|g| g.contains(&json!(group))),
            "{case}: the token's groups {} lack {group}",
            user["groups"]
        );
    }
    let mut other = check.claims.clone();
    other["aud"] = json!("another-audience");
    let (ok, answer) = whoami(&issuer.token(other)?)?;
    ensure!(
        !ok,
        "{case}: a token for another audience was accepted: {answer}"
    );
    Ok(())
}

/// A folder with the example class and stack of `provider` and `cluster` as JSON.
fn case_dir(provider: &str, cluster: &Value) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(provider);
    for file in ["1-providerclass.yaml", "2-clusterstack.yaml"] {
        std::fs::copy(examples.join(file), dir.path().join(file))?;
    }
    std::fs::write(dir.path().join("4-kaascluster.json"), cluster.to_string())?;
    Ok(dir)
}

#[tokio::test]
async fn the_examples_node_configuration_is_read_by_kube_apiserver_kubeadm_and_containerd()
-> Result<()> {
    for provider in ["docker", "openstack", "hetzner"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(provider);
        let objects = render(&dir)?;
        check(&format!("examples/{provider}"), &objects, None).await?;
    }
    Ok(())
}

/// A cluster of the OpenStack example with every day-2 field: one issuer (the test's) with one
/// audience, a registry mirror with a CA, pool rollout settings, certificate renewal.
#[tokio::test]
async fn one_issuer_mirrors_with_a_ca_and_pool_rollouts_are_read_by_the_real_programs() -> Result<()>
{
    let issuer = Issuer::start().await?;
    let mirror_ca = kaas_testenv::certs::TestCa::new()?.pem();
    let cluster = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "single", "namespace": "shop"},
        "spec": {
            "providerClassName": "openstack",
            "clusterStack": {"name": "scs", "version": "1.0.0"},
            "kubernetesVersion": "1.35",
            "controlPlane": {"replicas": 3, "machineType": "SCS-2V-4", "certificatesExpiryDays": 60},
            "workers": [{"name": "web", "replicas": 3, "machineType": "SCS-4V-8",
                         "labels": {"example.com/role": "web"},
                         "taints": [{"key": "example.com/dedicated", "value": "web", "effect": "NoSchedule"}],
                         "rollout": {"strategy": "RollingUpdate", "maxSurge": "25%", "maxUnavailable": 0,
                                     "deletionOrder": "Oldest", "nodeDrainTimeoutSeconds": 300}}],
            "authentication": {"jwt": [{
                "issuer": {"url": issuer.url(), "audiences": ["kubernetes"], "certificateAuthority": issuer.ca_pem()},
                "claimMappings": {"username": {"claim": "email", "prefix": "sso:"},
                                  "groups": {"claim": "groups", "prefix": "sso:"}},
            }]},
            "registryMirrors": [{"registry": "docker.io",
                                 "endpoints": ["https://registry-cache.shop.example.com"],
                                 "certificateAuthority": mirror_ca}],
        }
    });
    let dir = case_dir("openstack", &cluster)?;
    let objects = render(dir.path())?;
    check(
        "one issuer",
        &objects,
        Some((
            &issuer,
            TokenCheck {
                claims: json!({"aud": "kubernetes", "sub": "u-1", "email": "alice@example.com",
                               "email_verified": true, "groups": ["ops"]}),
                username: "sso:alice@example.com".into(),
                groups: vec!["sso:ops".into()],
            },
        )),
    )
    .await?;
    let node = Node::with_files(
        "control plane",
        &of_kind(&objects, "KubeadmControlPlane")[0]["spec"]["kubeadmConfigSpec"]["files"],
    )?;
    assert_eq!(
        containerd_hosts(&node)?["docker.io"],
        expected_hosts(
            "docker.io",
            &[("https://registry-cache.shop.example.com".into(), true)]
        )
    );
    Ok(())
}

/// Several issuers (the test's with several audiences), `spec.oidc` folded in as one more,
/// mirrors for several registries, one with a port, and `_default`.
#[tokio::test]
async fn several_issuers_and_audiences_oidc_and_several_mirrors_are_read_by_the_real_programs()
-> Result<()> {
    let issuer = Issuer::start().await?;
    let cluster = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "many", "namespace": "shop"},
        "spec": {
            "providerClassName": "openstack",
            "clusterStack": {"name": "scs", "version": "1.0.0"},
            "kubernetesVersion": "1.35",
            "controlPlane": {"replicas": 1},
            "workers": [{"name": "a", "replicas": 1, "machineType": "SCS-4V-8"},
                        {"name": "b", "replicas": 2, "machineType": "SCS-8V-16",
                         "rollout": {"strategy": "OnDelete"}}],
            "oidc": {"issuerURL": "https://sso.example.com", "clientID": "kubernetes",
                     "usernameClaim": "preferred_username", "groupsClaim": "groups",
                     "usernamePrefix": "oidc:", "groupsPrefix": "oidc:"},
            "authentication": {"jwt": [
                {"issuer": {"url": issuer.url(), "audiences": ["kubernetes", "kaas", "ci"],
                            "certificateAuthority": issuer.ca_pem()},
                 "claimMappings": {"username": {"claim": "sub", "prefix": "ops:"},
                                   "groups": {"claim": "groups", "prefix": "ops:"}}},
                {"issuer": {"url": "https://ci.example.com", "audiences": ["ci"]},
                 "claimMappings": {"username": {"claim": "sub"}}},
            ]},
            "registryMirrors": [
                {"registry": "docker.io", "endpoints": ["https://a.example.com", "http://b.example.com:5000/cache"]},
                {"registry": "harbor.example.com:8443", "endpoints": ["https://harbor-mirror.example.com"]},
                {"registry": "_default", "endpoints": ["https://all.example.com"]},
            ],
        }
    });
    let dir = case_dir("openstack", &cluster)?;
    let objects = render(dir.path())?;
    check(
        "several issuers",
        &objects,
        Some((
            &issuer,
            TokenCheck {
                claims: json!({"aud": "kaas", "sub": "bob", "groups": ["dev", "ops"]}),
                username: "ops:bob".into(),
                groups: vec!["ops:dev".into(), "ops:ops".into()],
            },
        )),
    )
    .await?;
    let node = Node::with_files(
        "control plane",
        &of_kind(&objects, "KubeadmControlPlane")[0]["spec"]["kubeadmConfigSpec"]["files"],
    )?;
    let hosts = containerd_hosts(&node)?;
    assert_eq!(
        hosts["docker.io"],
        expected_hosts(
            "docker.io",
            &[
                ("https://a.example.com".into(), false),
                ("http://b.example.com:5000/cache".into(), false)
            ]
        )
    );
    assert_eq!(
        hosts["harbor.example.com:8443"],
        expected_hosts(
            "harbor.example.com:8443",
            &[("https://harbor-mirror.example.com".into(), false)]
        )
    );
    assert_eq!(
        hosts["unlisted.example.com"],
        expected_hosts(
            "unlisted.example.com",
            &[("https://all.example.com".into(), false)]
        )
    );
    Ok(())
}

/// `spec.oidc` alone: the API server's `--oidc-*` flags.
#[tokio::test]
async fn oidc_flags_are_read_by_kube_apiserver() -> Result<()> {
    let cluster = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "flags", "namespace": "shop"},
        "spec": {
            "providerClassName": "openstack",
            "clusterStack": {"name": "scs", "version": "1.0.0"},
            "kubernetesVersion": "1.35",
            "workers": [{"name": "a", "replicas": 1, "machineType": "SCS-4V-8"}],
            "oidc": {"issuerURL": "https://sso.example.com", "clientID": "kubernetes",
                     "usernameClaim": "email", "usernamePrefix": "oidc:"},
        }
    });
    let dir = case_dir("openstack", &cluster)?;
    let objects = render(dir.path())?;
    check("spec.oidc flags", &objects, None).await
}

/// A stack that enforces the `restricted` Pod Security level with an exempt namespace of its
/// own: the rendered defaults are read by kube-apiserver and enforced as written.
#[tokio::test]
async fn a_stacks_pod_security_levels_are_enforced_by_kube_apiserver() -> Result<()> {
    let releases = tempfile::tempdir()?;
    let stack = releases.path().join("strict");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/openstack");
    std::fs::create_dir_all(stack.join("addons"))?;
    for entry in std::fs::read_dir(shipped.join("addons"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), stack.join("addons").join(entry.file_name()))?;
    }
    let overlay = std::fs::read_to_string(shipped.join("stack.yaml"))?;
    ensure!(
        overlay.contains("\nname: scs\n") && !overlay.contains("\nkubeadm:"),
        "the OpenStack overlay changed shape"
    );
    std::fs::write(
        stack.join("stack.yaml"),
        overlay.replace("\nname: scs\n", "\nname: strict\n")
            + "kubeadm:\n  podSecurity:\n    enforce: restricted\n    audit: restricted\n    warn: restricted\n    exemptNamespaces: [monitoring]\n",
    )?;
    let input = tempfile::tempdir()?;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/openstack");
    std::fs::copy(
        examples.join("1-providerclass.yaml"),
        input.path().join("1-providerclass.yaml"),
    )?;
    let cluster = json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "strict", "namespace": "shop"},
        "spec": {"providerClassName": "openstack",
                 "clusterStack": {"name": "strict", "version": "1.0.0"},
                 "kubernetesVersion": "1.35",
                 "workers": [{"name": "a", "replicas": 1, "machineType": "SCS-4V-8"}]}
    });
    std::fs::write(input.path().join("4-kaascluster.json"), cluster.to_string())?;
    let objects = render_with(input.path(), &[&stack])?;
    let files = &of_kind(&objects, "KubeadmControlPlane")[0]["spec"]["kubeadmConfigSpec"]["files"];
    let admission = files
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"] == "/etc/kubernetes/kaas/admission.yaml")
        .and_then(|f| f["content"].as_str())
        .context("no admission configuration rendered")?;
    ensure!(
        admission.contains("enforce: restricted"),
        "the stack's level is not rendered: {admission}"
    );
    check("restricted Pod Security", &objects, None).await
}
