//! [`MetricsHandler`]: the `/metrics` endpoint.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Ready};
use std::io::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use herd_core::{encode, negotiate, Collector, Registry, Snapshot};
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Full;
use tower_service::Service;

type Source = dyn Fn() -> Snapshot + Send + Sync;

/// Answers a scrape: takes a snapshot, encodes it in the format the `Accept` header
/// prefers ([`negotiate`]: OpenMetrics for Prometheus, text 0.0.4 otherwise), and
/// compresses it with gzip when `Accept-Encoding` allows.
///
/// It is a [`Service`] for any request body, so it mounts with axum's `route_service`
/// (or any tower stack), and [`respond`](Self::respond) serves it from a handler.
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use herd_axum::{MetricsHandler, MetricsLayer};
///
/// let registry = herd_core::Registry::new();
/// let layer = MetricsLayer::builder().exclude_route("/metrics").build(&registry)?;
/// let app: Router = Router::new()
///     .route("/hello", get(|| async { "hi" }))
///     .route_service("/metrics", MetricsHandler::new(registry))
///     .layer(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsHandler {
    source: Arc<Source>,
}

impl fmt::Debug for MetricsHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsHandler").finish_non_exhaustive()
    }
}

impl MetricsHandler {
    /// Serves `registry`'s snapshot.
    pub fn new(registry: Registry) -> Self {
        Self::from_fn(move || registry.snapshot())
    }

    /// Serves what `collector` collects: in multiprocess mode, a herd-mmap
    /// `Aggregator`, which sums every worker's file.
    pub fn from_collector(collector: Arc<dyn Collector>) -> Self {
        Self::from_fn(move || {
            let mut snapshot = Snapshot::default();
            collector.collect(&mut snapshot.families);
            snapshot.sort();
            snapshot
        })
    }

    /// Serves whatever snapshot `source` takes.
    pub fn from_fn(source: impl Fn() -> Snapshot + Send + Sync + 'static) -> Self {
        Self { source: Arc::new(source) }
    }

    /// The response to a scrape with these request headers.
    pub fn respond(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = negotiate(accept);
        let mut body = Vec::new();
        encode(&(self.source)(), format, &mut body);
        let (body, gzipped) = match accepts_gzip(headers).then(|| gzip(&body)).flatten() {
            Some(compressed) => (compressed, true),
            None => (body, false),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        h.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if gzipped {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// Whether `Accept-Encoding` allows gzip: a `gzip` (or `x-gzip`) entry, or else a `*`
/// entry, with a quality above zero. No header means identity only.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let mut q = 1.0f32;
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q > 0.0);
            } else if coding == "*" {
                any = Some(q > 0.0);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

impl<B> Service<Request<B>> for MetricsHandler {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(req.headers())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(!accepts_gzip(&headers(&[])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "br, GZIP;q=0.5")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0, *")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity, br")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "br"), ("accept-encoding", "x-gzip")])));
    }
}
