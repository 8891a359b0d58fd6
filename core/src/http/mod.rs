//! RED metrics for HTTP servers: what herd's web adapters (herd-axum, herd-actix) share.
//!
//! Both adapters record the same families with the same names and labels, fold
//! unbounded inputs into the same fixed values, and resolve series through the same
//! cache, so one dashboard serves both and neither copies the other:
//!
//! - **Names** ([`Preset`], [`RedNames`]): Prometheus-style names by default
//!   (`http_requests_total`, `http_request_duration_seconds`, `http_requests_in_flight`,
//!   ...), or OpenTelemetry's semantic-convention names as Prometheus exports them
//!   (`http_server_request_duration_seconds{http_request_method,http_route,http_response_status_code}`).
//! - **Label values bounded by construction**: the route is the router's template, or
//!   [`UNMATCHED_ROUTE`] when no route matched, never the raw path; methods outside the
//!   nine of RFC 9110 fold into [`OTHER_METHOD`] ([`fold_method`]); the status is the
//!   numeric code from a static table ([`status_label`]).
//! - **Buckets** ([`DURATION_BUCKETS`], [`BODY_SIZE_BUCKETS`]).
//! - **`/metrics`** ([`MetricsSource`]): a registry or a collector (herd-mmap's
//!   aggregator), the format negotiated from `Accept`, gzip when `Accept-Encoding`
//!   allows; an adapter's handler only copies headers in and out.
//! - **[`RedMetrics`]** registers the families once and hands out a [`RequestTimer`]
//!   per request. The timer resolves its series through two lock-free, write-once
//!   tables (one keyed by method and route, looked up once per request; one keyed by
//!   that entry and the status), so that after the first request of a kind a request
//!   costs two table probes, two clock reads and a handful of atomic operations, and
//!   allocates nothing.
//!
//! # When a request is counted
//!
//! A request is counted, its duration observed and its in-flight series decremented
//! **once**, when the first of these happens:
//!
//! | what happened | `status` label | also |
//! | --- | --- | --- |
//! | the response body ended ([`RequestTimer::finish`]) | the response's code | |
//! | the response body was dropped before its end (the client went away) | the response's code | `http_requests_aborted_total` +1, unless the response has no content by definition (a `HEAD` request, 1xx, 204, 304) |
//! | the service returned an error instead of a response ([`RequestTimer::fail`]) | [`ERROR_STATUS`] | |
//! | the request was dropped before any response (cancelled, or a panic that unwound through the adapter) | [`CANCELLED_STATUS`] | |
//!
//! # Examples
//!
//! ```
//! use herd_core::http::{RedMetrics, RedOptions};
//! use herd_core::{Format, Registry};
//!
//! let registry = Registry::new();
//! let red = RedMetrics::register(&registry, RedOptions::new())?;
//!
//! // What an adapter does for each request:
//! let mut timer = red.start("GET", Some("/users/{id}"), None).ok_or("route excluded")?;
//! timer.headers(200);
//! timer.add_body_bytes(512);
//! timer.finish();
//!
//! // A scanner's probe and an extension method stay bounded:
//! let mut probe = red.start("PROPFIND", None, None).ok_or("route excluded")?;
//! probe.headers(404);
//! probe.finish();
//!
//! let text = String::from_utf8(registry.encode(Format::Text))?;
//! let counts: Vec<&str> = text.lines().filter(|l| l.starts_with("http_requests_total")).collect();
//! assert_eq!(counts, [
//!     r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#,
//!     r#"http_requests_total{method="_OTHER",route="unmatched",status="404"} 1"#,
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

//!
//! # Modules
//!
//! The names and constants are re-exported here; the modules only divide the work:
//! `label_values` (methods and statuses folded to fixed values), `names` (the presets),
//! `options` ([`RedOptions`], over the shared [`crate::options`]; body-size buckets),
//! `red` ([`RedMetrics`]: registration), `cache` (the series cache over [`WriteOnceTable`](crate::table::WriteOnceTable)s), `timer`
//! ([`RequestTimer`]), `tracked` (a handle and its observer, shared with
//! [`crate::grpc`]) and `scrape` (`/metrics`).

mod cache;
mod label_values;
mod names;
mod options;
mod red;
mod scrape;
#[cfg(test)]
mod tests;
mod timer;
mod tracked;

pub use crate::options::DURATION_BUCKETS;
pub use label_values::{
    fold_method, status_label, CANCELLED_STATUS, ERROR_STATUS, KNOWN_METHODS, OTHER_METHOD, OTHER_STATUS,
    UNMATCHED_ROUTE,
};
pub use names::{MetricSpec, Preset, RedNames};
pub use options::{HttpKind, RedOptions, BODY_SIZE_BUCKETS};
pub use red::RedMetrics;
pub use scrape::{accepts_gzip, MetricsSource, ScrapeResponse, SCRAPE_VARY};
pub use timer::RequestTimer;
pub(crate) use tracked::Tracked;
