//! Helpers the tests of this crate share: a poll loop and a body reader that allocate
//! nothing themselves.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use futures_util::task::noop_waker_ref;

/// Polls `f` to completion on this thread; for futures that are ready without waiting
/// on I/O or timers.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(noop_waker_ref());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Reads `body` to its end (or its first error), returning the data length; what
/// actix's dispatcher does with a response body.
pub fn drain<B: MessageBody>(body: B) -> usize {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut n = 0;
    loop {
        match Pin::as_mut(&mut body).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(chunk))) => n += chunk.len(),
            Poll::Ready(Some(Err(_)) | None) => return n,
            Poll::Pending => {}
        }
    }
}
