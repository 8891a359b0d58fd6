//! [`ResponseBody`], which records the request when it ends or is dropped.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use herd_core::http::RequestTimer;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`Metrics`](crate::Metrics): the inner body, and the
    /// request's timer until the body ends.
    ///
    /// The request is recorded when the body yields its last frame (or reports
    /// `is_end_stream`), so a streamed response is timed to its end. Dropped before
    /// that, or after the inner body failed, it records the response as aborted, with
    /// the status that was sent.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        timer: Option<RequestTimer>,
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B, mut timer: Option<RequestTimer>) -> Self {
        // A body with nothing to send (an empty body, a 204) may never be polled.
        if inner.is_end_stream() {
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

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = this.timer.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        t.add_body_bytes(data.remaining() as u64);
                    }
                    if this.inner.is_end_stream() {
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
            // The body failed: the client got a truncated response, as if it had
            // gone away.
            Poll::Ready(Some(Err(_))) => drop(this.timer.take()),
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
