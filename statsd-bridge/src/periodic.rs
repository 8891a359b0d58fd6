//! Periodic mode: on an interval, a snapshot of a registry (or of anything that
//! produces one) becomes counter deltas and gauge values.
//!
//! Runs on the sender thread, which renders straight into packets: a registry of
//! many series never competes with mirrored updates for room in the queue. A leaf:
//! it hands each line to the caller's `emit`, so it knows nothing of the sender or
//! of the pipe that stores it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::snapshot::SeriesValue;
use herd_core::{LabelSet, Snapshot};

use crate::render::{LineType, Renderer, SeriesLine};

/// Produces the snapshot a periodic flush sends.
pub(crate) type Source = Box<dyn FnMut() -> Snapshot + Send>;

/// One periodic flush: its source, schedule, and what it last sent per series.
pub(crate) struct Periodic {
    interval: Duration,
    next: Instant,
    source: Source,
    series: HashMap<(Arc<str>, Arc<LabelSet>), Last>,
}

/// What was last sent for a series, with its pre-rendered lines.
enum Last {
    Counter { line: SeriesLine, integer: u64, fraction: f64 },
    Gauge { line: SeriesLine },
    Observations { count_line: SeriesLine, sum_line: SeriesLine, count: u64, sum: f64 },
}

impl Last {
    fn new(renderer: &Renderer, name: &str, labels: &LabelSet, value: &SeriesValue) -> Self {
        let line = |suffix: &str, ty| renderer.line(&format!("{name}{suffix}"), labels.pairs(), ty, None);
        match value {
            SeriesValue::Counter(_) => {
                Self::Counter { line: line("_total", LineType::Counter), integer: 0, fraction: 0.0 }
            }
            SeriesValue::Histogram(_) | SeriesValue::Summary(_) => Self::Observations {
                count_line: line("_count", LineType::Counter),
                sum_line: line("_sum", LineType::Counter),
                count: 0,
                sum: 0.0,
            },
            SeriesValue::Gauge(_) | SeriesValue::Unknown(_) => {
                Self::Gauge { line: line("", LineType::Gauge) }
            }
        }
    }

    fn matches(&self, value: &SeriesValue) -> bool {
        matches!(
            (self, value),
            (Self::Counter { .. }, SeriesValue::Counter(_))
                | (Self::Observations { .. }, SeriesValue::Histogram(_) | SeriesValue::Summary(_))
                | (Self::Gauge { .. }, SeriesValue::Gauge(_) | SeriesValue::Unknown(_))
        )
    }

    /// Sends what changed since the last flush: counter and count deltas, sum
    /// deltas, gauge values (every time: a restarted server gets them back).
    fn send(&mut self, value: &SeriesValue, emit: &mut impl FnMut(&SeriesLine, bool, f64)) {
        match (self, value) {
            (Self::Counter { line, integer, fraction }, SeriesValue::Counter(c)) => {
                // A total below the last one means the counter restarted (a process's
                // series left an aggregate): everything it holds now is new.
                let (di, df) = if c.integer < *integer || c.fraction < *fraction {
                    (c.integer, c.fraction)
                } else {
                    (c.integer - *integer, c.fraction - *fraction)
                };
                (*integer, *fraction) = (c.integer, c.fraction);
                let delta = di as f64 + df;
                if delta > 0.0 {
                    emit(line, false, delta);
                }
            }
            (Self::Gauge { line }, SeriesValue::Gauge(v) | SeriesValue::Unknown(v)) => {
                emit(line, *v < 0.0, *v);
            }
            (Self::Observations { count_line, sum_line, count, sum }, value) => {
                let (now_count, now_sum) = match value {
                    SeriesValue::Histogram(h) => (h.count(), h.sum),
                    SeriesValue::Summary(s) => (s.count, s.sum),
                    _ => return,
                };
                let (dc, ds) = if now_count < *count {
                    (now_count, now_sum)
                } else {
                    (now_count - *count, now_sum - *sum)
                };
                (*count, *sum) = (now_count, now_sum);
                if dc > 0 {
                    emit(count_line, false, dc as f64);
                    if ds != 0.0 {
                        emit(sum_line, false, ds);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Periodic {
    pub(crate) fn new(interval: Duration, source: Source) -> Self {
        Self { interval, next: Instant::now() + interval, source, series: HashMap::new() }
    }

    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub(crate) fn next_due(&self) -> Instant {
        self.next
    }

    /// Takes a snapshot and hands each line to send to `emit` (its line, whether a `0`
    /// line goes first, its value); the next run is one interval from `now`.
    pub(crate) fn run(
        &mut self,
        renderer: &Renderer,
        now: Instant,
        mut emit: impl FnMut(&SeriesLine, bool, f64),
    ) {
        self.next = now + self.interval;
        let snapshot = (self.source)();
        for family in &snapshot.families {
            for series in &family.series {
                let key = (Arc::clone(&family.name), Arc::clone(&series.labels));
                let last = self
                    .series
                    .entry(key)
                    .or_insert_with(|| Last::new(renderer, &family.name, &series.labels, &series.value));
                if !last.matches(&series.value) {
                    *last = Last::new(renderer, &family.name, &series.labels, &series.value);
                }
                last.send(&series.value, &mut emit);
            }
        }
    }
}
