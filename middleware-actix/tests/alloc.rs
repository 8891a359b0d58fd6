//! What herd-actix adds to a steady-state request's allocations: nothing at all for a
//! path its memo holds, and for a path it has not seen only what actix-web's
//! `match_pattern()` allocates (the `String` it builds, and whatever its path matching
//! takes); the middleware, its memo, its future, its body wrapper and herd's timer add
//! nothing. Measured against the same app bare, and wrapped by a middleware that only
//! calls `match_pattern()`, on the same requests.

mod common;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App};
use common::{block_on, drain};
use herd_actix::red::RedOptions;
use herd_actix::Metrics;
use herd_core::{FamilyDesc, LabelSet, Observer, Registry, SeriesObserver};

const N: usize = 1000;

/// Allocations of the requests to `uris` through `app`, after one warm-up request to
/// each of `warm_up`; requests are built before measuring.
fn allocations<S, R, B>(app: &S, warm_up: &[&str], uris: &[String], request: impl Fn(&str) -> R) -> u64
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let serve = |req| match block_on(app.call(req)) {
        Ok(response) => drain(response.into_body()),
        Err(_) => 0,
    };
    for uri in warm_up {
        serve(request(uri));
    }
    let requests: Vec<_> = uris.iter().map(|uri| request(uri)).collect();
    let mut sizes = Vec::with_capacity(requests.len());
    let n = allocation_counter::measure(|| {
        for req in requests {
            sizes.push(serve(req));
        }
    })
    .count_total;
    assert!(sizes.iter().all(|&s| s > 0), "every request answered with a body");
    n
}

/// What the app answers, around the middleware under test.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{id}", web::get().to(|| async { "hello, world" }))
        .default_service(web::to(|| async { actix_web::HttpResponse::NotFound().body("not here") }));
}

const WARM_UP: [&str; 2] = ["/users/42", "/no/such/page"];

/// `N` requests to each warm-up path again: paths the memo holds.
fn repeated() -> Vec<String> {
    WARM_UP.iter().flat_map(|uri| std::iter::repeat_n(uri.to_string(), N)).collect()
}

/// `N` matched and `N` unmatched paths, each new (none is a warm-up path): far more
/// than the memo holds, so every one is asked of actix-web.
fn distinct() -> Vec<String> {
    (1_000..1_000 + N).flat_map(|i| [format!("/users/{i}"), format!("/no/such/page/{i}")]).collect()
}

fn request(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

/// Allocations of the requests through the app wrapped by herd-actix.
fn with_herd(metrics: Metrics, uris: &[String]) -> u64 {
    actix_web::rt::System::new().block_on(async {
        let app = test::init_service(App::new().wrap(metrics).configure(routes)).await;
        allocations(&app, &WARM_UP, uris, |uri| request(uri).to_request())
    })
}

/// Allocations of the same requests through the app alone.
fn bare(uris: &[String]) -> u64 {
    actix_web::rt::System::new().block_on(async {
        let app = test::init_service(App::new().configure(routes)).await;
        allocations(&app, &WARM_UP, uris, |uri| request(uri).to_request())
    })
}

/// Allocations of the same requests through the app wrapped by a middleware that only
/// asks actix-web for the route template, as herd-actix does for a path it has not
/// seen.
fn with_match_pattern_only(uris: &[String]) -> u64 {
    actix_web::rt::System::new().block_on(async {
        let app = test::init_service(
            App::new()
                .wrap_fn(|req, srv| {
                    drop(std::hint::black_box(req.match_pattern()));
                    srv.call(req)
                })
                .configure(routes),
        )
        .await;
        allocations(&app, &WARM_UP, uris, |uri| request(uri).to_request())
    })
}

fn full_options() -> RedOptions {
    RedOptions::new().body_sizes(true).time_to_headers(true)
}

#[test]
fn a_repeated_path_allocates_nothing_beyond_the_bare_app() {
    let registry = Registry::new();
    let uris = repeated();
    assert_eq!(with_herd(Metrics::with_options(&registry, full_options()).unwrap(), &uris), bare(&uris));
    let text = String::from_utf8(registry.encode(herd_core::Format::Text)).unwrap();
    for needle in [
        r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1001"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1001"#,
        r#"http_response_size_bytes_sum{method="GET",route="/users/{id}",status="200"} 12012"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

#[test]
fn a_new_path_allocates_nothing_beyond_actix_match_pattern() {
    let registry = Registry::new();
    let uris = distinct();
    let herd = with_herd(Metrics::with_options(&registry, full_options()).unwrap(), &uris);
    let match_pattern = with_match_pattern_only(&uris);
    assert_eq!(herd, match_pattern);
    // Guards the comparison: here actix's `match_pattern()` does allocate.
    assert!(match_pattern > bare(&uris), "match_pattern() allocated nothing");
    let text = String::from_utf8(registry.encode(herd_core::Format::Text)).unwrap();
    for needle in [
        r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1001"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1001"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

struct Quiet;

impl Observer for Quiet {
    fn series(&self, _family: &FamilyDesc, _labels: &LabelSet) -> Option<Arc<dyn SeriesObserver>> {
        Some(Arc::new(Quiet))
    }
}

impl SeriesObserver for Quiet {
    fn counter(&self, _delta: f64) {}
    fn gauge_set(&self, _value: f64) {}
    fn gauge_add(&self, _delta: f64) {}
    fn observe(&self, _value: f64) {}
}

#[test]
fn with_an_observer_it_adds_nothing_more() {
    let registry = Registry::new();
    let observed = |registry: &Registry| {
        Metrics::with_options(registry, RedOptions::new().observer(Arc::new(Quiet))).unwrap()
    };
    let (uris, new_uris) = (repeated(), distinct());
    assert_eq!(with_herd(observed(&registry), &uris), bare(&uris));
    assert_eq!(with_herd(observed(&Registry::new()), &new_uris), with_match_pattern_only(&new_uris));
}

#[test]
fn the_counter_sees_the_first_request_of_a_route() {
    // Guards the tests above against a counter that counts nothing: the first sight of
    // a route allocates its cache entry and series.
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let n = actix_web::rt::System::new().block_on(async {
        let app = test::init_service(App::new().wrap(metrics)).await;
        let req = TestRequest::get().uri("/first").to_request();
        allocation_counter::measure(|| drop(block_on(app.call(req)))).count_total
    });
    assert!(n > 0);
}
