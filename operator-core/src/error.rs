//! The operator's error type: each error knows its category (a bounded metric label and event
//! reason) and whether waiting for a spec change or backing off is the right response.

use crate::provider::ProviderError;

/// What went wrong in one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The provider could not do its part.
    #[error("provider: {0}")]
    Provider(#[from] ProviderError),
    /// An object could not be (de)serialized.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// Something the pipeline needs is missing (an object without a namespace).
    #[error("{0}")]
    Missing(&'static str),
    /// The reconcile did not finish within its deadline (`--reconcile-timeout`).
    #[error("reconcile did not finish within {} s", .0.as_secs())]
    Deadline(std::time::Duration),
}

impl Error {
    /// A bounded name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(e)) if e.code >= 500 => "api_server",
            Error::Kube(kube::Error::Api(_)) => "api_refused",
            Error::Kube(_) => "api_unreachable",
            Error::Provider(e) => e.category(),
            Error::Serialization(_) => "serialization",
            Error::Missing(_) => "missing",
            Error::Deadline(_) => "deadline",
        }
    }

    /// Whether retrying without a change can help.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::Provider(ProviderError::Invalid(_)) | Error::Missing(_)
        )
    }
}
