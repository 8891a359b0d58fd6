//! The one module of herd with `unsafe`: viewing mapped file memory as atomics, and
//! replacing a forked child's mappings in place.
//!
//! Everything else in herd-mmap reaches shared memory only through the safe
//! [`Mapping::words`] view, and only with atomic loads and stores.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, Weak};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;

/// A `MAP_SHARED` mapping of part of a file, viewed as 8-byte atomic words.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: MmapRaw,
    offset: u64,
}

impl Mapping {
    /// Maps `len` bytes of `file` from `offset` (a multiple of the page size), readable
    /// and writable.
    pub(crate) fn read_write(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        check_page_aligned(offset)?;
        let raw = MmapOptions::new().offset(offset).len(len).map_raw(file)?;
        Ok(Self { raw, offset })
    }

    /// Maps the first `len` bytes of `file` read-only.
    pub(crate) fn read_only(file: &File, len: usize) -> io::Result<Self> {
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Self { raw, offset: 0 })
    }

    /// The file offset this mapping starts at.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The mapped bytes as atomic words (a trailing partial word is left out).
    pub(crate) fn words(&self) -> &[AtomicU64] {
        let ptr = self.raw.as_ptr();
        let len = self.raw.len() / 8;
        if len == 0 || (ptr as usize) % std::mem::align_of::<AtomicU64>() != 0 {
            // mmap returns page-aligned memory; this guard only keeps the cast below
            // honest should that ever not hold.
            return &[];
        }
        // SAFETY: `ptr` is valid for `len * 8` bytes for as long as `self.raw` is mapped,
        // which is as long as `&self` lives; it is 8-aligned (checked above);
        // `AtomicU64` has the size and alignment of `u64` and permits shared mutation,
        // and every access to this memory, from this process or another, is an atomic
        // load or store of whole aligned words.
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), len) }
    }

    /// Maps `file` at `offset` over this mapping's very addresses, read-write and
    /// shared, so that every pointer into it now reaches `file`. Used by a forked child
    /// to move its handles from the parent's file to its own.
    pub(crate) fn remap_over(&self, file: &File, offset: u64) -> io::Result<()> {
        check_page_aligned(offset)?;
        let addr = self.raw.as_mut_ptr().cast::<std::ffi::c_void>();
        let len = self.raw.len();
        // SAFETY: `addr..addr+len` is exactly the range `self.raw` mapped, so MAP_FIXED
        // replaces only our own mapping and nothing else of the process; the new
        // mapping has the same length, protection and sharing, so every reference into
        // the range (the handles' cell slices) stays valid and keeps its meaning. The
        // caller makes `file` at least `offset + len` bytes long first, so no access
        // can fault.
        let mapped = unsafe {
            rustix::mm::mmap(
                addr,
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::FIXED,
                file.as_fd(),
                offset,
            )
        }?;
        same_address(mapped, addr)
    }
}

/// `MAP_FIXED` either maps at the address given or fails; anything else is an error.
fn same_address(mapped: *mut std::ffi::c_void, wanted: *mut std::ffi::c_void) -> io::Result<()> {
    if mapped == wanted {
        Ok(())
    } else {
        Err(io::Error::other("MAP_FIXED returned another address"))
    }
}

fn check_page_aligned(offset: u64) -> io::Result<()> {
    let page = rustix::param::page_size() as u64;
    if offset % page == 0 {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "mapping offset is not page-aligned"))
    }
}

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
/// wait on forever. Fork before starting threads or async runtimes. Metrics handles
/// created before the fork keep working in the child, writing to the child's own file.
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
    // copy with no lock held by a thread that is not there. herd's own atfork handlers
    // run around the call.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { child: pid.unsigned_abs() }),
    }
}

/// Something that must act in a forked child before `fork()` returns there.
pub(crate) trait ForkAware: Send {
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

/// Makes `object` follow every later `fork()` of this process: in the child,
/// [`ForkAware::in_child`] runs before `fork()` returns. Before a fork, the lock of
/// every tracked object is taken, so none is caught half-way through an update.
///
/// # Errors
///
/// The error of `pthread_atfork` (only `ENOMEM`) if the handlers could not be
/// registered; the object is not tracked then.
pub(crate) fn follow_forks(object: &Arc<Mutex<dyn ForkAware>>) -> io::Result<()> {
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

impl Mapping {
    /// Replaces this mapping, at the same addresses, with private anonymous memory:
    /// writes through existing pointers then reach no file. A forked child that could
    /// not get a file of its own does this rather than write into its parent's.
    pub(crate) fn detach(&self) -> io::Result<()> {
        let addr = self.raw.as_mut_ptr().cast::<std::ffi::c_void>();
        let len = self.raw.len();
        // SAFETY: as in `remap_over`, the range is exactly our own mapping and keeps its
        // length and protection, so every reference into it stays valid; anonymous
        // memory reads as zero and never faults.
        let mapped = unsafe {
            rustix::mm::mmap_anonymous(
                addr,
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED,
            )
        }?;
        same_address(mapped, addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_others_words() -> io::Result<()> {
        let file = tempfile_in_target()?;
        file.set_len(8192)?;
        let a = Mapping::read_write(&file, 0, 8192)?;
        let b = Mapping::read_only(&file, 8192)?;
        a.words()[3].store(42, Ordering::Release);
        assert_eq!(b.words()[3].load(Ordering::Acquire), 42);
        assert_eq!(a.words().len(), 1024);
        assert!(Mapping::read_write(&file, 100, 8).is_err(), "unaligned offsets are refused");
        Ok(())
    }

    #[test]
    fn remap_over_keeps_the_address_and_switches_the_file() -> io::Result<()> {
        let (old, new) = (tempfile_in_target()?, tempfile_in_target()?);
        old.set_len(4096)?;
        new.set_len(4096)?;
        let m = Mapping::read_write(&old, 0, 4096)?;
        let word = &m.words()[0];
        word.store(5, Ordering::Relaxed);
        m.remap_over(&new, 0)?;
        assert_eq!(word.load(Ordering::Relaxed), 0, "the new file's zero shows through");
        word.store(9, Ordering::Relaxed);
        let check = Mapping::read_only(&old, 4096)?;
        assert_eq!(check.words()[0].load(Ordering::Relaxed), 5, "the old file is untouched");
        Ok(())
    }

    fn tempfile_in_target() -> io::Result<File> {
        tempfile::tempfile()
    }
}
