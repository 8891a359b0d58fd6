//! The one module of herd-mmap with `unsafe`: viewing mapped file memory as atomics,
//! and replacing a forked child's mappings in place. Fork tracking itself (atfork
//! handlers, generations, `fork()`) lives in herd-prefork.
//!
//! Everything else in herd-mmap reaches shared memory only through the safe
//! [`Mapping::words`] view, and only with atomic loads and stores.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::AtomicU64;

use memmap2::{MmapOptions, MmapRaw};

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
    use std::sync::atomic::Ordering;

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
