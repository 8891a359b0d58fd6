//! [`MetricsMiddleware`], the service.

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use herd_core::http::RedMetrics;

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
/// [`UNMATCHED_ROUTE`](herd_core::http::UNMATCHED_ROUTE).
#[derive(Debug)]
pub struct MetricsMiddleware<S> {
    inner: S,
    metrics: RedMetrics,
}

impl<S> MetricsMiddleware<S> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: S, metrics: RedMetrics) -> Self {
        Self { inner, metrics }
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
        // actix-web's only public way to the template: it matches the path against the
        // resource map and builds the pattern in a new `String`. That one allocation per
        // request is actix's; the timer below adds none once the series are cached.
        let route = req.match_pattern();
        let size = if self.metrics.records_body_sizes() { request_size(&req) } else { None };
        let timer = self.metrics.start(req.method().as_str(), route.as_deref(), size);
        drop(route);
        ResponseFuture::new(self.inner.call(req), timer)
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
