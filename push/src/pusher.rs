//! The pusher: collect, encode into a reused buffer, send with the protocol's retry
//! rules, count and log failures; and the thread that does it on an interval.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herd_core::snapshot::{FamilySnapshot, Snapshot};
use herd_core::{Collector, Counter, Family, Format, Registry};

use crate::http::{self, Failure};
use crate::sink::{PushMethod, Sink, SinkKind};
use crate::{otlp, remote_write, PushError};

/// The name of the failure counter family, as exposed (`_total` included).
pub const FAILURES_METRIC: &str = "herd_push_failures_total";

/// How often and how patiently a failed push is sent again.
///
/// Only what the protocol allows is retried (see [`SinkKind::retries`]), plus a
/// receiver that could not be reached at all. The wait doubles from `first` up to
/// `max`; with the default (4 attempts, 250 ms, 4 s) a push gives up after about
/// 1.75 s of waiting plus the attempts' own time.
///
/// A receiver's `Retry-After` (seconds, or an HTTP date) lengthens the next wait to
/// what it asks. One that asks for more than `max` ends the push at once, as a failed
/// one: coming back earlier than asked would only be refused again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    first: Duration,
    max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { attempts: 4, first: Duration::from_millis(250), max: Duration::from_secs(4) }
    }
}

impl Retry {
    /// `attempts` in all (at least 1), waiting `first`, then twice as long each time,
    /// never more than `max`.
    pub fn new(attempts: u32, first: Duration, max: Duration) -> Self {
        Self { attempts: attempts.max(1), first, max: max.max(first) }
    }

    /// No retry: one attempt.
    pub fn never() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    fn backoff(&self, retry: u32) -> Duration {
        self.first.saturating_mul(1u32 << retry.min(16)).min(self.max)
    }
}

/// herd-push's own metrics: `herd_push_failures_total{sink}`, a counter family in a
/// registry, with a series per sink created at 0.
///
/// Register it in the registry whose values get pushed (or served) so that failures
/// are visible where the rest is: in a master's [`Registry`] over herd-mmap storage,
/// the directory's aggregate carries it. A [`Pusher`] built without one keeps its own
/// in-memory registry and pushes it beside its sources.
#[derive(Clone)]
pub struct PushMetrics {
    failures: Family<Counter, 1>,
}

impl std::fmt::Debug for PushMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushMetrics").finish_non_exhaustive()
    }
}

impl PushMetrics {
    /// Registers `herd_push_failures_total{sink}` in `registry`.
    ///
    /// # Errors
    ///
    /// [`PushError::Registry`] if the name is taken (register it once per registry and
    /// clone the result for every pusher).
    pub fn register(registry: &Registry) -> Result<Self, PushError> {
        let failures = registry
            .counter(FAILURES_METRIC, "Pushes that failed after the retries the protocol allows, per sink.")
            .labels(["sink"])
            .register()?;
        Ok(Self { failures })
    }

    /// The failure counter of `kind`'s pushes.
    pub fn failures(&self, kind: SinkKind) -> Counter {
        self.failures.with_labels([kind.label()]).clone()
    }
}

/// A [`Registry`] as a [`Collector`], so a pusher can push it beside other sources.
struct RegistrySource(Registry);

impl Collector for RegistrySource {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        out.extend(self.0.snapshot().families);
    }
}

/// Builds a [`Pusher`].
#[must_use]
pub struct PusherBuilder {
    sink: Sink,
    sources: Vec<Arc<dyn Collector>>,
    metrics: Option<PushMetrics>,
    retry: Retry,
    timeout: Duration,
}

impl std::fmt::Debug for PusherBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherBuilder")
            .field("sink", &self.sink)
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl PusherBuilder {
    /// Adds a source: any [`Collector`], such as herd-mmap's `Aggregator` for every
    /// process of a metrics directory.
    pub fn collector(mut self, source: Arc<dyn Collector>) -> Self {
        self.sources.push(source);
        self
    }

    /// Adds a registry as a source.
    pub fn registry(self, registry: &Registry) -> Self {
        self.collector(Arc::new(RegistrySource(registry.clone())))
    }

    /// Where `herd_push_failures_total` lives (see [`PushMetrics`]); the caller makes
    /// sure a source carries it. Without this, the pusher keeps its own registry and
    /// pushes it too.
    pub fn metrics(mut self, metrics: PushMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The retry policy (default: [`Retry::default`]).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The bound on connecting, sending and reading the answer, each (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The pusher. Nothing is sent yet.
    ///
    /// # Errors
    ///
    /// [`PushError::Registry`] if the pusher's own registry cannot register its
    /// failure counter (it cannot, in practice).
    pub fn build(mut self) -> Result<Pusher, PushError> {
        let metrics = match self.metrics {
            Some(metrics) => metrics,
            None => {
                let own = Registry::new();
                let metrics = PushMetrics::register(&own)?;
                self = self.registry(&own);
                metrics
            }
        };
        let failures = metrics.failures(self.sink.kind);
        Ok(Pusher {
            sink: self.sink,
            sources: self.sources,
            failures,
            retry: self.retry,
            timeout: self.timeout,
            body: Vec::new(),
            compressed: Vec::new(),
            scratch: Vec::new(),
            families: Vec::new(),
            failing: false,
            started: SystemTime::now(),
        })
    }
}

/// Pushes the aggregate of its sources to one [`Sink`], one push at a time, on the
/// caller's thread; [`spawn`](Pusher::spawn) moves it to a thread of its own.
///
/// Memory is bounded by the largest push: the snapshot of one push, and the encoded
/// body (and its compressed copy for remote write) in buffers reused from push to
/// push.
pub struct Pusher {
    sink: Sink,
    sources: Vec<Arc<dyn Collector>>,
    failures: Counter,
    retry: Retry,
    timeout: Duration,
    body: Vec<u8>,
    compressed: Vec<u8>,
    scratch: Vec<u8>,
    families: Vec<FamilySnapshot>,
    failing: bool,
    started: SystemTime,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("sink", &self.sink)
            .field("failing", &self.failing)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// A pusher to `sink`; add sources with [`PusherBuilder::collector`] or
    /// [`PusherBuilder::registry`].
    pub fn builder(sink: Sink) -> PusherBuilder {
        PusherBuilder {
            sink,
            sources: Vec::new(),
            metrics: None,
            retry: Retry::default(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The sink.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Collects every source and pushes the result, retrying as the protocol allows.
    /// A failure is counted in `herd_push_failures_total{sink}` and logged (a warning
    /// when pushes start failing, an info line when they work again; not at every
    /// failure).
    ///
    /// # Errors
    ///
    /// The last attempt's error: [`PushError::Status`] (the receiver refused),
    /// [`PushError::Io`] (it could not be reached), [`PushError::Collect`] (a source
    /// could not be read; nothing was sent).
    pub fn push(&mut self) -> Result<(), PushError> {
        let result = self.try_push();
        self.record(&result);
        result
    }

    /// Deletes the group from a Pushgateway (`DELETE`; the gateway always answers
    /// 202). Failures are counted and logged like a push's.
    ///
    /// # Errors
    ///
    /// [`PushError::Unsupported`] for another kind of sink; otherwise as
    /// [`push`](Pusher::push).
    pub fn delete(&mut self) -> Result<(), PushError> {
        let Some(path) = self.sink.pushgateway_path() else {
            return Err(PushError::Unsupported { operation: "delete", sink: self.sink.kind.label() });
        };
        let result = self.send("DELETE", &path, &[], false);
        self.record(&result);
        result
    }

    /// Moves the pusher to a thread of its own that pushes every `every` (and at once
    /// when [`PushThread::push_now`] asks), and once more on
    /// [`PushThread::shutdown`].
    ///
    /// # Errors
    ///
    /// [`PushError::Stopped`] if the thread cannot be started.
    pub fn spawn(self, every: Duration) -> Result<PushThread, PushError> {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("herd-push-{}", self.sink.kind.label()))
            .spawn(move || run(self, every, &rx))
            .map_err(|_| PushError::Stopped)?;
        Ok(PushThread { tx, handle: Some(handle) })
    }

    fn record(&mut self, result: &Result<(), PushError>) {
        match result {
            Ok(()) => {
                if self.failing {
                    log::info!("herd-push: pushing to {} works again", self.sink.url());
                }
                self.failing = false;
            }
            Err(e) => {
                self.failures.inc();
                if !self.failing {
                    log::warn!("herd-push: {}", Chain(e));
                }
                self.failing = true;
            }
        }
    }

    fn try_push(&mut self) -> Result<(), PushError> {
        self.families.clear();
        for source in &self.sources {
            source.try_collect(&mut self.families).map_err(PushError::Collect)?;
        }
        merge_families(&mut self.families);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.body.clear();
        match self.sink.kind {
            SinkKind::Pushgateway => {
                let snapshot = Snapshot { families: std::mem::take(&mut self.families) };
                herd_core::encode(&snapshot, Format::Text, &mut self.body);
                self.families = snapshot.families;
                let path = self.sink.pushgateway_path().unwrap_or_default();
                let method = match self.sink.method {
                    PushMethod::Put => "PUT",
                    PushMethod::Post => "POST",
                };
                self.send(
                    method,
                    &path,
                    &[("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    false,
                )
            }
            SinkKind::RemoteWrite => {
                let mut labels = Vec::with_capacity(self.sink.labels.len() + 1);
                if let Some(job) = &self.sink.job {
                    labels.push(("job".to_owned(), job.clone()));
                }
                labels.extend(self.sink.labels.iter().cloned());
                let ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
                remote_write::encode(
                    &self.families,
                    &labels,
                    ms,
                    self.sink.native_histograms,
                    &mut self.body,
                );
                let headers = [
                    ("Content-Type", "application/x-protobuf"),
                    ("Content-Encoding", "snappy"),
                    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                ];
                let path = self.sink.endpoint.path.clone();
                self.send("POST", &path, &headers, true)
            }
            SinkKind::Otlp => {
                let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                let times = otlp::Times {
                    now: nanos(now),
                    start: nanos(self.started.duration_since(UNIX_EPOCH).unwrap_or_default()),
                };
                let service = self.sink.job.as_deref().unwrap_or("herd");
                otlp::encode(
                    &self.families,
                    service,
                    &self.sink.labels,
                    times,
                    self.sink.native_histograms,
                    &mut self.scratch,
                    &mut self.body,
                );
                let path = self.sink.endpoint.path.clone();
                self.send("POST", &path, &[("Content-Type", "application/x-protobuf")], false)
            }
        }
    }

    /// Sends the body (snappy-compressed first when `snappy`), with retries.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        snappy: bool,
    ) -> Result<(), PushError> {
        if snappy {
            self.compressed.resize(snap::raw::max_compress_len(self.body.len()), 0);
            // The block format, as remote write requires (the framed one is refused).
            let n = snap::raw::Encoder::new().compress(&self.body, &mut self.compressed).map_err(|e| {
                PushError::Io { url: self.sink.url().to_owned(), source: std::io::Error::other(e) }
            })?;
            self.compressed.truncate(n);
        }
        let body = if snappy { &self.compressed } else { &self.body };
        let url = &self.sink.endpoint.url;
        let mut attempt = 0;
        loop {
            let (error, asked) =
                match http::send(&self.sink.endpoint, method, path, headers, body, self.timeout) {
                    Ok(reply) if (200..300).contains(&reply.status) => return Ok(()),
                    Ok(reply) => {
                        let retry = self.sink.kind.retries(reply.status);
                        let e = PushError::Status {
                            url: url.clone(),
                            status: reply.status,
                            body: reply.summary(),
                        };
                        if !retry {
                            return Err(e);
                        }
                        (e, reply.retry_after)
                    }
                    Err(Failure::Io(source)) => (PushError::Io { url: url.clone(), source }, None),
                    Err(Failure::Protocol(reason)) => {
                        return Err(PushError::Response { url: url.clone(), reason })
                    }
                };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(error);
            }
            let wait = match asked {
                // The receiver asks for more patience than the policy has: this push
                // ends here, a counted failure, rather than come back early; the next
                // one comes on the pusher's interval.
                Some(asked) if asked > self.retry.max => return Err(error),
                Some(asked) => asked.max(self.retry.backoff(attempt - 1)),
                None => self.retry.backoff(attempt - 1),
            };
            std::thread::sleep(wait);
        }
    }
}

/// Sorts families by name and merges those of the same name and type (herd's own
/// families, such as `herd_cardinality_overflow`, come from every registry), so no
/// name appears twice in a push.
fn merge_families(families: &mut Vec<FamilySnapshot>) {
    families.sort_by(|a, b| a.name.cmp(&b.name));
    let mut merged: Vec<FamilySnapshot> = Vec::with_capacity(families.len());
    for family in families.drain(..) {
        match merged.last_mut() {
            Some(last) if last.name == family.name && last.kind == family.kind => {
                last.series.extend(family.series)
            }
            _ => merged.push(family),
        }
    }
    *families = merged;
}

/// Prints an error and its sources, each once.
struct Chain<'a>(&'a PushError);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

enum Message {
    Now,
    Stop,
}

/// A [`Pusher`] on its own thread: pushes on an interval, on demand, and once more at
/// shutdown. Nothing here blocks the caller but [`shutdown`](PushThread::shutdown),
/// which waits for the last push.
///
/// Dropped without `shutdown`, the thread ends after its current push, without a
/// final one.
#[derive(Debug)]
pub struct PushThread {
    tx: mpsc::Sender<Message>,
    handle: Option<JoinHandle<Result<(), PushError>>>,
}

impl PushThread {
    /// Asks for a push now, without waiting for it.
    pub fn push_now(&self) {
        let _ = self.tx.send(Message::Now);
    }

    /// Pushes one last time (a batch job's last act), stops the thread and returns
    /// that push's result.
    ///
    /// # Errors
    ///
    /// The final push's error, or [`PushError::Stopped`] if the thread died.
    pub fn shutdown(mut self) -> Result<(), PushError> {
        let _ = self.tx.send(Message::Stop);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(PushError::Stopped),
        }
    }
}

fn run(mut pusher: Pusher, every: Duration, rx: &mpsc::Receiver<Message>) -> Result<(), PushError> {
    let mut next = Instant::now() + every;
    loop {
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(Message::Now) => {
                let _ = pusher.push();
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = pusher.push();
                // The schedule does not drift with the pushes' own time; a push that
                // took longer than the interval is not made up for.
                next += every;
                let now = Instant::now();
                if next < now {
                    next = now + every;
                }
            }
            Ok(Message::Stop) => return pusher.push(),
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
