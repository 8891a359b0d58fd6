//! A steady-state request through the layer allocates nothing: measured around a
//! trivial inner service whose future and body allocate nothing themselves.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{block_on, drain, matched_path, Fixed};
use herd_axum::red::RedOptions;
use herd_axum::MetricsLayer;
use herd_core::{FamilyDesc, LabelSet, Observer, Registry, SeriesObserver};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service};

/// One request through `service`, to the end of its body.
fn serve<S>(service: &mut S, request: Request<Full<Bytes>>) -> usize
where
    S: Service<
        Request<Full<Bytes>>,
        Response = http::Response<herd_axum::ResponseBody<Full<Bytes>>>,
        Error = std::convert::Infallible,
    >,
{
    match block_on(service.call(request)) {
        Ok(response) => drain(response.into_body()),
        Err(never) => match never {},
    }
}

fn requests(
    n: usize,
    route: Option<&axum::extract::MatchedPath>,
    method: &Method,
) -> Vec<Request<Full<Bytes>>> {
    (0..n)
        .map(|_| {
            let mut request = Request::new(Full::new(Bytes::from_static(b"payload")));
            *request.method_mut() = method.clone();
            if let Some(path) = route {
                request.extensions_mut().insert(path.clone());
            }
            request
        })
        .collect()
}

fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

fn steady_state_allocations(layer: &MetricsLayer) -> Result<u64, Box<dyn std::error::Error>> {
    let users = matched_path("/users/{id}")?;
    let mut service = layer.layer(Fixed(StatusCode::OK));
    let mut missing = layer.layer(Fixed(StatusCode::NOT_FOUND));
    let propfind = Method::from_bytes(b"PROPFIND")?;
    // Warm-up: the first request of each kind resolves and caches its series.
    for r in requests(1, Some(&users), &Method::GET) {
        serve(&mut service, r);
    }
    for r in requests(1, None, &propfind) {
        serve(&mut missing, r);
    }
    // Requests are built (and their extensions allocated) before measuring.
    let matched = requests(1000, Some(&users), &Method::GET);
    let unmatched = requests(1000, None, &propfind);
    let mut sizes = Vec::with_capacity(2000);
    let n = allocations_during(|| {
        for r in matched {
            sizes.push(serve(&mut service, r));
        }
        for r in unmatched {
            sizes.push(serve(&mut missing, r));
        }
    });
    assert!(sizes.iter().all(|&s| s == 12));
    Ok(n)
}

#[test]
fn a_steady_state_request_allocates_nothing() {
    let registry = Registry::new();
    let layer =
        MetricsLayer::with_options(&registry, RedOptions::new().body_sizes(true).time_to_headers(true))
            .unwrap();
    assert_eq!(steady_state_allocations(&layer).unwrap(), 0);
    let text = String::from_utf8(registry.encode(herd_core::Format::Text)).unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1001"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="_OTHER",route="unmatched",status="404"} 1001"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_response_size_bytes_sum{method="GET",route="/users/{id}",status="200"} 12012"#)
    );
    assert!(
        text.contains(r#"http_request_size_bytes_sum{method="GET",route="/users/{id}",status="200"} 7007"#)
    );
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
fn with_an_observer_it_allocates_nothing_either() {
    let registry = Registry::new();
    let layer = MetricsLayer::with_options(&registry, RedOptions::new().observer(Arc::new(Quiet))).unwrap();
    assert_eq!(steady_state_allocations(&layer).unwrap(), 0);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests above against a counter that counts nothing: a request's first
    // sight of a route allocates its cache entry and series.
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry).unwrap();
    let mut service = layer.layer(Fixed(StatusCode::OK));
    let first = requests(1, None, &Method::GET);
    let n = allocations_during(|| {
        for r in first {
            serve(&mut service, r);
        }
    });
    assert!(n > 0);
}
