//! The layer around tower services, without a network: every outcome of the
//! documented table, the accessors, and the `/metrics` handler's negotiation.

mod common;

use std::convert::Infallible;
use std::future::{pending, ready, Ready};
use std::io::Read;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{block_on, drain, Fixed};
use herd_axum::red::{Preset, RedOptions};
use herd_axum::{MetricsHandler, MetricsLayer};
use herd_core::snapshot::SeriesValue;
use herd_core::{Format, NativeBuckets, Registry};
use herd_testkit::PROMETHEUS_NATIVE_ACCEPT;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use tower::{service_fn, Layer, Service, ServiceExt};

fn text(registry: &Registry) -> String {
    String::from_utf8_lossy(&registry.encode(Format::Text)).into_owned()
}

fn samples(registry: &Registry, prefix: &str) -> Vec<String> {
    text(registry).lines().filter(|l| l.starts_with(prefix)).map(str::to_owned).collect()
}

fn get_request() -> Request<Full<Bytes>> {
    Request::new(Full::new(Bytes::new()))
}

#[test]
fn a_service_error_is_counted_as_error() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap();
    let failing =
        service_fn(|_req: Request<Full<Bytes>>| ready(Err::<Response<Full<Bytes>>, _>("no backend")));
    let result = block_on(layer.layer(failing).oneshot(get_request()));
    assert_eq!(result.err(), Some("no backend"));
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="unmatched",status="error"} 1"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="unmatched"} 0"#]
    );
}

#[test]
fn a_future_dropped_before_the_response_is_cancelled() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap();
    let stuck = service_fn(|_req: Request<Full<Bytes>>| async {
        pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let mut service = layer.layer(stuck);
    let future = service.call(get_request());
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="unmatched"} 1"#]
    );
    drop(future);
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="unmatched",status="cancelled"} 1"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="unmatched"} 0"#]
    );
}

#[test]
fn a_body_dropped_or_failing_midway_is_aborted_with_its_status() {
    let registry = Registry::new();
    let layer = MetricsLayer::with_options(&registry, RedOptions::new().body_sizes(true)).unwrap();
    let streaming = service_fn(|_req: Request<Full<Bytes>>| async {
        let frames: Vec<Result<Frame<Bytes>, &'static str>> = vec![
            Ok(Frame::data(Bytes::from_static(b"first"))),
            Err("disk gone"),
            Ok(Frame::data(Bytes::new())),
        ];
        let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
        *response.status_mut() = StatusCode::ACCEPTED;
        Ok::<_, Infallible>(response)
    });
    let mut service = layer.layer(streaming);
    // Dropped unread.
    drop(block_on(service.call(get_request())).unwrap());
    // Read until the body fails.
    assert_eq!(drain(block_on(service.call(get_request())).unwrap().into_body()), 5);
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="unmatched",status="202"} 2"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_aborted_total"),
        [r#"http_requests_aborted_total{method="GET",route="unmatched",status="202"} 2"#]
    );
    assert!(text(&registry)
        .contains(r#"http_response_size_bytes_sum{method="GET",route="unmatched",status="202"} 5"#));
}

#[test]
fn empty_and_head_responses_are_complete_without_being_read() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap();
    let app: Router = Router::new().route("/hello", get(|| async { "hello" })).layer(layer.clone());
    let head = Request::head("/hello").body(Body::empty()).unwrap();
    drop(block_on(app.clone().oneshot(head)).unwrap());
    let mut empty = layer.layer(Fixed(StatusCode::NO_CONTENT));
    drop(block_on(empty.call(get_request())).unwrap());
    let empty_ok = service_fn(|_req: Request<Full<Bytes>>| {
        ready(Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))))
    });
    drop(block_on(layer.layer(empty_ok).oneshot(get_request())).unwrap());
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="HEAD",route="/hello",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="unmatched",status="204"} 1"#,
            r#"http_requests_total{method="GET",route="unmatched",status="200"} 1"#,
        ]
    );
    assert!(samples(&registry, "http_requests_aborted_total").is_empty());
}

#[test]
fn the_opentelemetry_preset_through_a_router() {
    let registry = Registry::new();
    let layer =
        MetricsLayer::with_options(&registry, RedOptions::new().preset(Preset::OpenTelemetry)).unwrap();
    let app: Router = Router::new().route("/users/{id}", get(|| async { "a user" })).layer(layer);
    let response = block_on(app.oneshot(Request::get("/users/7").body(Body::empty()).unwrap())).unwrap();
    drain(response.into_body());
    assert_eq!(
        samples(&registry, "http_server_request_duration_seconds_count"),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200"} 1"#
        ]
    );
}

#[test]
fn the_service_gives_access_to_its_inner_service() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap();
    let mut service = layer.layer(Fixed(StatusCode::IM_A_TEAPOT));
    assert_eq!(service.get_ref().0, StatusCode::IM_A_TEAPOT);
    service.get_mut().0 = StatusCode::OK;
    assert_eq!(service.into_inner().0, StatusCode::OK);
    // A second layer with the same names in the same registry is an error, not a panic.
    assert!(MetricsLayer::new(&registry).is_err());
    assert!(MetricsLayer::with_options(&registry, RedOptions::new().prefix("admin")).is_ok());
}

/// A service whose readiness is controlled, to check `poll_ready` is forwarded.
#[derive(Clone)]
struct Gate(bool);

impl Service<Request<Full<Bytes>>> for Gate {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::new()))))
    }
}

#[test]
fn poll_ready_is_forwarded() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap();
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    assert!(layer.layer(Gate(false)).poll_ready(&mut cx).is_pending());
    assert!(layer.layer(Gate(true)).poll_ready(&mut cx).is_ready());
}

type Scraped = Result<(Response<Full<Bytes>>, Vec<u8>), Box<dyn std::error::Error>>;

fn scrape(handler: &MetricsHandler, headers: &[(&'static str, &'static str)]) -> Scraped {
    let mut request = Request::get("/metrics");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = block_on(handler.clone().oneshot(request.body(())?))?;
    let (parts, body) = response.into_parts();
    let bytes = block_on(http_body_util::BodyExt::collect(body))?.to_bytes().to_vec();
    Ok((Response::from_parts(parts, Full::new(Bytes::new())), bytes))
}

#[test]
fn the_handler_negotiates_the_format_and_compresses() {
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").register().unwrap().inc();
    let handler = MetricsHandler::new(&registry);

    let (plain, body) = scrape(&handler, &[]).unwrap();
    assert_eq!(plain.headers()["content-type"], Format::Text.content_type());
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(body, registry.encode(Format::Text));

    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (om, body) = scrape(&handler, &[("accept", prometheus), ("accept-encoding", "gzip")]).unwrap();
    assert_eq!(om.headers()["content-type"], Format::OpenMetrics.content_type());
    assert_eq!(om.headers()["content-encoding"], "gzip");
    assert_eq!(om.headers()["vary"], "Accept, Accept-Encoding");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, registry.encode(Format::OpenMetrics));

    let from_collector =
        MetricsHandler::from_collector(std::sync::Arc::new(CollectRegistry(registry.clone())));
    assert_eq!(scrape(&from_collector, &[]).unwrap().1, registry.encode(Format::Text));
}

/// A collector reading a registry, standing in for herd-mmap's aggregator.
struct CollectRegistry(Registry);

impl herd_core::Collector for CollectRegistry {
    fn collect(&self, out: &mut Vec<herd_core::snapshot::FamilySnapshot>) {
        out.extend(self.0.snapshot().families);
    }
}

#[test]
fn route_fn_names_the_routes_of_a_plain_tower_service() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap().route_fn(|parts| match parts.uri.path() {
        "/health" => Some("/health"),
        p if p.starts_with("/users/") && parts.method == http::Method::GET => Some("/users/{id}"),
        _ => None,
    });
    // Not an axum router: a bare tower service, as a hyper server would run it.
    let plain = service_fn(|req: Request<Full<Bytes>>| {
        let status = if req.uri().path() == "/nope" { StatusCode::NOT_FOUND } else { StatusCode::OK };
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        *response.status_mut() = status;
        ready(Ok::<_, Infallible>(response))
    });
    let svc = layer.layer(plain);
    for path in ["/health", "/users/1", "/users/2", "/users/3", "/nope", "/random/9"] {
        let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
        let response = block_on(svc.clone().oneshot(req)).unwrap();
        drain(response.into_body());
    }
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",route="/health",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 3"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"http_requests_total{method="GET",route="unmatched",status="200"} 1"#,
        ]
    );
}

#[test]
fn route_fn_falls_back_to_the_axum_template() {
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry)
        .unwrap()
        .route_fn(|parts| (parts.uri.path() == "/special").then_some("/special-route"));
    let app: Router = Router::new()
        .route("/special", get(|| async { "s" }))
        .route("/items/{id}", get(|| async { "i" }))
        .layer(layer);
    for path in ["/special", "/items/1"] {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let response = block_on(app.clone().oneshot(req)).unwrap();
        drain(response.into_body());
    }
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",route="/special-route",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="/items/{id}",status="200"} 1"#,
        ]
    );
}

#[test]
fn native_durations_reach_protobuf_scrapers_and_text_keeps_the_classic_buckets() {
    let registry = Registry::new();
    let options = RedOptions::new().native_durations(NativeBuckets::default());
    let layer = MetricsLayer::with_options(&registry, options).unwrap();
    let app: Router = Router::new().route("/users/{id}", get(|| async { "a user" })).layer(layer);
    for _ in 0..3 {
        let response =
            block_on(app.clone().oneshot(Request::get("/users/7").body(Body::empty()).unwrap())).unwrap();
        drain(response.into_body());
    }
    let snapshot = registry.snapshot();
    let duration = snapshot.family("http_request_duration_seconds").unwrap();
    let SeriesValue::Histogram(h) = &duration.series[0].value else { panic!("not a histogram") };
    assert_eq!(h.native.as_ref().map(|n| (n.schema, n.count())), Some((3, 3)), "{h:?}");
    assert_eq!(h.count(), 3, "the classic buckets count too");

    let handler = MetricsHandler::new(&registry);
    let (native, body) = scrape(&handler, &[("accept", PROMETHEUS_NATIVE_ACCEPT)]).unwrap();
    assert_eq!(native.headers()["content-type"], Format::Protobuf.content_type());
    assert_eq!(body, registry.encode(Format::Protobuf));
    let (_, body) = scrape(&handler, &[]).unwrap();
    let text = String::from_utf8(body).unwrap();
    let bucket =
        r#"http_request_duration_seconds_bucket{method="GET",route="/users/{id}",status="200",le="+Inf"} 3"#;
    assert!(text.contains(bucket), "{text}");
}
