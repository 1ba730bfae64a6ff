//! What can go wrong, each printed as one line naming the file or object and the field.

use std::path::PathBuf;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An input document is not what it claims to be.
    #[error("{file}: {message}")]
    Input {
        /// The file (and document).
        file: String,
        /// What is wrong, with the field.
        message: String,
    },
    /// The objects do not make a cluster (validation, resolution, the provider).
    #[error("{0}")]
    Invalid(String),
    /// A stack release is bad or could not be fetched or pushed.
    #[error("{0}")]
    Stack(#[from] kaas_stack::Error),
    /// The management cluster could not be reached or refused.
    #[error("management cluster: {0}")]
    Kube(#[from] kube::Error),
    /// No kubeconfig for the management cluster.
    #[error("no management cluster: {0} (set KUBECONFIG)")]
    Config(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
