//! What the standards read from a workload cluster, gathered after the add-on sync: its Nodes
//! and StorageClasses (reads only) and the NetworkPolicy probe, whose objects are created
//! once when missing and whose Jobs are started again only for new release content, so a
//! steady cluster costs reads, never writes. Lists are paged and bounded
//! ([`crate::workload_reads`]).

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::probe::{self, ProbeState};
use super::{NodeFacts, Workload};
use crate::workload_reads;

/// The workload cluster's part of the evidence; `missing` is what the add-on sync found gone
/// and put back (`Kind namespace/name`), `probe_for` the release content digest when the
/// stack declares NetworkPolicy support (the probe runs only then). An error names what could
/// not be read.
pub async fn observe(
    client: &Client,
    missing: &[(String, String)],
    probe_for: Option<&str>,
) -> Result<Workload, String> {
    let nodes = workload_reads::list(
        &Api::<Node>::all(client.clone()),
        "Nodes",
        workload_reads::MAX_NODES,
        |n| {
            let labels = n.metadata.labels.unwrap_or_default();
            NodeFacts {
                name: n.metadata.name.unwrap_or_default(),
                control_plane: labels.contains_key("node-role.kubernetes.io/control-plane"),
                labels: labels.into_iter().collect(),
            }
        },
    )
    .await?;
    let storage_classes = workload_reads::list(
        &Api::<StorageClass>::all(client.clone()),
        "StorageClasses",
        workload_reads::MAX_STORAGE_CLASSES,
        |sc| {
            let default = sc
                .annotations()
                .get("storageclass.kubernetes.io/is-default-class")
                .is_some_and(|v| v == "true");
            (sc.name_any(), default)
        },
    )
    .await?;
    let restored_storage_classes = missing
        .iter()
        .filter_map(|(_, id)| id.strip_prefix("StorageClass "))
        .map(str::to_string)
        .collect();
    let probe = match probe_for {
        Some(digest) => run_probe(client, digest).await.unwrap_or_else(|e| {
            ProbeState::Inconclusive(format!("running the NetworkPolicy probe: {e}"))
        }),
        None => ProbeState::NotStarted,
    };
    Ok(Workload {
        nodes,
        storage_classes,
        restored_storage_classes,
        probe,
    })
}

/// The API of `object`'s kind (namespaced when it has a namespace).
fn api_for(client: &Client, object: &Value) -> Api<DynamicObject> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()).replace("policys", "policies"),
    };
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates `object` unless it exists; returns it as it is now.
async fn ensure(client: &Client, object: &Value) -> Result<Value, kube::Error> {
    let api = api_for(client, object);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(found) = api.get_opt(name).await? {
        return Ok(serde_json::to_value(found).unwrap_or_default());
    }
    let new: DynamicObject =
        serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &new).await {
        Ok(created) => Ok(serde_json::to_value(created).unwrap_or_default()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(object.clone()),
        Err(e) => Err(e),
    }
}

/// The Job `name` when it probed `digest`; one left from other content is deleted (and
/// started again on a later reconcile).
async fn current_job(
    client: &Client,
    name: &str,
    digest: &str,
) -> Result<Option<Value>, kube::Error> {
    let template = probe::job(name, digest);
    let api = api_for(client, &template);
    let Some(found) = api.get_opt(name).await? else {
        return Ok(None);
    };
    if found
        .annotations()
        .get(probe::FOR_ANNOTATION)
        .map(String::as_str)
        == Some(digest)
    {
        return Ok(Some(serde_json::to_value(found).unwrap_or_default()));
    }
    api.delete(name, &DeleteParams::background()).await?;
    Ok(None)
}

async fn run_probe(client: &Client, digest: &str) -> Result<ProbeState, kube::Error> {
    for object in probe::fixtures() {
        ensure(client, &object).await?;
    }
    let allowed = match current_job(client, probe::ALLOWED_JOB, digest).await? {
        Some(job) => job,
        None => ensure(client, &probe::job(probe::ALLOWED_JOB, digest)).await?,
    };
    // The denied Job only after the allowed one reached the server: a server not up yet
    // would make it pass for the wrong reason.
    let denied = if probe::job_result(&allowed) == Some(true) {
        match current_job(client, probe::DENIED_JOB, digest).await? {
            Some(job) => Some(job),
            None => Some(ensure(client, &probe::job(probe::DENIED_JOB, digest)).await?),
        }
    } else {
        None
    };
    Ok(probe::read(Some(&allowed), denied.as_ref()))
}
