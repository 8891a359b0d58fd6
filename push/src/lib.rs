//! herd-push: push one aggregate — a registry, or every process of a herd-mmap metrics
//! directory — to a Prometheus Pushgateway, a Prometheus remote-write receiver or an
//! OpenTelemetry collector (OTLP/HTTP).
//!
//! Not everything can be scraped: a batch job ends before the next scrape, and some
//! platforms take metrics only by push. A [`Pusher`] collects any
//! [`Collector`](herd_core::Collector) (herd-mmap's `Aggregator` sums a directory, so
//! a master or a sidecar pushes the exact total of all its workers, once), encodes
//! it for its [`Sink`] into a buffer it reuses, and sends it with the protocol's retry
//! rules. [`Pusher::spawn`] runs it on its own thread, on an interval, with a push on
//! demand and a last one at shutdown; handles and request paths never wait for it.
//!
//! | sink | wire | retried |
//! | --- | --- | --- |
//! | [`Sink::pushgateway`] | `PUT` (or `POST`) text 0.0.4 to `/metrics/job/<job>{/<label>/<value>}`; [`Pusher::delete`] | 5xx, 429 |
//! | [`Sink::remote_write`] | remote write 1.0: `prompb.WriteRequest`, snappy block format | 5xx, 429; never another 4xx |
//! | [`Sink::otlp`] | `POST /v1/metrics`, `ExportMetricsServiceRequest` in protobuf | 429, 502, 503, 504 |
//!
//! A receiver's `Retry-After` is honoured, up to the [`Retry`] policy's longest wait.
//! A push that still fails is counted in `herd_push_failures_total{sink}` (see
//! [`PushMetrics`]) and logged through `log` once per change of state.
//!
//! # Examples
//!
//! A batch job's last act, to a Pushgateway (here a stand-in that records the request):
//!
//! ```
//! use std::io::{BufRead, BufReader, Read, Write};
//! use herd_core::Registry;
//! use herd_push::{Pusher, Sink};
//!
//! # let gateway = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let url = format!("http://{}", gateway.local_addr()?);
//! # let received = std::thread::spawn(move || -> std::io::Result<String> {
//! #     let (conn, _) = gateway.accept()?;
//! #     let mut reader = BufReader::new(&conn);
//! #     let (mut head, mut line, mut length) = (String::new(), String::new(), 0);
//! #     while reader.read_line(&mut line)? > 2 {
//! #         if let Some(n) = line.strip_prefix("Content-Length: ") { length = n.trim().parse().unwrap_or(0); }
//! #         head.push_str(&line);
//! #         line.clear();
//! #     }
//! #     let mut body = vec![0; length];
//! #     reader.read_exact(&mut body)?;
//! #     (&conn).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
//! #     Ok(head.lines().next().unwrap_or_default().to_owned() + "\n" + &String::from_utf8_lossy(&body))
//! # });
//! let registry = Registry::new();
//! let files = registry.counter("backup_files_total", "Files backed up.").register()?;
//! files.inc_by(1234);
//!
//! // `url` is the gateway's base, such as http://127.0.0.1:9091.
//! let sink = Sink::pushgateway(&url, "nightly_backup")?.label("path", "/var/tmp")?;
//! let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
//! pusher.push()?;
//!
//! let request = received.join().map_err(|_| "receiver panicked")??;
//! assert_eq!(request, "\
//! PUT /metrics/job/nightly_backup/path@base64/L3Zhci90bXA HTTP/1.1
//! ## HELP backup_files_total Files backed up.
//! ## TYPE backup_files_total counter
//! backup_files_total 1234
//! ## HELP herd_cardinality_overflow_total Label-set lookups folded into the overflow series because a family reached its cardinality limit.
//! ## TYPE herd_cardinality_overflow_total counter
//! herd_cardinality_overflow_total{family=\"backup_files\"} 0
//! herd_cardinality_overflow_total{family=\"herd_push_failures\"} 0
//! ## HELP herd_push_failures_total Pushes that failed after the retries the protocol allows, per sink.
//! ## TYPE herd_push_failures_total counter
//! herd_push_failures_total{sink=\"pushgateway\"} 0
//! ## HELP herd_storage_errors_total Series whose storage failed to provide cells; their values stay in this process only.
//! ## TYPE herd_storage_errors_total counter
//! herd_storage_errors_total{family=\"backup_files\"} 0
//! herd_storage_errors_total{family=\"herd_push_failures\"} 0
//! ");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On an interval, from a thread of its own, with a last push at shutdown:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use herd_mmap::Aggregator;
//! use herd_push::{Pusher, Sink};
//!
//! let sink = Sink::remote_write("http://127.0.0.1:9090/api/v1/write")?.job("api");
//! let pushing = Pusher::builder(sink)
//!     .collector(Arc::new(Aggregator::new("/run/api/metrics")?))
//!     .build()?
//!     .spawn(Duration::from_secs(15))?;
//! pushing.push_now(); // does not wait
//! // ... serve until asked to stop ...
//! pushing.shutdown()?; // one last push, and its result
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limitations
//!
//! - `http://` only: the built-in HTTP/1.1 client has no TLS (put a local proxy or the
//!   collector sidecar in front of an `https://` receiver).
//! - Native histograms go out as their classic buckets unless [`Sink::native_histograms`]
//!   is set: then remote write sends them as native histograms too, and OTLP as
//!   `ExponentialHistogram`s instead.
//! - Remote write carries no metadata (Prometheus 2.42 ignores it) and no exemplars.
#![forbid(unsafe_code)]

/// The crate's README, whose examples are compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
mod http;
pub mod otlp;
mod pusher;
pub mod remote_write;
mod render;
mod sink;

pub use error::PushError;
pub use pusher::{PushMetrics, PushThread, Pusher, PusherBuilder, Retry, FAILURES_METRIC};
pub use sink::{PushMethod, Sink, SinkKind};
