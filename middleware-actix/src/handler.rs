//! [`MetricsHandler`]: the `/metrics` endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use herd_core::http::{MetricsSource, ScrapeResponse, SCRAPE_VARY};
use herd_core::{Collector, Registry, Snapshot};

/// Answers a scrape: takes a snapshot, encodes it in the format the `Accept` header
/// prefers ([`herd_core::negotiate`]: OpenMetrics for Prometheus, protobuf for one with
/// native histograms enabled, text 0.0.4 otherwise), and compresses it with gzip when `Accept-Encoding` allows; all of it
/// [`MetricsSource::respond`], shared with herd's other web adapters.
///
/// It is an actix-web handler taking the [`HttpRequest`]: mount it with
/// `.route("/metrics", web::get().to(handler))`, or call
/// [`respond`](Self::respond) from a handler of your own.
///
/// A scrape is blocking work (in multiprocess mode it lists a directory, reads every
/// worker's file, may compact, and gzips), so the handler runs it with
/// [`web::block`]: the worker's other requests go on meanwhile. A source that cannot
/// collect at all answers 500 with its reason in one line.
///
/// # Examples
///
/// ```
/// use actix_web::{test, web, App};
/// use herd_actix::MetricsHandler;
///
/// # actix_web::rt::System::new().block_on(async {
/// let registry = herd_core::Registry::new();
/// registry.counter("jobs_total", "Jobs.").register()?.inc();
/// let app = test::init_service(
///     App::new().route("/metrics", web::get().to(MetricsHandler::new(&registry))),
/// )
/// .await;
/// let body = test::call_and_read_body(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
/// assert!(std::str::from_utf8(&body)?.contains("jobs_total 1\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
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

    /// The response to a scrape with `req`'s headers, taken on the calling thread:
    /// blocking work, so from a handler prefer mounting this one, or call it inside
    /// [`web::block`].
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        into_response(self.scrape(req))
    }

    fn scrape(&self, req: &HttpRequest) -> ScrapeResponse {
        let headers = req.headers();
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let encodings = headers.get_all(ACCEPT_ENCODING).filter_map(|v| v.to_str().ok());
        self.source.respond(accept, encodings)
    }
}

fn into_response(scrape: ScrapeResponse) -> HttpResponse {
    let status = StatusCode::from_u16(scrape.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, scrape.content_type)).insert_header((VARY, SCRAPE_VARY));
    if let Some(encoding) = scrape.content_encoding {
        response.insert_header((CONTENT_ENCODING, encoding));
    }
    response.body(scrape.body)
}

impl actix_web::Handler<(HttpRequest,)> for MetricsHandler {
    type Output = HttpResponse;
    // One allocation per scrape, beside the whole exposition it produces.
    type Future = Pin<Box<dyn Future<Output = HttpResponse>>>;

    fn call(&self, (req,): (HttpRequest,)) -> Self::Future {
        let handler = self.clone();
        Box::pin(async move {
            // `HttpRequest` is not `Send`: the blocking task gets owned headers.
            let headers = req.headers().clone();
            let scrape = web::block(move || {
                let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
                let encodings = headers.get_all(ACCEPT_ENCODING).filter_map(|v| v.to_str().ok());
                handler.source.respond(accept, encodings)
            })
            .await;
            into_response(scrape.unwrap_or_else(|e| {
                // The collector panicked: a failed scrape, never a dropped connection.
                ScrapeResponse::failed(&format_args!("the scrape did not finish: {e}"))
            }))
        })
    }
}
