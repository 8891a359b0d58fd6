//! A pusher's memory is bounded by one push, however many it makes: after warm-up, a
//! push retains nothing, and fifty pushes peak no higher than one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use herd_core::{Buckets, Registry};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_push::{Pusher, Sink};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A receiver that reads each request whole and answers 204, keeping nothing, on a
/// thread of its own (whose allocations are not counted: the counter is per thread).
fn receiver() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(&conn);
            let (mut line, mut length) = (String::new(), 0u64);
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let _ = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink());
            let _ = (&conn).write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        }
    });
    Ok(format!("http://{addr}"))
}

#[test]
fn memory_is_bounded_by_one_push_not_by_the_number_of_pushes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
        let jobs = registry.counter("jobs_total", "Jobs.").labels(["queue"]).register()?;
        let took =
            registry.histogram("took_seconds", "Time.").buckets(Buckets::new([0.1, 1.0])?).register()?;
        for q in 0..500 {
            jobs.with_labels([format!("q{q}").as_str()]).inc_by(w + 1);
        }
        took.observe(0.5);
        writers.push(registry);
    }
    let url = receiver()?;
    let sinks = [
        Sink::pushgateway(&url, "memory")?,
        Sink::remote_write(&format!("{url}/api/v1/write"))?,
        Sink::otlp(&url)?,
    ];
    for sink in sinks {
        let kind = sink.kind();
        let mut pusher = Pusher::builder(sink).collector(Arc::new(Aggregator::new(&dir)?)).build()?;
        for _ in 0..3 {
            pusher.push()?; // warm: buffers and the aggregator's per-file state
        }
        let mut first = Ok(());
        let one = allocation_counter::measure(|| first = pusher.push());
        first?;
        let mut rest = Ok(());
        let fifty = allocation_counter::measure(|| rest = (0..50).try_for_each(|_| pusher.push()));
        rest?;
        // Nothing kept from push to push (a small slack for the allocator's rounding
        // of a buffer that grows by a few bytes, say a longer timestamp).
        assert!(fifty.bytes_current <= 4096, "{kind}: 50 pushes kept {} bytes", fifty.bytes_current);
        assert!(
            fifty.bytes_max <= one.bytes_max + one.bytes_max / 2,
            "{kind}: 50 pushes peaked at {} bytes, one at {}",
            fifty.bytes_max,
            one.bytes_max
        );
    }
    drop(writers);
    Ok(())
}
