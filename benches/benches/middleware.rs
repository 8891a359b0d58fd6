//! Added CPU per request of a RED metrics middleware, in the same run as its peer.
//!
//! `middleware` (axum): tower `oneshot` on a trivial service, bare, behind herd-axum's
//! `MetricsLayer` and behind axum-prometheus's `PrometheusMetricLayer`. Every iteration
//! does the same work around the middleware: build a `GET /users/42` request carrying
//! axum's `MatchedPath` for `/users/{id}` (as `Router::layer` would), clone the service,
//! `oneshot` it, and read the response body to its end, since herd records there.
//!
//! `middleware_actix`: the same request through an actix-web `App` (as
//! `actix_web::test::init_service` builds it, no socket) with one route
//! `/users/{id}`, bare, wrapped by herd-actix's `Metrics` and wrapped by
//! actix-web-prom's `PrometheusMetrics`; each iteration builds the request, calls the
//! app and reads the body to its end.
//!
//! Either way the handler answers at once with a 12-byte body, so the difference
//! between a wrapped id and `bare` is the middleware's cost per request.
//!
//! `middleware_grpc_added`: the CPU herd-tonic's layer adds to a unary gRPC call,
//! beside what herd-axum's adds to an HTTP request, paired in the same run. The gRPC
//! call is `POST /test.Echo/Unary` with one length-prefixed request message, which a
//! trivial gRPC service reads to its end (as tonic does) before answering one
//! 12-byte message and `grpc-status: 0` in the trailers; its body is read to its end
//! (where herd-tonic records).
//!
//! The `_added` groups measure that difference directly, paired: each sample times
//! alternating blocks of requests through the wrapped and the bare service and reports
//! the difference, so that a change of the machine's speed during the run (a
//! frequency step, a busy neighbour on a shared VM) falls on both alike. Subtracting
//! the medians of two benchmarks run seconds apart, as the plain groups allow, moved a
//! ratio of added costs between 0.27 and 0.60 from run to run of the same code here.
//!
//! A block is timed by the thread's CPU clock, not the wall clock, and a sample
//! reports the median of its blocks' differences: on a 2-vCPU machine shared by
//! several builds (load average 14), a block during which the thread was descheduled
//! counted the wait as the layer's cost, and one such block in a sample outweighed
//! the rest (median absolute deviations as large as the medians). A block that lost
//! its caches to a neighbour still runs slower on CPU; the median leaves it out on
//! either side alike. Every block is whole requests, so costs paid once per few
//! requests are still counted.
//!
//! Two layers' `_added` figures are still measured seconds apart, and what the
//! machine does in between moves their ratio. A stretch of a few hundred milliseconds
//! in which it runs slower (a busy neighbour: a loop on the other vCPU reproduces it)
//! raised herd-axum's added cost from about 180 to about 240 ns and herd-tonic's from
//! about 208 to about 235. So `middleware_grpc_added` also measures both layers in the
//! same rounds ([`interleaved`]: a block with and without herd-axum, then with and
//! without herd-tonic), 101 samples of twelve rounds, and writes each sample's two
//! figures, and how long its bare requests took, to `interleaved.json` in its
//! criterion directory. `bench-report` reads them as `herd-axum, interleaved` and
//! `herd-tonic, interleaved`, from the samples whose bare requests ran fastest, and
//! judges the target on those. A slower machine flatters this ratio (it adds more to
//! herd-axum's figure), so it is judged where the machine ran fastest.
//!
//! What no pairing removes is the process. Measured interleaved, the ratio holds
//! within a process (its quiet samples agree to a few percent) but differs between
//! processes of the same binary on a quiet machine: from 1.02 to 1.22 over twenty of
//! them, herd-axum's figure alone from 145 to 200 ns. With ASLR off (`setarch -R`),
//! sweeping the environment's size, which moves the stack, moves it too: it is the
//! process's layout in memory, the classic measurement bias of layout. A whole
//! process can also land in a busy stretch, where both layers run at about 240 ns.
//! `benches/run.sh` therefore runs the group in twenty more processes, and
//! `bench-report` judges the median of their ratios, leaving out any process whose
//! bare requests ran more than 5% slower than the fastest process's.

use std::convert::Infallible;
use std::error::Error;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

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

/// Requests per block of a paired measurement: a few hundred microseconds, short
/// against the machine's drifts, long against the clock's overhead.
const BLOCK: u64 = 256;

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // The clock counts from the thread's start: never negative.
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// Times `n` requests of `f` on this thread's CPU clock; returns nanoseconds.
fn timed(n: u64, f: &impl Fn() -> usize) -> f64 {
    let start = thread_cpu();
    for _ in 0..n {
        black_box(f());
    }
    (thread_cpu() - start).as_nanos() as f64
}

/// The median of `v`, which it sorts; 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One layer's side of [`interleaved`]: a request through the layer, and the same
/// request through the bare service.
struct Pair<'a, W, B> {
    with: &'a W,
    without: &'a B,
}

impl<W: Fn() -> usize, B: Fn() -> usize> Pair<'_, W, B> {
    /// One block each way: the CPU the layer added per request, and what the bare
    /// request took.
    fn block(&self) -> Block {
        let bare = timed(BLOCK, self.without);
        Block { added: (timed(BLOCK, self.with) - bare) / BLOCK as f64, bare: bare / BLOCK as f64 }
    }
}

/// Nanoseconds per request of one block of a [`Pair`].
struct Block {
    added: f64,
    bare: f64,
}

/// One sample of [`interleaved`], nanoseconds per request, medians over its rounds.
struct Sample {
    /// What each layer added.
    added: [f64; 2],
    /// The two bare requests of a round together: how fast the machine ran.
    bare: f64,
}

/// The CPU each of two layers adds per request, measured in the same rounds: a round
/// times a block of requests with and without `a`, then with and without `b` (which
/// pair goes first alternates), so whatever slows the machine for a while (a busy
/// neighbour on the host, which here adds up to a third to herd-axum's figure and an
/// eighth to herd-tonic's) falls on both layers alike.
fn interleaved<AW, AB, BW, BB>(rounds: usize, a: &Pair<'_, AW, AB>, b: &Pair<'_, BW, BB>) -> Sample
where
    AW: Fn() -> usize,
    AB: Fn() -> usize,
    BW: Fn() -> usize,
    BB: Fn() -> usize,
{
    let (mut by_a, mut by_b, mut bare) =
        (Vec::with_capacity(rounds), Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        let (of_a, of_b) = if round % 2 == 0 {
            let of_a = a.block();
            (of_a, b.block())
        } else {
            let of_b = b.block();
            (a.block(), of_b)
        };
        bare.push(of_a.bare + of_b.bare);
        by_a.push(of_a.added);
        by_b.push(of_b.added);
    }
    Sample { added: [median(&mut by_a), median(&mut by_b)], bare: median(&mut bare) }
}

/// Runs `with` and `without` `iters` times each, in alternating blocks of [`BLOCK`],
/// and returns how much longer the `with` runs took: the cost `with` adds, `iters`
/// times the median over blocks of the added CPU time per request.
fn added(iters: u64, with: impl Fn() -> usize, without: impl Fn() -> usize) -> Duration {
    let mut per_request = Vec::with_capacity(usize::try_from(iters.div_ceil(BLOCK)).unwrap_or(0));
    let mut left = iters;
    while left > 0 {
        let n = left.min(BLOCK);
        let without_ns = timed(n, &without);
        per_request.push((timed(n, &with) - without_ns) / n as f64);
        left -= n;
    }
    // Never zero: criterion rejects a sample of zero time, which a busy machine's noise
    // can produce when a sample has few iterations; 1 ns over a whole sample is far
    // below what is measured.
    Duration::from_nanos((median(&mut per_request) * iters as f64).max(1.0) as u64)
}

/// Settings of a paired group: criterion plans its samples from the durations it is
/// given, here only the added part of about twice as much work, so its clock targets
/// are shortened to keep the group's real time near a plain group's.
fn paired_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(600));
    g
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

    let mut g = paired_group(c, "middleware_added");
    let bare = || one(black_box(&Hello), &path);
    g.bench_function("herd", |b| b.iter_custom(|n| added(n, || one(black_box(&herd), &path), bare)));
    g.bench_function("axum-prometheus", |b| {
        b.iter_custom(|n| added(n, || one(black_box(&axum_prometheus), &path), bare))
    });
    g.finish();

    // The requests above were recorded: a benchmark of a layer that records nothing
    // would prove nothing.
    let text = String::from_utf8(registry.encode(herd_core::Format::Text))?;
    if !text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#) {
        return Err(format!("herd recorded nothing:\n{text}").into());
    }
    Ok(())
}

/// One `GET /users/42` through an actix app, its body read to the end; returns the
/// body length.
///
/// `request` builds it (actix-web does not export the request type's name).
fn one_actix<S, R, B>(app: &S, request: &impl Fn() -> R) -> usize
where
    S: actix_web::dev::Service<R, Response = actix_web::dev::ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let Ok(response) = block_on(app.call(request())) else { return 0 };
    let mut body = pin!(response.into_body());
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut len = 0;
    loop {
        match body.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(Ok(chunk))) => len += chunk.len(),
            Poll::Ready(Some(Err(_)) | None) => return len,
            Poll::Pending => {}
        }
    }
}

/// Distinct paths `middleware_actix_new_paths` cycles through: 16 times the 256 paths
/// herd-actix's route memo holds.
const NEW_PATHS: usize = 4096;

fn middleware_actix(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    use actix_web::{test, web, App};

    let routes = |cfg: &mut web::ServiceConfig| {
        cfg.route("/users/{id}", web::get().to(|| async { "hello, world" }));
    };
    let registry = herd_core::Registry::new();
    let herd_metrics = herd_actix::Metrics::new(&registry)?;
    // actix-web-prom's defaults record the same three kinds of metric (a request
    // counter, a duration histogram, an in-flight gauge) into its own registry.
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("api")
        .registry(prometheus::Registry::new())
        .endpoint("/metrics")
        .build()
        .map_err(|e| e.to_string())?;
    let prom_registry = prom.registry.clone();

    // The apps are built on an actix system; their services are then called on this
    // thread, every future being ready without I/O.
    let system = actix_web::rt::System::new();
    let bare = system.block_on(test::init_service(App::new().configure(routes)));
    let herd = system.block_on(test::init_service(App::new().wrap(herd_metrics).configure(routes)));
    let actix_web_prom = system.block_on(test::init_service(App::new().wrap(prom).configure(routes)));
    // actix-web's own share of herd's cost: a middleware that only asks for the route
    // template, as herd-actix does once per request (actix-web-prom asks twice).
    let match_pattern = system.block_on(test::init_service(
        App::new()
            .wrap_fn(|req, srv| {
                drop(black_box(req.match_pattern()));
                actix_web::dev::Service::call(srv, req)
            })
            .configure(routes),
    ));

    let users_42 = || test::TestRequest::get().uri("/users/42").to_request();
    for len in
        [one_actix(&bare, &users_42), one_actix(&herd, &users_42), one_actix(&actix_web_prom, &users_42)]
    {
        if len != 12 {
            return Err(format!("an actix variant answered {len} bytes instead of 12").into());
        }
    }

    let mut g = c.benchmark_group("middleware_actix");
    g.bench_function("bare", |b| b.iter(|| one_actix(black_box(&bare), &users_42)));
    g.bench_function("herd", |b| b.iter(|| one_actix(black_box(&herd), &users_42)));
    g.bench_function("actix-web-prom", |b| b.iter(|| one_actix(black_box(&actix_web_prom), &users_42)));
    g.bench_function("match_pattern-only", |b| b.iter(|| one_actix(black_box(&match_pattern), &users_42)));
    g.finish();

    let mut g = paired_group(c, "middleware_actix_added");
    let bare_42 = || one_actix(black_box(&bare), &users_42);
    g.bench_function("herd", |b| {
        b.iter_custom(|n| added(n, || one_actix(black_box(&herd), &users_42), bare_42))
    });
    g.bench_function("actix-web-prom", |b| {
        b.iter_custom(|n| added(n, || one_actix(black_box(&actix_web_prom), &users_42), bare_42))
    });
    g.bench_function("match_pattern-only", |b| {
        b.iter_custom(|n| added(n, || one_actix(black_box(&match_pattern), &users_42), bare_42))
    });
    // The same route, but every path new to herd-actix's route memo: ids cycle through
    // far more paths than it holds, so each request pays actix-web's
    // `match_pattern()`. Each side walks the same paths in the same order.
    let paths: Vec<String> = (0..NEW_PATHS).map(|i| format!("/users/{}", 1_000_000 + i)).collect();
    let new_user = |next: &std::cell::Cell<usize>| {
        let i = next.get();
        next.set((i + 1) % NEW_PATHS);
        test::TestRequest::get().uri(paths.get(i).map_or("/users/0", String::as_str)).to_request()
    };
    let (with_next, without_next) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let bare_new = || one_actix(black_box(&bare), &|| new_user(&without_next));
    g.bench_function("herd-new-paths", |b| {
        b.iter_custom(|n| added(n, || one_actix(black_box(&herd), &|| new_user(&with_next)), bare_new))
    });
    g.bench_function("actix-web-prom-new-paths", |b| {
        b.iter_custom(|n| {
            added(n, || one_actix(black_box(&actix_web_prom), &|| new_user(&with_next)), bare_new)
        })
    });
    g.finish();

    let text = String::from_utf8(registry.encode(herd_core::Format::Text))?;
    if !text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#) {
        return Err(format!("herd-actix recorded nothing:\n{text}").into());
    }
    let prom_counted: u64 = prom_registry
        .gather()
        .iter()
        .filter(|f| f.name() == "api_http_requests_total")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as u64))
        .sum();
    if prom_counted == 0 {
        return Err("actix-web-prom recorded nothing".into());
    }
    Ok(())
}

/// One gRPC message: a flag byte, a 4-byte length, and 12 bytes.
const GRPC_MESSAGE: &[u8] = b"\0\0\0\0\x0chello, world";

/// The trivial gRPC service: reads the request body to its end, then answers one
/// message and `grpc-status: 0` in the trailers.
#[derive(Clone, Copy)]
struct GrpcHello;

impl<B: Body> Service<Request<B>> for GrpcHello {
    type Response = Response<GrpcBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut body = pin!(req.into_body());
        let mut cx = Context::from_waker(noop_waker_ref());
        while let Poll::Ready(Some(Ok(_))) = body.as_mut().poll_frame(&mut cx) {}
        ready(Ok(Response::new(GrpcBody { sent: 0 })))
    }
}

/// Made once, as tonic does: a name given as `&str` is parsed on every insert, a cost
/// of the trivial service that would only add noise to the difference.
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// One data frame, then the trailers.
struct GrpcBody {
    sent: u8,
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.sent += 1;
        Poll::Ready(match self.sent {
            1 => Some(Ok(http_body::Frame::data(Bytes::from_static(GRPC_MESSAGE)))),
            2 => {
                let mut trailers = http::HeaderMap::new();
                trailers.insert(GRPC_STATUS, http::HeaderValue::from_static("0"));
                Some(Ok(http_body::Frame::trailers(trailers)))
            }
            _ => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= 2
    }
}

/// One unary call through `service`, its body read to the end; returns the data
/// length.
fn one_grpc<S, B>(service: &S) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: Body,
{
    let mut request = Request::new(Full::new(Bytes::from_static(GRPC_MESSAGE)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = Uri::from_static("/test.Echo/Unary");
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

fn middleware_grpc(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let path = matched_path("/users/{id}")?;
    let registry = herd_core::Registry::new();
    let axum = herd_axum::MetricsLayer::new(&registry)?.layer(Hello);
    let options = herd_tonic::GrpcOptions::new().method("/test.Echo/Unary", herd_tonic::RpcType::Unary);
    let tonic = herd_tonic::MetricsLayer::with_options(&registry, options)?.layer(GrpcHello);
    for len in [one_grpc(&GrpcHello), one_grpc(&tonic)] {
        if len != GRPC_MESSAGE.len() {
            return Err(format!("a gRPC variant answered {len} bytes").into());
        }
    }

    let mut g = paired_group(c, "middleware_grpc_added");
    g.bench_function("herd-axum", |b| {
        b.iter_custom(|n| added(n, || one(black_box(&axum), &path), || one(black_box(&Hello), &path)))
    });
    g.bench_function("herd-tonic", |b| {
        b.iter_custom(|n| added(n, || one_grpc(black_box(&tonic)), || one_grpc(black_box(&GrpcHello))))
    });
    g.finish();

    let (axum_with, axum_without) = (|| one(black_box(&axum), &path), || one(black_box(&Hello), &path));
    let (tonic_with, tonic_without) = (|| one_grpc(black_box(&tonic)), || one_grpc(black_box(&GrpcHello)));
    let axum_pair = Pair { with: &axum_with, without: &axum_without };
    let tonic_pair = Pair { with: &tonic_with, without: &tonic_without };
    let samples: Vec<Sample> =
        (0..INTERLEAVED_SAMPLES).map(|_| interleaved(INTERLEAVED_ROUNDS, &axum_pair, &tonic_pair)).collect();
    write_interleaved("middleware_grpc_added", ["herd-axum", "herd-tonic"], &samples)?;

    let text = String::from_utf8(registry.encode(herd_core::Format::Text))?;
    let recorded = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="test.Echo",grpc_method="Unary",grpc_code="OK"}"#;
    if !text.contains(recorded) || !text.contains(r#"grpc_server_msg_received_total{grpc_type="unary",grpc_service="test.Echo",grpc_method="Unary"}"#) {
        return Err(format!("herd-tonic recorded nothing:\n{text}").into());
    }
    Ok(())
}

/// Criterion's output directory, found as criterion finds it: `$CRITERION_HOME`, else
/// `criterion` in `$CARGO_TARGET_DIR` or in the target directory `cargo metadata`
/// names, else `target/criterion`. For files a suite writes beside criterion's own.
fn criterion_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        let output = std::process::Command::new(std::env::var_os("CARGO")?)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        metadata["target_directory"].as_str().map(PathBuf::from)
    });
    target.unwrap_or_else(|| PathBuf::from("target")).join("criterion")
}

/// Samples of `middleware_grpc_added`'s interleaved measurement, and rounds per sample:
/// about a second in all.
const INTERLEAVED_SAMPLES: usize = 101;
const INTERLEAVED_ROUNDS: usize = 12;

/// Writes the samples of an interleaved measurement of `group` (`ids` the two layers)
/// to `interleaved.json` in the group's criterion directory, where `bench-report`
/// reads them; prints their medians.
fn write_interleaved(group: &str, ids: [&str; 2], samples: &[Sample]) -> Result<(), Box<dyn Error>> {
    let dir = criterion_dir().join(group);
    std::fs::create_dir_all(&dir)?;
    let mut by_id = serde_json::Map::new();
    let mut medians = [0.0; 2];
    for (i, id) in ids.iter().enumerate() {
        let mut figures: Vec<f64> = samples.iter().map(|s| s.added[i]).collect();
        by_id.insert((*id).to_owned(), figures.clone().into());
        medians[i] = median(&mut figures);
    }
    let doc = serde_json::json!({
        "group": group,
        "rounds_per_sample": INTERLEAVED_ROUNDS,
        "requests_per_block": BLOCK,
        "added_ns_per_request": by_id,
        "bare_ns_per_request": samples.iter().map(|s| s.bare).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("interleaved.json"), serde_json::to_vec_pretty(&doc)?)?;
    let mut bare: Vec<f64> = samples.iter().map(|s| s.bare).collect();
    println!(
        "{group}, interleaved ({} samples): {} {:.1} ns, {} {:.1} ns, ratio {:.3}; bare requests {:.1} ns",
        samples.len(),
        ids[0],
        medians[0],
        ids[1],
        medians[1],
        medians[1] / medians[0],
        median(&mut bare),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    middleware(&mut c)?;
    middleware_grpc(&mut c)?;
    middleware_actix(&mut c)?;
    c.final_summary();
    Ok(())
}
