//! [`Metrics`], the service.

use std::fmt;
use std::task::{Context, Poll};

use herd_core::http::RedMetrics;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::RouteFn;

/// A service that records RED metrics for every request its inner service handles.
///
/// Transparent: `poll_ready` is forwarded, errors are the inner service's, the future
/// and the response body are thin wrappers, and recording never fails a request. Made
/// by [`MetricsLayer`](crate::MetricsLayer).
///
/// The route label is the template of axum's
/// [`MatchedPath`](axum::extract::MatchedPath), present when the layer is added with
/// `Router::layer`; requests without one (a 404, or any request to a service that is
/// not an axum router) get [`UNMATCHED_ROUTE`](herd_core::http::UNMATCHED_ROUTE), unless
/// the layer's [`route_fn`](crate::MetricsLayer::route_fn) names their route.
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    metrics: RedMetrics,
    route: Option<RouteFn>,
}

impl<S: fmt::Debug> fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .field("metrics", &self.metrics)
            .field("route_fn", &self.route.is_some())
            .finish()
    }
}

impl<S> Metrics<S> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: S, metrics: RedMetrics) -> Self {
        Self { inner, metrics, route: None }
    }

    pub(crate) fn with_route_fn(inner: S, metrics: RedMetrics, route: Option<RouteFn>) -> Self {
        Self { inner, metrics, route }
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
        let size = if self.metrics.records_body_sizes() { req.body().size_hint().exact() } else { None };
        if let Some(route_fn) = &self.route {
            // The hook reads the request's head: split it off for the call, then put the
            // request back together (moves only).
            let (parts, body) = req.into_parts();
            let route = route_fn(&parts).or_else(|| matched_path(&parts.extensions));
            let timer = self.metrics.start(parts.method.as_str(), route, size);
            return ResponseFuture::new(self.inner.call(Request::from_parts(parts, body)), timer);
        }
        let route = matched_path(req.extensions());
        let timer = self.metrics.start(req.method().as_str(), route, size);
        ResponseFuture::new(self.inner.call(req), timer)
    }
}

fn matched_path(extensions: &http::Extensions) -> Option<&str> {
    extensions.get::<axum::extract::MatchedPath>().map(|p| p.as_str())
}
