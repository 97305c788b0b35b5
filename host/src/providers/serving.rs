//! Why an instance cannot serve a phone's admission or a call on its
//! module: the errors of [`super::Providers::ensure_serving`] and
//! [`super::Providers::transform_metadata`].

use crate::plugin::CallError;
use std::time::Duration;

/// Why an instance does not serve (yet), or did not list what was
/// waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotServing {
    /// No instance has that id.
    #[error("no such instance")]
    Unknown,
    /// Its last attempt failed, with this error.
    #[error("{0}")]
    Failed(String),
    /// It has no error, and no module serving it after this wait.
    #[error("still loading after {0:?}")]
    StillLoading(Duration),
    /// It serves, but did not list the stream online before the deadline.
    #[error("not listed online in time")]
    NotListedInTime,
}

/// Why `transform-metadata` gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetadataError {
    /// The instance has no module serving it.
    #[error("provider {0:?} is not serving")]
    NotServing(String),
    /// The call failed (the guest's error, a trap, a limit).
    #[error(transparent)]
    Call(CallError),
    /// The call's thread panicked.
    #[error("call panicked: {0}")]
    Panicked(String),
}
