//! What was sent and what was dropped, and the self-metrics that expose it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use herd_core::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue};
use herd_core::{Collector, LabelSet, MetricKind};

/// Self-metric: lines dropped, by reason (`herd_statsd_dropped_total{reason}`).
pub const DROPPED_METRIC: &str = "herd_statsd_dropped";
/// Self-metric: lines the socket took (`herd_statsd_sent_lines_total`).
pub const SENT_LINES_METRIC: &str = "herd_statsd_sent_lines";
/// Self-metric: datagrams the socket took (`herd_statsd_sent_packets_total`).
pub const SENT_PACKETS_METRIC: &str = "herd_statsd_sent_packets";
/// Self-metric: lines waiting in the queue (`herd_statsd_queued_lines`).
pub const QUEUED_METRIC: &str = "herd_statsd_queued_lines";

/// Why lines were dropped. Every line an update becomes is, in the end, either sent
/// or dropped for exactly one of these reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full when the update was made (the sender thread is behind, or
    /// stuck on a socket that does not take packets).
    QueueFull,
    /// NaN or an infinity, a negative counter increment, or a negative timer.
    InvalidValue,
    /// One line is longer than the largest packet.
    Oversize,
    /// The socket refused the packet (or timed out, or could not be opened).
    SendError,
    /// No sender could serve this process: its thread could not start, or the process
    /// is too many forks away from the bridge's.
    NoSender,
}

impl DropReason {
    /// Every reason, in the order of the `reason` label's documentation.
    pub const ALL: [DropReason; 5] =
        [Self::QueueFull, Self::InvalidValue, Self::Oversize, Self::SendError, Self::NoSender];

    /// The `reason` label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::InvalidValue => "invalid_value",
            Self::Oversize => "oversize",
            Self::SendError => "send_error",
            Self::NoSender => "no_sender",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::QueueFull => 0,
            Self::InvalidValue => 1,
            Self::Oversize => 2,
            Self::SendError => 3,
            Self::NoSender => 4,
        }
    }
}

/// A value alone in its cache line (and the adjacent one, which x86 fetches in
/// pairs), so that writes to it do not evict what other cores read near it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Per-process tallies, updated with relaxed atomics: each is an independent total.
/// Each sits in a cache line of its own: callers write some (`queue_full`), the sender
/// thread others, and a tally must not drag a line between their cores.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    dropped: [CacheLine<AtomicU64>; 5],
    sent_lines: CacheLine<AtomicU64>,
    sent_packets: CacheLine<AtomicU64>,
}

impl Counts {
    #[inline]
    pub(crate) fn dropped(&self, reason: DropReason, lines: u64) {
        if let Some(c) = self.dropped.get(reason.index()) {
            c.fetch_add(lines, Ordering::Relaxed);
        }
    }

    pub(crate) fn sent(&self, lines: u64) {
        self.sent_lines.fetch_add(lines, Ordering::Relaxed);
        self.sent_packets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, queued: usize, orphaned: u64) -> Stats {
        let mut dropped = [0; 5];
        for (d, c) in dropped.iter_mut().zip(&self.dropped) {
            *d = c.load(Ordering::Relaxed);
        }
        dropped[DropReason::NoSender.index()] += orphaned;
        Stats {
            sent_lines: self.sent_lines.load(Ordering::Relaxed),
            sent_packets: self.sent_packets.load(Ordering::Relaxed),
            queued,
            dropped,
        }
    }
}

/// What this process's bridge has sent and dropped so far (see [`DropReason`]).
///
/// Counts are per process: a forked child starts from zero. Lines are StatsD lines:
/// a negative gauge `set` is two (`0`, then the value), every other update one, and a
/// periodic flush of a histogram or summary two (`_count` and `_sum`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lines in datagrams the socket took.
    pub sent_lines: u64,
    /// Datagrams the socket took.
    pub sent_packets: u64,
    /// Lines waiting in the queue now.
    pub queued: usize,
    dropped: [u64; 5],
}

impl Stats {
    /// Lines dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }

    /// Lines dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// The bridge's self-metrics as a [`Collector`]: register it with
/// `registry.register_collector(bridge.self_metrics())`.
///
/// It holds the bridge weakly, so a registry that keeps it does not keep the bridge
/// (and its sender thread) alive; once the bridge is gone it reports nothing.
pub(crate) struct SelfMetrics<S> {
    pub(crate) shared: Weak<S>,
}

/// What [`SelfMetrics`] reads: the bridge's state, which this module does not name
/// (the bridge depends on it, not the reverse).
pub(crate) trait StatsSource {
    /// This process's tallies now.
    fn stats(&self) -> Stats;
}

fn counter(value: u64) -> SeriesValue {
    SeriesValue::Counter(CounterValue { integer: value, ..CounterValue::default() })
}

fn family(name: &str, help: &str, kind: MetricKind, series: Vec<SeriesSnapshot>) -> FamilySnapshot {
    FamilySnapshot { name: Arc::from(name), help: Arc::from(help), unit: None, kind, series }
}

fn series(labels: LabelSet, value: SeriesValue) -> SeriesSnapshot {
    SeriesSnapshot { labels: Arc::new(labels), value, created: None }
}

impl<S: StatsSource + Send + Sync + 'static> Collector for SelfMetrics<S> {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let Some(shared) = self.shared.upgrade() else { return };
        let stats = shared.stats();
        let dropped = DropReason::ALL
            .iter()
            .filter_map(|r| {
                let labels = LabelSet::new([("reason", r.name())]).ok()?;
                Some(series(labels, counter(stats.dropped(*r))))
            })
            .collect();
        out.push(family(
            DROPPED_METRIC,
            "StatsD lines dropped by this process, by reason.",
            MetricKind::Counter,
            dropped,
        ));
        out.push(family(
            SENT_LINES_METRIC,
            "StatsD lines in datagrams the socket took.",
            MetricKind::Counter,
            vec![series(LabelSet::empty(), counter(stats.sent_lines))],
        ));
        out.push(family(
            SENT_PACKETS_METRIC,
            "StatsD datagrams the socket took.",
            MetricKind::Counter,
            vec![series(LabelSet::empty(), counter(stats.sent_packets))],
        ));
        out.push(family(
            QUEUED_METRIC,
            "StatsD lines waiting for the sender thread.",
            MetricKind::Gauge,
            vec![series(LabelSet::empty(), SeriesValue::Gauge(stats.queued as f64))],
        ));
    }
}
