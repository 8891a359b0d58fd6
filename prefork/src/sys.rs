//! The one module of herd-prefork with `unsafe`: `fork(2)`, the `pthread_atfork`
//! handlers that carry fork-following objects and the fork generation across it, the
//! supervisor's signal mask, and adopting the descriptors systemd passes.
//!
//! Everything else in the crate calls the safe functions here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use parking_lot::Mutex;

/// Which side of a [`fork`] the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The original process; `child` is the new process's pid.
    Parent {
        /// The child's pid.
        child: u32,
    },
    /// The new process.
    Child,
}

/// Forks this process, for a pre-fork master starting its workers.
///
/// Refused unless the process has exactly one thread: a thread that does not exist in
/// the child could hold a lock (in the allocator, in a logger) that the child would then
/// wait on forever. Fork before starting threads or async runtimes. Objects registered
/// with [`follow_forks`] (herd-mmap's storage: metrics handles created before the fork
/// keep working in the child, writing to the child's own file) act around the call.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] if the process has more than one thread, or the
/// error of `fork(2)`.
pub fn fork() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to fork a process with {threads} threads; fork before starting threads"),
        ));
    }
    // SAFETY: the process has a single thread (checked above; no other thread can be
    // started concurrently, since this is the only thread), so the child is a consistent
    // copy with no lock held by a thread that is not there. The atfork handlers below
    // run around the call.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { child: pid.unsigned_abs() }),
    }
}

/// Something that must act in a forked child before `fork()` returns there, such as
/// herd-mmap's storage moving its mappings to a file of the child's own.
///
/// Register it with [`follow_forks`]. Both methods run inside `fork()`, with the
/// object's lock held since just before it, on the forking thread: keep them to what
/// must happen before the child (or parent) goes on, and do not fork from them.
pub trait ForkAware: Send {
    /// Runs in the parent after the fork, with the object's lock held since before it.
    fn in_parent(&mut self) {}

    /// Runs in the child, with the object's lock held since before the fork.
    fn in_child(&mut self);
}

type Tracked = Weak<Mutex<dyn ForkAware>>;

/// Every object of this process that follows forks.
static TRACKED: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Makes `object` follow every later `fork()` of this process, through [`fork`] or
/// not: in the child, [`ForkAware::in_child`] runs before `fork()` returns; in the
/// parent, [`ForkAware::in_parent`]. Before a fork, the lock of every tracked object
/// is taken, so none is caught half-way through an update.
///
/// Only a weak reference is kept: dropping the last `Arc` stops the tracking.
///
/// # Errors
///
/// The error of `pthread_atfork` (only `ENOMEM`) if the handlers could not be
/// registered; the object is not tracked then.
pub fn follow_forks(object: &Arc<Mutex<dyn ForkAware>>) -> io::Result<()> {
    register_handlers()?;
    let mut tracked = TRACKED.lock();
    tracked.retain(|w| w.strong_count() > 0);
    tracked.push(Arc::downgrade(object));
    Ok(())
}

fn register_handlers() -> io::Result<()> {
    REGISTER.call_once(|| {
        // SAFETY: the handlers are plain `extern "C" fn()` living for the whole program;
        // pthread_atfork only stores the pointers.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        REGISTERED.store(rc == 0, Ordering::Release);
    });
    if REGISTERED.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(io::Error::other("pthread_atfork failed"))
    }
}

/// How many `fork()`s separate this process from the one that first called
/// [`watch_forks`]: 0 there, 1 in its children, 2 in their children.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Starts counting forks, and returns this process's fork generation.
///
/// For code that holds what does not survive `fork()` (a sender thread, a socket
/// shared with the parent): remember the generation when building it, and rebuild it
/// when [`fork_generation`] returns something else. Counting is done by an atfork
/// handler, so it sees every fork made after this call, through [`fork`] or not.
///
/// # Errors
///
/// The error of `pthread_atfork` (only `ENOMEM`) if the handler could not be registered.
pub fn watch_forks() -> io::Result<u64> {
    register_handlers()?;
    Ok(fork_generation())
}

/// This process's fork generation (see [`watch_forks`]); one relaxed atomic load, no
/// system call, so it can be checked on a hot path.
#[inline]
pub fn fork_generation() -> u64 {
    // Relaxed: the counter only changes in the child handler, on the thread that then
    // returns from fork(); every thread of the child starts after it.
    FORK_GENERATION.load(Ordering::Relaxed)
}

extern "C" fn prepare() {
    let tracked = TRACKED.lock();
    for object in tracked.iter().filter_map(Weak::upgrade) {
        // Leaked on purpose: released by `parent` or `child` on this same thread.
        std::mem::forget(object.lock());
    }
    std::mem::forget(tracked);
}

extern "C" fn parent() {
    release_leaked(|object| object.in_parent());
}

extern "C" fn child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    release_leaked(|object| object.in_child());
}

/// Runs `f` on every tracked object, then releases the locks `prepare` leaked.
fn release_leaked(f: impl Fn(&mut dyn ForkAware)) {
    // SAFETY: `prepare` ran on this thread just before the fork (the handlers run on
    // the forking thread, in both processes), locked TRACKED and leaked the guard, so
    // this thread holds the lock and nothing else can touch the list.
    let tracked = unsafe { &*TRACKED.data_ptr() };
    for object in tracked.iter().filter_map(Weak::upgrade) {
        // SAFETY: `prepare` locked every object the list held and leaked the guards;
        // the list has not changed since, so this thread holds `object`'s lock and has
        // exclusive access to its data until the release below.
        f(unsafe { &mut *object.data_ptr() });
        // SAFETY: releasing the lock this thread holds through the leaked guard.
        unsafe { object.force_unlock() };
    }
    // SAFETY: releasing the lock on TRACKED that `prepare` leaked on this thread.
    unsafe { TRACKED.force_unlock() };
}

/// Signals blocked on the calling thread so that they are taken with [`Self::wait`]
/// rather than delivered to a handler. A supervisor installs no handler at all, so
/// its workers start with every disposition at its default and its mask restored.
pub(crate) struct BlockedSignals {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks `signals` on this thread, remembering the mask before.
    pub(crate) fn block(signals: &[libc::c_int]) -> io::Result<Self> {
        // SAFETY: sigset_t is a plain bit array; all-zero is a valid value, and
        // sigemptyset/sigaddset below give it its meaning.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, owned sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for &signal in signals {
            // SAFETY: as above; an invalid signal number is reported, not undefined.
            if unsafe { libc::sigaddset(&mut set, signal) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: both pointers are to valid, owned sigset_t values.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Self { set, old })
    }

    /// Takes one of the blocked signals if one is pending, waiting up to `timeout` for
    /// one to arrive; `None` when none came (or the wait was interrupted).
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<Option<libc::c_int>> {
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: every pointer is to a valid, owned value for the duration of the call;
        // a null siginfo pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
        if signal >= 0 {
            return Ok(Some(signal));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => Ok(None),
            _ => Err(e),
        }
    }

    /// Puts back the mask this thread had before [`Self::block`].
    pub(crate) fn restore(&self) -> io::Result<()> {
        // SAFETY: `self.old` is a valid sigset_t filled by pthread_sigmask.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}

/// Whether `adopt` has run in this process: systemd's descriptors are taken once.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the descriptors `first..first + count` that systemd's socket
/// activation passed to this process. Refused on a second call in the same process
/// (they would be owned twice) and for a descriptor that is not open.
pub(crate) fn adopt_passed_fds(first: RawFd, count: RawFd) -> io::Result<Vec<OwnedFd>> {
    if ADOPTED.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the passed descriptors were already taken",
        ));
    }
    let mut fds = Vec::new();
    for fd in first..first.saturating_add(count) {
        // SAFETY: F_GETFD only reads the descriptor's flags; on a closed number it fails
        // with EBADF and touches nothing.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor is open (checked just above) and, per the socket
        // activation protocol (LISTEN_PID named this process), passed to this process
        // for it to own; the ADOPTED flag makes sure nothing else here takes it too.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}

impl std::fmt::Debug for BlockedSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockedSignals")
    }
}
