//! herd-metrics: what code records through the [`metrics`] facade (`counter!`,
//! `gauge!`, `histogram!`) lands in a herd [`Registry`](herd_core::Registry), in process
//! memory or, with herd-mmap's storage, in per-process files that one `/metrics`
//! aggregates.
//!
//! [`HerdRecorder`] is a [`metrics::Recorder`]. A facade key (name and labels) is
//! resolved once to a herd family and series; the handle it returns wraps a clone of
//! herd's handle, so a kept `metrics::Counter`'s `increment` is herd's `inc_by` (one
//! atomic add) behind the facade's dynamic call. A `counter!` with labels finds its key
//! in a lock-free cache (write-once slots, acquire loads, no allocation) and only the
//! first sight of a key takes the registration lock.
//!
//! # Examples
//!
//! ```
//! use herd_core::{Format, Registry};
//! use herd_metrics::HerdRecorder;
//!
//! let recorder = HerdRecorder::new(Registry::new())?;
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::counter!("app.cache.hits", "tier" => "l1").increment(3);
//!     metrics::gauge!("queue-depth").set(7.0);
//!     // A description may come after first use.
//!     metrics::describe_counter!("app.cache.hits", "Cache hits.");
//! });
//! let text = String::from_utf8(recorder.encode(Format::Text))?;
//! // herd's own series (`herd_metrics_rejected_total{reason}`, the cardinality and
//! // storage self-metrics of each family, all at 0 here) left out:
//! let ours: Vec<&str> = text.lines().filter(|l| !l.contains("herd_")).collect();
//! assert_eq!(ours, [
//!     "# HELP app_cache_hits_total Cache hits.",
//!     "# TYPE app_cache_hits_total counter",
//!     "app_cache_hits_total{tier=\"l1\"} 3",
//!     "# HELP queue_depth queue-depth (no description given)",
//!     "# TYPE queue_depth gauge",
//!     "queue_depth 7",
//! ]);
//! assert!(text.contains("herd_metrics_rejected_total{reason=\"invalid_name\"} 0\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Mapping rules
//!
//! - **Names**: every character outside `[a-zA-Z0-9_]` becomes `_`; a leading digit
//!   gets a `_` before it ([`names::metric_name`]). Counters are named as herd names
//!   them: the family without `_total`, samples with it. The registry's prefix applies.
//! - **Label keys**: the same characters; `__x` becomes `exported___x`; a name the
//!   family reserves (`le` in histograms, `quantile` in summaries, `pid` in per-process
//!   gauges, a constant label of the registry) becomes `exported_<name>`.
//! - **One name, several label-name sets**: a call whose label names are all among an
//!   existing family's records there, labels it does not give written empty (in
//!   Prometheus an empty label is the same as an absent one). A call with a label name
//!   no family of that name has gets its own family, `<name>_by_<its label names>`.
//!   Declare the label names of such a name ([`Builder::label_names`]) to keep every
//!   set in one family whatever the order of first use; in multi-process mode do, since
//!   each process meets its label sets in its own order.
//! - **Descriptions**: HELP and unit come from `describe_*` whenever it arrives. Before
//!   first use, the family is registered with them; after, [`HerdRecorder::snapshot`],
//!   [`HerdRecorder::collector`] and [`HerdRecorder::describing`] (over herd-mmap's
//!   `Aggregator`) fill them in. A family not described carries HELP
//!   `<facade name> (no description given)`. The unit is written as `# UNIT` only when the
//!   name ends with `_<unit>` (OpenMetrics requires it); the name never changes with
//!   the unit, since a description may come after the name is in use.
//! - **`absolute`**: a herd counter only goes up (and in multi-process mode is a sum
//!   over processes), so `absolute(v)` adds the growth of `v` since the series' last
//!   `absolute` (the first call adds `v`; a smaller `v` is read as the source having
//!   restarted, and adds `v`).
//! - **Histograms** have buckets: [`Builder::buckets`] by name (full, prefix or suffix
//!   [`Matcher`]), Prometheus' default set otherwise; [`Builder::native`] adds native
//!   buckets beside them (quantiles that merge across hosts); [`Builder::summary`]
//!   makes herd's mergeable summaries instead.
//! - **Cardinality**: each family has herd's cap; past it, label sets share the
//!   overflow series and `herd_cardinality_overflow_total{family}` counts them.
//! - **Refused calls** (an empty name, a name another type holds, two label keys that
//!   map to one name, more than [`MAX_LABELS`] labels) record nothing and count in
//!   `herd_metrics_rejected_total{reason}`.
//!
//! # Limitations
//!
//! - Keys are cached up to [`Builder::max_cached_keys`], keys that herd folded into a
//!   family's overflow series included (each use still counts in
//!   `herd_cardinality_overflow_total`); a key past it is resolved on the registration
//!   path at every call, which takes the recorder's lock.
//! - A description that arrives after first use reaches `/metrics` only through the
//!   recorder's [`Described`] wrappers, and, in multi-process mode, only if the
//!   process serving `/metrics` has seen it.
//! - The facade's `Metadata` (level, target, module) is ignored.
#![forbid(unsafe_code)]

/// The crate's README, whose examples are compiled (and run, where they touch no
/// system path) with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod config;
mod family;
mod handles;
pub mod names;
mod recorder;
mod table;

pub use config::{Builder, Matcher};
pub use family::MAX_LABELS;
pub use recorder::{Described, HerdRecorder, InstallError, RegistryCollector, REJECTED_METRIC, UNDESCRIBED};
