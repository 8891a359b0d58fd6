//! What can go wrong with a push, as values.

use std::fmt;
use std::io;

use herd_core::{CollectError, RegistryError};

/// Why a push, or setting one up, failed.
///
/// Each variant's `Display` says what failed in one line; where there is an
/// underlying error, [`source`](std::error::Error::source) returns it and `Display`
/// does not repeat it.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// A URL that herd-push cannot use.
    Url {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A label name (a grouping key, an extra label) that the receiver would refuse.
    Label {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The source could not be read at all (a metrics directory that cannot be listed).
    Collect(CollectError),
    /// The receiver could not be reached, or the exchange broke off.
    Io {
        /// The receiver's URL.
        url: String,
        /// What went wrong.
        source: io::Error,
    },
    /// The receiver answered with a status that is not a success.
    Status {
        /// The receiver's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body, on one line (receivers say why there).
        body: String,
    },
    /// The receiver's answer is not HTTP/1.x.
    Response {
        /// The receiver's URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `herd_push_failures_total` could not be registered.
    Registry(RegistryError),
    /// The operation exists only for another kind of sink (`delete` is the
    /// Pushgateway's).
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The sink it was asked of.
        sink: &'static str,
    },
    /// The pusher's thread is gone (it panicked or could not be started).
    Stopped,
}

impl PushError {
    /// The HTTP status of a [`PushError::Status`], else `None`.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { url, reason } => write!(f, "cannot push to {url:?}: {reason}"),
            Self::Label { name, reason } => write!(f, "label name {name:?}: {reason}"),
            Self::Collect(_) => f.write_str("cannot collect the metrics to push"),
            Self::Io { url, .. } => write!(f, "cannot push to {url}"),
            Self::Status { url, status, body } if body.is_empty() => write!(f, "{url} answered {status}"),
            Self::Status { url, status, body } => write!(f, "{url} answered {status}: {body}"),
            Self::Response { url, reason } => write!(f, "{url} gave a bad answer: {reason}"),
            Self::Registry(_) => f.write_str("cannot register herd_push_failures_total"),
            Self::Unsupported { operation, sink } => {
                write!(f, "{operation} is not supported by a {sink} sink")
            }
            Self::Stopped => f.write_str("the push thread has stopped"),
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Collect(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Registry(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RegistryError> for PushError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}
