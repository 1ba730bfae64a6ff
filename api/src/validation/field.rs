//! Field errors and their collection.

use std::fmt;

/// What kind of problem a field has; the webhook maps it to the API's cause types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The value itself is wrong.
    Invalid,
    /// The value refers to an object that does not exist (yet): a caller whose view of the
    /// cluster may lag behind, such as a watch cache, can wait a moment and judge again.
    NotFound,
    /// The value is well-formed but not allowed now (immutable fields, objects in use,
    /// version moves).
    Forbidden,
}

impl FieldErrorKind {
    /// The Kubernetes `StatusCause` type for this kind of problem.
    pub fn cause_type(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::NotFound => "FieldValueNotFound",
            Self::Forbidden => "FieldValueForbidden",
        }
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, such as `spec.workers[1].replicas`.
    pub field: String,
    /// What is wrong, such as `must be >= 0`.
    pub message: String,
    /// What kind of problem it is.
    pub kind: FieldErrorKind,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one object; never empty when returned as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// Records an invalid value of `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, message, FieldErrorKind::Invalid);
    }

    /// Records that `field` refers to an object that does not exist.
    pub fn not_found(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, message, FieldErrorKind::NotFound);
    }

    /// Records that a change of `field` (or the operation) is not allowed.
    pub fn forbidden(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, message, FieldErrorKind::Forbidden);
    }

    fn push(&mut self, field: impl Into<String>, message: impl Into<String>, kind: FieldErrorKind) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
            kind,
        });
    }

    /// Whether some problem is a reference to an object that does not exist.
    pub fn has_missing_reference(&self) -> bool {
        self.0.iter().any(|e| e.kind == FieldErrorKind::NotFound)
    }

    /// `Ok` when nothing was recorded.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Whether any problem names `field`.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// The field paths named, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }
}
