//! A receiver that never reads: the sender thread is stuck on the socket, the queue
//! fills, and callers go on without waiting; every update is accounted for, as sent
//! or dropped, exactly.

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::Duration;

use herd_core::Registry;
use herd_statsd::{Aggregation, DropReason, StatsdBridge};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CAPACITY: usize = 1024;
const ATTEMPTS: u64 = 200_000;

#[test]
fn a_full_queue_drops_and_counts_without_blocking_the_caller() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stuck.sock");
    // Bound and never read: the kernel queues a few datagrams, then the sender's
    // writes wait (1 s each, far longer than the callers' loop takes).
    let receiver = UnixDatagram::bind(&path)?;
    let bridge = StatsdBridge::unix(&path)
        .aggregation(|_| Aggregation::PerEvent)
        .queue_capacity(CAPACITY)
        .send_timeout(Duration::from_secs(1))
        .flush_timeout(Duration::from_secs(60))
        .build()?;
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs.").labels(["queue"]).register()?;
    let mirrored = bridge.mirror(&jobs, ["stuck"]);

    // The callers run on a thread of their own so that a blocked caller would show
    // as a missing "done" rather than a hung test binary.
    let (done_tx, done_rx) = mpsc::channel();
    let caller = std::thread::spawn(move || {
        for _ in 0..ATTEMPTS {
            mirrored.inc();
        }
        let _ = done_tx.send(mirrored);
    });
    let mirrored = done_rx.recv_timeout(Duration::from_secs(120)).map_err(|_| "a caller blocked")?;
    caller.join().map_err(|_| "the caller panicked")?;
    assert_eq!(mirrored.handle().get(), ATTEMPTS as f64, "every update reached herd's counter");

    let during = bridge.stats();
    assert!(
        during.dropped(DropReason::QueueFull) > 0,
        "{ATTEMPTS} updates into a {CAPACITY}-line queue behind a stuck socket dropped none: {during:?}"
    );
    assert!(during.queued <= CAPACITY, "{during:?}");

    // Unstick the sender: with the receiver gone, writes fail at once.
    drop(receiver);
    bridge.flush()?;
    let after = bridge.stats();
    eprintln!("during: {during:?}\nafter: {after:?}");
    let accepted = after.sent_lines + after.dropped(DropReason::SendError);
    assert_eq!(after.queued, 0, "{after:?}");
    assert_eq!(after.dropped(DropReason::QueueFull), ATTEMPTS - accepted, "{after:?}");
    assert_eq!(
        after.dropped_total(),
        after.dropped(DropReason::QueueFull) + after.dropped(DropReason::SendError)
    );
    assert!(after.sent_lines > 0, "the kernel took a few datagrams before it filled up: {after:?}");
    Ok(())
}
