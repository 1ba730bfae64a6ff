//! Errors of the stack crate. A bad release is described as a list of problems, each naming
//! the file and the field, so a release author fixes everything in one go.

use std::fmt;

/// One thing wrong with a release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// File inside the release (`stack.yaml`, `addons/cilium.yaml`).
    pub file: String,
    /// Field path inside the file (`addons[1].version`), or a line (`line 3`) in a template.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem in `file` at `field`.
    pub fn new(file: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.field, self.message)
        }
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a release could not be loaded, fetched or rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The release's content is wrong; nothing of it may be used.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
    /// Downloaded content does not match its pin (sha256 or digest).
    #[error("{what}: expected {expected}, got {actual}")]
    Integrity {
        /// What was checked.
        what: String,
        /// The pinned value.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// The source could not be reached or read; worth retrying.
    #[error("{0}")]
    Fetch(String),
    /// A signature the operator or the `ClusterStack` requires is missing (`missing`), or
    /// none verifies with the required key.
    #[error("{what}: {message}")]
    Signature {
        /// The release (`repository@digest`) and the field or flag requiring the signature.
        what: String,
        /// What was found.
        message: String,
        /// No signature at all (it may yet be pushed), rather than only wrong ones.
        missing: bool,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// One problem as an error.
    pub fn invalid(file: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![Problem::new(file, field, message)])
    }

    /// A bounded label value for metrics and condition reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "StackInvalid",
            Error::Integrity { .. } => "StackIntegrity",
            Error::Fetch(_) => "StackFetchFailed",
            Error::Io { .. } => "StackIo",
            Error::Signature { missing: true, .. } => "SignatureMissing",
            Error::Signature { missing: false, .. } => "SignatureInvalid",
        }
    }

    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        // A release is signed just after it is pushed: a missing signature may come.
        matches!(
            self,
            Error::Fetch(_) | Error::Io { .. } | Error::Signature { missing: true, .. }
        )
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

impl Error {
    /// The same error with every problem's file placed under folder `prefix` (`base/`), for
    /// a release loaded from inside another.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Error::Invalid(mut problems) => {
                for p in &mut problems {
                    p.file = format!("{prefix}{}", p.file);
                }
                Error::Invalid(problems)
            }
            other => other,
        }
    }
}
