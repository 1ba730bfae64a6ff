//! `kaas-installer` on the real API server, as its deployed service account (deploy/installer),
//! with kaas-webhooks registered: three `KaasOperator`s create exactly the objects of
//! `deploy/operators/<provider>` plus their classes and reach Ready once their Deployments are
//! available (the CAPI stand-in plays the deployment controller and kubelets, and the Cluster
//! API operator, whose kinds are stand-in CRDs); a version change rolls the image and the RBAC,
//! with Events; bad objects are refused naming the field; deleting one whose class is in use is
//! refused; deleting one removes what it installed and nothing of the others.

use std::time::Duration;

use anyhow::{Context, Result};
use api::install::bundles::CURRENT;
use api::install::v1alpha1::KaasOperator;
use api::v1beta1::KaasCluster;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kaas_e2e::system::{Options, System};
use kaas_e2e::wait_for;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn operator(name: &str, spec: Value) -> Result<KaasOperator> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

/// `kaasctl <args>` against the management cluster as its admin; its stdout.
fn kaasctl(system: &System, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(kaas_e2e::binary("kaasctl")?)
        .args(args)
        .env("KUBECONFIG", system.management.kubeconfig_path())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "kaasctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the docker operator's infrastructure ClusterRole grants.
fn infra_resources(system: &System) -> Result<Value> {
    let role = live(
        system,
        "clusterrole",
        "docker-kaas-operator-infrastructure",
        false,
    )?;
    Ok(role["rules"][0]["resources"].clone())
}

/// Merges `spec` into KaasOperator `name`'s spec.
async fn patch_spec(api: &Api<KaasOperator>, name: &str, spec: Value) -> Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec})),
    )
    .await?;
    Ok(())
}

/// The objects `kubectl kustomize deploy/operators/<provider>` renders.
fn deployed(system: &System, provider: &str) -> Result<Vec<Value>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/operators")
        .join(provider);
    let out = system
        .management
        .kubectl()
        .arg("kustomize")
        .arg(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The live object of `kind`/`name` (in kaas-system when namespaced), as JSON.
fn live(system: &System, kind: &str, name: &str, namespaced: bool) -> Result<Value> {
    live_in(system, kind, name, namespaced.then_some("kaas-system"))
}

/// The live object of `kind`/`name` in `namespace`, as JSON.
fn live_in(system: &System, kind: &str, name: &str, namespace: Option<&str>) -> Result<Value> {
    let mut cmd = system.management.kubectl();
    cmd.args(["get", kind, name, "-o", "json"]);
    if let Some(ns) = namespace {
        cmd.args(["-n", ns]);
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl get {kind} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every field of `want` is in `have` with the same value (`have` may hold more: defaults,
/// the installer's ownership labels).
fn contains(have: &Value, want: &Value, path: &str) -> Result<()> {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            for (k, v) in w {
                contains(h.get(k).unwrap_or(&Value::Null), v, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(h), Value::Array(w)) if h.len() == w.len() => {
            for (i, (h, w)) in h.iter().zip(w).enumerate() {
                contains(h, w, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if have == want => Ok(()),
        _ => anyhow::bail!("{path}: live {have} but deploy/ has {want}"),
    }
}

async fn ready(api: &Api<KaasOperator>, name: &str, version: &str) -> Result<KaasOperator> {
    wait_for(
        &format!("KaasOperator {name} Ready at {version}"),
        WAIT,
        || async {
            let op = api.get(name).await?;
            let status = op.status.clone().unwrap_or_default();
            let is_ready = status.condition("Ready").is_some_and(|c| {
                c.status == "True" && c.observed_generation == op.metadata.generation
            });
            Ok((is_ready && status.installed_version.as_deref() == Some(version)).then_some(op))
        },
    )
    .await
}

#[tokio::test]
async fn kaas_operators_install_upgrade_and_remove_the_provider_operators() -> Result<()> {
    let mut system = System::start(&Options::default(), &|n, t| eprintln!("[{n}/4] {t}")).await?;
    let installer = kaas_e2e::start_installer(&system.management)?;
    let client = system.management.client().await?;
    let operators: Api<KaasOperator> = Api::all(client.clone());
    let result = async {
        // Refused by the webhook, naming the field.
        for (spec, field) in [
            (
                json!({"provider": "aws", "version": CURRENT}),
                "spec.provider",
            ),
            (
                json!({"provider": "docker", "version": "0.0.7"}),
                "spec.version",
            ),
            (
                json!({"provider": "docker", "version": CURRENT,
                       "additionalArgs": {"--bogus": "1"}}),
                "spec.additionalArgs[--bogus]",
            ),
        ] {
            let err = operators
                .create(&PostParams::default(), &operator("bad", spec.clone())?)
                .await
                .expect_err("refused");
            assert!(err.to_string().contains(field), "{spec}: {err}");
        }

        // Three operators: docker at the previous release bringing Cluster API, with a class;
        // openstack bringing Cluster API too; hetzner alone.
        let docker = operator(
            "docker",
            json!({"provider": "docker", "version": "0.1.0", "installClusterAPI": true,
                   "additionalArgs": {"--concurrency": "8"},
                   "providerClasses": [{"name": "docker-installed", "machineTypes": [
                       {"name": "kind-node", "cpu": 2, "memory": "4Gi", "default": true}]}]}),
        )?;
        // A class `docker` made by someone else exists: openstack asks for one of that name,
        // which is left alone.
        kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
        let openstack = operator(
            "openstack",
            json!({"provider": "openstack", "version": CURRENT, "installClusterAPI": true,
                   "providerClasses": [{"name": "docker"}]}),
        )?;
        for op in [&docker, &openstack] {
            operators.create(&PostParams::default(), op).await?;
        }
        // hetzner through `kaasctl install`.
        let out = kaasctl(&system, &["install", "hetzner"])?;
        assert!(out.contains("kaasoperator/hetzner applied"), "{out}");
        let docker_ready = ready(&operators, "docker", "0.1.0").await?;
        let conditions: Vec<&str> = docker_ready
            .status
            .as_ref()
            .map(|s| s.conditions.iter().map(|c| c.type_.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            conditions,
            [
                "PreflightPassed",
                "Installed",
                "Available",
                "ClusterAPIReady",
                "Ready"
            ]
        );
        ready(&operators, "openstack", CURRENT).await?;

        // The installer's RBAC lets it escalate and bind the operators' roles by name; the API
        // server bounds what it writes into them (deploy/installer/rbac-policy.yaml): as its
        // service account, a rule no bundle holds and a binding to another subject are
        // refused, while the RBAC alone would allow both.
        let as_installer = system
            .management
            .kubeconfig_as("system:serviceaccount:kaas-system:kaas-installer")?;
        for (what, object) in [
            (
                "a rule no bundle holds",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: docker-kaas-operator}\nrules: [{apiGroups: [''], resources: [secrets], verbs: ['*']}]\n",
            ),
            (
                "a binding to another subject",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: docker-kaas-operator}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: docker-kaas-operator}\nsubjects: [{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}]\n",
            ),
        ] {
            // Server-side apply, as the installer writes (its role has no `get` on them).
            let mut kubectl = system
                .management
                .kubectl()
                .env("KUBECONFIG", &as_installer)
                .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = kubectl.stdin.take() {
                std::io::Write::write_all(&mut stdin, object.as_bytes())?;
            }
            let out = kubectl.wait_with_output()?;
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what} was written");
            assert!(
                said.contains("ValidatingAdmissionPolicy 'kaas-installer-rbac'")
                    && said.contains("the installer may"),
                "{what}: {said}"
            );
        }
        // The same edit by an administrator is not the installer's and is not bound.
        let out = system
            .management
            .kubectl()
            .args([
                "label", "clusterrole", "docker-kaas-operator", "reviewed=yes",
            ])
            .output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let hetzner_ready = ready(&operators, "hetzner", CURRENT).await?;
        let hetzner = operator(
            "hetzner",
            json!({"provider": "hetzner", "version": CURRENT}),
        )?;
        assert_eq!(
            hetzner_ready.spec, hetzner.spec,
            "what kaasctl install wrote"
        );

        // openstack and hetzner: exactly deploy/operators/<provider>, plus the Cluster API
        // operator's objects for openstack.
        for (op, provider, extra) in [
            (&hetzner_ready, "hetzner", 0),
            (
                &ready(&operators, "openstack", CURRENT).await?,
                "openstack",
                8,
            ),
        ] {
            let want = deployed(&system, provider)?;
            let inventory = &op.status.as_ref().context("status")?.inventory;
            assert_eq!(
                inventory.len(),
                want.len() + extra,
                "{provider}: {inventory:?}"
            );
            for object in &want {
                let kind = object["kind"].as_str().unwrap_or_default();
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                assert!(
                    inventory.iter().any(|o| o.kind == kind && o.name == name),
                    "{provider}: {kind} {name} not installed"
                );
                let namespaced = object["metadata"]["namespace"].is_string();
                contains(&live(&system, kind, name, namespaced)?, object, kind)?;
            }
        }

        // The class docker asked for, and the Cluster API objects.
        let class = live(&system, "providerclass", "docker-installed", false)?;
        assert_eq!(class["spec"]["controller"], "kaas.scs.community/docker");
        assert_eq!(
            class["spec"]["machineTypes"],
            json!([{"name": "kind-node", "cpu": 2, "memory": "4Gi", "default": true}]),
            "the catalogue a TenantPolicy counts by"
        );
        let theirs = live(&system, "providerclass", "docker", false)?;
        assert_eq!(theirs["spec"]["controller"], "kaas.scs.community/docker");
        assert!(theirs["metadata"]["labels"]["operator.kaas.scs.community/name"].is_null());
        let openstack_now = operators.get("openstack").await?;
        let installed = openstack_now
            .status
            .as_ref()
            .and_then(|s| s.condition("Installed"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        assert!(
            installed.contains(
                "ProviderClass docker exists and was not created by this KaasOperator: left alone"
            ),
            "{installed}"
        );
        let core = live_in(
            &system,
            "coreproviders.operator.cluster.x-k8s.io",
            "cluster-api",
            Some("capi-system"),
        )?;
        assert_eq!(
            core["spec"]["version"], "v1.14.0",
            "the newest any operator needs"
        );

        // A failed preflight keeps what is installed: without Cluster API's operator, 0.1.0's
        // DockerCluster CRD is not served here.
        patch_spec(&operators, "docker", json!({"installClusterAPI": false})).await?;
        let failed = wait_for("docker's preflight to fail", WAIT, || async {
            let op = operators.get("docker").await?;
            let status = op.status.clone().unwrap_or_default();
            Ok(status
                .condition("PreflightPassed")
                .filter(|c| c.status == "False" && c.observed_generation == op.metadata.generation)
                .map(|c| (c.message.clone(), status.clone())))
        })
        .await?;
        assert!(
            failed.0.contains(
                "dockerclusters.infrastructure.cluster.x-k8s.io is not served at v1beta2"
            ),
            "{}",
            failed.0
        );
        assert_eq!(failed.1.installed_version.as_deref(), Some("0.1.0"));
        assert_eq!(
            failed.1.condition("Installed").map(|c| c.reason.as_str()),
            Some("KeptPrevious")
        );
        live(&system, "deployment", "docker-kaas-operator", true)?;
        patch_spec(&operators, "docker", json!({"installClusterAPI": true})).await?;

        // `kubectl explain` documents the kind.
        let explain = system
            .management
            .kubectl()
            .args(["explain", "kaasoperators.spec.additionalArgs"])
            .output()?;
        let explain = String::from_utf8_lossy(&explain.stdout);
        assert!(explain.contains("Further operator flags"), "{explain}");

        // Upgrade docker: image, RBAC (DevCluster instead of DockerCluster), Events.
        let before = live(&system, "deployment", "docker-kaas-operator", true)?;
        assert!(
            before["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .is_some_and(|i| i.ends_with(":0.1.0"))
        );
        assert_eq!(
            infra_resources(&system)?,
            json!(["dockerclusters", "dockermachinetemplates"])
        );
        patch_spec(&operators, "docker", json!({"version": CURRENT})).await?;
        ready(&operators, "docker", CURRENT).await?;
        let after = live(&system, "deployment", "docker-kaas-operator", true)?;
        let container = &after["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["image"],
            format!("ghcr.io/scs-kaas/kaas-operator-docker:{CURRENT}")
        );
        assert!(
            container["args"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("--concurrency=8")))
        );
        assert_eq!(
            infra_resources(&system)?,
            json!(["devclusters", "devmachinetemplates"])
        );
        let events = system
            .management
            .kubectl()
            .args(["get", "events.events.k8s.io", "-n", "default", "-o", "json"])
            .output()?;
        let events: Value = serde_json::from_slice(&events.stdout)?;
        let about_docker: Vec<&Value> = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["regarding"]["kind"] == "KaasOperator" && e["regarding"]["name"] == "docker"
            })
            .collect();
        let moved = format!("moved from 0.1.0 to {CURRENT}");
        assert!(
            about_docker.iter().any(|e| e["reason"] == "VersionChanged"
                && e["note"].as_str().is_some_and(|m| m == moved)),
            "no Event of the upgrade to {CURRENT}: {about_docker:?}"
        );

        // A cluster uses the docker class: deleting its KaasOperator is refused, naming it.
        let ns = system.management.namespace(&client, "installed").await?;
        let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
        let cluster: KaasCluster = serde_json::from_value(json!({
            "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
            "metadata": {"name": "user"},
            "spec": {"providerClassName": "docker-installed",
                     "clusterStack": {"name": "e2e", "version": "1.0.0"},
                     "controlPlane": {"replicas": 1},
                     "workers": [{"name": "md-0", "replicas": 1, "machineType": "x"}]}}))?;
        clusters.create(&PostParams::default(), &cluster).await?;
        let err = operators
            .delete("docker", &DeleteParams::default())
            .await
            .expect_err("refused while the class is used");
        assert!(err.to_string().contains(&format!("{ns}/user")), "{err}");
        clusters.delete("user", &DeleteParams::default()).await?;
        wait_for("the cluster gone", WAIT, || async {
            Ok(clusters.get_opt("user").await?.is_none().then_some(()))
        })
        .await?;

        // Deleting docker removes what it installed and nothing of the others.
        operators.delete("docker", &DeleteParams::default()).await?;
        wait_for("the docker KaasOperator gone", WAIT, || async {
            Ok(operators.get_opt("docker").await?.is_none().then_some(()))
        })
        .await?;
        for (kind, name, namespaced) in [
            ("deployment", "docker-kaas-operator", true),
            ("serviceaccount", "docker-kaas-operator", true),
            ("clusterrole", "docker-kaas-operator", false),
            (
                "clusterrolebinding",
                "docker-kaas-operator-infrastructure",
                false,
            ),
            ("role", "docker-kaas-operator-leader-election", true),
            ("providerclass", "docker-installed", false),
        ] {
            assert!(
                live(&system, kind, name, namespaced).is_err(),
                "{kind} {name} left behind"
            );
        }
        let capd = live_in(
            &system,
            "infrastructureproviders.operator.cluster.x-k8s.io",
            "docker",
            Some("capd-system"),
        );
        assert!(capd.is_err(), "docker's InfrastructureProvider left behind");
        for (kind, name, namespaced) in [
            ("deployment", "openstack-kaas-operator", true),
            ("deployment", "hetzner-kaas-operator", true),
            ("clusterrole", "hetzner-kaas-operator-infrastructure", false),
        ] {
            live(&system, kind, name, namespaced)?;
        }
        // Cluster API's core stays: openstack still asks for it.
        live_in(
            &system,
            "coreproviders.operator.cluster.x-k8s.io",
            "cluster-api",
            Some("capi-system"),
        )
        .context("the shared CoreProvider was removed")?;
        ready(&operators, "openstack", CURRENT).await?;
        // `kaasctl status` lists the installed operators.
        let status = kaasctl(&system, &["status"])?;
        let rows: Vec<Vec<&str>> = status
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        for name in ["openstack", "hetzner"] {
            assert!(
                rows.iter()
                    .any(|r| r.len() >= 5 && r[0] == name && r[3] == CURRENT && r[4] == "True"),
                "{name} not Ready in:\n{status}"
            );
        }
        assert!(
            !rows.iter().any(|r| r.first() == Some(&"docker")),
            "{status}"
        );

        // With kaas-webhooks out of the way (its validating configuration removed), a bad
        // KaasOperator reaches the installer, which refuses it itself, naming the field, and
        // installs nothing.
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .delete(
                kaas_webhooks::registration::CONFIGURATION_NAME,
                &DeleteParams::default(),
            )
            .await?;
        let bypassed = operator(
            "bypassed",
            json!({"provider": "docker", "version": CURRENT,
                   "additionalArgs": {"--bogus": "1"}}),
        )?;
        // The API server stops calling the webhook once its informer drops the configuration:
        // a create a moment after the deletion can still be judged by it (1 in 3 runs here).
        wait_for(
            "a create no longer judged by kaas-webhooks",
            WAIT,
            || async {
                operators
                    .create(&PostParams::default(), &bypassed)
                    .await
                    .context("created without the webhook")?;
                Ok(Some(()))
            },
        )
        .await?;
        let refused = wait_for("the installer to refuse it", WAIT, || async {
            let op = operators.get("bypassed").await?;
            Ok(op
                .status
                .as_ref()
                .and_then(|s| s.condition("PreflightPassed"))
                .filter(|c| c.status == "False")
                .map(|c| c.message.clone()))
        })
        .await?;
        assert!(
            refused.contains("spec.additionalArgs[--bogus]"),
            "{refused}"
        );
        assert!(
            live(&system, "deployment", "docker-kaas-operator", true).is_err(),
            "nothing installed for a refused KaasOperator"
        );
        operators
            .delete("bypassed", &DeleteParams::default())
            .await?;
        wait_for("the refused KaasOperator gone", WAIT, || async {
            Ok(operators.get_opt("bypassed").await?.is_none().then_some(()))
        })
        .await?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let mut installer = installer;
    let log = std::fs::read_to_string(&installer.log).unwrap_or_default();
    if let Err(e) = result {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("client::builder"))
            .collect();
        eprintln!(
            "installer running: {}; its log without request errors:\n{}",
            installer.is_running(),
            lines.join("\n")
        );
        anyhow::bail!("{e:#}\ninstaller log:\n{}", installer.log_tail());
    }
    let forbidden: Vec<&str> = log.lines().filter(|l| l.contains("forbidden")).collect();
    assert!(forbidden.is_empty(), "RBAC denials: {forbidden:?}");
    system.kill_operator("docker");
    Ok(())
}
