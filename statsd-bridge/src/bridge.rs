//! The bridge: a handle on one process's pipe (rebuilt in forked children), the
//! [`Observer`] that adapters call, and the series observers it hands out.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herd_core::{
    Collector, Family, FamilyDesc, LabelSet, MetricKind, Observer, Registry, SeriesObserver, Snapshot,
};
use once_cell::race::OnceBox;

use crate::agg::AggKind;
use crate::config::{
    resolve_udp, Aggregation, Config, Error, Mirror, ObserveAs, SinkFactory, StatsdBuilder, Target,
    DEFAULT_MAX_PACKETS_PER_SECOND, DEFAULT_UDP_PACKET_SIZE, DEFAULT_UNIX_PACKET_SIZE, MAX_PACKET_SIZE,
};
use crate::mirrored::Mirrored;
use crate::periodic::Periodic;
use crate::pipe::{Entry, Pipe};
use crate::render::{LineType, Num, Renderer};
use crate::rng::random_u32;
use crate::sender;
use crate::stats::{Counts, DropReason, SelfMetrics, Stats, StatsSource};
use crate::table::SeriesTable;
use crate::update::Update;

/// How many nested forks below the building process get a pipe of their own.
const GENERATIONS: usize = 8;

/// Sends herd's metrics as StatsD or DogStatsD lines, without ever blocking the
/// caller.
///
/// Cheap to clone (clones share everything). Implements [`Observer`], so an adapter
/// that accepts an `Arc<dyn Observer>` mirrors its series through it; for families of
/// your own, [`StatsdBridge::mirror`] wraps a handle so its updates are mirrored too;
/// [`StatsdBridge::flush_every`] sends a registry periodically instead (or as well).
///
/// Each process has its own sender thread and socket, started with its first update;
/// see the crate documentation for forks, queueing and drops.
#[derive(Clone)]
pub struct StatsdBridge {
    shared: Arc<Shared>,
}

impl fmt::Debug for StatsdBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsdBridge").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

/// State shared by every clone of a bridge and every series observer it made.
pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    /// The fork generation of the process that built the bridge.
    base_generation: u64,
    /// One pipe per fork generation, created on first use in that generation: index
    /// 0 serves the building process, 1 its children, 2 their children.
    slots: [OnceBox<Arc<Pipe>>; GENERATIONS],
    /// Lines dropped in processes too many forks down to have a slot.
    orphaned: AtomicU64,
}

impl Shared {
    /// This process's pipe: one relaxed load to learn the generation, one acquire
    /// load to find its pipe, and only in a fresh child an allocation to make it.
    #[inline]
    pub(crate) fn pipe(&self) -> Option<&Arc<Pipe>> {
        let generation = herd_prefork::fork_generation();
        let slot = self.slots.get(generation.wrapping_sub(self.base_generation) as usize)?;
        Some(slot.get_or_init(|| Box::new(Arc::new(Pipe::new(generation, &self.config, sender::run)))))
    }

    fn pipe_or_err(&self) -> Result<&Arc<Pipe>, Error> {
        self.pipe().ok_or(Error::ForkDepth)
    }
}

impl StatsSource for Shared {
    fn stats(&self) -> Stats {
        let orphaned = self.orphaned.load(Ordering::Relaxed);
        match self.pipe() {
            Some(pipe) => pipe.counts.read(pipe.queue.len(), orphaned),
            None => Counts::default().read(0, orphaned),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let generation = herd_prefork::fork_generation();
        for slot in &mut self.slots {
            let Some(pipe) = slot.get() else { continue };
            if pipe.generation == generation {
                // Sends what is queued; bounded, so a stuck socket cannot hang exit.
                pipe.shutdown(self.config.flush_timeout);
            } else {
                // An ancestor's pipe, copied by fork(): its thread does not exist
                // here, its queue may be half-written by a thread that was mid-push,
                // and its join handle names a thread of another process. Leak it
                // untouched: one extra reference keeps it from ever being dropped.
                std::mem::forget(Arc::clone(pipe));
            }
        }
    }
}

impl StatsdBridge {
    /// A bridge sending to a StatsD server over UDP (`"127.0.0.1:8125"`,
    /// `"statsd.internal:8125"`, or a `SocketAddr`), resolved once at build.
    pub fn udp(addr: impl ToString) -> StatsdBuilder {
        StatsdBuilder::new(resolve_udp(&addr.to_string()))
    }

    /// A bridge sending to a Unix datagram socket (the Datadog agent's
    /// `dogstatsd.socket`, say).
    pub fn unix(path: impl Into<PathBuf>) -> StatsdBuilder {
        StatsdBuilder::new(Ok(Target::Unix(path.into())))
    }

    /// A bridge sending through any cadence [`MetricSink`](cadence::MetricSink):
    /// `factory` builds one per process, on its sender thread. Each `emit` is given one
    /// whole packet (lines joined by `\n`), so give an unbuffered sink.
    pub fn sink(factory: SinkFactory) -> StatsdBuilder {
        StatsdBuilder::new(Ok(Target::Sink(factory)))
    }

    fn from_config(config: Config, base_generation: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                base_generation,
                slots: std::array::from_fn(|_| OnceBox::new()),
                orphaned: AtomicU64::new(0),
            }),
        }
    }

    /// This bridge as the observer an adapter takes.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(self.clone())
    }

    /// The series `values` of `family`, whose updates through the returned handle are
    /// also sent (unless the bridge's mirror policy turns the family off).
    ///
    /// Resolve it once and keep it, as with [`Family::with_labels`]: this renders the
    /// series' line.
    pub fn mirror<M: herd_core::metrics::Metric, const N: usize>(
        &self,
        family: &Family<M, N>,
        values: [&str; N],
    ) -> Mirrored<M> {
        let handle = family.with_labels(values).clone();
        let desc = family.desc();
        let labels = LabelSet::new(desc.label_names.iter().map(|n| n.to_string()).zip(values));
        let observer = labels.ok().and_then(|labels| self.series(desc, &labels));
        Mirrored::new(handle, observer)
    }

    /// Every `interval`, sends `source()`'s counters as deltas since the previous
    /// flush (the first flush sends whole totals), gauges as values, and histograms
    /// and summaries as `_count` and `_sum` deltas (counters); nothing is sampled.
    /// Runs on this process's sender thread (started now if need be), and once more
    /// at every [`StatsdBridge::flush`] and when the bridge is dropped.
    ///
    /// Periodic flushes belong to the process that set them up: a forked child
    /// inherits none (so a master that sends the aggregate of its workers does not
    /// have it sent again by each of them).
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if the sender thread cannot start (the flush is kept and runs
    /// once it does), [`Error::ForkDepth`].
    pub fn flush_every(
        &self,
        interval: Duration,
        source: impl FnMut() -> Snapshot + Send + 'static,
    ) -> Result<(), Error> {
        let pipe = self.shared.pipe_or_err()?;
        pipe.periodic.lock().push(Periodic::new(interval, Box::new(source)));
        match pipe.start(&self.shared.config) {
            Ok(()) | Err(Error::Paused) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// [`StatsdBridge::flush_every`] with `registry`'s snapshots.
    ///
    /// # Errors
    ///
    /// As [`StatsdBridge::flush_every`].
    pub fn flush_registry_every(&self, registry: &Registry, interval: Duration) -> Result<(), Error> {
        let registry = registry.clone();
        self.flush_every(interval, move || registry.snapshot())
    }

    /// Sends every update made in this process before the call, and runs every
    /// periodic flush once; waits at most the flush timeout. Call it before a process
    /// exits: `std::process::exit` runs no destructor.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (what was not sent stays queued), [`Error::Paused`],
    /// [`Error::Spawn`], [`Error::ForkDepth`].
    pub fn flush(&self) -> Result<(), Error> {
        self.flush_timeout(self.shared.config.flush_timeout)
    }

    /// [`StatsdBridge::flush`] with its own timeout.
    ///
    /// # Errors
    ///
    /// As [`StatsdBridge::flush`].
    pub fn flush_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.shared.pipe_or_err()?.flush(&self.shared.config, timeout)
    }

    /// Sends what is queued, then stops this process's sender thread until
    /// [`StatsdBridge::resume`]. Meanwhile updates wait in the queue (and are dropped,
    /// counted, once it is full). For a pre-fork master that forks with
    /// `herd_prefork::fork`, which refuses a process with threads: pause, fork, resume.
    /// Forked children start their own sender regardless.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the thread did not stop in time, [`Error::ForkDepth`].
    pub fn pause(&self) -> Result<(), Error> {
        self.shared.pipe_or_err()?.pause(self.shared.config.flush_timeout)
    }

    /// Restarts this process's sender thread after [`StatsdBridge::pause`].
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`], [`Error::ForkDepth`].
    pub fn resume(&self) -> Result<(), Error> {
        self.shared.pipe_or_err()?.resume(&self.shared.config)
    }

    /// Whether this process's sender thread runs now.
    pub fn is_running(&self) -> bool {
        self.shared.pipe().is_some_and(|p| p.running())
    }

    /// What this process has sent and dropped so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The self-metrics, as a collector to register:
    /// `herd_statsd_dropped_total{reason}`, `herd_statsd_sent_lines_total`,
    /// `herd_statsd_sent_packets_total` and the gauge `herd_statsd_queued_lines`.
    pub fn self_metrics(&self) -> Arc<dyn Collector> {
        Arc::new(SelfMetrics { shared: Arc::downgrade(&self.shared) })
    }

    fn series_for<'a>(
        &self,
        name: &str,
        kind: MetricKind,
        unit: Option<&str>,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        mirror: Mirror,
        aggregation: Aggregation,
    ) -> Option<StatsdSeries> {
        let rate = sample_rate(mirror)?;
        let aggregated = rate.is_none() && aggregation == Aggregation::PerInterval;
        let config = &self.shared.config;
        let shape = LineShape::of(name, kind, unit, config.durations, config.values, rate);
        let LineShape { ty, name, scale, rate } = shape;
        let line = config.series.insert(config.renderer.line(&name, labels, ty, rate))?;
        let agg = aggregated.then_some(match kind {
            MetricKind::Counter => AggKind::Counter,
            MetricKind::Histogram | MetricKind::Summary => AggKind::Observations,
            _ => AggKind::Gauge,
        });
        if let (Some(kind), Some(pipe)) = (agg, self.shared.pipe()) {
            // Made now, while resolving, so that an update never allocates in this
            // process (a forked child makes its own at its first update).
            let _ = pipe.aggs.slot(line, kind);
        }
        Some(StatsdSeries {
            shared: Arc::clone(&self.shared),
            line,
            // A rate below 1 scaled to the range of a u32 draw; `as` saturates.
            keep_below: rate.map(|r| (r * 4_294_967_296.0) as u32),
            scale,
            timer: ty == LineType::Timer,
            agg,
        })
    }
}

impl Observer for StatsdBridge {
    fn series(&self, family: &FamilyDesc, labels: &LabelSet) -> Option<Arc<dyn SeriesObserver>> {
        let mirror = (self.shared.config.mirror)(family);
        let aggregation = (self.shared.config.aggregation)(family);
        let series = self.series_for(
            &family.name,
            family.kind,
            family.unit.as_deref(),
            labels.pairs(),
            mirror,
            aggregation,
        )?;
        Some(Arc::new(series))
    }
}

impl StatsdBuilder {
    /// Checks the settings and sets up fork detection. Binds no socket and starts no
    /// thread: each process's sender thread starts with its first update, flush or
    /// periodic flush (so a pre-fork master can build the bridge before forking).
    ///
    /// # Errors
    ///
    /// [`Error::Address`] for a UDP address that does not resolve, [`Error::Config`]
    /// for a setting out of range, [`Error::WatchForks`] if the fork handler cannot be
    /// registered.
    pub fn build(self) -> Result<StatsdBridge, Error> {
        let target = self.target?;
        let default_packet = match target {
            Target::Unix(_) => DEFAULT_UNIX_PACKET_SIZE,
            Target::Udp(_) | Target::Sink(_) => DEFAULT_UDP_PACKET_SIZE,
        };
        let max_packet = self.max_packet.unwrap_or(default_packet);
        if !(64..=MAX_PACKET_SIZE).contains(&max_packet) {
            return Err(Error::Config(format!(
                "max_packet_size {max_packet} is not within 64..={MAX_PACKET_SIZE}"
            )));
        }
        if !(2..=1 << 24).contains(&self.queue_capacity) {
            return Err(Error::Config(format!(
                "queue_capacity {} is not within 2..=16777216",
                self.queue_capacity
            )));
        }
        if self.flush_interval < Duration::from_millis(1) {
            return Err(Error::Config(format!("flush_interval {:?} is below 1 ms", self.flush_interval)));
        }
        if self.send_timeout.is_zero() {
            return Err(Error::Config("send_timeout must not be zero".into()));
        }
        if !(1..=4096).contains(&self.samples) {
            return Err(Error::Config(format!(
                "samples_per_interval {} is not within 1..=4096",
                self.samples
            )));
        }
        let max_pps = self.max_pps.unwrap_or(match target {
            Target::Unix(_) => None,
            Target::Udp(_) | Target::Sink(_) => Some(DEFAULT_MAX_PACKETS_PER_SECOND),
        });
        if let Some((_, value)) = self.tags.iter().find(|(key, _)| key.is_empty()) {
            return Err(Error::Config(format!("the constant tag of value {value:?} has an empty key")));
        }
        let config = Config {
            series: SeriesTable::new(),
            target,
            renderer: Renderer::new(self.style, &self.prefix, &self.tags),
            durations: self.durations,
            values: self.values,
            max_packet,
            queue_capacity: self.queue_capacity,
            flush_interval: self.flush_interval,
            send_timeout: self.send_timeout,
            flush_timeout: self.flush_timeout,
            mirror: self.mirror,
            aggregation: self.aggregation,
            samples: self.samples,
            max_pps,
        };
        let generation = herd_prefork::watch_forks().map_err(Error::WatchForks)?;
        Ok(StatsdBridge::from_config(config, generation))
    }
}

/// The sample rate a series is marked with: `None` if it is not mirrored at all,
/// `Some(None)` if every update is sent.
pub(crate) fn sample_rate(mirror: Mirror) -> Option<Option<f64>> {
    match mirror {
        Mirror::Every => Some(None),
        Mirror::Sampled(r) if r >= 1.0 => Some(None),
        Mirror::Sampled(r) if r > 0.0 => Some(Some(r)),
        _ => None,
    }
}

/// What a family's kind and unit make of its lines: type, name, scale of the values
/// and sample rate (gauges are never sampled).
pub(crate) struct LineShape {
    pub(crate) ty: LineType,
    pub(crate) name: String,
    pub(crate) scale: f64,
    pub(crate) rate: Option<f64>,
}

impl LineShape {
    pub(crate) fn of(
        name: &str,
        kind: MetricKind,
        unit: Option<&str>,
        durations: ObserveAs,
        values: ObserveAs,
        rate: Option<f64>,
    ) -> Self {
        let (ty, name, scale, rate) = match kind {
            MetricKind::Counter => (LineType::Counter, format!("{name}_total"), 1.0, rate),
            MetricKind::Histogram | MetricKind::Summary => {
                let duration = unit == Some("seconds") || name.ends_with("_seconds");
                let how = if duration { durations } else { values };
                let (ty, scale) = match how {
                    ObserveAs::Timer if duration => (LineType::Timer, 1000.0),
                    ObserveAs::Timer => (LineType::Timer, 1.0),
                    ObserveAs::Histogram => (LineType::Histogram, 1.0),
                    ObserveAs::Distribution => (LineType::Distribution, 1.0),
                };
                (ty, name.to_owned(), scale, rate)
            }
            _ => (LineType::Gauge, name.to_owned(), 1.0, None),
        };
        Self { ty, name, scale, rate }
    }
}

/// The observer of one series: its line is rendered, so an update formats one number
/// and queues it.
struct StatsdSeries {
    shared: Arc<Shared>,
    /// The series' line in the series table.
    line: u32,
    /// Sampled series keep an update when a random `u32` is below this.
    keep_below: Option<u32>,
    /// 1000 for durations sent as milliseconds.
    scale: f64,
    /// Timers refuse negative values.
    timer: bool,
    /// Aggregated per interval, in a slot of this kind; `None`: queued per update.
    agg: Option<AggKind>,
}

impl StatsdSeries {
    #[inline]
    fn sampled_out(&self) -> bool {
        self.keep_below.is_some_and(|below| random_u32() >= below)
    }

    #[inline]
    fn send(&self, update: Update) {
        let Some(out) = update.outgoing(self.scale, self.timer) else { return };
        let lines = 1 + u64::from(out.zero_first);
        let Some(pipe) = self.shared.pipe() else {
            self.shared.orphaned.fetch_add(lines, Ordering::Relaxed);
            return;
        };
        if let Some(kind) = self.agg {
            if !(out.valid && out.value.is_finite()) {
                pipe.counts.dropped(DropReason::InvalidValue, 1);
                return;
            }
            pipe.aggregate(self.line, kind, update, out.value, &self.shared.config);
            return;
        }
        match Num::new(out.value, out.signed) {
            Some(num) if out.valid => {
                pipe.push(Entry { series: self.line, num, zero_first: out.zero_first }, &self.shared.config)
            }
            _ => pipe.counts.dropped(DropReason::InvalidValue, lines),
        }
    }
}

impl SeriesObserver for StatsdSeries {
    #[inline]
    fn counter(&self, delta: f64) {
        if delta == 0.0 || self.sampled_out() {
            return;
        }
        self.send(Update::Counter(delta));
    }

    #[inline]
    fn gauge_set(&self, value: f64) {
        self.send(Update::GaugeSet(value));
    }

    #[inline]
    fn gauge_add(&self, delta: f64) {
        self.send(Update::GaugeAdd(delta));
    }

    #[inline]
    fn observe(&self, value: f64) {
        if self.sampled_out() {
            return;
        }
        self.send(Update::Observe(value));
    }
}
