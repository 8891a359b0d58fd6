//! [`Collector`]: what a snapshot reads families from.

use std::fmt;

use crate::snapshot::FamilySnapshot;

/// Produces families for a snapshot: the registry's own families, callback metrics, or
/// anything else that can report values (a directory of worker files, say).
pub trait Collector: Send + Sync + 'static {
    /// Appends this collector's families to `out`.
    fn collect(&self, out: &mut Vec<FamilySnapshot>);

    /// Like [`collect`](Collector::collect), but says when the collector could not
    /// read its source at all (a metrics directory that cannot be listed, say), so that
    /// a `/metrics` endpoint answers with an error rather than a body that silently
    /// lacks series. A partial read that the collector reports in its own families is
    /// not an error. By default, `collect` and `Ok`.
    ///
    /// # Errors
    ///
    /// [`CollectError`] saying, in one line, why nothing could be collected.
    fn try_collect(&self, out: &mut Vec<FamilySnapshot>) -> Result<(), CollectError> {
        self.collect(out);
        Ok(())
    }
}

/// Why a [`Collector`] could not collect anything: one line, for a scrape's error
/// response and a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectError {
    message: String,
}

impl CollectError {
    /// An error with this one-line message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into().replace(['\n', '\r'], " ") }
    }
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CollectError {}
