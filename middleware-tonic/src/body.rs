//! [`RequestBody`] and [`ResponseBody`]: message counts, and the code in the trailers.

use std::fmt;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use herd_core::grpc::{code, parse_code, CallTimer, FrameCounter, Messages};
use http::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The name of the header and trailer that carries a call's code.
const GRPC_STATUS_NAME: &str = "grpc-status";

/// `grpc-status`, made once: looking a header up by `&str` parses the name each time.
static GRPC_STATUS: HeaderName = HeaderName::from_static(GRPC_STATUS_NAME);

/// Messages of one data chunk: gRPC bodies are `Bytes`, one slice; a chunk in more
/// slices than this is counted from its first ones, and its messages after them are
/// missed (counts only, never the code).
const SLICES: usize = 4;

/// Feeds each slice of `data` to `feed`: gRPC bodies are one slice, taken at once.
#[inline]
fn each_slice<D: Buf>(data: &D, mut feed: impl FnMut(&[u8])) {
    let chunk = data.chunk();
    if chunk.len() == data.remaining() {
        return feed(chunk);
    }
    let mut slices = [IoSlice::new(&[]); SLICES];
    let n = data.chunks_vectored(&mut slices);
    for slice in slices.get(..n).unwrap_or_default() {
        feed(slice);
    }
}

#[inline]
fn count<D: Buf>(frames: &mut FrameCounter, data: &D) -> u64 {
    let mut messages = 0;
    each_slice(data, |slice| messages += frames.feed(slice));
    messages
}

/// Counts the response messages of `data` with the call's timer, which keeps the
/// response's frame counter.
#[inline]
fn count_sent<D: Buf>(timer: &mut CallTimer, data: &D) {
    each_slice(data, |slice| timer.count_sent(slice));
}

/// Entries up to which [`grpc_status`] compares names rather than look one up: the
/// map's lookup hashes the name byte by byte, which costs more than comparing it with
/// the few names gRPC responses carry (`content-type`, `grpc-status`,
/// `grpc-message`).
const SCAN: usize = 8;

/// The code in `map`'s `grpc-status`, if it has one.
#[inline]
pub(crate) fn grpc_status(map: &HeaderMap) -> Option<u8> {
    // The headers of a response that is not Trailers-Only are often empty.
    if map.is_empty() {
        return None;
    }
    let value = if map.len() <= SCAN {
        // With the name's text as a constant: `==` on two `HeaderName`s of a custom
        // name calls the C library's `bcmp`, where a comparison with a constant of
        // known length is a few loads.
        map.iter().find_map(|(name, value)| (name.as_str() == GRPC_STATUS_NAME).then_some(value))
    } else {
        map.get(&GRPC_STATUS)
    };
    value.map(|v| parse_code(v.as_bytes()))
}

/// Counts the request messages of `data`. Out of line: a unary call's body, which
/// counts nothing, stays a thin forward that the inner service can inline.
#[inline(never)]
fn received<D: Buf>(messages: &Messages, frames: &mut FrameCounter, data: &D) {
    messages.received(count(frames, data));
}

pin_project! {
    /// The request body the inner service reads: counts request messages as they
    /// arrive (for a unary or server-streaming method, whose one message was counted
    /// when its call started, it only forwards).
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        frames: FrameCounter,
        messages: Option<Messages>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, messages: Option<Messages>) -> Self {
        Self { inner, frames: FrameCounter::new(), messages }
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the inner body; messages read from it no longer count.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody").field("messages", &self.messages).finish_non_exhaustive()
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        // Nothing to count: the inner body's frame goes straight to the caller.
        let Some(messages) = this.messages else { return this.inner.poll_frame(cx) };
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                received(messages, this.frames, data);
            }
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

pin_project! {
    /// The response body of [`Metrics`](crate::Metrics): counts response messages,
    /// reads `grpc-status` from the trailers, and records the call at its end.
    ///
    /// Dropped before its end (the client cancelled mid-stream, the connection
    /// closed), it records the call as `CANCELLED`, unless its code was already known
    /// from the headers.
    pub struct ResponseBody<B> {
        // First, so that a dropped body records its call before the inner body (and
        // whatever the handler's stream holds) is dropped. It counts the response's
        // messages too: a counter beside it would make the body 8 bytes larger, and
        // the response is moved whole on every hop.
        timer: Option<CallTimer>,
        #[pin]
        inner: B,
    }
}

impl<B: Body> ResponseBody<B> {
    #[inline]
    pub(crate) fn new(inner: B, mut timer: Option<CallTimer>) -> Self {
        // A Trailers-Only response has an empty body that may never be polled.
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

    /// Unwraps the inner body; its call is recorded now, as `CANCELLED` unless its
    /// code was known.
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
        // Recorded already: the inner body's frame goes straight to the caller.
        let Some(timer) = this.timer.as_mut() else { return this.inner.poll_frame(cx) };
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Pending => false,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    count_sent(timer, data);
                } else if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    timer.code(code);
                }
                this.inner.is_end_stream()
            }
            Poll::Ready(None) => true,
            // The body failed: the client sees the stream reset, with no status.
            Poll::Ready(Some(Err(_))) => {
                timer.code(code::UNKNOWN);
                true
            }
        };
        if ended {
            if let Some(t) = this.timer.take() {
                t.finish();
            }
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
