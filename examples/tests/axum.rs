//! herd-axum against a real axum server over TCP: every scenario of its documented
//! table, counted exactly, and the example's `/metrics` read by promtool and
//! client_python. The scenarios themselves live in `web/mod.rs`, shared with
//! `actix.rs`; what is axum's own (`CatchPanicLayer`) is here.
//!
//! The server runs in this process, on 127.0.0.1 with a port of the kernel's choice.

mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use axum::routing::get;
use axum::Router;
use herd_axum::{MetricsHandler, MetricsLayer};
use herd_core::{Format, Registry};
use herd_examples::axum_app;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use tempfile::TempDir;
use tower_http::catch_panic::CatchPanicLayer;
use web::{counts, family, request, scrape, series, AnyResult, Conn, Example, TestResult};

/// An axum server on its own runtime, stopped on drop.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(router: Router) -> AnyResult<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let thread = thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here cancels the connections still open.
        });
        Ok(Self { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The example's app, recording into a fresh registry.
    fn example() -> AnyResult<Self> {
        let registry = Registry::new();
        Self::start(axum_app::app(axum_app::layer(&registry)?, MetricsHandler::new(&registry)))
    }

    /// The example's app recording into herd-mmap files in a temp dir (kept alive by the
    /// returned guard), `/metrics` serving their aggregate; with this process's file.
    fn example_in_files() -> AnyResult<(Self, PathBuf, TempDir)> {
        let tmp = tempfile::tempdir()?;
        let dir = claim_dir(tmp.path().join("metrics"))?;
        let storage = MmapStorage::open(&dir)?;
        let file = storage.path();
        let registry = Registry::builder().storage(Arc::new(storage)).build()?;
        let metrics = MetricsHandler::from_collector(Arc::new(Aggregator::new(&dir)?));
        Ok((Self::start(axum_app::app(axum_app::layer(&registry)?, metrics))?, file, tmp))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn matched_routes_are_counted_by_template() -> TestResult {
    web::matched_routes_are_counted_by_template(Server::example()?.addr)
}

#[test]
fn ten_thousand_random_404_paths_make_one_series() -> TestResult {
    web::ten_thousand_random_404_paths_make_one_series(Server::example()?.addr)
}

#[test]
fn unusual_methods_fold_into_other() -> TestResult {
    web::unusual_methods_fold_into_other(Server::example()?.addr)
}

#[test]
fn a_streamed_response_is_timed_to_its_end() -> TestResult {
    web::a_streamed_response_is_timed_to_its_end(Server::example()?.addr)
}

#[test]
fn a_client_disconnecting_mid_body_is_counted_as_aborted() -> TestResult {
    web::a_client_disconnecting_mid_body_is_counted_as_aborted(Server::example()?.addr)
}

#[test]
fn a_panicking_handler_is_counted_as_documented() -> TestResult {
    let panicking = || {
        axum_app::routes().route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler failed");
                }
                "unreachable"
            }),
        )
    };

    // CatchPanicLayer inside the metrics layer: counted as the 500 it answers.
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry)?;
    let server = Server::start(panicking().layer(CatchPanicLayer::new()).layer(layer))?;
    assert_eq!(request(server.addr, "GET", "/panic", b"")?.status, 500);
    assert_eq!(request(server.addr, "GET", "/hello", b"")?.status, 200);
    let text = String::from_utf8(registry.encode(Format::Text))?;
    assert!(text.contains(r#"http_requests_total{method="GET",route="/panic",status="500"} 1"#), "{text}");
    assert!(text.contains(r#"http_requests_in_flight{method="GET",route="/panic"} 0"#), "{text}");

    // The other way round, the panic unwinds through the metrics layer: `cancelled`.
    let registry = Registry::new();
    let layer = MetricsLayer::new(&registry)?;
    let server = Server::start(panicking().layer(layer).layer(CatchPanicLayer::new()))?;
    assert_eq!(request(server.addr, "GET", "/panic", b"")?.status, 500);
    let text = String::from_utf8(registry.encode(Format::Text))?;
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/panic",status="cancelled"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"http_requests_in_flight{method="GET",route="/panic"} 0"#), "{text}");
    Ok(())
}

#[test]
fn with_mmap_storage_the_aggregator_serves_what_the_layer_recorded() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = herd_mmap::claim_dir(tmp.path().join("metrics"))?;
    let storage = herd_mmap::MmapStorage::open(&dir)?;
    let registry = Registry::builder().storage(std::sync::Arc::new(storage)).build()?;
    let aggregator = std::sync::Arc::new(herd_mmap::Aggregator::new(&dir)?);
    let app = axum_app::app(axum_app::layer(&registry)?, MetricsHandler::from_collector(aggregator));
    let server = Server::start(app)?;
    let mut conn = Conn::open(server.addr)?;
    for path in ["/hello", "/hello", "/users/9", "/nope"] {
        conn.request("GET", path, b"")?;
    }
    let samples = scrape(server.addr)?;
    assert_eq!(
        family(&samples, "http_requests_total"),
        counts(&[
            ("GET", "/hello", "200", 2.0),
            ("GET", "/users/{id}", "200", 1.0),
            ("GET", "unmatched", "404", 1.0),
        ])
    );
    // `livesum`: one series per label set, summed over live processes, no pid label.
    assert_eq!(
        samples.get(&series("http_requests_in_flight", &[("method", "GET"), ("route", "/hello")], 0.0).0),
        Some(&0.0),
        "{samples:?}"
    );
    Ok(())
}

#[test]
fn the_examples_metrics_pass_promtool_and_client_python() -> TestResult {
    let example = Example::start(env!("CARGO_BIN_EXE_axum-basic"))?;
    web::the_examples_metrics_pass_promtool_and_client_python(example.addr)
}

#[test]
fn the_example_rejects_unknown_arguments() -> TestResult {
    web::the_example_rejects_unknown_arguments(env!("CARGO_BIN_EXE_axum-basic"))
}

#[test]
fn hostile_targets_and_methods_never_become_labels() -> TestResult {
    let (server, _file, _dir) = Server::example_in_files()?;
    web::attack::hostile_requests_never_become_labels(server.addr)
}

#[test]
fn a_cardinality_attack_through_the_middleware_leaves_three_series() -> TestResult {
    let (server, file, _dir) = Server::example_in_files()?;
    web::attack::cardinality_attack_leaves_the_file(server.addr, &file)
}
