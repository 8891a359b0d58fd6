//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use herd_core::grpc::{code, http_status_code, CallTimer};
use http::{Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;

use crate::ResponseBody;

pin_project! {
    /// The response future of [`Metrics`](crate::Metrics).
    ///
    /// Reads the code of a Trailers-Only response (an immediate error, such as a
    /// handler's `Err(Status)` or tonic's `UNIMPLEMENTED` for an unknown method) from
    /// the `grpc-status` header. Dropped before the inner future completes (the client
    /// cancelled, the connection closed), it records the call as `CANCELLED`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        timer: Option<CallTimer>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, timer: CallTimer) -> Self {
        Self { inner, timer: Some(timer) }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("timer", &self.timer).finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut timer = this.timer.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(t) = &mut timer {
                    if response.status() != StatusCode::OK {
                        t.code(http_status_code(response.status().as_u16()));
                    } else if let Some(code) = crate::body::grpc_status(response.headers()) {
                        t.code(code);
                    }
                }
                let (parts, body) = response.into_parts();
                Ok(Response::from_parts(parts, ResponseBody::new(body, timer)))
            }
            Err(e) => {
                if let Some(mut t) = timer {
                    // No response at all: the client sees the stream reset.
                    t.code(code::UNKNOWN);
                    t.finish();
                }
                Err(e)
            }
        })
    }
}
