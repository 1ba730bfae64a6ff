//! The API against a real kube-apiserver with etcd: the generated CRDs install and become
//! Established, `kubectl explain` shows the field docs, objects of every kind read back equal,
//! and an object of the wrong shape is refused by the API server's schema.

use api::v1beta1::{
    ClusterStack, ClusterStackRef, ClusterStackSpec, ControlPlane, KaasCluster, KaasClusterSpec,
    Network, Oidc, ParametersReference, ProviderClass, ProviderClassSpec, StackSource, Taint,
    TaintEffect, WorkerPool,
};
use kaas_testenv::TestEnv;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

async fn setup() -> anyhow::Result<(&'static TestEnv, Client)> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    kaas_testenv::install_crds(&client, &crds).await?;
    Ok((env, client))
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn full_cluster(name: &str) -> KaasCluster {
    KaasCluster {
        metadata: meta(name),
        spec: KaasClusterSpec {
            provider_class_name: Some("openstack".into()),
            cluster_stack: ClusterStackRef {
                name: "scs".into(),
                version: Some("1.2.0".into()),
            },
            kubernetes_version: Some("1.32".into()),
            control_plane: ControlPlane {
                replicas: Some(3),
                machine_type: Some("SCS-4V-8".into()),
                certificates_expiry_days: Some(45),
            },
            workers: vec![WorkerPool {
                name: "default".into(),
                replicas: 3,
                machine_type: "SCS-4V-16".into(),
                min_replicas: Some(1),
                max_replicas: Some(10),
                labels: [("example.com/role".to_string(), "web".to_string())].into(),
                taints: vec![Taint {
                    key: "example.com/dedicated".into(),
                    value: Some("web".into()),
                    effect: TaintEffect::NoExecute,
                }],
                // Stored through the CRD's schema: an int-or-string each way.
                taint_propagation: Some(api::v1beta1::TaintPropagation::Always),
                rollout: Some(api::v1beta1::PoolRollout {
                    max_surge: Some(api::v1beta1::IntOrPercent::Int(1)),
                    max_unavailable: Some(api::v1beta1::IntOrPercent::Percent("25%".into())),
                    deletion_order: Some(api::v1beta1::DeletionOrder::Oldest),
                    node_drain_timeout_seconds: Some(600),
                    ..Default::default()
                }),
            }],
            network: Network {
                pod_cidrs: vec!["172.16.0.0/16".into(), "fd00:10::/56".into()],
                service_cidrs: vec!["10.96.0.0/12".into()],
                mtu: Some(1400),
            },
            oidc: Some(Oidc {
                issuer_url: "https://login.example.com".into(),
                client_id: "kubernetes".into(),
                username_claim: Some("email".into()),
                groups_claim: Some("groups".into()),
                username_prefix: Some("oidc:".into()),
                groups_prefix: Some("oidc:".into()),
            }),
            addons: vec![api::v1beta1::AddonOverride {
                name: "cilium".into(),
                enabled: Some(true),
                values: Some(serde_json::json!({"hubble": {"enabled": true}})),
            }],
            provider_config: Some(serde_json::json!({"externalNetworkID": "ext-net"})),
            paused: Some(false),
            authentication: Some(api::v1beta1::Authentication {
                jwt: vec![api::v1beta1::JwtAuthenticator {
                    issuer: api::v1beta1::JwtIssuer {
                        url: "https://login.example.com/realms/ops".into(),
                        audiences: vec!["kubernetes".into()],
                        certificate_authority: None,
                    },
                    claim_mappings: api::v1beta1::ClaimMappings {
                        username: api::v1beta1::ClaimMapping {
                            claim: "email".into(),
                            prefix: Some("ops:".into()),
                        },
                        groups: None,
                    },
                }],
            }),
            maintenance: Some(api::v1beta1::Maintenance {
                auto_upgrade: Some("patch".into()),
                window: api::v1beta1::MaintenanceWindow {
                    days: vec!["Sat".into(), "Sun".into()],
                    start: "02:00".into(),
                    duration_minutes: 240,
                    time_zone: Some("Europe/Berlin".into()),
                },
            }),
            registry_mirrors: vec![api::v1beta1::RegistryMirror {
                registry: "docker.io".into(),
                endpoints: vec!["https://mirror.example.com".into()],
                certificate_authority: None,
            }],
        },
        status: None,
    }
}

#[tokio::test]
async fn crds_install_and_become_established() -> anyhow::Result<()> {
    let (_env, client) = setup().await?;
    let crds = Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client);
    for name in [
        "kaasclusters.kaas.scs.community",
        "providerclasses.kaas.scs.community",
        "clusterstacks.kaas.scs.community",
    ] {
        let crd = crds.get(name).await?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name} not Established: {conditions:?}"
        );
    }
    let kaas = crds.get("kaasclusters.kaas.scs.community").await?;
    let versions: Vec<_> = kaas
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.served, v.storage))
        .collect();
    assert_eq!(
        versions,
        [("v1beta1", true, true), ("v1alpha1", true, false)]
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_docs() -> anyhow::Result<()> {
    let (env, _client) = setup().await?;
    // The API server publishes a new CRD's schema in its OpenAPI document a moment later.
    let mut last = String::new();
    for _ in 0..60 {
        let out = env
            .kubectl()
            .args(["explain", "kaasclusters.spec"])
            .output()?;
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && last.contains("providerClassName") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(last.contains("providerClassName"), "{last}");
    assert!(
        last.contains("is-default-class"),
        "providerClassName doc missing: {last}"
    );
    assert!(last.contains("controlPlane"), "{last}");
    let out = env
        .kubectl()
        .args(["explain", "kaasclusters.spec.controlPlane.replicas"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1, 3 or 5"), "{text}");
    Ok(())
}

#[tokio::test]
async fn objects_of_every_kind_read_back_equal() -> anyhow::Result<()> {
    let (env, client) = setup().await?;
    let ns = env.namespace(&client, "roundtrip").await?;

    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let sent = full_cluster("full");
    let created = clusters.create(&PostParams::default(), &sent).await?;
    let read = clusters.get("full").await?;
    assert_eq!(read.spec, sent.spec);
    assert_eq!(created.spec, sent.spec);
    assert!(read.uid().is_some());

    let classes: Api<ProviderClass> = Api::all(client.clone());
    let mut class = ProviderClass::new(
        &format!("{ns}-openstack"),
        ProviderClassSpec {
            controller: "kaas.scs.community/openstack".into(),
            parameters: Some(ParametersReference {
                api_group: None,
                kind: "Secret".into(),
                name: "openstack-credentials".into(),
                namespace: Some("kaas-system".into()),
            }),
            machine_types: Vec::new(),
        },
    );
    class.metadata.annotations = Some(
        [(
            api::DEFAULT_CLASS_ANNOTATION.to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    classes.create(&PostParams::default(), &class).await?;
    let read = classes.get(&class.name_any()).await?;
    assert_eq!(read.spec, class.spec);
    assert!(read.is_default());

    let stacks: Api<ClusterStack> = Api::all(client.clone());
    let stack = ClusterStack::new(
        &format!("{ns}-openstack-scs-1-2-0"),
        ClusterStackSpec {
            provider: "openstack".into(),
            name: "scs".into(),
            version: "1.2.0".into(),
            kubernetes_versions: vec!["1.31.4".into(), "1.32.1".into()],
            upgrade_from: vec!["1.1.0".into()],
            node_images: vec![api::v1beta1::NodeImage {
                kubernetes_version: "1.32.1".into(),
                name: "ubuntu-2404-kube-v1.32.1".into(),
                url: Some("https://images.example.com/ubuntu-2404-kube-v1.32.1.qcow2".into()),
                checksum: Some(format!("sha256:{}", "b".repeat(64))),
                format: Some("qcow2".into()),
            }],
            source: Some(StackSource {
                oci: Some(api::v1beta1::OciSource {
                    repository: "registry.example.com/stacks/openstack-scs".into(),
                    digest: format!("sha256:{}", "a".repeat(64)),
                    public_key: None,
                }),
                ..Default::default()
            }),
        },
    );
    stacks.create(&PostParams::default(), &stack).await?;
    let read = stacks.get(&stack.name_any()).await?;
    assert_eq!(read.spec, stack.spec);
    Ok(())
}

#[tokio::test]
async fn wrong_shape_is_refused_by_the_schema() -> anyhow::Result<()> {
    let (env, client) = setup().await?;
    let ns = env.namespace(&client, "shape").await?;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client,
        &ns,
        &kube::api::ApiResource::erase::<KaasCluster>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "metadata": {"name": "bad"},
        "spec": {
            "clusterStack": {"name": "scs"},
            "controlPlane": {"replicas": "three"},
        }
    }))?;
    let err = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("the API server must refuse replicas: \"three\"");
    let msg = err.to_string();
    assert!(msg.contains("spec.controlPlane.replicas"), "{msg}");
    assert!(msg.contains("integer"), "{msg}");

    let missing: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "metadata": {"name": "missing"},
        "spec": {"workers": [{"name": "a"}]}
    }))?;
    let err = api
        .create(&PostParams::default(), &missing)
        .await
        .expect_err("required fields are enforced");
    let msg = err.to_string();
    assert!(msg.contains("spec.clusterStack"), "{msg}");
    assert!(
        msg.contains("spec.workers[0].replicas") || msg.contains("spec.workers.replicas"),
        "{msg}"
    );
    Ok(())
}
