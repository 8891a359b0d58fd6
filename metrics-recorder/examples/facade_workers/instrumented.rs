//! A library as the ecosystem writes them: it knows only the `metrics` facade's macros,
//! nothing of herd.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

/// The library's descriptions; a library may call this at any time, before or after
/// its first metric.
pub(crate) fn describe() {
    describe_counter!("app.requests", "Requests handled, by route and status.");
    describe_histogram!("app.request.duration_seconds", Unit::Seconds, "Time to handle a request.");
    describe_counter!("app.bytes-read", Unit::Bytes, "Bytes read, mirrored from the reader's own total.");
    describe_gauge!("app.worker.highest_id", "The highest worker id that has run.");
}

/// Handles one request: the facade calls a real library makes, with label values
/// known only at run time.
pub(crate) fn handle(route: &str, status: u16, seconds: f64) {
    counter!("app.requests", "route" => route.to_owned(), "status" => status.to_string()).increment(1);
    histogram!("app.request.duration_seconds", "route" => route.to_owned()).record(seconds);
}

/// Mirrors an external running total.
pub(crate) fn bytes_read(total: u64) {
    counter!("app.bytes-read").absolute(total);
}

/// Reports the worker's id.
pub(crate) fn worker_started(id: u32) {
    gauge!("app.worker.highest_id").set(f64::from(id));
}
