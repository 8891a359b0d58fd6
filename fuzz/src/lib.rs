//! herd's fuzz targets, as library functions the libFuzzer binaries in
//! `fuzz_targets/` call, one per target.
//!
//! Each check returns `Err` with a message when herd breaks one of its promises; the
//! binaries turn that into a panic, which libFuzzer reports as a crash. The modules
//! use nothing but `std`, herd's crates and each other, so herd's own regression
//! tests (`core/tests/fuzz_regressions.rs`, `mmap-registry/tests/fuzz_regressions.rs`,
//! `statsd-bridge/tests/fuzz_regressions.rs`)
//! include them by path and replay committed inputs without libFuzzer.

pub mod encode_text;
pub mod expo;
pub mod mmap_reader;
pub mod negotiate;
pub mod statsd_line;
