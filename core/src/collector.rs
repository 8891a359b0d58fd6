//! [`Collector`]: what a snapshot reads families from.

use std::fmt;
use std::ops::Deref;

use crate::encode::{encode_families, Format};
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

    /// What [`try_collect`](Collector::try_collect) collects, lent for one scrape: by
    /// default collected now into a list the [`Lent`] owns. A collector that keeps its
    /// families from scrape to scrape lends them instead (herd-mmap's `Aggregator`
    /// refills one snapshot in place and lends it, locked, until the `Lent` is
    /// dropped), so that encoding them allocates nothing that grows with the series:
    /// [`try_encode`](Collector::try_encode) and
    /// [`Registry::encode`](crate::Registry::encode) go through here.
    ///
    /// # Errors
    ///
    /// As [`try_collect`](Collector::try_collect).
    fn try_lend(&self) -> Result<Lent<'_>, CollectError> {
        let mut families = Vec::new();
        self.try_collect(&mut families)?;
        Ok(Lent::owned(families))
    }

    /// Appends to `out`, in `format`, what [`try_lend`](Collector::try_lend) lends,
    /// families sorted by name: what a `/metrics` endpoint serving this collector
    /// answers ([`MetricsSource::collector`](crate::http::MetricsSource::collector)).
    ///
    /// # Errors
    ///
    /// As [`try_collect`](Collector::try_collect); `out` is then left as it was.
    fn try_encode(&self, format: Format, out: &mut Vec<u8>) -> Result<(), CollectError> {
        let lent = self.try_lend()?;
        let mut families: Vec<&FamilySnapshot> = lent.families().collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        encode_families(&families, format, out);
        Ok(())
    }
}

/// A collector's families for one scrape ([`Collector::try_lend`]): a list it keeps,
/// borrowed (and held, locked if it is behind a lock, until this is dropped), then a
/// list collected for this scrape alone.
pub struct Lent<'a> {
    kept: Option<Box<dyn Deref<Target = [FamilySnapshot]> + 'a>>,
    owned: Vec<FamilySnapshot>,
}

impl<'a> Lent<'a> {
    /// Families collected for this scrape alone.
    pub fn owned(families: Vec<FamilySnapshot>) -> Self {
        Self { kept: None, owned: families }
    }

    /// Families the collector keeps, borrowed through `kept` (a lock's guard, say),
    /// followed by `owned`.
    pub fn kept(kept: Box<dyn Deref<Target = [FamilySnapshot]> + 'a>, owned: Vec<FamilySnapshot>) -> Self {
        Self { kept: Some(kept), owned }
    }

    /// Every family lent, the kept ones first.
    pub fn families(&self) -> impl Iterator<Item = &FamilySnapshot> {
        self.kept.iter().flat_map(|k| k.iter()).chain(&self.owned)
    }
}

impl fmt::Debug for Lent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lent")
            .field("kept", &self.kept.as_ref().map_or(0, |k| k.len()))
            .field("owned", &self.owned.len())
            .finish()
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
