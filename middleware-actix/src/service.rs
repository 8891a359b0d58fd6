//! [`MetricsMiddleware`], the service.

use std::cell::RefCell;
use std::fmt;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use herd_core::http::RedMetrics;

use crate::memo::RouteMemo;
use crate::{ResponseBody, ResponseFuture};

/// The service [`Metrics`](crate::Metrics) wraps around the app: records RED metrics
/// for every request the inner service handles.
///
/// Transparent: readiness is forwarded, errors are the inner service's, the future
/// and the response body are thin wrappers, and recording never fails a request.
///
/// The route label is the template of actix-web's
/// [`match_pattern`](ServiceRequest::match_pattern) (`/users/{id}`, scopes included);
/// a request no resource matches gets
/// [`UNMATCHED_ROUTE`](herd_core::http::UNMATCHED_ROUTE). Each middleware (one per
/// actix worker thread) remembers the templates of the last paths it saw, a bounded
/// number, so that a repeated path skips actix-web's second match of the path.
pub struct MetricsMiddleware<S> {
    inner: S,
    metrics: RedMetrics,
    routes: RefCell<RouteMemo>,
}

impl<S> MetricsMiddleware<S> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: S, metrics: RedMetrics) -> Self {
        Self { inner, metrics, routes: RefCell::new(RouteMemo::new()) }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<ServiceRequest> for MetricsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(inner);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let size = if self.metrics.records_body_sizes() { request_size(&req) } else { None };
        let method = req.method().as_str();
        let start = |route: Option<&str>| self.metrics.start(method, route, size);
        // A path seen lately takes its template from the memo; any other asks
        // actix-web's `match_pattern()`, which matches the path again and allocates
        // the template (that allocation is actix's: the timer adds none once the
        // series are cached). The memo is only ever borrowed here, so the fallback is
        // for form's sake.
        let timer = match self.routes.try_borrow_mut() {
            Ok(mut memo) => memo.with_route(&req, start),
            Err(_) => start(req.match_pattern().as_deref()),
        };
        ResponseFuture::new(self.inner.call(req), timer)
    }
}

impl<S: fmt::Debug> fmt::Debug for MetricsMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsMiddleware")
            .field("inner", &self.inner)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// The request body's size when its headers give it: its `Content-Length`, or 0 for a
/// request with neither `Content-Length` nor `Transfer-Encoding`, which has no body
/// (RFC 9112, section 6.3). A chunked upload's size is unknown up front: `None`, as
/// herd-axum's body size hint gives.
fn request_size(req: &ServiceRequest) -> Option<u64> {
    let headers = req.headers();
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    match headers.get(CONTENT_LENGTH) {
        Some(value) => value.to_str().ok()?.trim().parse().ok(),
        None => Some(0),
    }
}
