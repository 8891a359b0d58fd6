//! Receivers that stop reading. The callers are never blocked, and every line the
//! bridge made is either in the receiver's socket or counted in exactly one drop
//! reason of `herd_statsd_dropped_total{reason}`; with aggregation, a receiver that
//! stops for less than the send timeout loses nothing at all.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::Duration;

use herd_core::{Counter, Registry};
use herd_statsd::{Aggregation, Mirrored, StatsdBridge};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs `updates` increments on a thread of their own, so that a caller that blocked
/// shows as a missing "done" instead of a hung test.
fn increment(
    handle: Mirrored<Counter>,
    updates: u64,
) -> Result<Mirrored<Counter>, Box<dyn std::error::Error>> {
    let before = handle.handle().get();
    let (done_tx, done_rx) = mpsc::channel();
    let caller = std::thread::spawn(move || {
        for _ in 0..updates {
            handle.inc();
        }
        let _ = done_tx.send(handle);
    });
    let handle = done_rx.recv_timeout(Duration::from_secs(120)).map_err(|_| "a caller blocked")?;
    caller.join().map_err(|_| "the caller panicked")?;
    assert_eq!(handle.handle().get() - before, updates as f64);
    Ok(handle)
}

/// `herd_statsd_dropped_total` by reason, and `herd_statsd_sent_lines_total`, as the
/// registry exposes them.
fn exposed(registry: &Registry) -> Result<(BTreeMap<String, u64>, u64), Box<dyn std::error::Error>> {
    let text = String::from_utf8(registry.encode(herd_core::Format::Text))?;
    let mut dropped = BTreeMap::new();
    let mut sent = None;
    for line in text.lines() {
        if let Some((reason, n)) =
            line.strip_prefix("herd_statsd_dropped_total{reason=\"").and_then(|l| l.split_once("\"} "))
        {
            dropped.insert(reason.to_owned(), n.parse()?);
        }
        if let Some(n) = line.strip_prefix("herd_statsd_sent_lines_total ") {
            sent = Some(n.parse()?);
        }
    }
    Ok((dropped, sent.ok_or("no herd_statsd_sent_lines_total")?))
}

/// Reads every datagram waiting in `socket` and counts its lines and its counter sum.
fn read_waiting(recv: impl Fn(&mut [u8]) -> std::io::Result<usize>) -> (u64, f64) {
    let mut buf = [0u8; 65_536];
    let (mut lines, mut sum) = (0u64, 0.0);
    while let Ok(n) = recv(&mut buf) {
        for line in String::from_utf8_lossy(&buf[..n]).split('\n') {
            lines += 1;
            sum += line
                .split_once(':')
                .and_then(|(_, v)| v.split('|').next()?.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    (lines, sum)
}

#[test]
fn a_unix_receiver_that_stops_reading_blocks_no_caller_and_every_line_is_accounted_for() -> TestResult {
    const UPDATES: u64 = 200_000;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stopped.sock");
    let receiver = UnixDatagram::bind(&path)?;
    let bridge = StatsdBridge::unix(&path)
        .aggregation(|_| Aggregation::PerEvent)
        .queue_capacity(1024)
        // A few lines a packet: the queue alone holds more packets than the
        // receiver's socket takes (`max_dgram_qlen`, 10 by default), so the sender
        // meets EAGAIN, waits the send timeout, and drops.
        .max_packet_size(64)
        .send_timeout(Duration::from_millis(5))
        .flush_timeout(Duration::from_secs(60))
        .build()?;
    let registry = Registry::new();
    registry.register_collector(bridge.self_metrics());
    let jobs = registry.counter("jobs_total", "Jobs.").labels([]).register()?;
    let _handle = increment(bridge.mirror(&jobs, []), UPDATES)?;
    bridge.flush()?;

    receiver.set_nonblocking(true)?;
    let (received, sum) = read_waiting(|b| receiver.recv(b));
    let (dropped, sent) = exposed(&registry)?;
    eprintln!("received {received}, sent {sent}, dropped {dropped:?}");
    // Over a Unix socket, what the kernel took is what the receiver has.
    assert_eq!(received, sent);
    assert_eq!(sum, sent as f64);
    let total: u64 = dropped.values().sum();
    assert_eq!(sent + total, UPDATES, "every update is one line, sent or dropped once: {dropped:?}");
    assert!(dropped["queue_full"] > 0 && dropped["send_error"] > 0, "{dropped:?}");
    assert_eq!(total, dropped["queue_full"] + dropped["send_error"], "{dropped:?}");
    Ok(())
}

#[test]
fn aggregated_counts_wait_out_a_unix_receiver_that_pauses() -> TestResult {
    const UPDATES: u64 = 1_000_000;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("paused.sock");
    let receiver = UnixDatagram::bind(&path)?;
    // Small packets, so that a few flush intervals fill the receiver's buffer.
    let bridge = StatsdBridge::unix(&path)
        .max_packet_size(64)
        .flush_interval(Duration::from_millis(1))
        .send_timeout(Duration::from_secs(30))
        .build()?;
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs.").labels(["q"]).register()?;
    // Unread until the callers are done: the sender meets EAGAIN and waits; the
    // counts go on adding up in their slots.
    let handle = bridge.mirror(&jobs, ["a"]);
    let handle = increment(handle, UPDATES / 2)?;
    std::thread::sleep(Duration::from_millis(200));
    let handle = increment(handle, UPDATES / 2)?;

    receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
    let reader = std::thread::spawn(move || read_waiting(|b| receiver.recv(b)));
    bridge.flush()?;
    let (lines, sum) = reader.join().map_err(|_| "the reader panicked")?;
    let stats = bridge.stats();
    eprintln!("{lines} lines, {stats:?}");
    assert_eq!(sum, UPDATES as f64, "{stats:?}");
    assert_eq!(stats.dropped_total(), 0, "{stats:?}");
    assert_eq!(lines, stats.sent_lines);
    // The receiver's socket holds at most `max_dgram_qlen` datagrams: more were sent
    // only because the sender, seeing EAGAIN, waited for the reader.
    let qlen: u64 = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")?.trim().parse()?;
    assert!(stats.sent_packets > qlen, "{stats:?}");
    drop(handle);
    Ok(())
}

#[test]
fn a_udp_receiver_that_stops_reading_blocks_no_caller_and_every_line_is_accounted_for() -> TestResult {
    const UPDATES: u64 = 200_000;
    let receiver = UdpSocket::bind("127.0.0.1:0")?;
    let bridge = StatsdBridge::udp(receiver.local_addr()?)
        .aggregation(|_| Aggregation::PerEvent)
        .queue_capacity(1024)
        .build()?;
    let registry = Registry::new();
    registry.register_collector(bridge.self_metrics());
    let jobs = registry.counter("jobs_total", "Jobs.").labels([]).register()?;
    let _handle = increment(bridge.mirror(&jobs, []), UPDATES)?;
    bridge.flush()?;

    receiver.set_nonblocking(true)?;
    let (received, _) = read_waiting(|b| receiver.recv(b));
    let (dropped, sent) = exposed(&registry)?;
    eprintln!("received {received}, sent {sent}, dropped {dropped:?}");
    let total: u64 = dropped.values().sum();
    assert_eq!(sent + total, UPDATES, "every update is one line, sent or dropped once: {dropped:?}");
    assert_eq!(total, dropped["queue_full"], "{dropped:?}");
    // UDP: the kernel drops what the receiver's buffer has no room for, where the
    // sender cannot see it (see the README); the receiver has no more than was sent.
    assert!(received <= sent && received > 0, "received {received}, sent {sent}");
    Ok(())
}
