//! [`ResponseBody`], which records the request when it ends or is dropped.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use herd_core::http::RequestTimer;
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`MetricsMiddleware`](crate::MetricsMiddleware): the inner
    /// body, and the request's timer until the body ends.
    ///
    /// The request is recorded when the body yields its end (or, for a body of known
    /// size, its last bytes, or when an outer layer takes a body held in memory whole
    /// through `try_into_bytes`), so a streamed response is timed to its end. Dropped before
    /// that (actix drops the body of a connection that closed), or after the inner body
    /// failed, it records the response as aborted, with the status that was sent.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        timer: Option<RequestTimer>,
    }
}

/// Whether a body of this size is over: actix's dispatcher never polls a body of size
/// `None` or `Sized(0)`, and a sized body that has yielded all its bytes is done.
#[inline]
fn ended(size: BodySize) -> bool {
    matches!(size, BodySize::None | BodySize::Sized(0))
}

impl<B: MessageBody> ResponseBody<B> {
    pub(crate) fn new(inner: B, mut timer: Option<RequestTimer>) -> Self {
        if ended(inner.size()) {
            if let Some(t) = timer.take() {
                t.finish();
            }
        }
        Self { inner, timer }
    }
}

impl<B> ResponseBody<B> {
    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the inner body; its request is recorded now, as aborted unless the body
    /// had ended.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").field("timer", &self.timer).finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for ResponseBody<B> {
    type Error = B::Error;

    #[inline]
    fn size(&self) -> BodySize {
        self.inner.size()
    }

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(t) = this.timer.as_mut() {
                    t.add_body_bytes(chunk.len() as u64);
                    if ended(this.inner.size()) {
                        if let Some(t) = this.timer.take() {
                            t.finish();
                        }
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(t) = this.timer.take() {
                    t.finish();
                }
            }
            // The body failed: the client got a truncated response, as if it had gone
            // away.
            Poll::Ready(Some(Err(_))) => drop(this.timer.take()),
        }
        polled
    }

    /// Hands over a body held whole in memory (what an outer `BoxBody::new` asks
    /// first): the request is recorded now, with all its bytes, since nothing of the
    /// response is left to produce. Forwarding this keeps an outer boxing free of an
    /// allocation, as it is for the bare body.
    #[inline]
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let Self { inner, mut timer } = self;
        match inner.try_into_bytes() {
            Ok(bytes) => {
                if let Some(mut t) = timer.take() {
                    t.add_body_bytes(bytes.len() as u64);
                    t.finish();
                }
                Ok(bytes)
            }
            Err(inner) => Err(Self { inner, timer }),
        }
    }
}
