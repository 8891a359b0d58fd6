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
//! A push that still fails is counted in `herd_push_failures_total{sink}` (see
//! [`PushMetrics`]) and logged through `log` once per change of state.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use herd_core::Registry;
//! use herd_push::{Pusher, Sink};
//!
//! let registry = Registry::new();
//! let jobs = registry.counter("backup_files_total", "Files backed up.").register()?;
//! jobs.inc_by(1234);
//!
//! let sink = Sink::pushgateway("http://127.0.0.1:9091", "nightly_backup")?.label("path", "/var/tmp")?;
//! let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
//! pusher.push()?; // the batch job's last act
//!
//! // Or on an interval, from a thread of its own:
//! let sink = Sink::remote_write("http://127.0.0.1:9090/api/v1/write")?.job("backup");
//! let thread = Pusher::builder(sink).registry(&registry).build()?.spawn(Duration::from_secs(15))?;
//! thread.push_now();
//! thread.shutdown()?; // one last push
//! # Ok::<(), herd_push::PushError>(())
//! ```
//!
//! # Limitations
//!
//! - `http://` only: the built-in HTTP/1.1 client has no TLS (put a local proxy or the
//!   collector sidecar in front of an `https://` receiver).
//! - Native histograms are not pushed (herd-core has none yet); remote write's
//!   `TimeSeries.histograms` and OTLP's `ExponentialHistogram` are where they go.
//! - Remote write carries no metadata (Prometheus 2.42 ignores it) and no exemplars.
//! - A `Retry-After` header is not honoured: waits follow [`Retry`].
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
