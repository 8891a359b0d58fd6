//! A mirrored update makes no system call on the caller's thread: this test runs
//! itself again under `strace -f -ff` (one trace file per thread) and counts the
//! caller thread's system calls between two markers around 5,000 rounds of updates.
//!
//! Skipped, saying so, where `strace` is not installed.

use std::time::Duration;

use herd_core::{Buckets, Registry};
use herd_statsd::{Mirror, StatsdBridge};
use herd_testkit::{strace_marker, syscalls_between_markers};

const CHILD_ENV: &str = "HERD_STATSD_SYSCALLS_CHILD";
const BEGIN: &str = "/herd-statsd-syscalls-begin";
const END: &str = "/herd-statsd-syscalls-end";
const TEST_NAME: &str = "mirrored_updates_make_no_system_call_on_the_callers_thread";
/// Rounds of updates: about 4.5 queued lines each, far from the queue's half.
const UPDATES: u32 = 5_000;

/// The traced workload: warm up (the sender thread starts, the sampling generator
/// is seeded), then updates between two markers; a marker is a `stat` of a path
/// that does not exist, which the trace shows with its name.
fn workload() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let bridge = StatsdBridge::udp(server.local_addr()?)
        // Over twice the lines queued between the markers, even if the sender thread
        // never runs meanwhile: no early wake-up is needed, nothing is dropped.
        .queue_capacity(65_536)
        .mirror(|f| if &*f.name == "sampled" { Mirror::Sampled(0.5) } else { Mirror::Every })
        .build()?;
    let registry = Registry::new();
    let requests =
        registry.counter("requests_total", "r").labels(["method", "route", "status"]).register()?;
    let gauge = registry.gauge("in_flight", "i").labels([]).register()?;
    let latency = registry
        .histogram("latency_seconds", "l")
        .buckets(Buckets::default())
        .labels(["route"])
        .register()?;
    let sampled = registry.counter("sampled_total", "s").labels([]).register()?;
    let (ok, gauge, latency, sampled) = (
        bridge.mirror(&requests, ["GET", "/users/{id}", "200"]),
        bridge.mirror(&gauge, []),
        bridge.mirror(&latency, ["/"]),
        bridge.mirror(&sampled, []),
    );
    for _ in 0..10 {
        ok.inc();
        sampled.inc();
    }
    bridge.flush()?;

    strace_marker(BEGIN);
    for i in 0..UPDATES {
        let v = f64::from(i) / 1000.0;
        ok.inc();
        gauge.set(-v);
        gauge.add(1.0);
        latency.observe(v);
        sampled.inc();
    }
    strace_marker(END);
    bridge.flush_timeout(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn mirrored_updates_make_no_system_call_on_the_callers_thread() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(CHILD_ENV).is_some() {
        return workload();
    }
    let Some(calls) = syscalls_between_markers(TEST_NAME, CHILD_ENV, BEGIN, END)? else {
        herd_testkit::cannot_run("strace is not installed, so the caller's system calls cannot be counted");
        return Ok(());
    };
    assert!(calls.is_empty(), "{} system calls during {UPDATES} rounds of updates: {calls:#?}", calls.len());
    Ok(())
}
