//! [`MetricsHandler`]: the `/metrics` endpoint.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use actix_web::{HttpRequest, HttpResponse};
use herd_core::http::{MetricsSource, SCRAPE_VARY};
use herd_core::{Collector, Registry, Snapshot};

/// Answers a scrape: takes a snapshot, encodes it in the format the `Accept` header
/// prefers ([`herd_core::negotiate`]: OpenMetrics for Prometheus, text 0.0.4
/// otherwise), and compresses it with gzip when `Accept-Encoding` allows; all of it
/// [`MetricsSource::respond`], shared with herd's other web adapters.
///
/// It is an actix-web handler taking the [`HttpRequest`]: mount it with
/// `.route("/metrics", web::get().to(handler))`, or call
/// [`respond`](Self::respond) from a handler of your own.
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
///     App::new().route("/metrics", web::get().to(MetricsHandler::new(registry))),
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
    /// Serves `registry`'s snapshot.
    pub fn new(registry: Registry) -> Self {
        Self::from_source(MetricsSource::registry(registry))
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

    /// The response to a scrape with `req`'s headers.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let headers = req.headers();
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let encodings = headers.get_all(ACCEPT_ENCODING).filter_map(|v| v.to_str().ok());
        let scrape = self.source.respond(accept, encodings);
        let mut response = HttpResponse::Ok();
        response.insert_header((CONTENT_TYPE, scrape.content_type)).insert_header((VARY, SCRAPE_VARY));
        if let Some(encoding) = scrape.content_encoding {
            response.insert_header((CONTENT_ENCODING, encoding));
        }
        response.body(scrape.body)
    }
}

impl actix_web::Handler<(HttpRequest,)> for MetricsHandler {
    type Output = HttpResponse;
    type Future = Ready<HttpResponse>;

    fn call(&self, (req,): (HttpRequest,)) -> Self::Future {
        ready(self.respond(&req))
    }
}
