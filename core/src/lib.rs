//! herd-core: metric handles, labelled families, a registry with a storage seam, and
//! encoders for both Prometheus text formats and the protobuf format.
//!
//! herd gives a service whose work is spread over many processes one correct
//! Prometheus `/metrics`. This crate is the part every other herd crate builds on; used
//! alone it is a fast in-process Prometheus client.
//!
//! - **Handles** ([`Counter`], [`Gauge`], [`Histogram`], [`Summary`]) update 8-byte
//!   atomic cells with one read-modify-write: no lock, allocation or syscall.
//! - **Families** ([`Family`]) fix their label names at registration; a lookup by label
//!   values takes no lock, and a per-family cardinality limit folds excess label sets
//!   into one overflow series.
//! - **Storage** ([`Storage`]) decides where cells live: process memory by default, a
//!   shared file mapping with herd-mmap. Handles are the same either way.
//! - **Exposition**: a [`Snapshot`] of families is encoded as Prometheus text 0.0.4,
//!   OpenMetrics 1.0 or protobuf (delimited `io.prometheus.client.MetricFamily`, what
//!   Prometheus asks for with native histograms enabled) ([`encode()`]), chosen from an
//!   `Accept` header by [`negotiate`].
//!
//! # Examples
//!
//! ```
//! use herd_core::{negotiate, Buckets, Registry};
//!
//! let registry = Registry::new();
//! let requests = registry
//!     .counter("http_requests_total", "Requests served.")
//!     .labels(["method", "status"])
//!     .register()?;
//! let latency = registry
//!     .histogram("http_request_duration_seconds", "Time to serve a request.")
//!     .unit("seconds")
//!     .buckets(Buckets::new([0.1, 1.0])?)
//!     .register()?;
//!
//! requests.with_labels(["GET", "200"]).inc();
//! latency.observe(0.25);
//!
//! let format = negotiate(Some("application/openmetrics-text;version=1.0.0"));
//! let body = String::from_utf8(registry.encode(format))?;
//! // herd's own counts come first: per family, lookups folded past its cardinality
//! // limit and series its storage could not hold, created at 0.
//! assert_eq!(body, "\
//! ## TYPE herd_cardinality_overflow counter
//! ## HELP herd_cardinality_overflow Label-set lookups folded into the overflow series because a family reached its cardinality limit.
//! herd_cardinality_overflow_total{family=\"http_requests\"} 0
//! herd_cardinality_overflow_total{family=\"http_request_duration_seconds\"} 0
//! ## TYPE herd_storage_errors counter
//! ## HELP herd_storage_errors Series whose storage failed to provide cells; their values stay in this process only.
//! herd_storage_errors_total{family=\"http_requests\"} 0
//! herd_storage_errors_total{family=\"http_request_duration_seconds\"} 0
//! ## TYPE http_request_duration_seconds histogram
//! ## UNIT http_request_duration_seconds seconds
//! ## HELP http_request_duration_seconds Time to serve a request.
//! http_request_duration_seconds_bucket{le=\"0.1\"} 0
//! http_request_duration_seconds_bucket{le=\"1.0\"} 1
//! http_request_duration_seconds_bucket{le=\"+Inf\"} 1
//! http_request_duration_seconds_sum 0.25
//! http_request_duration_seconds_count 1
//! ## TYPE http_requests counter
//! ## HELP http_requests Requests served.
//! http_requests_total{method=\"GET\",status=\"200\"} 1
//! ## EOF
//! ");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limitations
//!
//! - Series are never removed from a family: the cardinality limit bounds them instead.
//! - Exemplars are kept in process memory, beside the cells, and appear only in
//!   OpenMetrics and protobuf output.
//! - Protobuf carries histograms with their classic buckets only: native (sparse)
//!   buckets have no storage yet. It carries no unit and no `_created`.
//! - Summary quantiles carry a 2% relative error and resolve values from `1e-5` to
//!   about `3.5e6`; zero and negative observations are reported as 0 (see [`Summary`]).
#![forbid(unsafe_code)]

/// The crate's README, whose example is compiled and run with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod cell;
pub mod clock;
mod collector;
mod desc;
pub mod encode;
mod error;
mod family;
pub mod grpc;
pub mod http;
#[cfg(feature = "prometheus-client")]
pub mod interop;
pub mod labels;
pub mod metrics;
mod model;
pub mod observe;
pub mod options;
#[cfg(target_os = "linux")]
pub mod process;
mod registry;
pub mod snapshot;
pub mod storage;
pub mod table;

pub use collector::{CollectError, Collector, Lent};
pub use desc::FamilyDesc;
pub use encode::{encode, encode_families, negotiate, negotiate_among, Format};
pub use error::{ArityError, RegistryError, ValueError};
pub use family::{Family, DEFAULT_CARDINALITY_LIMIT, MAX_CARDINALITY_LIMIT, OVERFLOW_LABEL_VALUE};
#[cfg(feature = "prometheus-client")]
pub use interop::PrometheusClientBridge;
pub use labels::LabelSet;
pub use metrics::{
    Buckets, Counter, Exemplar, Gauge, Histogram, NativeBuckets, Objectives, Summary, SummaryError,
    SummaryLayout, Window,
};
pub use model::{BucketsError, GaugeMode, MetricKind};
pub use observe::{Observer, SeriesObserver};
#[cfg(target_os = "linux")]
pub use process::{ProcStat, ProcessCollector};
pub use registry::{
    LabelNames, MetricBuilder, NoLabels, Registry, RegistryBuilder, OVERFLOW_METRIC, STORAGE_ERRORS_METRIC,
};
pub use snapshot::Snapshot;
pub use storage::{HeapStorage, Storage};
