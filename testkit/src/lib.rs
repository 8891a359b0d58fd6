//! Dev-only helpers that let herd's integration tests talk to real peers.
//!
//! - [`promtool_check`]: `promtool check metrics` (parse + lint, text 0.0.4).
//! - [`python_parse`]: client_python's text and OpenMetrics parsers, through
//!   `parse_exposition.py` next to this crate's `Cargo.toml`.
//! - [`python_decode_protobuf`]: Python's `protobuf` package decoding a delimited
//!   protobuf exposition with the client_model messages (`decode_protobuf.py`,
//!   `fixtures/client_model/metrics.proto`); [`python_protobuf_available`] says
//!   whether it can run.
//! - [`fuzz_inputs`]: the committed fuzz seeds and regression inputs, for replays.
//! - [`TestServer`] / [`http_get`] / [`HttpConn`] / [`url_encode`]: a tiny HTTP/1.1
//!   server on hyper, and clients on `std` only that send malformed bytes as given
//!   ([`HttpConn`] keeps its connection and sends request lines byte for byte).
//! - [`HOSTILE_LABEL_VALUES`] / [`hostile_label_values`] / [`HOSTILE_REQUEST_TARGETS`]:
//!   the adversarial corpus every encoder, middleware and peer test uses.
//! - [`Prometheus`]: a real Prometheus (Debian's 2.42 in CI) scraping
//!   [`ScrapeJob`]s, with helpers for the HTTP API.
//! - [`Pushgateway`] / [`VictoriaMetrics`]: receivers of pushed metrics (Debian's
//!   `prometheus-pushgateway` 1.5.1 and `victoria-metrics` 1.79).
//! - [`StatsdServer`]: a real Etsy statsd (npm `statsd@0.9.0`) whose flushes add up
//!   into [`StatsdTotals`].
//! - [`syscalls_between_markers`]: the system calls a test's thread makes between two
//!   markers, counted by `strace`.
//! - [`Tmpfs`]: a small tmpfs of the test's own (root only), to fill up.
//! - [`herd_binary`] / [`HerdServe`]: the workspace's `herd` binary, for other packages'
//!   tests, and `herd serve` on a free port.
//!
//! Everything listens on 127.0.0.1 only, every wait is bounded, and child
//! processes and temp dirs are cleaned up on `Drop`. The peers are installed
//! by `scripts/install-test-deps.sh`; `$HERD_PYTHON`, `$HERD_PROMTOOL`,
//! `$HERD_PROMETHEUS`, `$HERD_PUSHGATEWAY`, `$HERD_VICTORIA_METRICS`, `$HERD_NODE` and `$HERD_STATSD` override the executables
//! used.
//!
//! A test that cannot run here (a peer, `strace` or root is missing) calls
//! [`cannot_run`]: with `HERD_REQUIRE_PEERS=1` (set by `.ci/run`) that fails the test,
//! otherwise it says why it skips.
//!
//! Errors are `String`s with enough context (exit codes, peer output, log
//! tails) to diagnose a failing test from its message alone.

mod fuzz;
mod herd;
mod hostile;
mod http;
mod process;
mod prometheus;
mod promtool;
mod push_peers;
mod python;
mod statsd;
mod strace;
mod tmpfs;

pub use crate::fuzz::fuzz_inputs;
pub use crate::herd::{herd_binary, HerdServe};
pub use crate::hostile::{
    hostile_label_values, HOSTILE_LABEL_VALUES, HOSTILE_REQUEST_TARGETS, LONG_LABEL_VALUE_LEN,
};
pub use crate::http::{http_get, url_encode, HttpConn, Request, Response, TestServer};
pub use crate::prometheus::{Prometheus, QueryResult, ScrapeJob, TargetHealth};
pub use crate::promtool::promtool_check;
pub use crate::push_peers::{Pushgateway, VictoriaMetrics};
pub use crate::python::{
    python_decode_protobuf, python_parse, python_protobuf_available, PyExemplar, PyFamily, PyFormat,
    PySample, DECODE_PROTOBUF_SCRIPT, PARSE_EXPOSITION_SCRIPT,
};
pub use crate::statsd::{
    StatsdServer, StatsdTotals, STATSD_BACKEND_SCRIPT, STATSD_FLUSH_INTERVAL, STATSD_PROBE_KEY,
};
pub use crate::strace::{strace_marker, strace_path, syscalls_between_markers};
pub use crate::tmpfs::Tmpfs;

/// The environment variable that turns every [`cannot_run`] into a failure.
pub const REQUIRE_PEERS_ENV: &str = "HERD_REQUIRE_PEERS";

/// Reports that the calling test cannot run here, and why (`reason`: what is missing
/// and how to get it). When `HERD_REQUIRE_PEERS` is set to anything but `0` (CI sets it),
/// this panics, so a missing peer, `strace` or root fails the run instead of passing it
/// quietly; otherwise it prints the reason and the caller returns early.
///
/// # Panics
///
/// When `HERD_REQUIRE_PEERS` is set: that is its purpose.
#[allow(clippy::panic)]
pub fn cannot_run(reason: &str) {
    let required = std::env::var_os(REQUIRE_PEERS_ENV).is_some_and(|v| v != "0" && !v.is_empty());
    if required {
        panic!("this test cannot run here, and {REQUIRE_PEERS_ENV} is set: {reason}");
    }
    eprintln!("skipped: {reason} (set {REQUIRE_PEERS_ENV}=1 to make this a failure)");
}

/// The `Accept` header Prometheus 2.42 sends with `--enable-feature=native-histograms`
/// (`scrape/scrape.go` at v2.42.0): protobuf first.
pub const PROMETHEUS_NATIVE_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Content-Type of the text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Content-Type of OpenMetrics 1.0.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests;
