//! The middleware inside an actix-web `App`, without a network: every outcome of the
//! documented table, the accessors, and the `/metrics` handler's negotiation.

mod common;

use std::future::Future;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use actix_web::dev::{Service, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web::{self, Bytes};
use actix_web::{guard, App, HttpResponse};
use common::{block_on, drain};
use herd_actix::red::{Preset, RedOptions};
use herd_actix::{Metrics, MetricsHandler};
use herd_core::snapshot::SeriesValue;
use herd_core::{Format, NativeBuckets, Registry};
use herd_testkit::PROMETHEUS_NATIVE_ACCEPT;

fn text(registry: &Registry) -> String {
    String::from_utf8_lossy(&registry.encode(Format::Text)).into_owned()
}

fn samples(registry: &Registry, prefix: &str) -> Vec<String> {
    text(registry).lines().filter(|l| l.starts_with(prefix)).map(str::to_owned).collect()
}

#[actix_web::test]
async fn routes_are_counted_by_template_and_misses_as_unmatched() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(Metrics::new(&registry).unwrap())
            .service(web::scope("/api").route("/users/{id}", web::get().to(|| async { "a user" }))),
    )
    .await;
    for uri in ["/api/users/1", "/api/users/2", "/wp-login.php", "/api/nothing"] {
        test::call_and_read_body(&app, TestRequest::get().uri(uri).to_request()).await;
    }
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",route="/api/users/{id}",status="200"} 2"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        ]
    );
}

/// The route memo: many more paths than it has slots, each sent three times in an
/// interleaved order (so that paths evict one another and come back), paths over its
/// length limit, and paths that differ in one byte must all get the template actix-web
/// gives them.
#[actix_web::test]
async fn remembered_paths_keep_their_own_templates() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap(Metrics::new(&registry).unwrap())
            .route("/users/me", web::get().to(|| async { "me" }))
            .route("/users/{id}", web::get().to(|| async { "a user" }))
            .route("/files/{tail}*", web::get().to(|| async { "a file" })),
    )
    .await;
    let long = "x".repeat(300);
    let mut uris: Vec<String> = (0..400)
        .flat_map(|i| [format!("/users/{i}"), format!("/nothing/{i}"), format!("/files/{i}/{long}")])
        .collect();
    uris.extend(["/users/me", "/users/mf", "/users/me/", "/users/m"].map(String::from));
    for _ in 0..3 {
        for uri in &uris {
            test::call_and_read_body(&app, TestRequest::get().uri(uri).to_request()).await;
        }
    }
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1206"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 1203"#,
            r#"http_requests_total{method="GET",route="/files/{tail}*",status="200"} 1200"#,
            r#"http_requests_total{method="GET",route="/users/me",status="200"} 3"#,
        ]
    );
}

/// One `Metrics` wraps every worker's app, each with its own resource map; here two
/// apps whose maps differ. A path's template must come from its own app's map.
#[actix_web::test]
async fn each_app_remembers_its_own_routes() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let items = test::init_service(
        App::new().wrap(metrics.clone()).route("/x/{item}", web::get().to(|| async { "item" })),
    )
    .await;
    let bare = test::init_service(App::new().wrap(metrics)).await;
    for _ in 0..2 {
        test::call_and_read_body(&items, TestRequest::get().uri("/x/1").to_request()).await;
        test::call_and_read_body(&bare, TestRequest::get().uri("/x/1").to_request()).await;
    }
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",route="/x/{item}",status="200"} 2"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        ]
    );
}

#[actix_web::test]
async fn an_error_from_the_inner_service_is_counted_with_the_status_actix_answers() {
    let registry = Registry::new();
    let app = test::init_service(
        App::new()
            .wrap_fn(|req, srv| {
                let fail = req.path() == "/fail";
                let future = srv.call(req);
                async move {
                    if fail {
                        return Err(actix_web::error::ErrorServiceUnavailable("no backend"));
                    }
                    future.await
                }
            })
            .wrap(Metrics::new(&registry).unwrap())
            .route("/fail", web::get().to(|| async { "never sent" })),
    )
    .await;
    let error = app.call(TestRequest::get().uri("/fail").to_request()).await.err();
    let status = error.map(|e| e.error_response().status());
    assert_eq!(status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/fail",status="503"} 1"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="/fail"} 0"#]
    );
}

#[actix_web::test]
async fn a_handler_error_is_counted_as_the_response_it_becomes() {
    let registry = Registry::new();
    let app = test::init_service(App::new().wrap(Metrics::new(&registry).unwrap()).route(
        "/broken",
        web::get().to(|| async { Err::<String, _>(actix_web::error::ErrorInternalServerError("boom")) }),
    ))
    .await;
    let response = test::call_service(&app, TestRequest::get().uri("/broken").to_request()).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    test::read_body(response).await;
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/broken",status="500"} 1"#]
    );
}

#[actix_web::test]
async fn a_future_dropped_before_the_response_is_cancelled() {
    let registry = Registry::new();
    let app = test::init_service(App::new().wrap(Metrics::new(&registry).unwrap()).route(
        "/stuck",
        web::get().to(|| async {
            std::future::pending::<()>().await;
            "never"
        }),
    ))
    .await;
    let mut future = Box::pin(app.call(TestRequest::get().uri("/stuck").to_request()));
    let mut cx = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="/stuck"} 1"#]
    );
    drop(future);
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/stuck",status="cancelled"} 1"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="/stuck"} 0"#]
    );
}

#[test]
fn a_panicking_handler_is_cancelled() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let app = actix_web::rt::System::new().block_on(test::init_service(App::new().wrap(metrics).route(
        "/panic",
        web::get().to(|| async {
            if true {
                panic!("handler failed");
            }
            "unreachable"
        }),
    )));
    // actix-web catches no panic: it unwinds through the middleware's future (and, in a
    // server, ends the connection's task), dropping the request's timer on the way.
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        block_on(app.call(TestRequest::get().uri("/panic").to_request())).map(|_| ())
    }));
    assert!(unwound.is_err());
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/panic",status="cancelled"} 1"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_in_flight"),
        [r#"http_requests_in_flight{method="GET",route="/panic"} 0"#]
    );
}

#[actix_web::test]
async fn a_body_dropped_or_failing_midway_is_aborted_with_its_status() {
    let registry = Registry::new();
    let metrics = Metrics::with_options(&registry, RedOptions::new().body_sizes(true)).unwrap();
    let app = test::init_service(App::new().wrap(metrics).route(
        "/stream",
        web::get().to(|| async {
            let chunks: [Result<Bytes, actix_web::Error>; 3] = [
                Ok(Bytes::from_static(b"first")),
                Err(actix_web::error::ErrorInternalServerError("disk gone")),
                Ok(Bytes::new()),
            ];
            HttpResponse::Accepted().streaming(futures_util::stream::iter(chunks))
        }),
    ))
    .await;
    // Dropped unread.
    drop(test::call_service(&app, TestRequest::get().uri("/stream").to_request()).await);
    // Read until the body fails.
    let response = test::call_service(&app, TestRequest::get().uri("/stream").to_request()).await;
    assert_eq!(drain(response.into_body()), 5);
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/stream",status="202"} 2"#]
    );
    assert_eq!(
        samples(&registry, "http_requests_aborted_total"),
        [r#"http_requests_aborted_total{method="GET",route="/stream",status="202"} 2"#]
    );
    assert!(text(&registry)
        .contains(r#"http_response_size_bytes_sum{method="GET",route="/stream",status="202"} 5"#));
}

#[actix_web::test]
async fn empty_and_head_responses_are_complete_without_being_read() {
    let registry = Registry::new();
    let hello = web::route().guard(guard::Any(guard::Get()).or(guard::Head())).to(|| async { "hello" });
    let app = test::init_service(
        App::new()
            .wrap(Metrics::new(&registry).unwrap())
            .service(web::resource("/hello").route(hello))
            .route("/empty", web::get().to(HttpResponse::NoContent))
            .route("/nothing", web::get().to(|| async { "" })),
    )
    .await;
    for request in [
        TestRequest::default().method(actix_web::http::Method::HEAD).uri("/hello"),
        TestRequest::get().uri("/empty"),
        TestRequest::get().uri("/nothing"),
    ] {
        drop(test::call_service(&app, request.to_request()).await);
    }
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [
            r#"http_requests_total{method="HEAD",route="/hello",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="/empty",status="204"} 1"#,
            r#"http_requests_total{method="GET",route="/nothing",status="200"} 1"#,
        ]
    );
    assert!(samples(&registry, "http_requests_aborted_total").is_empty());
}

#[actix_web::test]
async fn an_outer_layer_boxing_the_body_takes_it_whole() {
    let registry = Registry::new();
    let metrics = Metrics::with_options(&registry, RedOptions::new().body_sizes(true)).unwrap();
    // The middleware registered last is outermost: this boxing wraps herd's body, as
    // actix's `Compat` or an error handler would.
    let app = test::init_service(
        App::new()
            .wrap(metrics)
            .wrap_fn(|req, srv| {
                let response = srv.call(req);
                async move { response.await.map(ServiceResponse::map_into_boxed_body) }
            })
            .route("/hello", web::get().to(|| async { "hello" })),
    )
    .await;
    // `BoxBody::new` takes an in-memory body whole: the request is complete even if the
    // boxed body is never read.
    drop(test::call_service(&app, TestRequest::get().uri("/hello").to_request()).await);
    assert_eq!(
        samples(&registry, "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/hello",status="200"} 1"#]
    );
    assert!(samples(&registry, "http_requests_aborted_total").is_empty());
    assert!(text(&registry)
        .contains(r#"http_response_size_bytes_sum{method="GET",route="/hello",status="200"} 5"#));
}

#[actix_web::test]
async fn options_reach_the_families() {
    let registry = Registry::new();
    let options = RedOptions::new()
        .preset(Preset::OpenTelemetry)
        .prefix("shop")
        .exclude_route("/health")
        .body_sizes(true)
        .time_to_headers(true);
    let app = test::init_service(
        App::new()
            .wrap(Metrics::with_options(&registry, options).unwrap())
            .route("/users/{id}", web::post().to(|body: Bytes| async move { HttpResponse::Ok().body(body) }))
            .route("/health", web::get().to(|| async { "ok" })),
    )
    .await;
    let upload = TestRequest::post().uri("/users/7").set_payload("0123456789").to_request();
    assert_eq!(test::call_and_read_body(&app, upload).await, "0123456789");
    test::call_and_read_body(&app, TestRequest::get().uri("/health").to_request()).await;
    let labels = r#"{http_request_method="POST",http_route="/users/{id}",http_response_status_code="200"}"#;
    let text = text(&registry);
    for sample in [
        format!("shop_http_server_request_duration_seconds_count{labels} 1"),
        format!("shop_http_server_request_body_size_bytes_sum{labels} 10"),
        format!("shop_http_server_response_body_size_bytes_sum{labels} 10"),
        format!("shop_http_server_time_to_headers_seconds_count{labels} 1"),
    ] {
        assert!(text.contains(&sample), "{sample} missing from\n{text}");
    }
    assert!(!text.contains("/health"), "{text}");
}

#[test]
fn the_middleware_gives_access_to_its_inner_service() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let inner = actix_web::dev::fn_service(|req: actix_web::dev::ServiceRequest| async {
        Ok::<ServiceResponse, actix_web::Error>(req.into_response(HttpResponse::Ok()))
    });
    let Ok(mut service) = block_on(metrics.new_transform(inner)) else { panic!("no transform") };
    let _: &_ = service.get_ref();
    let _: &mut _ = service.get_mut();
    let _inner = service.into_inner();
    // A second middleware with the same names in the same registry is an error, not a
    // panic; a prefix separates them.
    assert!(Metrics::new(&registry).is_err());
    assert!(Metrics::with_options(&registry, RedOptions::new().prefix("admin")).is_ok());
    assert_eq!(metrics.metrics().names().duration.name, "http_request_duration_seconds");
}

#[actix_web::test]
async fn the_handler_negotiates_the_format_and_compresses() {
    let registry = Registry::new();
    registry.counter("jobs_total", "Jobs.").register().unwrap().inc();
    let collector = std::sync::Arc::new(CollectRegistry(registry.clone()));
    let app = test::init_service(
        App::new()
            .route("/metrics", web::get().to(MetricsHandler::new(&registry)))
            .route("/collected", web::get().to(MetricsHandler::from_collector(collector))),
    )
    .await;

    let plain = test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(header(&plain, "content-type"), Format::Text.content_type());
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(test::read_body(plain).await, registry.encode(Format::Text));

    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let request = TestRequest::get()
        .uri("/metrics")
        .insert_header(("accept", prometheus))
        .insert_header(("accept-encoding", "gzip"))
        .to_request();
    let om = test::call_service(&app, request).await;
    assert_eq!(header(&om, "content-type"), Format::OpenMetrics.content_type());
    assert_eq!(header(&om, "content-encoding"), "gzip");
    assert_eq!(header(&om, "vary"), "Accept, Accept-Encoding");
    let body = test::read_body(om).await;
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, registry.encode(Format::OpenMetrics));

    let collected = test::call_and_read_body(&app, TestRequest::get().uri("/collected").to_request()).await;
    assert_eq!(collected, registry.encode(Format::Text));
}

fn header<B>(response: &ServiceResponse<B>, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A collector reading a registry, standing in for herd-mmap's aggregator.
struct CollectRegistry(Registry);

impl herd_core::Collector for CollectRegistry {
    fn collect(&self, out: &mut Vec<herd_core::snapshot::FamilySnapshot>) {
        out.extend(self.0.snapshot().families);
    }
}

#[actix_web::test]
async fn native_durations_reach_protobuf_scrapers_and_text_keeps_the_classic_buckets() {
    let registry = Registry::new();
    let options = RedOptions::new().native_durations(NativeBuckets::default());
    let app = test::init_service(
        App::new()
            .wrap(Metrics::with_options(&registry, options).unwrap())
            .route("/users/{id}", web::get().to(|| async { "a user" }))
            .route("/metrics", web::get().to(MetricsHandler::new(&registry))),
    )
    .await;
    for _ in 0..3 {
        test::call_and_read_body(&app, TestRequest::get().uri("/users/7").to_request()).await;
    }
    let snapshot = registry.snapshot();
    let duration = snapshot.family("http_request_duration_seconds").unwrap();
    let series = duration.series.iter().find(|s| s.labels.rendered().contains("/users/{id}")).unwrap();
    let SeriesValue::Histogram(h) = &series.value else { panic!("not a histogram") };
    assert_eq!(h.native.as_ref().map(|n| (n.schema, n.count())), Some((3, 3)), "{h:?}");

    let request =
        TestRequest::get().uri("/metrics").insert_header(("accept", PROMETHEUS_NATIVE_ACCEPT)).to_request();
    let native = test::call_service(&app, request).await;
    assert_eq!(header(&native, "content-type"), Format::Protobuf.content_type());
    let body = test::read_body(native).await;
    // The scrape is itself a request in flight, so the body is not the snapshot's; the
    // native histogram is in it: its zero threshold, field 6 (a double, key 0x31).
    let mut zero_threshold = vec![0x31];
    zero_threshold.extend_from_slice(&NativeBuckets::default().zero_threshold().to_le_bytes());
    assert!(body.windows(9).any(|w| w == zero_threshold), "no native histogram in {body:?}");
    let text = String::from_utf8(
        test::call_and_read_body(&app, TestRequest::get().uri("/metrics").to_request()).await.to_vec(),
    )
    .unwrap();
    let bucket =
        r#"http_request_duration_seconds_bucket{method="GET",route="/users/{id}",status="200",le="+Inf"} 3"#;
    assert!(text.contains(bucket), "{text}");
}
