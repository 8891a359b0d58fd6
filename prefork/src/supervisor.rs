//! [`Supervisor`]: a pre-fork master that keeps N workers alive on one listener.
//!
//! The master stays single-threaded for its whole life, because it forks again each
//! time a worker dies and [`fork`] refuses a process with threads. So it installs no
//! signal handler (workers start with every disposition at its default, free to
//! install their own runtime's): it blocks SIGTERM, SIGINT and SIGCHLD and takes them
//! with `sigtimedwait`, which also wakes it the moment a worker exits.

use std::fmt::Display;
use std::io;
use std::net::ToSocketAddrs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};

use crate::error::Error;
use crate::listener::Listener;
use crate::sys::{fork, BlockedSignals, Forked};

/// The longest the master sleeps between looks at its workers when nothing wakes it.
const IDLE: Duration = Duration::from_secs(1);
/// How often a graceful stop looks for stragglers when no SIGCHLD wakes it.
const STOP_POLL: Duration = Duration::from_millis(100);

/// A pre-fork master: binds (or inherits) one listener, forks workers that each run
/// the same closure with it, and keeps them alive until SIGTERM or SIGINT.
///
/// # Examples
///
/// ```no_run
/// use std::io::Write;
///
/// // Two processes answer on one port; the master restarts either if it dies and
/// // stops both on SIGTERM.
/// herd_prefork::Supervisor::builder()
///     .workers(2)
///     .listen("127.0.0.1:8080")
///     .run(|worker| -> std::io::Result<()> {
///         let listener = worker.into_listener().into_tcp()?;
///         listener.set_nonblocking(false)?;
///         for stream in listener.incoming() {
///             stream?.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")?;
///         }
///         Ok(())
///     })?;
/// # Ok::<(), herd_prefork::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Supervisor;

impl Supervisor {
    /// A builder with the defaults: one worker per CPU, a 10 s graceful stop, restarts
    /// delayed from 100 ms up to 30 s for workers that die within 1 s of starting.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Settings of a [`Supervisor`]; [`Builder::run`] or [`Builder::start`] starts it.
#[derive(Debug)]
#[must_use]
pub struct Builder {
    workers: usize,
    address: Option<String>,
    listener: Option<Listener>,
    systemd: bool,
    graceful_timeout: Duration,
    first_delay: Duration,
    max_delay: Duration,
    min_uptime: Duration,
    max_age: Option<Duration>,
    reuse_port: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            address: None,
            listener: None,
            systemd: false,
            graceful_timeout: Duration::from_secs(10),
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            min_uptime: Duration::from_secs(1),
            max_age: None,
            reuse_port: false,
        }
    }
}

impl Builder {
    /// How many worker processes to keep running.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The address to bind: `HOST:PORT` or a Unix socket path (`unix:PATH`); see
    /// [`Listener::bind`]. Bound when the supervisor starts.
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// A listener bound already (for instance to print its address first); it wins
    /// over [`listen`](Self::listen).
    pub fn listener(mut self, listener: impl Into<Listener>) -> Self {
        self.listener = Some(listener.into());
        self
    }

    /// Whether to serve on the socket systemd passed (socket activation, see
    /// [`Listener::from_systemd`]) when there is one, rather than bind the address.
    pub fn systemd(mut self, inherit: bool) -> Self {
        self.systemd = inherit;
        self
    }

    /// How long a stop waits for workers to finish after forwarding the signal,
    /// before it kills them (SIGKILL).
    pub fn graceful_timeout(mut self, timeout: Duration) -> Self {
        self.graceful_timeout = timeout;
        self
    }

    /// Crash-loop protection: a worker that dies less than `min_uptime` after it
    /// started is restarted after `first`, then twice as long after each quick death
    /// in a row, up to `max`. A worker that lived longer is restarted at once.
    pub fn backoff(mut self, first: Duration, max: Duration, min_uptime: Duration) -> Self {
        self.first_delay = first;
        self.max_delay = max.max(first);
        self.min_uptime = min_uptime;
        self
    }

    /// Recycles each worker after it has run for `age`: it gets SIGTERM (a graceful
    /// stop) and a fresh process takes its place, as gunicorn's `max_requests` does
    /// for leaks. Each worker's age is spread by up to a tenth so they do not all
    /// restart at once.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// `SO_REUSEPORT` mode: each worker binds a socket of its own at the
    /// [`listen`](Self::listen) address (a TCP one), so each has its own accept queue
    /// and the kernel spreads new connections evenly over them, rather than handing
    /// each to whichever worker asks first. The master holds the port with a socket
    /// that does not listen, so no connection waits on it. A worker that dies drops
    /// the connections waiting in its queue.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Starts the workers and supervises them until SIGTERM or SIGINT, then stops them
    /// (see [`Running::wait`]). In each worker, `work` runs with the listener; when it
    /// returns, the worker exits: 0 on `Ok`, 1 on `Err` (logged), 101 if it panicked.
    /// This returns only in the master.
    ///
    /// # Errors
    ///
    /// See [`start`](Self::start) and [`Running::wait`].
    pub fn run<F, E>(self, work: F) -> Result<Stopped, Error>
    where
        F: FnMut(Worker) -> Result<(), E>,
        E: Display,
    {
        self.start(work)?.wait()
    }

    /// Binds or inherits the listener, makes it non-blocking, and forks the workers;
    /// the master then drives them through the returned [`Running`].
    ///
    /// The process must have a single thread (see [`fork`]): build registries and
    /// apps before, start runtimes in `work`.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`], [`Error::NoListener`], the listener's errors, and
    /// [`Error::Setup`] or [`Error::Fork`] (workers already started are stopped then).
    pub fn start<F, E>(mut self, work: F) -> Result<Running<F>, Error>
    where
        F: FnMut(Worker) -> Result<(), E>,
        E: Display,
    {
        if self.workers == 0 {
            return Err(Error::NoWorkers);
        }
        // A Unix socket bound here (not given, not inherited) is removed at the stop, or
        // the next start would find its path taken.
        let (listener, binds_here) = self.take_listener()?;
        let unlink_at_stop = match &listener {
            Listener::Unix(l) if binds_here => {
                l.local_addr().ok().and_then(|a| a.as_pathname().map(std::path::Path::to_owned))
            }
            _ => None,
        };
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Setup { what: "make the listener non-blocking", source })?;
        let signals = BlockedSignals::block(&[libc::SIGTERM, libc::SIGINT, libc::SIGCHLD])
            .map_err(|source| Error::Setup { what: "block the stop signals", source })?;
        log::info!("listening on {listener}; starting {} workers", self.workers);
        let now = Instant::now();
        let slots = (0..self.workers)
            .map(|_| Slot {
                pid: None,
                started: now,
                starts: 0,
                quick_deaths: 0,
                restart_at: Some(now),
                recycling: false,
            })
            .collect();
        let mut running = Running {
            listener,
            work,
            signals,
            slots,
            master: rustix::process::getpid(),
            unlink_at_stop,
            stopping: None,
            config: self,
        };
        for slot in 0..running.slots.len() {
            if let Err(e) = running.spawn(slot) {
                running.stop();
                return Err(e);
            }
        }
        Ok(running)
    }

    /// The listener, and whether it was bound here from the address.
    fn take_listener(&mut self) -> Result<(Listener, bool), Error> {
        if self.reuse_port {
            let unsupported = Error::Unsupported {
                what: "reuse_port needs a TCP address to bind (listen), not a listener",
            };
            if self.systemd || self.listener.is_some() {
                return Err(unsupported);
            }
            let address = self.address.as_deref().ok_or(Error::NoListener)?;
            if address.starts_with("unix:") || address.starts_with('/') {
                return Err(unsupported);
            }
            let addr = address
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or_else(|| Error::BadAddress { address: address.to_owned() })?;
            // Port 0 gets its number here, and every worker binds that one.
            return Listener::reuse_port_socket(addr, false).map(|l| (l, true));
        }
        if self.systemd {
            let mut passed = Listener::from_systemd()?.into_iter();
            if let Some(listener) = passed.next() {
                for extra in passed {
                    log::warn!("socket activation passed more than one socket; {extra} is left unused");
                }
                return Ok((listener, false));
            }
        }
        if let Some(listener) = self.listener.take() {
            return Ok((listener, false));
        }
        match &self.address {
            Some(address) => Listener::bind(address).map(|l| (l, true)),
            None => Err(Error::NoListener),
        }
    }
}

/// What a worker's closure gets: its slot and the listener.
#[derive(Debug)]
pub struct Worker {
    slot: usize,
    listener: Listener,
}

impl Worker {
    /// Which of the supervisor's workers this is, from 0; a restarted worker keeps the
    /// slot of the one it replaces.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The listener (non-blocking, shared with every worker).
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// The listener, owned.
    pub fn into_listener(self) -> Listener {
        self.listener
    }
}

/// How a supervisor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// The signal that asked for the stop, if one did.
    pub signal: Option<i32>,
    /// How many workers had to be killed because they outlived the graceful timeout.
    pub killed: usize,
}

#[derive(Debug)]
struct Slot {
    pid: Option<Pid>,
    started: Instant,
    /// How many times this slot's worker was started.
    starts: u64,
    /// Deaths in a row that came sooner than `min_uptime` after the start.
    quick_deaths: u32,
    /// When to start this slot's worker, if it is not running.
    restart_at: Option<Instant>,
    /// Whether the master asked this worker to stop for its age.
    recycling: bool,
}

/// A started supervisor, in the master: its workers run, and the master calls
/// [`wait`](Self::wait) (until a stop signal), or [`tend`](Self::tend) between its own
/// work and then [`stop`](Self::stop).
///
/// Dropping it restores the master's signal mask; the workers keep running (and a
/// later SIGTERM to the master, no longer blocked, ends it, and with it the workers).
pub struct Running<F> {
    listener: Listener,
    work: F,
    signals: BlockedSignals,
    slots: Vec<Slot>,
    master: Pid,
    unlink_at_stop: Option<std::path::PathBuf>,
    stopping: Option<i32>,
    config: Builder,
}

impl<F> std::fmt::Debug for Running<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("listener", &self.listener)
            .field("slots", &self.slots)
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl<F, E> Running<F>
where
    F: FnMut(Worker) -> Result<(), E>,
    E: Display,
{
    /// The listener the workers serve.
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// The pids of the running workers, by slot (`None` for a slot waiting to restart).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.slots.iter().map(|s| s.pid.map(|p| p.as_raw_nonzero().get().unsigned_abs())).collect()
    }

    /// The signal (SIGTERM or SIGINT) that asked the master to stop, once one arrived.
    pub fn stop_requested(&self) -> Option<i32> {
        self.stopping
    }

    /// Does what is due now, without waiting: reaps exited children, takes pending
    /// signals, recycles workers past their age, and restarts those whose delay is
    /// over. Returns whether the master should keep going (no stop signal yet).
    ///
    /// # Errors
    ///
    /// [`Error::Wait`] or [`Error::Fork`].
    pub fn tend(&mut self) -> Result<bool, Error> {
        while let Some(signal) = self.signals.wait(Duration::ZERO).map_err(Error::Wait)? {
            self.on_signal(signal);
        }
        self.reap()?;
        if self.stopping.is_some() {
            return Ok(false);
        }
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            if self.slots[slot].restart_at.is_none_or(|at| at > now) {
                continue;
            }
            match self.spawn(slot) {
                Ok(()) => {}
                // Threads in the master will not go away: retrying cannot help.
                Err(Error::Fork(e)) if e.kind() == io::ErrorKind::InvalidInput => return Err(Error::Fork(e)),
                // Out of processes or memory, perhaps for a moment: retry later, with
                // the same growing delay as a worker that dies at once.
                Err(e) => {
                    let delay = self.quick_death(slot);
                    log::error!(
                        "cannot start worker {}: {e} ({}); retrying in {} ms",
                        slot + 1,
                        io_cause(&e),
                        delay.as_millis()
                    );
                    self.slots[slot].restart_at = Some(now + delay);
                }
            }
        }
        self.recycle(now);
        Ok(true)
    }

    /// Supervises until SIGTERM or SIGINT, then stops the workers (see
    /// [`stop`](Self::stop)).
    ///
    /// # Errors
    ///
    /// [`Error::Wait`] or [`Error::Fork`]; the workers are stopped first.
    pub fn wait(mut self) -> Result<Stopped, Error> {
        loop {
            match self.tend() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.stop();
                    return Err(e);
                }
            }
            let nap =
                self.next_due().map_or(IDLE, |at| at.saturating_duration_since(Instant::now()).min(IDLE));
            match self.signals.wait(nap) {
                Ok(Some(signal)) => self.on_signal(signal),
                Ok(None) => {}
                Err(e) => {
                    self.stop();
                    return Err(Error::Wait(e));
                }
            }
        }
        Ok(self.stop())
    }

    /// Stops every worker: forwards the stop signal (SIGTERM if none came), waits up
    /// to the graceful timeout for them to exit, then kills the rest with SIGKILL, and
    /// reaps them all. A Unix socket the supervisor bound itself is removed.
    pub fn stop(mut self) -> Stopped {
        let signal = self.stopping.unwrap_or(libc::SIGTERM);
        let forward = Signal::from_named_raw(signal).unwrap_or(Signal::TERM);
        self.stopping = Some(signal);
        let running = self.slots.iter().filter(|s| s.pid.is_some()).count();
        log::info!(
            "stopping {running} workers (signal {signal}), waiting up to {:?}",
            self.config.graceful_timeout
        );
        for pid in self.slots.iter().filter_map(|s| s.pid) {
            let _ = kill_process(pid, forward);
        }
        let deadline = Instant::now() + self.config.graceful_timeout;
        while self.slots.iter().any(|s| s.pid.is_some()) && Instant::now() < deadline {
            if let Err(e) = self.reap() {
                log::error!("{e}: {}", io_cause(&e));
                break;
            }
            let nap = deadline.saturating_duration_since(Instant::now()).min(STOP_POLL);
            // Another stop signal changes nothing: the stop is under way.
            let _ = self.signals.wait(nap);
        }
        let mut killed = 0;
        for (n, slot) in self.slots.iter_mut().enumerate() {
            let Some(pid) = slot.pid.take() else { continue };
            log::warn!(
                "worker {} (pid {}) still running after {:?}; killing it",
                n + 1,
                pid.as_raw_nonzero(),
                self.config.graceful_timeout
            );
            let _ = kill_process(pid, Signal::KILL);
            let _ = waitpid(Some(pid), WaitOptions::empty());
            killed += 1;
        }
        // Any other child of the master, too, so that none is left a zombie.
        while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
        if let Some(path) = self.unlink_at_stop.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                log::warn!("cannot remove the socket {}: {e}", path.display());
            }
        }
        log::info!(
            "all workers stopped{}",
            if killed > 0 { format!(" ({killed} killed)") } else { String::new() }
        );
        Stopped { signal: self.stopping, killed }
    }

    fn on_signal(&mut self, signal: i32) {
        if (signal == libc::SIGTERM || signal == libc::SIGINT) && self.stopping.is_none() {
            log::info!("signal {signal} received; stopping");
            self.stopping = Some(signal);
        }
    }

    /// The earliest moment something is due: a restart, or a worker's recycling.
    fn next_due(&self) -> Option<Instant> {
        let restarts = self.slots.iter().filter_map(|s| s.restart_at);
        let ages =
            self.slots.iter().filter(|s| s.pid.is_some() && !s.recycling).filter_map(|s| self.retire_at(s));
        restarts.chain(ages).min()
    }

    /// When a worker is due for recycling, spread by up to a tenth of the age per
    /// slot start so that workers started together do not stop together.
    fn retire_at(&self, slot: &Slot) -> Option<Instant> {
        let age = self.config.max_age?;
        let spread = age / 10;
        let jitter = spread
            .mul_f64(((slot.starts.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64) / (1u64 << 53) as f64);
        Some(slot.started + age + jitter)
    }

    fn recycle(&mut self, now: Instant) {
        for n in 0..self.slots.len() {
            let slot = &self.slots[n];
            let (Some(pid), false) = (slot.pid, slot.recycling) else { continue };
            if self.retire_at(slot).is_some_and(|at| at <= now) {
                log::info!(
                    "worker {} (pid {}) reached its maximum age; recycling it",
                    n + 1,
                    pid.as_raw_nonzero()
                );
                let _ = kill_process(pid, Signal::TERM);
                self.slots[n].recycling = true;
            }
        }
    }

    /// Reaps every exited child and schedules the restart of each worker among them.
    fn reap(&mut self) -> Result<(), Error> {
        loop {
            let (pid, status) = match waitpid(None, WaitOptions::NOHANG) {
                Ok(Some(exited)) => exited,
                Ok(None) => return Ok(()),
                Err(rustix::io::Errno::CHILD) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::Wait(e.into())),
            };
            let Some(n) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                log::info!("reaped pid {}, not a worker: {}", pid.as_raw_nonzero(), describe(status));
                continue;
            };
            let now = Instant::now();
            let slot = &mut self.slots[n];
            slot.pid = None;
            let lived = now.saturating_duration_since(slot.started);
            let message = format!(
                "worker {} (pid {}) {} after {lived:.1?}",
                n + 1,
                pid.as_raw_nonzero(),
                describe(status)
            );
            if self.stopping.is_some() {
                log::info!("{message}");
                continue;
            }
            let delay = if slot.recycling || lived >= self.config.min_uptime {
                slot.quick_deaths = 0;
                Duration::ZERO
            } else {
                self.quick_death(n)
            };
            let slot = &mut self.slots[n];
            if slot.recycling {
                log::info!("{message}");
            } else if delay.is_zero() {
                log::warn!("{message}; restarting it");
            } else {
                log::warn!(
                    "{message}; restarting it in {} ms ({} quick exits in a row)",
                    delay.as_millis(),
                    slot.quick_deaths
                );
            }
            slot.recycling = false;
            slot.restart_at = Some(now + delay);
        }
    }

    /// Counts a quick death (or a failed start) of `slot`'s worker; returns how long to
    /// wait before the next start: the first delay, doubled for each one in a row.
    fn quick_death(&mut self, slot: usize) -> Duration {
        let state = &mut self.slots[slot];
        state.quick_deaths = state.quick_deaths.saturating_add(1);
        let doublings = state.quick_deaths.saturating_sub(1).min(30);
        self.config.first_delay.saturating_mul(1 << doublings).min(self.config.max_delay)
    }

    /// Forks the worker of `slot`. Returns only in the master.
    fn spawn(&mut self, slot: usize) -> Result<(), Error> {
        match fork().map_err(Error::Fork)? {
            Forked::Child => self.worker_main(slot),
            Forked::Parent { child } => {
                let pid = Pid::from_raw(child as i32);
                let state = &mut self.slots[slot];
                state.pid = pid;
                state.started = Instant::now();
                state.restart_at = None;
                state.starts += 1;
                if state.starts == 1 {
                    log::info!("worker {} started, pid {child}", slot + 1);
                } else {
                    log::info!("worker {} restarted, pid {child} (start {})", slot + 1, state.starts);
                }
                Ok(())
            }
        }
    }

    /// The life of a worker process: never returns into the caller's code.
    fn worker_main(&mut self, slot: usize) -> ! {
        // A worker outliving a SIGKILLed master would keep serving, unsupervised, on the
        // old socket: have the kernel send it SIGTERM instead, and check that the master
        // did not die before that was set. The signal stays pending (blocked) until the
        // mask is restored below, and is then delivered.
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
        if rustix::process::getppid() != Some(self.master) {
            std::process::exit(0);
        }
        if let Err(e) = self.signals.restore() {
            log::error!("worker {}: cannot restore the signal mask: {e}", slot + 1);
            std::process::exit(1);
        }
        let listener = match (self.config.reuse_port, self.listener.tcp_addr()) {
            (true, Some(addr)) => Listener::bind_reuse_port(addr)
                .and_then(|l| {
                    l.set_nonblocking(true)
                        .map(|()| l)
                        .map_err(|source| Error::Setup { what: "make the listener non-blocking", source })
                })
                .map_err(io::Error::from),
            _ => self.listener.try_clone(),
        };
        let code = match listener {
            Err(e) => {
                log::error!("worker {}: cannot take the listener: {e}", slot + 1);
                1
            }
            Ok(listener) => match catch_unwind(AssertUnwindSafe(|| (self.work)(Worker { slot, listener }))) {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    log::error!("worker {}: {e}", slot + 1);
                    1
                }
                // The panic message went to stderr through the panic hook.
                Err(_) => 101,
            },
        };
        log::logger().flush();
        std::process::exit(code)
    }
}

impl<F> Drop for Running<F> {
    fn drop(&mut self) {
        let _ = self.signals.restore();
    }
}

fn describe(status: WaitStatus) -> String {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "stopped".to_owned(),
    }
}

fn io_cause(e: &Error) -> String {
    std::error::Error::source(e).map(ToString::to_string).unwrap_or_default()
}
