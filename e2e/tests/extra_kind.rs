//! Adding a kind to what the core writes is one entry in the table of kinds. A test-only
//! provider (the docker provider's rendering, plus one `Kind` in `EXTRA_KINDS`: a watched
//! `PoolCheck` per worker pool, its CRD a stand-in) runs in this process on the real API
//! server. Nothing else names the kind, and the core waits for its CRD, applies one per pool
//! with the cluster's labels and owner, undoes an edit at once (watched: the reconcile is woken
//! by the change and sees the generation moved), removes a dropped pool's, and deletes the rest
//! with the cluster (this API server runs no garbage collector: the core deleted them). That the
//! kind is observed is `operator-core/tests/status.rs`.

use std::time::Duration;

use anyhow::Result;
use api::v1beta1::KaasCluster;
use clap::Parser as _;
use kaas_e2e::wait_for;
use kaas_testenv::TestEnv;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use operator_core::{
    ClusterContext, Extra, Infrastructure, InfrastructureKinds, Kind, Naming, NodeImages,
    ProviderError, Wave,
};
use serde_json::{Value, json};

/// The docker provider with one kind of its own.
struct WithChecks(kaas_provider_docker::Provider);

const CHECK: Kind = Kind {
    api_version: "test.kaas.scs.community/v1",
    kind: "PoolCheck",
    naming: Naming::Pool,
    wave: Wave::Referrer,
    watched: true,
};

impl operator_core::Provider for WithChecks {
    const KINDS: InfrastructureKinds =
        <kaas_provider_docker::Provider as operator_core::Provider>::KINDS;
    // The one line that adds the kind.
    const EXTRA_KINDS: &'static [Kind] = &[CHECK];

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn validate_config(&self, config: Option<&Value>) -> Vec<api::FieldError> {
        self.0.validate_config(config)
    }

    fn node_images(&self, ctx: &ClusterContext<'_>) -> Result<NodeImages, ProviderError> {
        self.0.node_images(ctx)
    }

    fn render(
        &self,
        ctx: &ClusterContext<'_>,
        images: &NodeImages,
    ) -> Result<Infrastructure, ProviderError> {
        let mut infra = self.0.render(ctx, images)?;
        infra.extra = ctx
            .cluster
            .spec
            .workers
            .iter()
            .map(|pool| Extra {
                kind: CHECK.kind,
                pool: Some(pool.name.clone()),
                spec: json!({"minHealthy": pool.replicas}),
            })
            .collect();
        Ok(infra)
    }
}

fn checks(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("test.kaas.scs.community", "v1", "PoolCheck");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "poolchecks");
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Names of the `PoolCheck`s of cluster `c1`.
async fn names(checks: &Api<DynamicObject>) -> Result<Vec<String>> {
    let list = checks
        .list(&ListParams::default().labels("kaas.scs.community/cluster=c1"))
        .await?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

#[tokio::test]
async fn a_providers_own_kind_is_applied_watched_pruned_and_deleted() -> Result<()> {
    let env = TestEnv::shared().await?;
    let client = env.client().await?;
    kaas_e2e::install_crds(&client).await?;
    kaas_testenv::install_crds(
        &client,
        &[kaas_testenv::capi::stand_in_crd(
            CHECK.api_version,
            CHECK.kind,
        )],
    )
    .await?;
    kaas_e2e::docker_class_and_stack(&client, &["1.31.4"]).await?;
    let ns = env.namespace(&client, "extra-kind").await?;
    let args = operator_core::cli::Args::parse_from(
        std::iter::once("kaas-operator-test".to_string())
            .chain(kaas_e2e::operator_args(&[format!("--namespace={ns}")])?),
    );
    let operator = tokio::spawn(operator_core::runtime::run_on(
        WithChecks(kaas_provider_docker::Provider),
        args,
        client.clone(),
    ));

    let clusters: Api<KaasCluster> = Api::namespaced(client.clone(), &ns);
    let cluster: KaasCluster = serde_json::from_value(json!({
        "apiVersion": "kaas.scs.community/v1beta1", "kind": "KaasCluster",
        "metadata": {"name": "c1"},
        "spec": {"providerClassName": "docker", "clusterStack": {"name": "e2e"},
                 "controlPlane": {"replicas": 1},
                 "workers": [{"name": "md-0", "replicas": 2, "machineType": "none"},
                             {"name": "md-1", "replicas": 1, "machineType": "none"}]}}))?;
    clusters
        .patch("c1", &PatchParams::apply("e2e"), &Patch::Apply(&cluster))
        .await?;

    // Applied: one per pool, named, labelled and owned as the entry says.
    let checks = checks(&client, &ns);
    wait_for("a PoolCheck per pool", Duration::from_secs(60), || async {
        Ok((names(&checks).await? == ["c1-md-0", "c1-md-1"]).then_some(()))
    })
    .await?;
    let md0 = checks.get("c1-md-0").await?;
    assert_eq!(md0.data["spec"], json!({"minHealthy": 2}));
    let labels = md0.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kaas.scs.community/pool").map(String::as_str),
        Some("md-0")
    );
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("kaas-operator-docker")
    );
    let owner = &md0.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("KaasCluster", "c1")
    );

    // Watched: an edit by someone else is undone at once (well before the 10-minute resync).
    checks
        .patch(
            "c1-md-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minHealthy": 0}})),
        )
        .await?;
    wait_for("the edit undone", Duration::from_secs(30), || async {
        let spec = checks.get("c1-md-0").await?.data["spec"].clone();
        Ok((spec == json!({"minHealthy": 2})).then_some(()))
    })
    .await?;

    // Pruned: a pool dropped from the spec takes its PoolCheck with it.
    let mut one_pool = cluster.clone();
    one_pool.spec.workers.truncate(1);
    clusters
        .patch(
            "c1",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&one_pool),
        )
        .await?;
    wait_for(
        "md-1's PoolCheck removed",
        Duration::from_secs(30),
        || async { Ok((names(&checks).await? == ["c1-md-0"]).then_some(())) },
    )
    .await?;

    // Deleted with the cluster, by the core (no garbage collector runs here).
    clusters.delete("c1", &DeleteParams::default()).await?;
    wait_for(
        "the cluster and its PoolChecks gone",
        Duration::from_secs(60),
        || async {
            let gone = clusters.get_opt("c1").await?.is_none() && names(&checks).await?.is_empty();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    operator.abort();
    Ok(())
}
