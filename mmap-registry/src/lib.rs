//! herd-mmap: one exact `/metrics` for many worker processes.
//!
//! Every process writes its metrics into a file of its own in a shared directory,
//! through the same herd-core handles as in-process metrics; any process (a worker, the
//! master, or a sidecar) reads every file and serves the exact sum.
//!
//! - [`MmapStorage`] plugs into herd-core's storage seam: handles write straight into
//!   the mapped file with atomic operations on its cells (one for `inc` and `set`), with
//!   no lock, syscall or pid check.
//! - [`Aggregator`] sums the files of live and dead processes into a herd-core
//!   [`Snapshot`](herd_core::Snapshot), so both text formats and content negotiation
//!   work unchanged.
//! - [`compact`] folds dead processes' files into one archive; an `Aggregator`
//!   compacts on its own past a threshold, and [`compact_if_needed`] does the same for
//!   a directory that nothing scrapes. Writers never compact.
//! - [`inspect`] describes a directory file by file (processes, liveness, sizes,
//!   families, broken files) without changing it.
//! - [`claim_dir`] prepares a directory at a master's start-up; [`check_dir`] refuses
//!   one that another user could tamper with.
//!
//! The file format is specified in `FORMAT.md`. All `unsafe` code of this crate lives
//! in its `sys` module; forks are followed through herd-prefork.
#![deny(unsafe_code)]

/// The crate's README, whose examples are compiled (and run, where they touch no
/// system path) with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod aggregate;
mod compact;
mod decode;
mod dir;
mod error;
mod format;
mod index;
mod inspect;
mod process;
mod protocol;
mod reader;
mod stamp;
mod sys;
mod writer;

pub use aggregate::{Aggregator, ScrapeReport, SkippedFile};
pub use compact::{compact, compact_if_needed, CompactReport, DEFAULT_COMPACT_THRESHOLD};
pub use decode::decode_file;
pub use dir::{check_dir, claim_dir, claim_dir_with, LiveWriters};
pub use error::MmapError;
pub use format::FormatError;
pub use inspect::{inspect, FamilySummary, FileOwner, FileSummary, Inspection};
// Fork tracking moved to herd-prefork; these names stay for code written against herd-mmap.
pub use herd_prefork::{fork, fork_generation, watch_forks, Forked};
pub use writer::MmapStorage;
