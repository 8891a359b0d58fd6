//! The sender thread's life: nothing runs before the first update, pause and resume,
//! the last handle's drop flushes; and the errors a builder returns.

use std::net::UdpSocket;
use std::time::Duration;

use herd_core::Registry;
use herd_statsd::{Aggregation, Error, StatsdBridge};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn receiver() -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(socket)
}

fn recv(socket: &UdpSocket) -> Result<String, Box<dyn std::error::Error>> {
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf)?;
    Ok(String::from_utf8(buf[..n].to_vec())?)
}

#[test]
fn no_thread_runs_before_the_first_update() -> TestResult {
    let socket = receiver()?;
    let bridge = StatsdBridge::udp(socket.local_addr()?).build()?;
    let registry = Registry::new();
    registry.register_collector(bridge.self_metrics());
    let _ = registry.encode(herd_core::Format::Text);
    bridge.flush()?;
    assert!(!bridge.is_running(), "building, reading stats and an empty flush start nothing");
    let jobs = registry.counter("jobs_total", "j").labels([]).register()?;
    bridge.mirror(&jobs, []).inc();
    assert!(bridge.is_running());
    bridge.flush()?;
    assert_eq!(recv(&socket)?, "jobs_total:1|c");
    Ok(())
}

#[test]
fn a_paused_bridge_queues_and_resume_sends() -> TestResult {
    let socket = receiver()?;
    let bridge = StatsdBridge::udp(socket.local_addr()?).aggregation(|_| Aggregation::PerEvent).build()?;
    let jobs = Registry::new().counter("jobs_total", "j").labels(["phase"]).register()?;
    bridge.mirror(&jobs, ["before"]).inc();
    bridge.pause()?;
    assert_eq!(recv(&socket)?, "jobs_total:1|c|#phase:before", "pause flushes first");
    assert!(!bridge.is_running());

    let during = bridge.mirror(&jobs, ["during"]);
    during.inc();
    during.inc();
    assert!(matches!(bridge.flush(), Err(Error::Paused)));
    assert!(!bridge.is_running(), "an update does not restart a paused bridge");
    assert_eq!(bridge.stats().queued, 2);

    bridge.resume()?;
    bridge.flush()?;
    assert_eq!(recv(&socket)?, "jobs_total:1|c|#phase:during\njobs_total:1|c|#phase:during");
    assert_eq!(bridge.stats().sent_lines, 3);
    Ok(())
}

#[test]
fn dropping_the_last_handle_sends_what_is_queued() -> TestResult {
    let socket = receiver()?;
    let bridge = StatsdBridge::udp(socket.local_addr()?).flush_interval(Duration::from_secs(60)).build()?;
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "j").labels([]).register()?;
    let mirrored = bridge.mirror(&jobs, []);
    mirrored.inc_by(5);
    // The mirrored handle holds the bridge too: both must go.
    drop(bridge);
    drop(mirrored);
    assert_eq!(recv(&socket)?, "jobs_total:5|c");
    Ok(())
}

#[test]
fn a_family_the_policy_turns_off_is_not_mirrored() -> TestResult {
    let socket = receiver()?;
    let bridge =
        StatsdBridge::udp(socket.local_addr()?)
            .mirror(|f| {
                if &*f.name == "internal" {
                    herd_statsd::Mirror::Off
                } else {
                    herd_statsd::Mirror::Every
                }
            })
            .build()?;
    let registry = Registry::new();
    let internal = registry.counter("internal_total", "i").labels([]).register()?;
    let public = registry.counter("public_total", "p").labels([]).register()?;
    let (off, on) = (bridge.mirror(&internal, []), bridge.mirror(&public, []));
    assert!(!off.is_mirrored() && on.is_mirrored());
    off.inc();
    on.inc();
    bridge.flush()?;
    assert_eq!(recv(&socket)?, "public_total:1|c");
    assert_eq!(off.handle().get(), 1.0, "herd's own counter still counts");
    Ok(())
}

#[test]
fn builders_refuse_what_cannot_work() {
    let err = |b: herd_statsd::StatsdBuilder| b.build().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(StatsdBridge::udp("no-such-host.invalid:8125")).contains("cannot resolve"));
    assert!(err(StatsdBridge::udp("127.0.0.1")).contains("cannot resolve"));
    assert!(err(StatsdBridge::udp("127.0.0.1:8125").max_packet_size(10)).contains("max_packet_size"));
    assert!(err(StatsdBridge::udp("127.0.0.1:8125").queue_capacity(1)).contains("queue_capacity"));
    assert!(
        err(StatsdBridge::udp("127.0.0.1:8125").flush_interval(Duration::ZERO)).contains("flush_interval")
    );
    assert!(err(StatsdBridge::udp("127.0.0.1:8125").send_timeout(Duration::ZERO)).contains("send_timeout"));
    // No style can write a tag without a key.
    assert!(err(StatsdBridge::udp("127.0.0.1:8125").tag("", "v")).contains("empty key"));
}
