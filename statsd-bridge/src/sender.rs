//! The sender thread: drains the queue into packets, runs periodic flushes, and owns
//! the socket (a cadence [`MetricSink`], one `emit` per datagram).

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cadence::MetricSink;

use crate::agg::Taken;
use crate::config::Config;
use crate::pipe::Pipe;
use crate::render::{Num, SeriesLine};
use crate::stats::DropReason;

/// How long a failed socket is left alone before it is opened again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Datagrams a paced sender may send at once before it waits.
const BURST: f64 = 32.0;
/// How long the sender waits before it offers a packet again to a socket whose
/// receiver was full (EAGAIN).
const RETRY_AFTER: Duration = Duration::from_micros(500);

/// The thread's body: one cycle per wake-up, until `stop`.
pub(crate) fn run(pipe: &Arc<Pipe>, config: &Arc<Config>) {
    let mut out = Sender::new(pipe, config);
    // The first update started the thread: let its interval aggregate before the
    // first cycle (a flush, pause or stop unparks it at once).
    thread::park_timeout(config.flush_interval);
    loop {
        let (ticket, flush_asked) = pipe.cycle_start();
        // Acquire: pairs with the Release in `stop_thread`, so this cycle drains
        // everything queued before the stop was asked for.
        let stopping = pipe.stop.load(std::sync::atomic::Ordering::Acquire);
        out.drain();
        out.drain_aggregates();
        let next_periodic = out.run_periodic(flush_asked || stopping);
        out.send();
        pipe.cycle_done(ticket, stopping);
        if stopping {
            return;
        }
        let mut wait = config.flush_interval;
        if let Some(due) = next_periodic {
            wait = wait.min(due.saturating_duration_since(Instant::now()));
        }
        thread::park_timeout(wait);
    }
}

/// The packet being built and the socket it goes to.
struct Sender {
    pipe: Arc<Pipe>,
    config: Arc<Config>,
    packet: String,
    /// Lines in `packet`.
    lines: u64,
    sink: Option<Box<dyn MetricSink + Send>>,
    /// When to try opening the socket again after a failure.
    reconnect_at: Option<Instant>,
    /// Pacing: datagrams that may go now, and when that was last topped up.
    credit: f64,
    credited_at: Instant,
}

impl Sender {
    fn new(pipe: &Arc<Pipe>, config: &Arc<Config>) -> Self {
        Self {
            pipe: Arc::clone(pipe),
            config: Arc::clone(config),
            packet: String::with_capacity(config.max_packet),
            lines: 0,
            sink: None,
            reconnect_at: None,
            credit: BURST,
            credited_at: Instant::now(),
        }
    }

    /// Takes every aggregated series' interval and adds its lines.
    fn drain_aggregates(&mut self) {
        let pipe = Arc::clone(&self.pipe);
        let config = Arc::clone(&self.config);
        pipe.aggs.each(|i, slot| {
            let taken = slot.take();
            let Some(line) = config.series.get(i) else { return };
            match taken {
                Taken::Counter(sum) => {
                    if sum > 0.0 {
                        self.add_value(line, false, sum, false);
                    }
                }
                Taken::Gauge { set, add } => {
                    if let Some(v) = set {
                        self.add_value(line, v < 0.0, v, false);
                    }
                    if add != 0.0 {
                        self.add_value(line, false, add, true);
                    }
                }
                Taken::Observations { count, values } => {
                    let kept = values.len() as u64;
                    if kept == 0 {
                        return;
                    }
                    if kept == count {
                        for v in values {
                            self.add_value(line, false, v, false);
                        }
                    } else {
                        let sampled = line.with_rate(kept as f64 / count as f64);
                        for v in values {
                            self.add_value(&sampled, false, v, false);
                        }
                    }
                }
            }
        });
    }

    /// Adds one line of `value` (two with `zero_first`).
    fn add_value(&mut self, line: &SeriesLine, zero_first: bool, value: f64, signed: bool) {
        match Num::new(value, signed) {
            Some(num) => self.add(line, zero_first, num.as_str()),
            None => self.dropped(DropReason::InvalidValue, 1 + u64::from(zero_first)),
        }
    }

    /// Waits, if pacing asks for it, until one more datagram may go.
    fn pace(&mut self) {
        let Some(pps) = self.config.max_pps else { return };
        let rate = f64::from(pps);
        let now = Instant::now();
        self.credit = (self.credit + now.duration_since(self.credited_at).as_secs_f64() * rate).min(BURST);
        self.credited_at = now;
        if self.credit < 1.0 {
            thread::sleep(Duration::from_secs_f64((1.0 - self.credit) / rate));
            let now = Instant::now();
            self.credit += now.duration_since(self.credited_at).as_secs_f64() * rate;
            self.credited_at = now;
        }
        self.credit -= 1.0;
    }

    fn drain(&mut self) {
        let config = Arc::clone(&self.config);
        while let Some(entry) = self.pipe.queue.pop() {
            match config.series.get(entry.series) {
                Some(line) => self.add(line, entry.zero_first, entry.num.as_str()),
                // Unreachable: a series is in the table before any update names it.
                None => self.dropped(DropReason::NoSender, entry.lines()),
            }
        }
    }

    fn run_periodic(&mut self, force: bool) -> Option<Instant> {
        let pipe = Arc::clone(&self.pipe);
        let config = Arc::clone(&self.config);
        let mut sources = pipe.periodic.lock();
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        sources.retain_mut(|source| {
            if force || source.due(now) {
                // A source is user code: one that panics is dropped, and the thread
                // goes on serving the queue and the other sources.
                let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                    source.run(&config.renderer, now, |line, zero_first, value| {
                        self.add_value(line, zero_first, value, false);
                    });
                }));
                if ran.is_err() {
                    return false;
                }
            }
            next = Some(next.map_or(source.next_due(), |n| n.min(source.next_due())));
            true
        });
        next
    }

    fn dropped(&self, reason: DropReason, lines: u64) {
        self.pipe.counts.dropped(reason, lines);
    }

    /// Appends one line (two with `zero_first`), sending the packet first if the line
    /// would not fit. The two lines of a negative gauge always share a packet, so
    /// they arrive in order.
    fn add(&mut self, line: &SeriesLine, zero_first: bool, value: &str) {
        let one = line.len_with(value.len());
        let (len, lines) = if zero_first { (line.len_with(1) + 1 + one, 2) } else { (one, 1) };
        if len > self.config.max_packet {
            self.dropped(DropReason::Oversize, lines);
            return;
        }
        if self.lines > 0 && self.packet.len() + 1 + len > self.config.max_packet {
            self.send();
        }
        if self.lines > 0 {
            self.packet.push('\n');
        }
        line.push_to(&mut self.packet, zero_first, value);
        self.lines += lines;
    }

    /// Sends the packet, if it holds anything.
    fn send(&mut self) {
        if self.lines == 0 {
            return;
        }
        let lines = std::mem::take(&mut self.lines);
        self.connect();
        self.pace();
        let sent = match &self.sink {
            Some(sink) => emit_until(&**sink, &self.packet, self.config.send_timeout),
            None => false,
        };
        if sent {
            self.pipe.counts.sent(lines);
        } else {
            self.pipe.counts.dropped(DropReason::SendError, lines);
        }
        self.packet.clear();
    }

    /// Opens the socket on first use, and again (at most once per
    /// [`RECONNECT_AFTER`]) after it could not be.
    fn connect(&mut self) {
        if self.sink.is_none() && self.reconnect_at.is_none_or(|at| Instant::now() >= at) {
            match self.config.target.connect(self.config.send_timeout) {
                Ok(sink) => {
                    self.sink = Some(sink);
                    self.reconnect_at = None;
                }
                Err(_) => self.reconnect_at = Some(Instant::now() + RECONNECT_AFTER),
            }
        }
    }
}

/// Offers `packet` to `sink` until it takes it: a receiver that is full (EAGAIN on a
/// non-blocking socket) is offered it again every [`RETRY_AFTER`] until `timeout`.
fn emit_until(sink: &dyn MetricSink, packet: &str, timeout: Duration) -> bool {
    // From the first try: a blocking socket's own timeout (UDP) also ends in
    // WouldBlock, and must not be waited out twice.
    let deadline = Instant::now() + timeout;
    loop {
        match sink.emit(packet) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                thread::sleep(RETRY_AFTER.min(deadline - now));
            }
            Err(_) => return false,
        }
    }
}
