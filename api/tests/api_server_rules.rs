//! The rules about one object that the API server checks itself, from the CEL rules and
//! OpenAPI bounds of the generated CRDs, with no webhook registered (kaas-webhooks is not
//! running): each bad object is refused by a real kube-apiserver naming the field, and the
//! shared validation (what kaas-webhooks and the operators run) refuses the same object naming
//! the same field, so the two cannot drift apart unnoticed.

use api::v1beta1::KaasCluster;
use api::{Catalog, Previous};
use kaas_testenv::TestEnv;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

async fn setup() -> anyhow::Result<(&'static TestEnv, Client)> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    let crds: Vec<_> = api::crds::all()?.into_iter().map(|(_, c)| c).collect();
    kaas_testenv::install_crds(&client, &crds).await?;
    Ok((env, client))
}

/// A cluster every rule accepts, with every field of the spec set.
fn valid() -> Value {
    json!({
        "apiVersion": "kaas.scs.community/v1beta1",
        "kind": "KaasCluster",
        "metadata": {"name": "valid"},
        "spec": {
            "providerClassName": "openstack",
            "clusterStack": {"name": "scs", "version": "1.2.0"},
            "kubernetesVersion": "1.33",
            "controlPlane": {"replicas": 3, "machineType": "SCS-4V-8", "certificatesExpiryDays": 45},
            "workers": [{
                "name": "default", "replicas": 3, "machineType": "SCS-4V-16",
                "minReplicas": 1, "maxReplicas": 10,
                "labels": {"example.com/role": "web"},
                "taints": [{"key": "example.com/dedicated", "value": "web", "effect": "NoExecute"}],
                "rollout": {"maxSurge": 1, "maxUnavailable": "25%", "nodeDrainTimeoutSeconds": 600},
            }],
            "network": {"podCIDRs": ["172.16.0.0/16", "fd00:10::/56"], "serviceCIDRs": ["10.96.0.0/12"], "mtu": 1400},
            "oidc": {"issuerURL": "https://login.example.com", "clientID": "kubernetes", "usernamePrefix": "oidc:"},
            "authentication": {"jwt": [{
                "issuer": {"url": "https://login.example.com/realms/ops", "audiences": ["kubernetes", "ops"]},
                "claimMappings": {"username": {"claim": "email", "prefix": "ops:"}, "groups": {"claim": "groups"}},
            }]},
            "maintenance": {"autoUpgrade": "patch", "window": {"days": ["Sat", "Sun"], "start": "02:00", "durationMinutes": 240, "timeZone": "Europe/Berlin"}},
            "registryMirrors": [{"registry": "docker.io", "endpoints": ["https://mirror.example.com/v2"]}],
            "addons": [{"name": "cilium", "enabled": true, "values": {"hubble": {"enabled": true}}}],
        }
    })
}

/// Sets the field at `pointer`, adding it to its parent object when it is not there yet.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let parent = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} is not in the object"));
    match parent {
        Value::Array(items) => items[key.parse::<usize>().expect("an index")] = value,
        Value::Object(fields) => {
            fields.insert(key.to_string(), value);
        }
        _ => panic!("{pointer}: the parent is not an object or list"),
    }
}

/// `(what is wrong, JSON pointer, new value, field both must name)`: one bad field each.
fn bad_creates() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    let pool = |name: &str| json!({"name": name, "replicas": 1, "machineType": "m"});
    vec![
        (
            "class name",
            "/spec/providerClassName",
            json!("Open_Stack"),
            "spec.providerClassName",
        ),
        (
            "stack name",
            "/spec/clusterStack/name",
            json!("SCS"),
            "spec.clusterStack.name",
        ),
        (
            "stack version",
            "/spec/clusterStack/version",
            json!("1.2"),
            "spec.clusterStack.version",
        ),
        (
            "kubernetes version",
            "/spec/kubernetesVersion",
            json!("v1.33"),
            "spec.kubernetesVersion",
        ),
        (
            "even control plane",
            "/spec/controlPlane/replicas",
            json!(2),
            "spec.controlPlane.replicas",
        ),
        (
            "empty machine type",
            "/spec/controlPlane/machineType",
            json!(""),
            "spec.controlPlane.machineType",
        ),
        (
            "renewal too early",
            "/spec/controlPlane/certificatesExpiryDays",
            json!(3),
            "spec.controlPlane.certificatesExpiryDays",
        ),
        (
            "renewal too late",
            "/spec/controlPlane/certificatesExpiryDays",
            json!(400),
            "spec.controlPlane.certificatesExpiryDays",
        ),
        (
            "pool name",
            "/spec/workers/0/name",
            json!("Pool_1"),
            "spec.workers[0].name",
        ),
        (
            "negative pool",
            "/spec/workers/0/replicas",
            json!(-1),
            "spec.workers[0].replicas",
        ),
        (
            "below minReplicas",
            "/spec/workers/0/replicas",
            json!(0),
            "spec.workers[0].replicas",
        ),
        (
            "above maxReplicas",
            "/spec/workers/0/replicas",
            json!(11),
            "spec.workers[0].replicas",
        ),
        (
            "min above max",
            "/spec/workers/0/minReplicas",
            json!(20),
            "spec.workers[0]",
        ),
        (
            "pool machine type",
            "/spec/workers/0/machineType",
            json!(""),
            "spec.workers[0].machineType",
        ),
        (
            "label key",
            "/spec/workers/0/labels",
            json!({"bad key": "x"}),
            "spec.workers[0].labels",
        ),
        (
            "label value",
            "/spec/workers/0/labels",
            json!({"example.com/role": "not a value"}),
            "spec.workers[0].labels",
        ),
        (
            "taint key",
            "/spec/workers/0/taints/0/key",
            json!("bad key"),
            "spec.workers[0].taints[0].key",
        ),
        (
            "surge past 100%",
            "/spec/workers/0/rollout/maxSurge",
            json!("150%"),
            "spec.workers[0].rollout.maxSurge",
        ),
        (
            "both zero",
            "/spec/workers/0/rollout",
            json!({"maxSurge": 0, "maxUnavailable": "0%"}),
            "spec.workers[0].rollout.maxUnavailable",
        ),
        (
            "surge with OnDelete",
            "/spec/workers/0/rollout",
            json!({"strategy": "OnDelete", "maxSurge": 1}),
            "spec.workers[0].rollout.maxSurge",
        ),
        (
            "negative drain",
            "/spec/workers/0/rollout/nodeDrainTimeoutSeconds",
            json!(-1),
            "spec.workers[0].rollout.nodeDrainTimeoutSeconds",
        ),
        (
            "pool twice",
            "/spec/workers",
            json!([pool("a"), pool("a")]),
            "spec.workers",
        ),
        (
            "too many pools",
            "/spec/workers",
            Value::Array((0..65).map(|i| pool(&format!("p{i}"))).collect()),
            "spec.workers",
        ),
        (
            "host bits",
            "/spec/network/podCIDRs",
            json!(["172.16.0.1/16"]),
            "spec.network.podCIDRs",
        ),
        (
            "not a CIDR",
            "/spec/network/podCIDRs",
            json!(["172.16.0.0"]),
            "spec.network.podCIDRs",
        ),
        (
            "two IPv4 networks",
            "/spec/network/podCIDRs",
            json!(["172.16.0.0/16", "172.17.0.0/16"]),
            "spec.network.podCIDRs",
        ),
        (
            "pods overlap services",
            "/spec/network/podCIDRs",
            json!(["10.96.0.0/16"]),
            "spec.network",
        ),
        ("MTU", "/spec/network/mtu", json!(100), "spec.network.mtu"),
        (
            "plain HTTP issuer",
            "/spec/oidc/issuerURL",
            json!("http://login.example.com"),
            "spec.oidc.issuerURL",
        ),
        (
            "issuer with a password",
            "/spec/oidc/issuerURL",
            json!("https://u:p@login.example.com"),
            "spec.oidc.issuerURL",
        ),
        (
            "the service account issuer",
            "/spec/authentication/jwt/0/issuer/url",
            json!("https://kubernetes.default.svc.cluster.local"),
            "spec.authentication.jwt[0].issuer.url",
        ),
        (
            "no client",
            "/spec/oidc/clientID",
            json!(""),
            "spec.oidc.clientID",
        ),
        (
            "long prefix",
            "/spec/oidc/usernamePrefix",
            json!("p".repeat(300)),
            "spec.oidc.usernamePrefix",
        ),
        (
            "issuer with a query",
            "/spec/authentication/jwt/0/issuer/url",
            json!("https://login.example.com/?realm=x"),
            "spec.authentication.jwt[0].issuer.url",
        ),
        (
            "no audience",
            "/spec/authentication/jwt/0/issuer/audiences",
            json!([]),
            "spec.authentication.jwt[0].issuer.audiences",
        ),
        (
            "audience twice",
            "/spec/authentication/jwt/0/issuer/audiences",
            json!(["a", "a"]),
            "spec.authentication.jwt[0].issuer.audiences",
        ),
        (
            "17 audiences",
            "/spec/authentication/jwt/0/issuer/audiences",
            Value::Array((0..17).map(|i| json!(format!("a{i}"))).collect()),
            "spec.authentication.jwt[0].issuer.audiences",
        ),
        (
            "empty claim",
            "/spec/authentication/jwt/0/claimMappings/username/claim",
            json!(""),
            "spec.authentication.jwt[0].claimMappings.username.claim",
        ),
        (
            "issuer in oidc too",
            "/spec/authentication/jwt/0/issuer/url",
            json!("https://login.example.com"),
            "spec.authentication.jwt",
        ),
        (
            "authentication before 1.30",
            "/spec/kubernetesVersion",
            json!("1.29"),
            "spec.authentication",
        ),
        (
            "upgrade policy",
            "/spec/maintenance/autoUpgrade",
            json!("major"),
            "spec.maintenance.autoUpgrade",
        ),
        (
            "day twice",
            "/spec/maintenance/window/days",
            json!(["Mon", "Mon"]),
            "spec.maintenance.window.days",
        ),
        (
            "no such day",
            "/spec/maintenance/window/days",
            json!(["Someday"]),
            "spec.maintenance.window.days",
        ),
        (
            "start",
            "/spec/maintenance/window/start",
            json!("25:00"),
            "spec.maintenance.window.start",
        ),
        (
            "short window",
            "/spec/maintenance/window/durationMinutes",
            json!(10),
            "spec.maintenance.window.durationMinutes",
        ),
        (
            "registry with a path",
            "/spec/registryMirrors/0/registry",
            json!("docker.io/library"),
            "spec.registryMirrors[0].registry",
        ),
        (
            "no mirror",
            "/spec/registryMirrors/0/endpoints",
            json!([]),
            "spec.registryMirrors[0].endpoints",
        ),
        (
            "mirror not HTTP",
            "/spec/registryMirrors/0/endpoints",
            json!(["ftp://mirror.example.com"]),
            "spec.registryMirrors[0].endpoints",
        ),
        (
            "registry twice",
            "/spec/registryMirrors",
            json!([
                {"registry": "docker.io", "endpoints": ["https://a.example.com"]},
                {"registry": "docker.io", "endpoints": ["https://b.example.com"]},
            ]),
            "spec.registryMirrors",
        ),
        (
            "add-on name",
            "/spec/addons/0/name",
            json!("Cilium"),
            "spec.addons[0].name",
        ),
        (
            "add-on twice",
            "/spec/addons",
            json!([{"name": "cilium"}, {"name": "cilium"}]),
            "spec.addons",
        ),
    ]
}

/// The API server's refusal of `object`, as text.
async fn refusal(api: &Api<DynamicObject>, object: &Value) -> anyhow::Result<Option<String>> {
    let object: DynamicObject = serde_json::from_value(object.clone())?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 422 => Ok(Some(e.message)),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn each_bad_field_is_refused_by_the_api_server_and_by_the_shared_validation()
-> anyhow::Result<()> {
    let (env, client) = setup().await?;
    let ns = env.namespace(&client, "rules").await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, &ns, &ApiResource::erase::<KaasCluster>(&()));

    let good: KaasCluster = serde_json::from_value(valid())?;
    let errs = api::validation::validate_kaas_cluster_spec(&good.spec);
    assert!(errs.is_empty(), "the valid cluster is not: {errs:?}");
    assert_eq!(
        refusal(&api, &valid()).await?,
        None,
        "the valid cluster was refused"
    );

    let mut failures = Vec::new();
    for (i, (what, pointer, value, field)) in bad_creates().into_iter().enumerate() {
        let mut object = valid();
        set(&mut object, pointer, value);
        object["metadata"]["name"] = json!(format!("bad-{i}"));
        let cluster: KaasCluster = serde_json::from_value(object.clone())?;
        let shared = api::validation::validate_kaas_cluster_spec(&cluster.spec);
        if !shared.iter().any(|e| e.field.starts_with(field)) {
            failures.push(format!(
                "{what}: the shared validation does not name {field}: {shared:?}"
            ));
        }
        match refusal(&api, &object).await? {
            None => failures.push(format!("{what}: the API server accepted it")),
            Some(msg) if !msg.contains(field) => failures.push(format!(
                "{what}: the API server's refusal does not name {field}: {msg}"
            )),
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn immutable_fields_are_kept_by_the_api_server_and_by_the_shared_validation()
-> anyhow::Result<()> {
    let (env, client) = setup().await?;
    let ns = env.namespace(&client, "immutable").await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, &ns, &ApiResource::erase::<KaasCluster>(&()));
    let created = api
        .create(&PostParams::default(), &serde_json::from_value(valid())?)
        .await?;
    let old: KaasCluster = serde_json::from_value(serde_json::to_value(&created)?)?;
    let mut failures = Vec::new();
    for (pointer, value, field) in [
        (
            "/spec/providerClassName",
            json!("hetzner"),
            "spec.providerClassName",
        ),
        (
            "/spec/clusterStack/name",
            json!("other"),
            "spec.clusterStack.name",
        ),
        ("/spec/network/mtu", json!(1450), "spec.network"),
        (
            "/spec/network/podCIDRs",
            json!(["172.18.0.0/16"]),
            "spec.network",
        ),
    ] {
        let mut object = serde_json::to_value(&created)?;
        set(&mut object, pointer, value);
        let new: KaasCluster = serde_json::from_value(object.clone())?;
        let shared = api::validation::validate_kaas_cluster(
            &new,
            Some(&Previous::from(&old)),
            &Catalog::default(),
        )
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
        if !shared
            .iter()
            .any(|e| e.field == field && e.kind == api::validation::FieldErrorKind::Forbidden)
        {
            failures.push(format!(
                "{pointer}: the shared validation does not forbid {field}: {shared:?}"
            ));
        }
        let object: DynamicObject = serde_json::from_value(object)?;
        match api.replace("valid", &PostParams::default(), &object).await {
            Ok(_) => failures.push(format!("{pointer}: the API server accepted the change")),
            Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains(field) => {
                assert!(e.message.contains("immutable"), "{}", e.message);
            }
            Err(e) => failures.push(format!("{pointer}: {e}")),
        }
    }
    // What may change does.
    let mut object = serde_json::to_value(&created)?;
    set(&mut object, "/spec/workers/0/replicas", json!(5));
    api.replace(
        "valid",
        &PostParams::default(),
        &serde_json::from_value(object)?,
    )
    .await?;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn the_other_kinds_rules_about_one_object_are_checked_by_the_api_server() -> anyhow::Result<()>
{
    let (env, client) = setup().await?;
    let ns = env.namespace(&client, "kinds").await?;
    let resource = |kind: &str| -> ApiResource {
        match kind {
            "ProviderClass" => ApiResource::erase::<api::v1beta1::ProviderClass>(&()),
            "ClusterStack" => ApiResource::erase::<api::v1beta1::ClusterStack>(&()),
            "StackRollout" => ApiResource::erase::<api::v1beta1::StackRollout>(&()),
            _ => ApiResource::erase::<api::install::v1alpha1::KaasOperator>(&()),
        }
    };
    let class = json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "ProviderClass",
        "metadata": {"name": format!("{ns}-class")},
        "spec": {"controller": "kaas.scs.community/docker"}});
    let stack = json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "ClusterStack",
        "metadata": {"name": format!("{ns}-stack")},
        "spec": {"provider": "docker", "name": "scs", "version": "1.0.0", "kubernetesVersions": ["1.34.1"],
                 "source": {"oci": {"repository": "registry.example.com/scs", "digest": format!("sha256:{}", "a".repeat(64))}}}});
    let rollout = json!({"apiVersion": "kaas.scs.community/v1beta1", "kind": "StackRollout",
        "metadata": {"name": "r", "namespace": ns},
        "spec": {"clusterStack": {"name": "scs", "version": "1.0.1"}, "waves": [{"name": "canary"}]}});
    let operator = json!({"apiVersion": "operator.kaas.scs.community/v1alpha1", "kind": "KaasOperator",
        "metadata": {"name": format!("{ns}-op")},
        "spec": {"provider": "docker", "version": "0.2.0"}});

    let cases: Vec<(&Value, &str, Value, &str)> = vec![
        (
            &class,
            "/spec/controller",
            json!("docker"),
            "spec.controller",
        ),
        (&stack, "/spec/version", json!("1.0"), "spec.version"),
        (
            &stack,
            "/spec/kubernetesVersions",
            json!(["1.34"]),
            "spec.kubernetesVersions[0]",
        ),
        (
            &stack,
            "/spec/source",
            json!({"local": {"path": "/stacks"}, "oci": stack["spec"]["source"]["oci"]}),
            "spec.source",
        ),
        (
            &stack,
            "/spec/source/oci/digest",
            json!("sha256:abc"),
            "spec.source.oci.digest",
        ),
        (&rollout, "/spec/waves", json!([]), "spec.waves"),
        (
            &rollout,
            "/spec/waves",
            json!([{"name": "a"}, {"name": "a"}]),
            "spec.waves",
        ),
        (
            &rollout,
            "/spec/waves/0/maxConcurrent",
            json!(0),
            "spec.waves[0].maxConcurrent",
        ),
        (&operator, "/spec/replicas", json!(11), "spec.replicas"),
    ];
    let mut failures = Vec::new();
    for (i, (base, pointer, value, field)) in cases.into_iter().enumerate() {
        let mut object = base.clone();
        object["metadata"]["name"] = json!(format!("{ns}-bad-{i}"));
        set(&mut object, pointer, value);
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let api: Api<DynamicObject> = if kind == "StackRollout" {
            Api::namespaced_with(client.clone(), &ns, &resource(&kind))
        } else {
            Api::all_with(client.clone(), &resource(&kind))
        };
        match refusal(&api, &object).await? {
            None => failures.push(format!("{kind} {pointer}: accepted")),
            Some(msg) if !msg.contains(field) => {
                failures.push(format!("{kind} {pointer}: does not name {field}: {msg}"))
            }
            Some(_) => {}
        }
    }
    // Immutable: a class's controller, a published release.
    for (base, pointer, value, field) in [
        (
            &class,
            "/spec/controller",
            json!("kaas.scs.community/openstack"),
            "spec.controller",
        ),
        (
            &stack,
            "/spec/kubernetesVersions",
            json!(["1.34.2"]),
            "spec",
        ),
        (
            &operator,
            "/spec/provider",
            json!("openstack"),
            "spec.provider",
        ),
    ] {
        let kind = base["kind"].as_str().unwrap_or_default().to_string();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(&kind));
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(base.clone())?,
            )
            .await?;
        let mut object = serde_json::to_value(&created)?;
        set(&mut object, pointer, value);
        let name = base["metadata"]["name"].as_str().unwrap_or_default();
        match api
            .replace(
                name,
                &PostParams::default(),
                &serde_json::from_value(object)?,
            )
            .await
        {
            Err(kube::Error::Api(e))
                if e.code == 422
                    && e.message.contains(field)
                    && e.message.contains("immutable") => {}
            other => failures.push(format!("{kind} {pointer}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
