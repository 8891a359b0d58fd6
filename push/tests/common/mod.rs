//! What the tests of herd-push share: a registry with one family of each type and
//! known values, and a decoder of remote-write bodies.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use herd_core::{Buckets, Objectives, Registry};
use herd_push::remote_write::WriteRequest;
use prost::Message as _;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A registry with a labelled counter (mail 3, resize 5), a gauge (12.5), a histogram
/// (0.05, 0.5, 2.0 into buckets 0.1 and 1) and a summary (1, 2, 3, 4; median 2 within
/// the sketch's 2%).
pub fn recorded() -> Result<Registry, Box<dyn std::error::Error + Send + Sync>> {
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
    jobs.with_labels(["mail"]).inc_by(3);
    jobs.with_labels(["resize"]).inc_by(5);
    registry.gauge("queue_depth", "Jobs waiting.").register()?.set(12.5);
    let took = registry
        .histogram("job_duration_seconds", "Time per job.")
        .unit("seconds")
        .buckets(Buckets::new([0.1, 1.0])?)
        .register()?;
    for v in [0.05, 0.5, 2.0] {
        took.observe(v);
    }
    let sizes = registry
        .summary("job_size_bytes", "Job sizes.")
        .unit("bytes")
        .objectives(Objectives::new([0.5])?)
        .register()?;
    for v in [1.0, 2.0, 3.0, 4.0] {
        sizes.observe(v);
    }
    Ok(registry)
}

/// Series by rendered label set: `(value, timestamp in ms)`.
pub type Series = BTreeMap<String, (f64, i64)>;

/// A remote-write body, decompressed (snappy block format) and decoded: series by
/// their label sets rendered `name{a="b",...}` in the order sent, with their
/// `(value, timestamp)`; and whether every series' labels were sorted and unique.
pub fn decode_remote_write(body: &[u8]) -> Result<(Series, bool), String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy block format: {e}"))?;
    let request = WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a WriteRequest: {e}"))?;
    let mut out = BTreeMap::new();
    let mut sorted = true;
    for ts in &request.timeseries {
        sorted &= ts.labels.windows(2).all(|w| w[0].name < w[1].name);
        let name =
            ts.labels.iter().find(|l| l.name == "__name__").map(|l| l.value.clone()).unwrap_or_default();
        let rest: Vec<String> = ts
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        let key = if rest.is_empty() { name } else { format!("{name}{{{}}}", rest.join(",")) };
        if ts.samples.len() != 1 {
            return Err(format!("{key}: {} samples, expected 1", ts.samples.len()));
        }
        if out.insert(key.clone(), (ts.samples[0].value, ts.samples[0].timestamp)).is_some() {
            return Err(format!("{key} sent twice"));
        }
    }
    Ok((out, sorted))
}
