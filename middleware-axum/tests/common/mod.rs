//! Helpers the tests of this crate share: a trivial service and a poll loop.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::task::noop_waker_ref;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use tower::{Service, ServiceExt};

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

/// Reads `body` to its end (or its first error), returning the data length.
pub fn drain<B: Body + Unpin>(mut body: B) -> usize {
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut n = 0;
    loop {
        match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => n += frame.data_ref().map_or(0, bytes::Buf::remaining),
            Poll::Ready(Some(Err(_)) | None) => return n,
            Poll::Pending => {}
        }
    }
}

/// A service answering `status` with a fixed body; its future and body allocate
/// nothing.
#[derive(Clone)]
pub struct Fixed(pub StatusCode);

impl<B> Service<Request<B>> for Fixed {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut response = Response::new(Full::new(Bytes::from_static(b"hello, world")));
        *response.status_mut() = self.0;
        ready(Ok(response))
    }
}

/// A `MatchedPath` for `template`, as axum's router makes it (its constructor is
/// private): routes one request through a router and keeps what the handler saw.
pub fn matched_path(template: &str) -> Result<MatchedPath, Box<dyn std::error::Error>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let router: Router = Router::new().route(
        template,
        get(move |path: MatchedPath| {
            let _ = tx.send(path);
            async { "" }
        }),
    );
    let uri = template.replace(['{', '}'], "");
    let request = Request::get(uri).body(axum::body::Body::empty())?;
    block_on(router.oneshot(request))?;
    Ok(rx.recv()?)
}
