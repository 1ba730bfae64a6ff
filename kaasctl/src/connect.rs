//! The management cluster's client, for every command that talks to one.

use kube::Client;

use crate::error::Error;

/// A client of the management cluster (KUBECONFIG, else ~/.kube/config, else in-cluster),
/// refused when that cluster is older than the supported minimum ([`api::server_version`]).
pub async fn client() -> Result<Client, Error> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let client = Client::try_from(config).map_err(Error::Kube)?;
    let info = client.apiserver_version().await?;
    api::server_version::check(&info.major, &info.minor, &info.git_version)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(client)
}
