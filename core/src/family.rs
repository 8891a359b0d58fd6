//! Labelled families: one metric per label set, found without a lock.
//!
//! A family keeps its series in an open-addressing table of write-once slots, sized at
//! registration to twice the cardinality limit. A lookup hashes the label values and
//! probes slots with plain acquire loads: no lock, no reference-count traffic, no
//! allocation once the series exists. Only the first sight of a label set takes the
//! family's insert lock. Slots are never emptied, so a reader that meets an empty slot
//! knows the set is absent; the table is at most half full, so probes stay short and
//! always end.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use once_cell::race::OnceBox;

use crate::collector::Collector;
use crate::desc::FamilyDesc;
use crate::error::ArityError;
use crate::labels::LabelSet;
use crate::metrics::counter::CounterConfig;
use crate::metrics::{Counter, Metric};
use crate::snapshot::{FamilySnapshot, SeriesSnapshot};
use crate::storage::Storage;
use crate::table::{bytes_eq, WriteOnceTable};

/// The label value every label of the overflow series takes.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// The default cardinality limit: series per family before new label sets fold into
/// the overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

pub use crate::table::MAX_CARDINALITY_LIMIT;

/// A metric family with `N` label names fixed at registration.
///
/// [`with_labels`](Family::with_labels) takes exactly `N` values, so a wrong arity does
/// not compile; [`try_with_labels`](Family::try_with_labels) takes a slice for label
/// values known only at run time and returns an error on a wrong arity.
///
/// Label sets beyond the family's cardinality limit share one overflow series, whose
/// every label is [`OVERFLOW_LABEL_VALUE`], and are counted in the registry's
/// `herd_cardinality_overflow_total` self-metric: memory stops growing.
///
/// # Examples
///
/// ```
/// let registry = herd_core::Registry::new();
/// let requests = registry
///     .counter("http_requests_total", "Requests served.")
///     .labels(["method", "status"])
///     .register()?;
/// requests.with_labels(["GET", "200"]).inc();
/// // Cache a child to skip the lookup on a hot path:
/// let ok = requests.with_labels(["GET", "200"]).clone();
/// ok.inc();
/// assert_eq!(requests.with_labels(["GET", "200"]).get(), 2.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Family<M: Metric, const N: usize> {
    core: Arc<FamilyCore<M>>,
}

impl<M: Metric, const N: usize> Clone for Family<M, N> {
    fn clone(&self) -> Self {
        Self { core: self.core.clone() }
    }
}

impl<M: Metric, const N: usize> Family<M, N> {
    pub(crate) fn new(core: Arc<FamilyCore<M>>) -> Self {
        Self { core }
    }

    /// The series for these label values, created on first use.
    #[inline]
    pub fn with_labels(&self, values: [&str; N]) -> &M {
        self.core.get(&values)
    }

    /// The series for label values given as a slice.
    ///
    /// # Errors
    ///
    /// [`ArityError`] when `values.len()` differs from the number of label names.
    pub fn try_with_labels(&self, values: &[&str]) -> Result<&M, ArityError> {
        if values.len() != N {
            return Err(ArityError {
                family: self.core.desc.name.to_string(),
                expected: N,
                got: values.len(),
            });
        }
        Ok(self.core.get(values))
    }

    /// The family's description: name, help, unit, type and label names.
    pub fn desc(&self) -> &FamilyDesc {
        &self.core.desc
    }

    /// How many distinct label sets have a series (the overflow series not included).
    pub fn len(&self) -> usize {
        self.core.series.len()
    }

    /// Whether no label set has been seen yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many lookups were folded into the overflow series.
    pub fn overflowed(&self) -> u64 {
        self.core.health.overflowed.get() as u64
    }
}

impl<M: Metric, const N: usize> fmt::Debug for Family<M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.core.desc.name)
            .field("kind", &self.core.desc.kind)
            .field("series", &self.len())
            .finish()
    }
}

struct Entry<M> {
    hash: u64,
    key: Key,
    labels: Arc<LabelSet>,
    metric: M,
    created: f64,
}

/// The shared state behind a [`Family`] and behind an unlabelled metric.
pub(crate) struct FamilyCore<M: Metric> {
    pub(crate) desc: Arc<FamilyDesc>,
    config: M::Config,
    const_labels: Arc<[(Arc<str>, Box<str>)]>,
    storage: Arc<dyn Storage>,
    hasher: foldhash::fast::RandomState,
    // Its insert lock is taken only when a label set is seen for the first time, and by
    // scrapes.
    series: WriteOnceTable<Entry<M>>,
    overflow: OnceBox<Entry<M>>,
    health: Health,
    created_timestamps: bool,
}

/// A family's own counts of what went wrong: series of the registry's self-metric
/// families (`herd_cardinality_overflow`, `herd_storage_errors`, labelled with this
/// family's name), made when the family is registered, so they are in storage, at 0,
/// before the first thing can go wrong (FamilyParams).
#[derive(Clone, Debug)]
pub(crate) struct Health {
    pub(crate) overflowed: Counter,
    pub(crate) storage_errors: Counter,
}

impl Health {
    /// Counts kept in this process's memory only: for the self-metric families
    /// themselves, and for when those could not be registered.
    pub(crate) fn private() -> Self {
        let config = CounterConfig::default();
        Self { overflowed: Counter::detached(&config), storage_errors: Counter::detached(&config) }
    }
}

pub(crate) struct FamilyParams<M: Metric> {
    pub(crate) desc: Arc<FamilyDesc>,
    pub(crate) config: M::Config,
    pub(crate) const_labels: Arc<[(Arc<str>, Box<str>)]>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) limit: usize,
    pub(crate) created_timestamps: bool,
    pub(crate) health: Health,
}

impl<M: Metric> FamilyCore<M> {
    pub(crate) fn new(p: FamilyParams<M>) -> Self {
        Self {
            desc: p.desc,
            config: p.config,
            const_labels: p.const_labels,
            storage: p.storage,
            hasher: foldhash::fast::RandomState::default(),
            series: WriteOnceTable::new(p.limit),
            overflow: OnceBox::new(),
            health: p.health,
            created_timestamps: p.created_timestamps,
        }
    }

    #[inline]
    pub(crate) fn get(&self, values: &[&str]) -> &M {
        let hash = self.hash(values);
        match self.series.find(hash, |e| e.hash == hash && e.key.matches(values)) {
            Some((_, e)) => &e.metric,
            None => self.insert(values, hash),
        }
    }

    /// Hashes label values with one hasher write per value. `Hash for [&str]` makes
    /// two per value plus one for the count, and each write is a dependent multiply.
    /// foldhash mixes every write's length into the state, so `["ab", "c"]` and
    /// `["a", "bc"]` still hash apart; the count is fixed per family.
    #[inline]
    fn hash(&self, values: &[&str]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in values {
            h.write(v.as_bytes());
        }
        h.finish()
    }

    #[cold]
    fn insert(&self, values: &[&str], hash: u64) -> &M {
        // A caller's set that spells the overflow series (a request path can) *is* the
        // overflow series: a second series with the same labels would be a duplicate.
        let is_overflow_set = !values.is_empty() && values.iter().all(|v| *v == OVERFLOW_LABEL_VALUE);
        if is_overflow_set {
            return self.overflow();
        }
        match self.series.insert(
            hash,
            |e| e.hash == hash && e.key.matches(values),
            || self.entry(values, hash),
        ) {
            Some((_, e)) => &e.metric,
            None => self.overflow(),
        }
    }

    #[cold]
    fn overflow(&self) -> &M {
        self.health.overflowed.inc();
        if let Some(e) = self.overflow.get() {
            return &e.metric;
        }
        // Build it under the insert lock so the storage allocates its cells only once.
        self.series.with_insert_lock(|| {
            let values = vec![OVERFLOW_LABEL_VALUE; self.desc.label_names.len()];
            &self.overflow.get_or_init(|| Box::new(self.entry(&values, 0))).metric
        })
    }

    fn entry(&self, values: &[&str], hash: u64) -> Entry<M> {
        let pairs = self
            .const_labels
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .chain(self.desc.label_names.iter().zip(values).map(|(n, v)| (n.clone(), Box::from(*v))))
            .collect();
        let labels = Arc::new(LabelSet::from_validated(pairs));
        let len = M::cell_count(&self.config);
        let metric =
            self.storage.allocate(&self.desc, &labels, len).ok().and_then(|b| M::from_block(b, &self.config));
        // The storage failed (a full disk, say) or misbehaved: keep the process running on
        // private cells and count it; these writes will not reach other processes.
        let metric = metric.unwrap_or_else(|| {
            self.health.storage_errors.inc();
            M::detached(&self.config)
        });
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        Entry { hash, key: Key::new(values), labels, metric, created }
    }

    fn snapshot(&self, e: &Entry<M>) -> SeriesSnapshot {
        let created = self.created_timestamps && M::KIND != crate::MetricKind::Gauge;
        SeriesSnapshot {
            labels: e.labels.clone(),
            value: e.metric.read(),
            created: created.then_some(e.created),
        }
    }
}

impl<M: Metric> Collector for FamilyCore<M> {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let mut series = Vec::with_capacity(self.series.len() + 1);
        self.series.for_each(|e| series.push(self.snapshot(e)));
        series.extend(self.overflow.get().map(|e| self.snapshot(e)));
        out.push(FamilySnapshot {
            name: self.desc.name.clone(),
            help: self.desc.help.clone(),
            unit: self.desc.unit.clone(),
            kind: M::KIND,
            series,
        });
    }
}

/// A series' label values, stored for the equality check that confirms a hash match:
/// each value's length (a little-endian `u32`), then all the values' bytes, in one
/// allocation.
///
/// One buffer keeps the check to a single pointer chase and usually one cache line,
/// and the inline comparison avoids a `memcmp` call per value; label values are short,
/// so the call's overhead was most of a lookup's time.
struct Key(Box<[u8]>);

impl Key {
    fn new(values: &[&str]) -> Self {
        let total: usize = values.iter().map(|v| 4 + v.len()).sum();
        let mut bytes = Vec::with_capacity(total);
        for v in values {
            // A label value of 4 GiB or more saturates; it could match only another
            // such value of the same bytes, which is harmless.
            bytes.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
        }
        for v in values {
            bytes.extend_from_slice(v.as_bytes());
        }
        Self(bytes.into())
    }

    #[inline]
    fn matches(&self, values: &[&str]) -> bool {
        let Some((lengths, mut rest)) = self.0.split_at_checked(4 * values.len()) else { return false };
        for (len, v) in lengths.chunks_exact(4).zip(values) {
            let len = len.try_into().map_or(u32::MAX, u32::from_le_bytes) as usize;
            match rest.split_at_checked(len) {
                Some((stored, tail)) if bytes_eq(stored, v.as_bytes()) => rest = tail,
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_the_same_values() {
        let key = Key::new(&["ab", "c", "", "a much longer route template/{id}"]);
        assert!(key.matches(&["ab", "c", "", "a much longer route template/{id}"]));
        for other in [
            &["a", "bc", "", "a much longer route template/{id}"][..],
            &["ab", "c", "", "a much longer route template/{iD}"],
            &["ab", "c", "x", "a much longer route template/{id}"],
            &["ab", "c", ""],
            &["ab", "c", "", "a much longer route template/{id}", ""],
        ] {
            assert!(!key.matches(other), "{other:?}");
        }
        assert!(Key::new(&[]).matches(&[]));
    }
}
