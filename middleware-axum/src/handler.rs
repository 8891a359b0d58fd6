//! [`MetricsHandler`]: the `/metrics` endpoint.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use herd_core::http::{MetricsSource, ScrapeResponse, SCRAPE_VARY};
use herd_core::{Collector, Registry, Snapshot};
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::task::JoinHandle;
use tower_service::Service;

/// Answers a scrape: takes a snapshot, encodes it in the format the `Accept` header
/// prefers ([`herd_core::negotiate`]: OpenMetrics for Prometheus, protobuf for one with
/// native histograms enabled, text 0.0.4 otherwise), and
/// compresses it with gzip when `Accept-Encoding` allows: all of it
/// [`MetricsSource::respond`], shared with herd's other web adapters.
///
/// It is a [`Service`] for any request body, so it mounts with axum's `route_service`
/// (or any tower stack), and [`respond`](Self::respond) serves it from a handler.
///
/// A scrape is blocking work (in multiprocess mode it lists a directory, reads every
/// worker's file, may compact, and gzips), so the service runs it on tokio's blocking
/// pool: a slow scrape never holds up the requests that share its runtime thread. A
/// source that cannot collect at all answers 500 with its reason in one line.
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use herd_axum::red::RedOptions;
/// use herd_axum::{MetricsHandler, MetricsLayer};
///
/// let registry = herd_core::Registry::new();
/// let layer = MetricsLayer::with_options(&registry, RedOptions::new().exclude_route("/metrics"))?;
/// let app: Router = Router::new()
///     .route("/hello", get(|| async { "hi" }))
///     .route_service("/metrics", MetricsHandler::new(&registry))
///     .layer(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsHandler {
    source: MetricsSource,
}

impl MetricsHandler {
    /// Serves `registry`'s snapshot (the handler keeps a clone: clones share the
    /// families).
    pub fn new(registry: &Registry) -> Self {
        Self::from_source(MetricsSource::registry(registry.clone()))
    }

    /// Serves what `collector` collects: in multiprocess mode, a herd-mmap
    /// `Aggregator`, which sums every worker's file.
    pub fn from_collector(collector: Arc<dyn Collector>) -> Self {
        Self::from_source(MetricsSource::collector(collector))
    }

    /// Serves whatever snapshot `source` takes.
    pub fn from_fn(source: impl Fn() -> Snapshot + Send + Sync + 'static) -> Self {
        Self::from_source(MetricsSource::from_fn(source))
    }

    /// Serves `source`, which may be shared with another adapter's handler.
    pub fn from_source(source: MetricsSource) -> Self {
        Self { source }
    }

    /// The response to a scrape with these request headers, taken on the calling
    /// thread: blocking work, so from async code prefer the [`Service`], or call this
    /// inside `tokio::task::spawn_blocking`.
    pub fn respond(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let encodings = headers.get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok());
        into_response(self.source.respond(accept, encodings))
    }
}

fn into_response(scrape: ScrapeResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(scrape.body)));
    *response.status_mut() = StatusCode::from_u16(scrape.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(scrape.content_type));
    h.insert(VARY, HeaderValue::from_static(SCRAPE_VARY));
    if let Some(encoding) = scrape.content_encoding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

impl<B> Service<Request<B>> for MetricsHandler {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ScrapeFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not on a tokio runtime (another executor, a test): nowhere else to go.
            return ScrapeFuture(State::Done(Some(self.respond(req.headers()))));
        };
        let headers = req.headers().clone();
        let handler = self.clone();
        ScrapeFuture(State::Blocking(runtime.spawn_blocking(move || handler.respond(&headers))))
    }
}

/// The future of a scrape taken on tokio's blocking pool ([`MetricsHandler`]'s
/// [`Service`] future).
#[derive(Debug)]
pub struct ScrapeFuture(State);

#[derive(Debug)]
enum State {
    Blocking(JoinHandle<Response<Full<Bytes>>>),
    Done(Option<Response<Full<Bytes>>>),
}

impl Future for ScrapeFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match &mut self.0 {
            State::Blocking(task) => match Pin::new(task).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(response)) => response,
                // The collector panicked (or the runtime is shutting down): a failed
                // scrape, never a dropped connection with no answer.
                Poll::Ready(Err(e)) => {
                    into_response(ScrapeResponse::failed(&format_args!("the scrape did not finish: {e}")))
                }
            },
            State::Done(done) => done.take().unwrap_or_else(|| {
                into_response(ScrapeResponse::failed(&"the scrape was polled after it finished"))
            }),
        };
        Poll::Ready(Ok(response))
    }
}
