use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock, Cells};
use crate::model::{GaugeMode, MetricKind};
use crate::snapshot::SeriesValue;

/// A value that goes up and down. Starts at 0.
///
/// # Examples
///
/// ```
/// let registry = herd_core::Registry::new();
/// let queue = registry.gauge("queue_depth", "Jobs waiting.").register()?;
/// queue.set(10.0);
/// queue.dec();
/// queue.add(0.5);
/// assert_eq!(queue.get(), 9.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use = "a gauge handle does nothing unless set"]
pub struct Gauge {
    // One cell holding the value as f64 bits.
    cells: Cells<1>,
    // In the most-recent multiprocess modes, a second cell holding the wall-clock
    // nanoseconds of the last write, so an aggregator can tell which process wrote last.
    stamp: Option<Cells<1>>,
}

/// Per-family gauge settings.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GaugeConfig {
    pub(crate) mode: GaugeMode,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        // Relaxed: a gauge is one independent value; last writer wins.
        self.cells.get()[0].store(v.to_bits(), Ordering::Relaxed);
        self.touch();
    }

    #[inline]
    fn touch(&self) {
        if let Some(stamp) = &self.stamp {
            // fetch_max keeps the stamp monotonic when threads race or the clock steps
            // back; the value and its stamp are two stores, so a racing reader may pair
            // a new value with the previous stamp, which is still this process's.
            stamp.get()[0].fetch_max(now_nanos(), Ordering::Relaxed);
        }
    }

    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts 1.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        add_f64(&self.cells.get()[0], v);
        self.touch();
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// Sets the value to the current Unix time in seconds.
    pub fn set_to_current_time(&self) {
        // A clock before 1970 reads as 0 rather than failing.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.set(now);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        load_f64(&self.cells.get()[0], Ordering::Relaxed)
    }
}

impl sealed::Sealed for Gauge {}

impl Metric for Gauge {
    const KIND: MetricKind = MetricKind::Gauge;
    type Config = GaugeConfig;

    fn cell_count(config: &GaugeConfig) -> usize {
        if config.mode.timestamped() {
            2
        } else {
            1
        }
    }

    fn from_block(block: CellBlock, config: &GaugeConfig) -> Option<Self> {
        if block.cells().len() != Self::cell_count(config) {
            return None;
        }
        let stamp = if config.mode.timestamped() { Some(Cells::from_block_at(&block, 1)?) } else { None };
        Some(Self { cells: Cells::from_block_at(&block, 0)?, stamp })
    }

    fn detached(config: &GaugeConfig) -> Self {
        Self { cells: Cells::detached(), stamp: config.mode.timestamped().then(Cells::detached) }
    }

    fn gauge_mode(config: &GaugeConfig) -> GaugeMode {
        config.mode
    }

    fn read(&self) -> SeriesValue {
        SeriesValue::Gauge(self.get())
    }
}

/// Wall-clock nanoseconds since the Unix epoch; 0 for a clock before 1970. Read through
/// the vDSO on Linux, so no system call.
fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_modes_stamp_every_write_and_others_take_one_cell() {
        for mode in GaugeMode::ALL {
            let config = GaugeConfig { mode };
            let want = if mode.timestamped() { 2 } else { 1 };
            assert_eq!(Gauge::cell_count(&config), want, "{mode}");
            assert!(Gauge::from_block(CellBlock::detached(3 - want), &config).is_none(), "{mode}");
            let block = CellBlock::detached(want);
            let gauge = Gauge::from_block(block.clone(), &config).expect("right length");
            gauge.set(2.5);
            gauge.add(1.0);
            assert_eq!(gauge.get(), 3.5);
            if mode.timestamped() {
                let stamp = block.cells()[1].load(Ordering::Relaxed);
                assert!(stamp > 1_600_000_000_000_000_000, "{mode}: stamp {stamp}");
            }
        }
        assert_eq!(GaugeMode::from_name("livesum"), Some(GaugeMode::LiveSum));
        assert_eq!(GaugeMode::from_name("nope"), None);
    }
}
