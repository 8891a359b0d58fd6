//! The one module of herd-mmap with `unsafe`: viewing mapped file memory as atomics,
//! replacing a forked child's mappings in place, and surviving a file that shrinks
//! under a mapping. Fork tracking itself (atfork handlers, generations, `fork()`)
//! lives in herd-prefork.
//!
//! Everything else in herd-mmap reaches shared memory only through the safe
//! [`Mapping::words`] view, and only with atomic loads and stores.
//!
//! # Files that shrink under a mapping
//!
//! Any process of the service's user can truncate a metrics file. Touching a mapped
//! page past the new end of the file raises `SIGBUS`, whose default action kills the
//! process: one stray `truncate` would take down every reader, and the writer. So
//! every [`Mapping`] is registered in a lock-free table of guarded ranges, and a
//! `SIGBUS` handler (installed once, chaining to whatever handler was there before)
//! answers a fault inside a guarded range by mapping one private zero page over the
//! faulting page and counting the fault against the mapping. The faulting load or
//! store then completes on the zero page. Callers check [`Mapping::faults`] after they
//! read and throw away what they read from a mapping that faulted (FORMAT.md,
//! "Files that shrink"). Reading the cells in place costs nothing extra; the check is
//! one relaxed load per mapping per scrape.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

use memmap2::{MmapOptions, MmapRaw};

/// A `MAP_SHARED` mapping of part of a file, viewed as 8-byte atomic words, guarded
/// against the file shrinking under it (see the module's docs).
#[derive(Debug)]
pub(crate) struct Mapping {
    // Declared before `raw`, so the range leaves the guard table before it is unmapped.
    guard: Guard,
    raw: MmapRaw,
    offset: u64,
}

impl Mapping {
    /// Maps `len` bytes of `file` from `offset` (a multiple of the page size), readable
    /// and writable.
    pub(crate) fn read_write(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        check_page_aligned(offset)?;
        let raw = MmapOptions::new().offset(offset).len(len).map_raw(file)?;
        let guard = Guard::new(raw.as_ptr() as usize, raw.len())?;
        Ok(Self { guard, raw, offset })
    }

    /// Maps the first `len` bytes of `file` read-only.
    pub(crate) fn read_only(file: &File, len: usize) -> io::Result<Self> {
        // Populated: a new reader parses every record at once, and one fault-in of the
        // whole file costs less than a fault per page.
        let raw = MmapOptions::new().len(len).populate().map_raw_read_only(file)?;
        let guard = Guard::new(raw.as_ptr() as usize, raw.len())?;
        Ok(Self { guard, raw, offset: 0 })
    }

    /// The file offset this mapping starts at.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// How many of this mapping's pages were found past the end of their file (and
    /// replaced with zeroes) since it was made. Anything read from a mapping whose count
    /// moved while reading may be zeroes that were never written: throw it away.
    pub(crate) fn faults(&self) -> u64 {
        self.guard.faults()
    }

    /// The mapped bytes as atomic words (a trailing partial word is left out).
    pub(crate) fn words(&self) -> &[AtomicU64] {
        let ptr = self.raw.as_ptr();
        let len = self.raw.len() / 8;
        if len == 0 || !(ptr as usize).is_multiple_of(std::mem::align_of::<AtomicU64>()) {
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
    if offset.is_multiple_of(page) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "mapping offset is not page-aligned"))
    }
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

/// How many mappings can be guarded at once: every file an aggregator caches and every
/// segment of this process's own file. Past it, mapping fails with a clear error rather
/// than going unguarded. The table is static and zeroed, so its untouched pages cost no
/// memory; the handler scans only up to the highest slot ever used.
const GUARD_SLOTS: usize = 65_536;

/// One guarded range: `[start, end)`, and the faults found in it.
struct GuardSlot {
    /// Taken by a registration (compare-and-swap), so two never share a slot.
    taken: AtomicBool,
    /// 0 while the slot is free or being filled.
    start: AtomicUsize,
    end: AtomicUsize,
    faults: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below, by design
const FREE_SLOT: GuardSlot = GuardSlot {
    taken: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    faults: AtomicU64::new(0),
};

static GUARDS: [GuardSlot; GUARD_SLOTS] = [FREE_SLOT; GUARD_SLOTS];
/// One past the highest slot ever taken.
static GUARDS_USED: AtomicUsize = AtomicUsize::new(0);
/// The page size, read once before the handler is installed (the handler makes no
/// library call it does not have to).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The `SIGBUS` disposition found when ours was installed: its handler's address and
/// whether it takes `siginfo` (`SA_SIGINFO`).
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_SIGINFO: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A mapping's registration in the guard table; leaves it on drop.
#[derive(Debug)]
struct Guard {
    slot: usize,
}

impl Guard {
    fn new(start: usize, len: usize) -> io::Result<Self> {
        install_sigbus_handler()?;
        for (i, slot) in GUARDS.iter().enumerate() {
            // Acquire/Release on `taken`: a slot freed by another thread is seen empty
            // before this one fills it.
            if slot.taken.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            slot.faults.store(0, Ordering::Relaxed);
            slot.end.store(start + len, Ordering::Relaxed);
            // Release: a handler that sees `start` sees this slot's `end` and `faults`.
            slot.start.store(start, Ordering::Release);
            GUARDS_USED.fetch_max(i + 1, Ordering::AcqRel);
            return Ok(Self { slot: i });
        }
        Err(io::Error::other(format!("more than {GUARD_SLOTS} metrics file mappings open in this process")))
    }

    fn faults(&self) -> u64 {
        // Relaxed: a fault is handled on the thread that touched the page, before its
        // access completes, so that thread sees the count in program order.
        GUARDS.get(self.slot).map_or(0, |s| s.faults.load(Ordering::Relaxed))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(slot) = GUARDS.get(self.slot) {
            slot.start.store(0, Ordering::Release);
            slot.end.store(0, Ordering::Relaxed);
            slot.taken.store(false, Ordering::Release);
        }
    }
}

/// The guarded slot whose range holds `addr`. Called from the signal handler: atomics
/// only, no allocation, no lock.
fn guarded_slot(addr: usize) -> Option<&'static GuardSlot> {
    let used = GUARDS_USED.load(Ordering::Acquire).min(GUARD_SLOTS);
    GUARDS[..used].iter().find(|slot| {
        let start = slot.start.load(Ordering::Acquire);
        start != 0 && start <= addr && addr < slot.end.load(Ordering::Relaxed)
    })
}

fn install_sigbus_handler() -> io::Result<()> {
    INSTALL.call_once(|| {
        PAGE_SIZE.store(rustix::param::page_size(), Ordering::Relaxed);
        // SAFETY: `sigaction` is plain old data; all-zero is a valid empty value that
        // every field is then set on.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigbus;
        new.sa_sigaction = handler as usize;
        // SA_ONSTACK: Rust gives each thread an alternate signal stack; use it, as the
        // standard library's own SIGBUS handler does. SA_SIGINFO: we need the address.
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `new.sa_mask` is a valid `sigset_t` to initialise.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // SAFETY: as above, all-zero is a valid `sigaction` for the kernel to fill.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are to valid `sigaction` values on this stack; the
        // handler is an `extern "C"` function that lives for the whole program.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &new, &mut old) };
        if rc == 0 {
            PREVIOUS_HANDLER.store(old.sa_sigaction, Ordering::Relaxed);
            PREVIOUS_SIGINFO.store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Relaxed);
            INSTALLED.store(true, Ordering::Release);
        }
    });
    if INSTALLED.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(io::Error::other("cannot install the SIGBUS handler that guards mapped metrics files"))
    }
}

/// A `SIGBUS`: inside a guarded mapping, the page went past the end of its file; put a
/// zero page there and let the access complete. Anywhere else, not ours: hand it on.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler, and
    // `si_addr` is the faulting address for SIGBUS.
    let addr = if info.is_null() { 0 } else { (unsafe { (*info).si_addr() }) as usize };
    if let Some(slot) = guarded_slot(addr) {
        let page = PAGE_SIZE.load(Ordering::Relaxed).max(1);
        let at = addr - addr % page;
        // SAFETY: `at..at + page` lies inside a live mapping of ours (the guard table
        // holds a range only while its `Mapping` is alive and mapped), so MAP_FIXED
        // replaces one page of our own mapping and nothing else; the page stays
        // readable and writable, so every reference into it stays valid and now reads
        // zero. `mmap` is a system call with no lock, safe to make in a handler.
        let mapped = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if mapped as usize == at {
            slot.faults.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let previous = PREVIOUS_HANDLER.load(Ordering::Relaxed);
    if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
        // Restore the default action and return: the access faults again and the
        // process dies of SIGBUS, as it would have without herd.
        // SAFETY: as in `install_sigbus_handler`, an all-zero `sigaction` is valid.
        let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        // SAFETY: a valid `sigaction` for SIGBUS; `sigaction` is async-signal-safe.
        unsafe { libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut()) };
    } else if PREVIOUS_SIGINFO.load(Ordering::Relaxed) {
        // SAFETY: the address was the previous SA_SIGINFO handler's, which has this
        // signature; it is called with the arguments the kernel gave us.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(previous) };
        handler(signal, info, context);
    } else {
        // SAFETY: the address was the previous plain handler's, which takes the signal.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous) };
        handler(signal);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_file_truncated_under_a_mapping_reads_zero_and_counts_the_fault() -> io::Result<()> {
        let file = tempfile_in_target()?;
        file.set_len(3 * 4096)?;
        let writer = Mapping::read_write(&file, 0, 3 * 4096)?;
        let reader = Mapping::read_only(&file, 3 * 4096)?;
        // 512 words to a page: word 512 is on the second page, 1024 on the third.
        writer.words()[0].store(7, Ordering::Relaxed);
        writer.words()[512].store(8, Ordering::Relaxed);
        file.set_len(4096)?;
        assert_eq!(reader.words()[0].load(Ordering::Relaxed), 7, "the first page is still in the file");
        assert_eq!(reader.faults(), 0);
        assert_eq!(reader.words()[512].load(Ordering::Relaxed), 0, "past the end: a zero page");
        assert_eq!(reader.words()[513].load(Ordering::Relaxed), 0, "same page, no second fault");
        assert_eq!(reader.faults(), 1);
        // The writer survives a store past the end too; it lands in private memory.
        writer.words()[1024].store(9, Ordering::Relaxed);
        assert_eq!(writer.words()[1024].load(Ordering::Relaxed), 9);
        assert_eq!(writer.faults(), 1);
        assert_eq!(reader.words()[1024].load(Ordering::Relaxed), 0, "nothing reached the file");
        assert_eq!(reader.faults(), 2);
        Ok(())
    }

    #[test]
    fn a_freed_guard_slot_is_reused() -> io::Result<()> {
        let file = tempfile_in_target()?;
        file.set_len(4096)?;
        let before = GUARDS_USED.load(Ordering::Relaxed);
        for _ in 0..100 {
            drop(Mapping::read_only(&file, 4096)?);
        }
        // Other tests of this binary may hold a few slots meanwhile; 100 leaked ones would show.
        assert!(GUARDS_USED.load(Ordering::Relaxed) <= before + 10, "slots are reused, not leaked");
        Ok(())
    }

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
