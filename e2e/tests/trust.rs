//! The trust boundary, attacked through the real API server with the Docker operator as a
//! process:
//!
//! - a tenant writes the `<cluster>-kubeconfig` Secret in their namespace before Cluster API
//!   does, and tries in turn to make the operator send a local file's content to a server of
//!   the tenant's choosing and to run a program. Every attempt is refused with a condition
//!   naming what was refused; no connection reaches the tenant's server, no program runs, no
//!   secret is quoted (not even from a kubeconfig that does not parse). Then the kubeconfig
//!   Cluster API writes is accepted and the add-on lands;
//! - a stack registry that accepts and never answers times out (named in the cluster's
//!   status) while a cluster on another stack is served, and a status patched by hand with an
//!   upgrade step out of range leaves the operator running and serving the cluster;
//! - a cluster whose class was deleted before it is still deleted: the operator whose
//!   finalizer it carries finishes the deletion;
//! - a stack whose template allocates without bound (folded at compile time, or at render)
//!   kills only the render worker: the stack is refused naming the memory budget, the
//!   operator's own peak stays small, and a cluster on another stack is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

const STACK: &str = r#"
provider: docker
name: trust-test
version: 1.0.0
kubernetesVersions: ["1.34.1"]
addons:
  - name: hello
    version: 1.0.0
    manifests: [hello.yaml]
"#;

const HELLO: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: hello, namespace: default}
data: {from: "{{ cluster.name }}"}
"#;

/// A loopback server that counts connections and keeps what they send.
async fn tenant_server() -> Result<(u16, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    Ok((port, hits))
}

fn kubeconfig(cluster: Value, user: Value) -> String {
    json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    })
    .to_string()
}

/// The `AddonsReady` condition's reason and message, once its message contains `needle`.
async fn refused_with(clusters: &Api<KaasCluster>, needle: &str) -> Result<(String, String)> {
    let found = wait_for(&format!("AddonsReady naming {needle:?}"), WAIT, || async {
        let status = clusters.get("victim").await?.status.unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .find(|c| c.type_ == "AddonsReady" && c.message.contains(needle))
            .map(|c| (c.reason.clone(), c.message.clone())))
    })
    .await;
    if found.is_err() {
        let status = clusters.get("victim").await?.status;
        anyhow::bail!("{found:?}; the cluster's status: {status:?}");
    }
    found
}

#[tokio::test]
async fn a_tenants_kubeconfig_secret_cannot_steal_files_or_run_programs() -> Result<()> {
    let env = TestEnv::shared().await?;
    let workload_env = TestEnv::start().await?;
    let client = env.client().await?;
    let workload = workload_env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.34.1"]).await?;
    let releases = tempfile::tempdir()?;
    std::fs::write(releases.path().join("stack.yaml"), STACK)?;
    std::fs::write(releases.path().join("hello.yaml"), HELLO)?;
    kaas_e2e::install_local_release(&client, releases.path()).await?;

    // What the tenant wants: the content of a file only the operator can read, and a program run.
    let scratch = tempfile::tempdir()?;
    let stolen = scratch.path().join("token");
    std::fs::write(&stolen, "SECRET-FILE-CONTENT")?;
    let marker = scratch.path().join("ran");
    let (port, hits) = tenant_server().await?;
    let tenant_url = format!("https://127.0.0.1:{port}");

    let cache = tempfile::tempdir()?;
    let operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &["--addon-resync=1".into()],
        "trust-operator",
    )?;
    let ns = env.namespace(&client, "trust").await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let legit = std::fs::read_to_string(workload_env.kubeconfig_path())?;
    let legit_json: Value = serde_json::from_str(&legit)?;
    let ca = legit_json["clusters"][0]["cluster"]["certificate-authority-data"].clone();
    let endpoint = kaas_e2e::stand_in::endpoint_of(&legit)?;
    let endpoint_url = format!("https://127.0.0.1:{}", endpoint["port"]);

    // 1. Before Cluster API, the tenant writes the Secret: its type and label, no owner.
    let tenant_value = kubeconfig(
        json!({"server": tenant_url, "certificate-authority-data": ca}),
        json!({"tokenFile": stolen}),
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "victim-kubeconfig", "labels": {"cluster.x-k8s.io/cluster-name": "victim"}},
        "type": "cluster.x-k8s.io/secret",
        "stringData": {"value": tenant_value},
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;

    let _stand_in = kaas_e2e::stand_in::StandIn {
        management: client.clone(),
        workload_kubeconfig: legit.clone(),
        kubelets: None,
        per_cluster: Default::default(),
    }
    .spawn();
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = cluster("victim", "docker", "trust-test", "1.34")?;
    clusters.create(&PostParams::default(), &cluster).await?;
    let (reason, message) = refused_with(&clusters, "is not owned by").await?;
    assert_eq!(reason, "KubeconfigRefused");
    assert!(message.contains("victim-kubeconfig"), "{message}");

    // 2. The tenant reads the control plane's uid and claims the Secret for it; the server is
    //    still theirs.
    let kcps: Api<DynamicObject> = capi_kind(
        &client,
        &ns,
        "controlplane.cluster.x-k8s.io",
        "KubeadmControlPlane",
    );
    let kcp_name = clusters_control_plane(&client, &ns).await?;
    let kcp = kcps.get(&kcp_name).await?;
    let patch = |value: String| {
        json!({"metadata": {"ownerReferences": [{
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
            "name": kcp_name, "uid": kcp.metadata.uid}]},
            "stringData": {"value": value}})
    };
    let merge = PatchParams::default();
    secrets
        .patch(
            "victim-kubeconfig",
            &merge,
            &Patch::Merge(patch(tenant_value.clone())),
        )
        .await?;
    let (_, message) = refused_with(&clusters, "is not the control plane endpoint").await?;
    assert!(
        message.contains(&tenant_url) && message.contains(&endpoint_url),
        "{message}"
    );

    // 3. The right server, but the token read from a file.
    let value = kubeconfig(
        json!({"server": endpoint_url, "certificate-authority-data": ca}),
        json!({"tokenFile": stolen}),
    );
    secrets
        .patch("victim-kubeconfig", &merge, &Patch::Merge(patch(value)))
        .await?;
    refused_with(&clusters, "users[0].user.tokenFile is refused").await?;

    // 4. A program to run.
    let value = kubeconfig(
        json!({"server": endpoint_url, "certificate-authority-data": ca}),
        json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh",
                        "args": ["-c", format!("touch {}", marker.display())]}}),
    );
    secrets
        .patch("victim-kubeconfig", &merge, &Patch::Merge(patch(value)))
        .await?;
    refused_with(&clusters, "users[0].user.exec is refused").await?;

    // 5. Text that does not parse, with key material beside the error: not quoted.
    let broken = format!(
        "users:\n- name: u\n  user:\n    client-key-data: SECRET-KEY-MATERIAL\n  : [\n{}",
        "x".repeat(64)
    );
    secrets
        .patch("victim-kubeconfig", &merge, &Patch::Merge(patch(broken)))
        .await?;
    let (_, message) = refused_with(&clusters, "not a valid kubeconfig").await?;
    assert!(!message.contains("SECRET-KEY-MATERIAL"), "{message}");

    // 6. Skipped TLS verification toward the tenant's proxy.
    let value = kubeconfig(
        json!({"server": endpoint_url, "insecure-skip-tls-verify": true, "proxy-url": tenant_url}),
        json!({"token": "t"}),
    );
    secrets
        .patch("victim-kubeconfig", &merge, &Patch::Merge(patch(value)))
        .await?;
    refused_with(&clusters, "insecure-skip-tls-verify is refused").await?;

    // Nothing left the operator toward the tenant, no program ran, nothing secret was quoted.
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a request reached the tenant's server"
    );
    assert!(!marker.exists(), "the tenant's program ran");
    let status = serde_json::to_string(&clusters.get("victim").await?.status)?;
    assert!(!status.contains("SECRET-FILE-CONTENT"), "{status}");
    assert!(!status.contains("SECRET-KEY-MATERIAL"), "{status}");
    assert!(!operator.log_tail().contains("SECRET-FILE-CONTENT"));

    // What Cluster API writes is accepted: the add-on lands in the workload cluster.
    secrets
        .patch("victim-kubeconfig", &merge, &Patch::Merge(patch(legit)))
        .await?;
    let hello = wait_for("the add-on in the workload cluster", WAIT, || async {
        Ok(Api::<ConfigMap>::namespaced(workload.clone(), "default")
            .get_opt("hello")
            .await?)
    })
    .await?;
    assert_eq!(hello.data.unwrap_or_default()["from"], "victim");
    Ok(())
}

/// The name of the control plane the operator created for `victim`, once it exists.
async fn clusters_control_plane(client: &kube::Client, ns: &str) -> Result<String> {
    let capi: Api<DynamicObject> = capi_kind(client, ns, "cluster.x-k8s.io", "Cluster");
    wait_for("the Cluster's control plane reference", WAIT, || async {
        Ok(capi.get_opt("victim").await?.and_then(|c| {
            c.data["spec"]["controlPlaneRef"]["name"]
                .as_str()
                .map(str::to_string)
        }))
    })
    .await
}

#[tokio::test]
async fn a_silent_registry_and_a_hand_patched_status_leave_the_operator_serving() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.34.1"]).await?;
    let (port, hits) = tenant_server().await?;
    let stuck: api::v1beta1::ClusterStack = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": "docker-silent-1-0-0"},
        "spec": {"provider": "docker", "name": "silent", "version": "1.0.0",
                 "kubernetesVersions": ["1.34.1"],
                 "source": {"http": {"url": format!("http://127.0.0.1:{port}/stack.tar.gz"),
                                     "sha256": "0".repeat(64)}}}}))?;
    Api::<api::v1beta1::ClusterStack>::all(client.clone())
        .patch(
            "docker-silent-1-0-0",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&stuck),
        )
        .await?;
    kaas_e2e::mark_ready(&client, "docker-silent-1-0-0").await?;

    let cache = tempfile::tempdir()?;
    let mut operator = kaas_e2e::docker_operator(
        env,
        cache.path(),
        &["--stack-fetch-timeout=2".into()],
        "silent-operator",
    )?;
    let ns = env.namespace(&client, "silent").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    for (name, stack) in [("waits", "silent"), ("served", "e2e")] {
        let cluster: KaasCluster = cluster(name, "docker", stack, "1.34.1")?;
        clusters.create(&PostParams::default(), &cluster).await?;
    }
    let capi: Api<DynamicObject> = capi_kind(&client, &ns, "cluster.x-k8s.io", "Cluster");
    wait_for("the cluster on a good stack served", WAIT, || async {
        Ok(capi.get_opt("served").await?)
    })
    .await?;
    let message = wait_for("the silent registry named", WAIT, || async {
        let status = clusters.get("waits").await?.status.unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .find(|c| c.type_ == "StackResolved" && c.message.contains("no complete answer"))
            .map(|c| c.message.clone()))
    })
    .await?;
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(hits.load(Ordering::SeqCst) > 0, "the registry was asked");
    assert!(capi.get_opt("waits").await?.is_none());

    // A status patched by hand: an upgrade toward the cluster's own target, step 99.
    wait_for("the served cluster's versions in status", WAIT, || async {
        let s = clusters.get("served").await?.status.unwrap_or_default();
        Ok(s.cluster_stack_version.is_some().then_some(()))
    })
    .await?;
    clusters
        .patch_status(
            "served",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"upgrade": {
                "fromKubernetesVersion": "1.33.0", "fromStackVersion": "0.9.0",
                "toStackVersion": "1.0.0", "steps": ["1.34.1"], "step": 99,
                "stage": "Workers", "attempts": 2147483647}}})),
        )
        .await?;
    // The operator reads that back and keeps serving the cluster: a spec change after it
    // reaches the MachineDeployment, at the version the cluster runs (nothing acted on step 99).
    clusters
        .patch(
            "served",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"workers": [{"name": "md-0", "replicas": 2, "machineType": "x"}]}}),
            ),
        )
        .await?;
    let mds: Api<DynamicObject> = capi_kind(&client, &ns, "cluster.x-k8s.io", "MachineDeployment");
    let md = wait_for(
        "md-0 scaled after the hand-patched status",
        WAIT,
        || async {
            Ok(mds
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .find(|md| {
                    md.data["spec"]["clusterName"] == "served" && md.data["spec"]["replicas"] == 2
                }))
        },
    )
    .await?;
    assert_eq!(md.data["spec"]["template"]["spec"]["version"], "v1.34.1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        operator.is_running(),
        "the operator exited: {}",
        operator.log_tail()
    );
    Ok(())
}

#[tokio::test]
async fn a_cluster_whose_class_is_gone_is_still_deleted() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.34.1"]).await?;
    let classes = Api::<api::v1beta1::ProviderClass>::all(client.clone());
    let class: api::v1beta1::ProviderClass = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": "vanishing"}, "spec": {"controller": "kaas.scs.community/docker"}}))?;
    classes
        .patch(
            "vanishing",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&class),
        )
        .await?;
    let cache = tempfile::tempdir()?;
    let _operator = kaas_e2e::docker_operator(env, cache.path(), &[], "vanishing-operator")?;
    let ns = env.namespace(&client, "vanishing").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = cluster("orphan", "vanishing", "e2e", "1.34.1")?;
    clusters.create(&PostParams::default(), &cluster).await?;
    let finalizers = wait_for("the operator's finalizer", WAIT, || async {
        let c = clusters.get("orphan").await?;
        Ok(
            (!c.metadata.finalizers.clone().unwrap_or_default().is_empty())
                .then(|| c.metadata.finalizers.unwrap_or_default()),
        )
    })
    .await?;
    assert_eq!(finalizers, ["kaas.scs.community/docker"]);

    classes.delete("vanishing", &Default::default()).await?;
    wait_for("the class gone", WAIT, || async {
        Ok(classes.get_opt("vanishing").await?.is_none().then_some(()))
    })
    .await?;
    clusters.delete("orphan", &Default::default()).await?;
    wait_for("the cluster deleted without its class", WAIT, || async {
        Ok(clusters.get_opt("orphan").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_template_that_allocates_without_bound_kills_only_its_render_worker() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.34.1"]).await?;
    let releases = tempfile::tempdir()?;
    std::fs::write(
        releases.path().join("stack.yaml"),
        STACK
            .replace("trust-test", "bomb-test")
            .replace("hello.yaml", "bomb.yaml"),
    )?;
    // 100 MB, then 200 MB, then 400 MB: past any budget within three template steps.
    std::fs::write(
        releases.path().join("bomb.yaml"),
        "{% set a = 'x' * 99999999 %}{% set b = a ~ a %}{% set c = b ~ b %}apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb, namespace: default}\ndata: {n: \"{{ c|length }}\"}\n",
    )?;
    kaas_e2e::install_local_release(&client, releases.path()).await?;
    let cache = tempfile::tempdir()?;
    let mut operator = kaas_e2e::docker_operator(env, cache.path(), &[], "bomb-operator")?;
    let ns = env.namespace(&client, "bomb").await?;
    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    for (name, stack) in [("bombed", "bomb-test"), ("fine", "e2e")] {
        let cluster: KaasCluster = cluster(name, "docker", stack, "1.34.1")?;
        clusters.create(&PostParams::default(), &cluster).await?;
    }
    let message = wait_for("the bomb refused", WAIT, || async {
        let status = clusters.get("bombed").await?.status.unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .find(|c| c.type_ == "StackResolved" && c.message.contains("MiB"))
            .map(|c| c.message.clone()))
    })
    .await?;
    assert!(message.contains("128 MiB"), "{message}");
    let capi: Api<DynamicObject> = capi_kind(&client, &ns, "cluster.x-k8s.io", "Cluster");
    wait_for("the other cluster served", WAIT, || async {
        Ok(capi.get_opt("fine").await?)
    })
    .await?;
    assert!(operator.is_running(), "{}", operator.log_tail());
    let peak_kb = kaas_e2e::peak_rss_kib(operator.id())?;
    println!("operator peak RSS {} MiB", peak_kb >> 10);
    assert!(
        peak_kb < 96 * 1024,
        "the operator itself peaked at {} MiB",
        peak_kb >> 10
    );
    Ok(())
}

/// A `KaasCluster` of class `class` on stack `stack` 1.0.0 at `kubernetes`, one worker pool.
fn cluster(name: &str, class: &str, stack: &str, kubernetes: &str) -> Result<KaasCluster> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": name},
        "spec": {"providerClassName": class, "clusterStack": {"name": stack, "version": "1.0.0"},
                 "kubernetesVersion": kubernetes, "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 1, "machineType": "x"}]}}))?)
}

/// The objects of a Cluster API kind (`group`, v1beta2) in namespace `ns`.
fn capi_kind(client: &kube::Client, ns: &str, group: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, "v1beta2", kind,
        )),
    )
}
