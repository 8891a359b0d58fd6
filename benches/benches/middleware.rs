//! Added CPU per request of a RED metrics middleware: tower `oneshot` on a trivial
//! service, bare, behind herd-axum's `MetricsLayer` and behind axum-prometheus's
//! `PrometheusMetricLayer`, in the same run.
//!
//! Every iteration does the same work around the middleware: build a `GET /users/42`
//! request carrying axum's `MatchedPath` for `/users/{id}` (as `Router::layer` would),
//! clone the service, `oneshot` it, and read the response body to its end, since herd
//! records there. The service answers at once with a 12-byte body, so the difference
//! between a layered id and `bare` is the middleware's cost per request.

use std::convert::Infallible;
use std::error::Error;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use criterion::Criterion;
use futures_util::task::noop_waker_ref;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};

// This suite uses only the shared criterion settings, not the peers' type aliases.
#[allow(dead_code)]
mod common;

/// The trivial service: a fixed 200 with a 12-byte body, ready at once.
#[derive(Clone, Copy)]
struct Hello;

impl<B> Service<Request<B>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello, world")))))
    }
}

/// Polls `f` to completion on this thread (every future here is ready without I/O).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(noop_waker_ref());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// One request through `service`, its body read to the end; returns the body length.
fn one<S, B>(service: &S, path: &MatchedPath) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: Body,
{
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static("/users/42");
    request.extensions_mut().insert(path.clone());
    let response = match block_on(service.clone().oneshot(request)) {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let mut body = pin!(response.into_body());
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut len = 0;
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => len += frame.data_ref().map_or(0, bytes::Buf::remaining),
            Poll::Ready(Some(Err(_)) | None) => return len,
            Poll::Pending => {}
        }
    }
}

/// A `MatchedPath` for `template`, taken from a real router (its constructor is
/// private to axum).
fn matched_path(template: &str) -> Result<MatchedPath, Box<dyn Error>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let router: Router = Router::new().route(
        template,
        get(move |path: MatchedPath| {
            let _ = tx.send(path);
            async { "" }
        }),
    );
    let uri = template.replace(['{', '}'], "");
    block_on(router.oneshot(Request::get(uri).body(axum::body::Body::empty())?))?;
    Ok(rx.recv()?)
}

fn middleware(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let path = matched_path("/users/{id}")?;

    let registry = herd_core::Registry::new();
    let herd = herd_axum::MetricsLayer::new(&registry)?.layer(Hello);

    // axum-prometheus installs a process-wide recorder and spawns its upkeep task (which
    // drains recorded histogram samples every 5 s, as in a real service) on the tokio
    // runtime it finds: give it one, with a worker thread to run that task.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (prometheus_layer, _handle) = {
        let _entered = runtime.enter();
        axum_prometheus::PrometheusMetricLayer::pair()
    };
    let axum_prometheus = prometheus_layer.layer(Hello);

    // Each variant must answer the same body, or the comparison means nothing.
    for len in [one(&Hello, &path), one(&herd, &path), one(&axum_prometheus, &path)] {
        if len != 12 {
            return Err(format!("a variant answered {len} bytes instead of 12").into());
        }
    }

    let mut g = c.benchmark_group("middleware");
    g.bench_function("bare", |b| b.iter(|| one(black_box(&Hello), &path)));
    g.bench_function("herd", |b| b.iter(|| one(black_box(&herd), &path)));
    g.bench_function("axum-prometheus", |b| b.iter(|| one(black_box(&axum_prometheus), &path)));
    g.finish();

    // The requests above were recorded: a benchmark of a layer that records nothing
    // would prove nothing.
    let text = String::from_utf8(registry.encode(herd_core::Format::Text))?;
    if !text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#) {
        return Err(format!("herd recorded nothing:\n{text}").into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    middleware(&mut c)?;
    c.final_summary();
    Ok(())
}
