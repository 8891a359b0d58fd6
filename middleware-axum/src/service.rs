//! [`Metrics`], the service.

use std::task::{Context, Poll};

use herd_core::http::RedMetrics;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::future::ResponseFuture;

/// A service that records RED metrics for every request its inner service handles.
///
/// Transparent: `poll_ready` is forwarded, errors are the inner service's, the future
/// and the response body are thin wrappers, and recording never fails a request. Made
/// by [`MetricsLayer`](crate::MetricsLayer).
///
/// The route label is the template of axum's
/// [`MatchedPath`](axum::extract::MatchedPath), present when the layer is added with
/// `Router::layer`; requests without one (a 404, or any request to a service that is
/// not an axum router) get [`UNMATCHED_ROUTE`](herd_core::http::UNMATCHED_ROUTE).
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    metrics: RedMetrics,
}

impl<S> Metrics<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body,
    ResBody: Body,
{
    type Response = Response<crate::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str());
        let size = if self.metrics.records_body_sizes() { req.body().size_hint().exact() } else { None };
        let timer = self.metrics.start(req.method().as_str(), route, size);
        ResponseFuture::new(self.inner.call(req), timer)
    }
}
