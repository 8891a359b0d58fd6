//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use herd_core::http::RequestTimer;
use pin_project_lite::pin_project;

use crate::ResponseBody;

pin_project! {
    /// The response future of [`MetricsMiddleware`](crate::MetricsMiddleware): the
    /// inner future, and the request's timer until the response is ready.
    ///
    /// Dropped before the inner future completes (the connection closed, a timeout, a
    /// panic unwinding through it), it records the request as `cancelled`. An error from
    /// the inner service is counted with the status of the response actix answers it
    /// with.
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

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ResponseBody<B>>, actix_web::Error>;

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
                Ok(response.map_body(|_head, body| ResponseBody::new(body, timer)))
            }
            // An inner middleware returned an error instead of a response (a handler's
            // error is already a response by the time it gets here). Unlike hyper, which
            // closes the connection, actix answers it with the error's own response, so
            // the client does get a status: count that one. Only this cold path builds
            // the response to learn it, since `error_response` may pick any status.
            Err(e) => {
                if let Some(mut t) = timer {
                    t.headers(e.error_response().status().as_u16());
                    t.finish();
                }
                Err(e)
            }
        })
    }
}
