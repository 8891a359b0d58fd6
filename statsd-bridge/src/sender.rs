//! The sender thread: drains the queue into packets, runs periodic flushes, and owns
//! the socket (a cadence [`MetricSink`], one `emit` per datagram).

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cadence::MetricSink;

use crate::config::Config;
use crate::pipe::Pipe;
use crate::render::SeriesLine;
use crate::stats::DropReason;

/// How long a failed socket is left alone before it is opened again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The thread's body: one cycle per wake-up, until `stop`.
pub(crate) fn run(pipe: &Arc<Pipe>, config: &Arc<Config>) {
    let mut out = Sender::new(pipe, config);
    loop {
        let (ticket, flush_asked) = pipe.cycle_start();
        // Acquire: pairs with the Release in `stop_thread`, so this cycle drains
        // everything queued before the stop was asked for.
        let stopping = pipe.stop.load(std::sync::atomic::Ordering::Acquire);
        out.drain();
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
pub(crate) struct Sender {
    pipe: Arc<Pipe>,
    config: Arc<Config>,
    packet: String,
    /// Lines in `packet`.
    lines: u64,
    sink: Option<Box<dyn MetricSink + Send>>,
    /// When to try opening the socket again after a failure.
    reconnect_at: Option<Instant>,
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
        }
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
        let mut sources = pipe.periodic.lock();
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        sources.retain_mut(|source| {
            if force || source.due(now) {
                // A source is user code: one that panics is dropped, and the thread
                // goes on serving the queue and the other sources.
                let ran = panic::catch_unwind(AssertUnwindSafe(|| source.run(self, now)));
                if ran.is_err() {
                    return false;
                }
            }
            next = Some(next.map_or(source.next_due(), |n| n.min(source.next_due())));
            true
        });
        next
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn dropped(&self, reason: DropReason, lines: u64) {
        self.pipe.counts.dropped(reason, lines);
    }

    /// Appends one line (two with `zero_first`), sending the packet first if the line
    /// would not fit. The two lines of a negative gauge always share a packet, so
    /// they arrive in order.
    pub(crate) fn add(&mut self, line: &SeriesLine, zero_first: bool, value: &str) {
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
    pub(crate) fn send(&mut self) {
        if self.lines == 0 {
            return;
        }
        let lines = std::mem::take(&mut self.lines);
        self.connect();
        let sent = match &self.sink {
            Some(sink) => sink.emit(&self.packet).is_ok(),
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
