//! [`Collector`]: what a snapshot reads families from.

use std::fmt;

use crate::encode::{encode, Format};
use crate::snapshot::{FamilySnapshot, Snapshot};

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

    /// Appends to `out`, in `format`, what [`try_collect`](Collector::try_collect)
    /// collects, families sorted by name: what a `/metrics` endpoint serving this
    /// collector answers ([`MetricsSource::collector`](crate::http::MetricsSource::collector)).
    /// By default, a snapshot collected, sorted and encoded. A collector that can do
    /// better overrides it: herd-mmap's `Aggregator` refills one snapshot kept from
    /// scrape to scrape, so that a scrape allocates nothing that grows with its series
    /// but the body.
    ///
    /// # Errors
    ///
    /// As [`try_collect`](Collector::try_collect); `out` is then left as it was.
    fn try_encode(&self, format: Format, out: &mut Vec<u8>) -> Result<(), CollectError> {
        let mut snapshot = Snapshot::default();
        self.try_collect(&mut snapshot.families)?;
        snapshot.sort();
        encode(&snapshot, format, out);
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
