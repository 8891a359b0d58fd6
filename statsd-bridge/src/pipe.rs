//! One process's pipe: the bounded queue between callers and the sender thread, the
//! thread's life cycle, and the counts of what was sent and dropped.
//!
//! A pipe belongs to one fork generation. A forked child never touches its parent's
//! pipe (whose thread is gone and whose queue a parent thread may have left
//! half-written): it builds its own, see `bridge.rs`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use parking_lot::{Condvar, Mutex};

use crate::agg::{AggKind, AggTable};
use crate::config::{Config, Error};
use crate::periodic::Periodic;
use crate::render::Num;
use crate::rng::random_u64;
use crate::stats::{CacheLine, Counts, DropReason};
use crate::update::Update;

/// One update waiting to be sent: its series (an index into the series table) and
/// its value, formatted.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) series: u32,
    pub(crate) num: Num,
    /// A negative gauge `set`: sent as `0` then the value, because StatsD reads a
    /// leading `-` as a decrement.
    pub(crate) zero_first: bool,
}

impl Entry {
    /// How many StatsD lines this entry becomes.
    pub(crate) fn lines(&self) -> u64 {
        1 + u64::from(self.zero_first)
    }
}

/// The body of a pipe's sender thread.
pub(crate) type SenderBody = fn(&Arc<Pipe>, &Arc<Config>);

thread_local! {
    /// Pushes made by this thread, for spacing out queue-length checks.
    static PUSHES: Cell<u32> = const { Cell::new(0) };
}

/// No thread; the next update starts one.
const IDLE: u8 = 0;
/// A thread runs.
const RUNNING: u8 = 1;
/// No thread, and none starts until `resume`.
const PAUSED: u8 = 2;
/// Starting a thread failed; only `flush`/`resume` try again (an update must not pay
/// for a failing `clone()` every time).
const FAILED: u8 = 3;

#[derive(Debug, Default)]
struct Control {
    /// Flushes asked for, and flushes done: a flush waits until `completed` reaches
    /// the ticket it took.
    requested: u64,
    completed: u64,
    /// The thread saw `stop` and has sent everything.
    stopped: bool,
}

/// Field order and padding keep what callers read at every update (`generation`,
/// `high_water`, `state`: written only when the thread starts or stops) away from
/// what the sender thread writes all the time.
pub(crate) struct Pipe {
    /// The fork generation this pipe serves.
    pub(crate) generation: u64,
    /// Queue length at which a caller wakes the sender before its next tick.
    high_water: usize,
    state: AtomicU8,
    pub(crate) stop: AtomicBool,
    /// Head and tail are padded inside.
    pub(crate) queue: ArrayQueue<Entry>,
    /// A wake-up is on its way; cleared by the sender before it drains.
    wake_pending: CacheLine<AtomicBool>,
    thread: Mutex<Option<Thread>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// The sender thread's body (`sender::run`), given by the bridge: the pipe is
    /// what the sender reads, so it must not name the sender itself.
    body: SenderBody,
    control: Mutex<Control>,
    changed: Condvar,
    pub(crate) periodic: Mutex<Vec<Periodic>>,
    pub(crate) counts: Counts,
    /// This process's aggregated series.
    pub(crate) aggs: AggTable,
}

impl Pipe {
    pub(crate) fn new(generation: u64, config: &Config, body: SenderBody) -> Self {
        let capacity = config.queue_capacity;
        Self {
            generation,
            high_water: (capacity / 2).max(1),
            state: AtomicU8::new(IDLE),
            stop: AtomicBool::new(false),
            queue: ArrayQueue::new(capacity),
            wake_pending: CacheLine(AtomicBool::new(false)),
            thread: Mutex::new(None),
            worker: Mutex::new(None),
            body,
            control: Mutex::new(Control::default()),
            changed: Condvar::new(),
            periodic: Mutex::new(Vec::new()),
            counts: Counts::default(),
            aggs: AggTable::new(config.samples),
        }
    }

    /// Adds a valid update (already scaled) to its series' slot; never blocks.
    #[inline]
    pub(crate) fn aggregate(
        self: &Arc<Self>,
        series: u32,
        kind: AggKind,
        update: Update,
        value: f64,
        config: &Arc<Config>,
    ) {
        match self.aggs.slot(series, kind) {
            Some(slot) => match update {
                Update::Counter(_) => slot.count(value),
                Update::GaugeSet(_) => slot.gauge_set(value),
                Update::GaugeAdd(_) => slot.gauge_add(value),
                Update::Observe(_) => slot.observe(value, random_u64),
            },
            // Unreachable: the series table refuses indices past the slots'.
            None => self.counts.dropped(DropReason::NoSender, 1),
        }
        // Relaxed: as in `push`.
        if self.state.load(Ordering::Relaxed) == IDLE {
            self.try_start(config);
        }
    }

    /// Queues one update; never blocks. A full queue drops it, counted.
    #[inline]
    pub(crate) fn push(self: &Arc<Self>, entry: Entry, config: &Arc<Config>) {
        if self.queue.push(entry).is_err() {
            self.counts.dropped(DropReason::QueueFull, entry.lines());
            self.wake_once();
            return;
        }
        // The queue's length reads the head, which the sender writes at every pop:
        // looked at on one push in 32 per thread only, so that its cache line does not
        // travel to the caller's core at every update.
        if PUSHES.with(|n| {
            let next = n.get().wrapping_add(1);
            n.set(next);
            next % 32 == 0
        }) && self.queue.len() >= self.high_water
        {
            self.wake_once();
        }
        // Relaxed: a stale RUNNING only delays the start to the next update; `start`
        // re-checks under the worker lock.
        if self.state.load(Ordering::Relaxed) == IDLE {
            self.try_start(config);
        }
    }

    /// Wakes the sender unless a wake is on its way: at most one per drain.
    #[inline]
    fn wake_once(&self) {
        if !self.wake_pending.load(Ordering::Relaxed) && !self.wake_pending.swap(true, Ordering::Relaxed) {
            self.wake();
        }
    }

    /// Unparks the sender. Skipped if another caller holds the handle's lock: that
    /// caller is waking it already.
    pub(crate) fn wake(&self) {
        if let Some(thread) = self.thread.try_lock() {
            if let Some(t) = thread.as_ref() {
                t.unpark();
            }
        }
    }

    /// The first update of a process starts the thread; if another caller is already
    /// starting it, this one does not wait.
    #[cold]
    fn try_start(self: &Arc<Self>, config: &Arc<Config>) {
        if let Some(mut worker) = self.worker.try_lock() {
            let _ = self.start_locked(&mut worker, config);
        }
    }

    /// Starts the sender thread unless it runs or the pipe is paused.
    pub(crate) fn start(self: &Arc<Self>, config: &Arc<Config>) -> Result<(), Error> {
        let mut worker = self.worker.lock();
        self.start_locked(&mut worker, config)
    }

    fn start_locked(
        self: &Arc<Self>,
        worker: &mut Option<JoinHandle<()>>,
        config: &Arc<Config>,
    ) -> Result<(), Error> {
        match self.state.load(Ordering::Acquire) {
            RUNNING => return Ok(()),
            PAUSED => return Err(Error::Paused),
            _ => {}
        }
        if let Some(old) = worker.take() {
            // A thread stopped by `pause` has returned already; this only reaps it.
            let _ = old.join();
        }
        self.stop.store(false, Ordering::Relaxed);
        self.control.lock().stopped = false;
        let (pipe, cfg, body) = (Arc::clone(self), Arc::clone(config), self.body);
        let spawned = thread::Builder::new().name("herd-statsd".into()).spawn(move || body(&pipe, &cfg));
        match spawned {
            Ok(handle) => {
                *self.thread.lock() = Some(handle.thread().clone());
                *worker = Some(handle);
                // Release: pairs with the Acquire above in a later `start`.
                self.state.store(RUNNING, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.state.store(FAILED, Ordering::Release);
                Err(Error::Spawn(e))
            }
        }
    }

    /// Whether a sender thread runs.
    pub(crate) fn running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// Sends everything queued before the call, and runs every periodic flush once.
    pub(crate) fn flush(self: &Arc<Self>, config: &Arc<Config>, timeout: Duration) -> Result<(), Error> {
        match self.state.load(Ordering::Acquire) {
            PAUSED => return Err(Error::Paused),
            RUNNING => {}
            _ if self.queue.is_empty() && self.periodic.lock().is_empty() && self.aggs.is_empty() => {
                return Ok(())
            }
            _ => self.start(config)?,
        }
        let deadline = Instant::now() + timeout;
        let mut control = self.control.lock();
        control.requested += 1;
        let ticket = control.requested;
        self.wake();
        while control.completed < ticket {
            if control.stopped {
                return Err(Error::Paused);
            }
            if self.changed.wait_until(&mut control, deadline).timed_out() && control.completed < ticket {
                return Err(Error::Timeout(timeout));
            }
        }
        Ok(())
    }

    /// Called by the sender after each cycle: completes the flushes it had seen
    /// requested when the cycle began.
    pub(crate) fn cycle_done(&self, ticket: u64, stopped: bool) {
        let mut control = self.control.lock();
        control.completed = control.completed.max(ticket);
        control.stopped |= stopped;
        self.changed.notify_all();
    }

    /// The flush ticket to complete in the cycle that starts now.
    pub(crate) fn cycle_start(&self) -> (u64, bool) {
        // Cleared before draining, so an update queued during the drain can wake the
        // next cycle early.
        self.wake_pending.store(false, Ordering::Relaxed);
        let control = self.control.lock();
        (control.requested, control.requested > control.completed)
    }

    /// Flushes, stops the thread and keeps it stopped until [`Pipe::resume`].
    pub(crate) fn pause(&self, timeout: Duration) -> Result<(), Error> {
        let mut worker = self.worker.lock();
        self.state.store(PAUSED, Ordering::Release);
        self.stop_thread(&mut worker, timeout)
    }

    pub(crate) fn resume(self: &Arc<Self>, config: &Arc<Config>) -> Result<(), Error> {
        {
            let _worker = self.worker.lock();
            let _ = self.state.compare_exchange(PAUSED, IDLE, Ordering::AcqRel, Ordering::Acquire);
        }
        self.start(config)
    }

    /// Stops the thread for good (the bridge is being dropped); if it does not stop in
    /// time, it is left to finish on its own.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        let mut worker = self.worker.lock();
        self.state.store(PAUSED, Ordering::Release);
        if self.stop_thread(&mut worker, timeout).is_err() {
            drop(worker.take());
        }
    }

    fn stop_thread(&self, worker: &mut Option<JoinHandle<()>>, timeout: Duration) -> Result<(), Error> {
        let Some(handle) = worker.take() else { return Ok(()) };
        // Release: the sender's final cycle must see everything queued before.
        self.stop.store(true, Ordering::Release);
        self.wake();
        let deadline = Instant::now() + timeout;
        let mut control = self.control.lock();
        while !control.stopped {
            if self.changed.wait_until(&mut control, deadline).timed_out() && !control.stopped {
                *worker = Some(handle);
                return Err(Error::Timeout(timeout));
            }
        }
        drop(control);
        let _ = handle.join();
        *self.thread.lock() = None;
        Ok(())
    }
}
