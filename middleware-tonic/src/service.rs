//! [`Metrics`], the service.

use std::task::{Context, Poll};

use herd_core::grpc::{GrpcMetrics, RpcType};
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::{RequestBody, ResponseFuture};

/// A service that records every gRPC call its inner service handles.
///
/// Transparent: `poll_ready` is forwarded, errors are the inner service's, and
/// recording never fails a call. The request body is wrapped to count request
/// messages (of client- and bidi-streaming methods, and undeclared paths: a unary or
/// server-streaming method's one request message is counted when the call starts),
/// the response body to count response messages and read `grpc-status` from the
/// trailers. Made by [`MetricsLayer`](crate::MetricsLayer).
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    metrics: GrpcMetrics,
}

impl<S> Metrics<S> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: S, metrics: GrpcMetrics) -> Self {
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
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
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
        let timer = self.metrics.start(req.uri().path());
        let messages = match timer.rpc_type() {
            // One request message by the method's type: counted now, which spares the
            // body a second reference to the families (two atomic operations per call)
            // and its frame parsing.
            Some(RpcType::Unary | RpcType::ServerStream) => {
                timer.messages().received(1);
                None
            }
            _ => Some(timer.messages().clone()),
        };
        let req = req.map(|body| RequestBody::new(body, messages));
        ResponseFuture::new(self.inner.call(req), timer)
    }
}
