//! Exposing herd metrics through a `prometheus_client` registry, so a service that
//! already serves a [`prometheus_client::registry::Registry`] keeps a single `/metrics`.
//!
//! [`PrometheusClientBridge`] wraps a herd [`Registry`] (or any herd [`Collector`]) and
//! implements [`prometheus_client::collector::Collector`]: at every scrape it takes a
//! fresh herd snapshot and writes it through prometheus-client's encoder.
//!
//! # Mapping
//!
//! | herd | prometheus-client |
//! | --- | --- |
//! | counter | `counter`; an integer total is written as an integer, a fractional one as a float |
//! | gauge | `gauge` (float) |
//! | histogram | `histogram`, same buckets, `_sum` and `_count` |
//! | summary | `unknown` families `<name>_sum` and `<name>_count` (and `<name>` for quantiles) |
//! | unknown | `unknown` (float) |
//!
//! - **Summaries.** prometheus-client 0.25 has no summary type (`MetricType` stops at
//!   counter, gauge, histogram, info and unknown). A summary is therefore written as
//!   untyped families whose samples carry exactly the names a summary's would
//!   (`<name>_sum`, `<name>_count`, and `<name>{quantile="…"}` when it has quantiles),
//!   so every query written against the summary keeps working. Only the type metadata
//!   differs (`unknown`), and the unit is kept on the quantile family alone: OpenMetrics
//!   requires a family with a unit to end in it, which `<name>_sum` does not.
//! - **Units.** prometheus-client appends `_<unit>` to the name it is given, and herd
//!   names already end in it, so the suffix is stripped before handing the name over:
//!   `request_seconds` with unit `seconds` becomes name `request` plus
//!   [`Unit::Seconds`], which prometheus-client writes back as `request_seconds` (and
//!   `request_seconds_total` for a counter). A family whose name does not end in its
//!   unit is written without the unit rather than renamed.
//! - **Exemplars.** Counter exemplars are kept. prometheus-client offers no public way
//!   to build a histogram's per-bucket exemplars from existing counts, so histogram
//!   exemplars are dropped.
//! - **HELP** text is escaped here (`\\`, `\n` and `"`, as OpenMetrics requires),
//!   because prometheus-client writes it as given.
//! - Families without series are left out, as herd's own encoders do.
//! - A histogram with a negative bucket bound still gets `_sum` and `_count`:
//!   prometheus-client always writes them, although OpenMetrics forbids `_sum` there.
//!
//! prometheus-client's text output is OpenMetrics; herd's own `Format::Text` (0.0.4) is
//! not available through the bridge.
//!
//! # Examples
//!
//! ```
//! use herd_core::interop::PrometheusClientBridge;
//! use prometheus_client::metrics::counter::Counter as PcCounter;
//!
//! let herd = herd_core::Registry::new();
//! herd.counter("jobs", "Jobs done.").register()?.inc();
//!
//! let mut registry = prometheus_client::registry::Registry::default();
//! registry.register("native", "A native counter", PcCounter::<u64>::default());
//! registry.register_collector(Box::new(PrometheusClientBridge::from(herd.clone())));
//!
//! let mut body = String::new();
//! prometheus_client::encoding::text::encode(&mut body, &registry)?;
//! assert!(body.contains("# TYPE jobs counter\njobs_total 1\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::collector::Collector;
use crate::labels::{escape_help, LabelSet};
use crate::model::MetricKind;
use crate::registry::Registry;
use crate::snapshot::{CounterValue, FamilySnapshot, HistogramValue, SeriesValue};

/// A herd source registered into a `prometheus_client` registry with
/// [`register_collector`](prometheus_client::registry::Registry::register_collector).
///
/// See the [module documentation](self) for how herd types map onto prometheus-client's.
#[derive(Clone)]
pub struct PrometheusClientBridge {
    source: Arc<dyn Collector>,
}

impl PrometheusClientBridge {
    /// Bridges any herd collector (a directory of worker files, process metrics, …).
    /// Its families are written in the order it produces them.
    pub fn new(source: Arc<dyn Collector>) -> Self {
        Self { source }
    }
}

impl From<Registry> for PrometheusClientBridge {
    /// Bridges a herd registry: every scrape writes its current snapshot, with families
    /// sorted by name.
    fn from(registry: Registry) -> Self {
        Self::new(Arc::new(RegistrySource(registry)))
    }
}

impl From<Arc<dyn Collector>> for PrometheusClientBridge {
    fn from(source: Arc<dyn Collector>) -> Self {
        Self::new(source)
    }
}

impl fmt::Debug for PrometheusClientBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusClientBridge").finish_non_exhaustive()
    }
}

/// A [`Registry`] as a [`Collector`]. Private: making `Registry` itself a collector
/// would let a registry be registered into itself, which would recurse forever.
struct RegistrySource(Registry);

impl Collector for RegistrySource {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        out.extend(self.0.snapshot().families);
    }
}

impl prometheus_client::collector::Collector for PrometheusClientBridge {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut families = Vec::new();
        self.source.collect(&mut families);
        for family in families.iter().filter(|f| !f.series.is_empty()) {
            let help = escaped_help(&family.help);
            match family.kind {
                MetricKind::Summary => encode_summary(&mut encoder, family, &help)?,
                kind => encode_plain(&mut encoder, family, kind, &help)?,
            }
        }
        Ok(())
    }
}

/// Writes a counter, gauge, histogram or unknown family.
fn encode_plain(
    encoder: &mut DescriptorEncoder<'_>,
    family: &FamilySnapshot,
    kind: MetricKind,
    help: &str,
) -> fmt::Result {
    let metric_type = match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Histogram => MetricType::Histogram,
        MetricKind::Summary | MetricKind::Unknown => MetricType::Unknown,
    };
    let (name, unit) = split_unit(&family.name, family.unit.as_deref());
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), metric_type)?;
    for series in &family.series {
        // A value of another type than the family's is a collector bug; writing it
        // would make the whole exposition unparseable, so the series is skipped.
        match (kind, &series.value) {
            (MetricKind::Counter, SeriesValue::Counter(c)) => {
                with_labels(&mut metric, &series.labels, |m| write_counter(m, c))?
            }
            (MetricKind::Gauge | MetricKind::Unknown, SeriesValue::Gauge(v) | SeriesValue::Unknown(v)) => {
                with_labels(&mut metric, &series.labels, |m| m.encode_gauge(v))?
            }
            (MetricKind::Histogram, SeriesValue::Histogram(h)) => {
                with_labels(&mut metric, &series.labels, |m| write_histogram(m, h))?
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes a summary as untyped families with a summary's sample names (see the module
/// documentation for why).
fn encode_summary(encoder: &mut DescriptorEncoder<'_>, family: &FamilySnapshot, help: &str) -> fmt::Result {
    let summaries: Vec<_> = family
        .series
        .iter()
        .filter_map(|s| match &s.value {
            SeriesValue::Summary(v) => Some((&s.labels, v)),
            _ => None,
        })
        .collect();
    if summaries.iter().any(|(_, v)| !v.quantiles.is_empty()) {
        let (name, unit) = split_unit(&family.name, family.unit.as_deref());
        let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Unknown)?;
        for (labels, value) in &summaries {
            let pairs: Vec<(&str, &str)> = labels.pairs().collect();
            for &(q, v) in &value.quantiles {
                let set = (pairs.clone(), [("quantile", q)]);
                metric.encode_family(&set)?.encode_gauge(&v)?;
            }
        }
    }
    let sum_name = format!("{}_sum", family.name);
    let mut metric = encoder.encode_descriptor(&sum_name, help, None, MetricType::Unknown)?;
    for (labels, value) in &summaries {
        with_labels(&mut metric, labels, |m| m.encode_gauge(&value.sum))?;
    }
    let count_name = format!("{}_count", family.name);
    let mut metric = encoder.encode_descriptor(&count_name, help, None, MetricType::Unknown)?;
    for (labels, value) in &summaries {
        with_labels(&mut metric, labels, |m| m.encode_gauge(&value.count))?;
    }
    Ok(())
}

/// Runs `write` on an encoder carrying `labels`. A series without labels is written on
/// the family's encoder itself: an empty label set would still produce `{}`.
fn with_labels(
    metric: &mut MetricEncoder<'_>,
    labels: &LabelSet,
    write: impl FnOnce(&mut MetricEncoder<'_>) -> fmt::Result,
) -> fmt::Result {
    if labels.is_empty() {
        return write(metric);
    }
    let pairs: Vec<(&str, &str)> = labels.pairs().collect();
    write(&mut metric.encode_family(&pairs)?)
}

fn write_counter(metric: &mut MetricEncoder<'_>, c: &CounterValue) -> fmt::Result {
    // prometheus-client has no public constructor for its `Exemplar`; a throwaway
    // `CounterWithExemplar` builds one, and only the exemplar is used from it.
    let scratch = c.exemplar.as_ref().map(|e| {
        let labels: Vec<(&str, &str)> = e.labels.pairs().collect();
        // Out-of-range timestamps (negative, NaN) are dropped instead of failing.
        let timestamp = e
            .timestamp
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .and_then(|d| UNIX_EPOCH.checked_add(d));
        let scratch = CounterWithExemplar::<Vec<(&str, &str)>, f64, AtomicU64>::default();
        scratch.inc_by(e.value, Some(labels), timestamp);
        scratch
    });
    let guard = scratch.as_ref().map(|s| s.get().1);
    let exemplar = guard.as_ref().and_then(|g| g.as_ref());
    if c.fraction == 0.0 {
        metric.encode_counter(&c.integer, exemplar)
    } else {
        metric.encode_counter(&c.total(), exemplar)
    }
}

fn write_histogram(metric: &mut MetricEncoder<'_>, h: &HistogramValue) -> fmt::Result {
    // prometheus-client wants per-bucket counts and sums them itself with `+=`, which
    // would panic on overflow in a debug build. Counts are re-derived from a saturating
    // running total so its sum can never overflow.
    let mut buckets = Vec::with_capacity(h.bounds.len() + 1);
    let mut total = 0u64;
    for (i, &bound) in h.bounds.iter().enumerate() {
        let next = total.saturating_add(h.counts.get(i).copied().unwrap_or(0));
        buckets.push((bound, next - total));
        total = next;
    }
    let overflow = h.counts.iter().skip(h.bounds.len()).fold(0u64, |a, &c| a.saturating_add(c));
    let next = total.saturating_add(overflow);
    buckets.push((f64::INFINITY, next - total));
    total = next;
    metric.encode_histogram::<NoLabelSet>(h.sum, total, &buckets, None)
}

/// The name to give prometheus-client, without the `_<unit>` suffix it appends itself,
/// and the unit. A name that does not end in its unit keeps its name and loses the
/// unit, so no series is ever renamed.
fn split_unit<'a>(name: &'a str, unit: Option<&str>) -> (&'a str, Option<Unit>) {
    let Some(unit) = unit.filter(|u| !u.is_empty()) else { return (name, None) };
    match name.strip_suffix(unit).and_then(|n| n.strip_suffix('_')).filter(|n| !n.is_empty()) {
        Some(base) => (base, Some(to_unit(unit))),
        None => (name, None),
    }
}

fn to_unit(unit: &str) -> Unit {
    match unit {
        "amperes" => Unit::Amperes,
        "bytes" => Unit::Bytes,
        "celsius" => Unit::Celsius,
        "grams" => Unit::Grams,
        "joules" => Unit::Joules,
        "meters" => Unit::Meters,
        "ratios" => Unit::Ratios,
        "seconds" => Unit::Seconds,
        "volts" => Unit::Volts,
        other => Unit::Other(other.to_owned()),
    }
}

fn escaped_help(help: &str) -> String {
    let mut out = Vec::with_capacity(help.len());
    escape_help(help, true, &mut out);
    // Escaping only inserts ASCII between characters, so this is always UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports
mod tests {
    use super::*;

    #[test]
    fn unit_suffix_is_split_once() {
        let (name, unit) = split_unit("req_seconds", Some("seconds"));
        assert_eq!((name, unit.as_ref().map(Unit::as_str)), ("req", Some("seconds")));
        let (name, unit) = split_unit("queue_items", Some("items"));
        assert_eq!((name, unit.as_ref().map(Unit::as_str)), ("queue", Some("items")));
        assert_eq!(split_unit("req_ms", Some("seconds")).0, "req_ms");
        assert!(split_unit("req_ms", Some("seconds")).1.is_none());
        assert!(split_unit("xseconds", Some("seconds")).1.is_none());
        assert!(split_unit("_seconds", Some("seconds")).1.is_none());
        assert!(split_unit("req_seconds", Some("")).1.is_none());
    }

    #[test]
    fn help_is_escaped_for_openmetrics() {
        assert_eq!(escaped_help("a \"b\" \\ c\nd é"), "a \\\"b\\\" \\\\ c\\nd é");
    }
}
