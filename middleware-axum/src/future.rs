//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use herd_core::http::RequestTimer;
use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use crate::ResponseBody;

pin_project! {
    /// The response future of [`Metrics`](crate::Metrics): the inner future, and the
    /// request's timer until the response is ready.
    ///
    /// Dropped before the inner future completes (the connection closed, an outer
    /// timeout, a panic unwinding through it), it records the request as `cancelled`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        timer: Option<RequestTimer>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, timer: Option<RequestTimer>) -> Self {
        Self { inner, timer }
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
                    t.headers(response.status().as_u16());
                }
                Ok(response.map(|body| ResponseBody::new(body, timer)))
            }
            Err(e) => {
                if let Some(t) = timer {
                    t.fail();
                }
                Err(e)
            }
        })
    }
}
