//! Objects read from a YAML file or a folder of them (`-f`), as `kubectl apply -f` reads them:
//! every document of every `.yaml`/`.yml` file, in name order. KaasClusters written as
//! `v1alpha1` are converted as the API server would; kinds other than this project's are
//! skipped (a credentials Secret beside the cluster, for example).

use std::path::{Path, PathBuf};

use api::v1beta1::{ClusterStack, KaasCluster, ProviderClass, StackRollout};
use serde_json::Value;

use crate::error::Error;

/// The project's objects found in the input.
#[derive(Debug, Default)]
pub struct Objects {
    /// KaasClusters, with where each came from (`file: document N`).
    pub clusters: Vec<(String, KaasCluster)>,
    /// ProviderClasses.
    pub classes: Vec<ProviderClass>,
    /// ClusterStacks.
    pub stacks: Vec<ClusterStack>,
    /// StackRollouts.
    pub rollouts: Vec<StackRollout>,
}

/// Reads `path` (a file or a folder).
pub fn read(path: &Path) -> Result<Objects, Error> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut objects = Objects::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| Error::Input {
            file: file.display().to_string(),
            message: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
        for (i, doc) in docs.into_iter().filter(|d| !d.is_null()).enumerate() {
            let at = format!("{}: document {}", file.display(), i + 1);
            add(&mut objects, doc, at)?;
        }
    }
    Ok(objects)
}

fn add(objects: &mut Objects, doc: Value, at: String) -> Result<(), Error> {
    let group = doc["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g)
        .unwrap_or_default();
    if group != api::GROUP {
        return Ok(());
    }
    let bad = |e: String| Error::Input {
        file: at.clone(),
        message: e,
    };
    match doc["kind"].as_str() {
        Some("KaasCluster") => {
            let doc = api::conversion::convert_kaas_cluster(doc, api::conversion::V1BETA1)
                .map_err(|e| bad(e.to_string()))?;
            let cluster = serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?;
            objects.clusters.push((at, cluster));
        }
        Some("ProviderClass") => objects
            .classes
            .push(serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?),
        Some("ClusterStack") => objects
            .stacks
            .push(serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?),
        Some("StackRollout") => objects
            .rollouts
            .push(serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?),
        _ => {}
    }
    Ok(())
}

/// The one KaasCluster of the input, or an error saying there is none or several.
pub fn one_cluster(objects: &Objects, path: &Path) -> Result<(String, KaasCluster), Error> {
    match objects.clusters.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Input {
            file: path.display().to_string(),
            message: "holds no KaasCluster".into(),
        }),
        many => Err(Error::Input {
            file: path.display().to_string(),
            message: format!(
                "holds {} KaasClusters; give one at a time ({})",
                many.len(),
                many.iter()
                    .map(|(at, _)| at.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Reads the PEM private key at `path`.
pub(crate) fn signing_key(
    path: &std::path::Path,
) -> Result<kaas_stack::signature::SigningKey, Error> {
    let pem = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    kaas_stack::signature::SigningKey::from_pem(&pem).map_err(|e| Error::Input {
        file: path.display().to_string(),
        message: format!("the signing key {e}"),
    })
}
