//! The hot path makes no system call: summary `observe` reads the wall clock (the
//! coarse clock, through the vDSO) and resets age buckets, histogram `observe` (classic
//! or native buckets) and counter `inc` touch cells only. The test runs itself again
//! under `strace` and counts the calls between two markers
//! (`herd_testkit::syscalls_between_markers`).
//!
//! Skipped, saying so, where `strace` is not installed.

use std::time::Duration;

use herd_core::{Buckets, NativeBuckets, Registry, Window};
use herd_testkit::{strace_marker, syscalls_between_markers};

const CHILD_ENV: &str = "HERD_CORE_SYSCALLS_CHILD";
const BEGIN: &str = "/herd-core-syscalls-begin";
const END: &str = "/herd-core-syscalls-end";
const TEST_NAME: &str = "observations_make_no_system_call";
const ROUNDS: u32 = 20_000;

fn workload() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let summary = registry.summary("s_seconds", "s").register()?;
    // Epochs of one second: a traced run of a second or more resets age buckets too.
    let short =
        registry.summary("short_seconds", "s").window(Window::new(Duration::from_secs(3), 3)?).register()?;
    let histogram = registry.histogram("h_seconds", "h").buckets(Buckets::default()).register()?;
    let native = registry.histogram("n_seconds", "n").native_only(NativeBuckets::default()).register()?;
    let counter = registry.counter("c_total", "c").register()?;
    summary.observe(1.0);
    short.observe(1.0);

    strace_marker(BEGIN);
    for i in 0..ROUNDS {
        let v = f64::from(i) / 1000.0;
        summary.observe(v);
        short.observe(v);
        histogram.observe(v);
        native.observe(-v);
        counter.inc();
    }
    strace_marker(END);
    assert_eq!(summary.count(), u64::from(ROUNDS) + 1);
    Ok(())
}

#[test]
fn observations_make_no_system_call() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(CHILD_ENV).is_some() {
        return workload();
    }
    let Some(calls) = syscalls_between_markers(TEST_NAME, CHILD_ENV, BEGIN, END)? else {
        herd_testkit::cannot_run("strace is not installed, so system calls cannot be counted");
        return Ok(());
    };
    assert!(calls.is_empty(), "{} system calls during {ROUNDS} rounds: {calls:#?}", calls.len());
    Ok(())
}
