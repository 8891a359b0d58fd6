//! herd-actix against a real actix-web server over TCP: the same scenarios as
//! herd-axum's (`web/mod.rs`), counted exactly, plus what is actix's own (handler
//! errors and panics, several worker threads writing one herd-mmap file), and the
//! `actix-basic` example read by promtool and client_python.
//!
//! The server runs in this process, on 127.0.0.1 with a port of the kernel's choice,
//! with two worker threads unless a test says otherwise.

mod web;

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use actix_web::dev::ServerHandle;
use actix_web::{web as aweb, HttpResponse, HttpServer};
use herd_actix::MetricsHandler;
use herd_core::{Format, Registry};
use herd_examples::actix_app;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use tempfile::TempDir;
use web::{counts, family, request, scrape, series, AnyResult, Conn, Example, TestResult, TIMEOUT};

/// An actix-web server on its own actix system and thread, stopped on drop.
struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Runs the server `make` builds on a fresh listener.
    fn start(
        make: impl FnOnce(TcpListener) -> io::Result<actix_web::dev::Server> + Send + 'static,
    ) -> AnyResult<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match make(listener) {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let handle = rx.recv_timeout(TIMEOUT)??;
        Ok(Self { addr, handle, thread: Some(thread) })
    }

    /// The example's app, recording into `registry`, serving `handler` on `/metrics`,
    /// with `workers` worker threads.
    fn example_with(registry: &Registry, handler: MetricsHandler, workers: usize) -> AnyResult<Self> {
        let metrics = actix_app::metrics(registry)?;
        Self::start(move |listener| {
            Ok(HttpServer::new(move || actix_app::app(metrics.clone(), handler.clone()))
                .workers(workers)
                .disable_signals()
                .listen(listener)?
                .run())
        })
    }

    /// The example's app with `workers` worker threads, recording into herd-mmap files
    /// in a temp dir (kept alive by the returned guard), `/metrics` serving their
    /// aggregate; with this process's file.
    fn example_in_files(workers: usize) -> AnyResult<(Self, PathBuf, TempDir)> {
        let tmp = tempfile::tempdir()?;
        let dir = claim_dir(tmp.path().join("metrics"))?;
        let storage = MmapStorage::open(&dir)?;
        let file = storage.path();
        let registry = Registry::builder().storage(Arc::new(storage)).build()?;
        let handler = MetricsHandler::from_collector(Arc::new(Aggregator::new(&dir)?));
        Ok((Self::example_with(&registry, handler, workers)?, file, tmp))
    }

    /// The example's app, recording into a fresh registry.
    fn example() -> AnyResult<Self> {
        let registry = Registry::new();
        Self::example_with(&registry, MetricsHandler::new(&registry), 2)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for it.
        drop(self.handle.stop(false));
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
fn handler_errors_and_panics_are_counted_as_documented() -> TestResult {
    let registry = Registry::new();
    let metrics = herd_actix::Metrics::new(&registry)?;
    let server = Server::start(move |listener| {
        Ok(HttpServer::new(move || {
            actix_web::App::new()
                .wrap(metrics.clone())
                .configure(actix_app::routes)
                .route(
                    "/broken",
                    aweb::get().to(|| async {
                        Err::<HttpResponse, _>(actix_web::error::ErrorBadGateway("upstream gone"))
                    }),
                )
                .route(
                    "/panic",
                    aweb::get().to(|| async {
                        if true {
                            panic!("handler failed");
                        }
                        "unreachable"
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run())
    })?;
    // A handler's error becomes its response: counted with that status.
    assert_eq!(request(server.addr, "GET", "/broken", b"")?.status, 502);
    // A panic ends the connection's task: the client gets no response at all, and the
    // request is counted as cancelled. The worker keeps serving.
    assert!(request(server.addr, "GET", "/panic", b"").is_err());
    assert_eq!(request(server.addr, "GET", "/hello", b"")?.status, 200);
    let text = String::from_utf8(registry.encode(Format::Text))?;
    for needle in [
        r#"http_requests_total{method="GET",route="/broken",status="502"} 1"#,
        r#"http_requests_total{method="GET",route="/panic",status="cancelled"} 1"#,
        r#"http_requests_total{method="GET",route="/hello",status="200"} 1"#,
        r#"http_requests_in_flight{method="GET",route="/panic"} 0"#,
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    Ok(())
}

#[test]
fn several_workers_write_one_mmap_file_and_the_aggregator_serves_the_sum() -> TestResult {
    let workers = 4;
    let (server, _file, _dir) = Server::example_in_files(workers)?;
    let addr = server.addr;

    // Each connection is handed to one worker, in turn: 8 clients on 8 connections at
    // once reach every worker thread, which all record into the same families.
    let clients: Vec<JoinHandle<AnyResult<()>>> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                let mut conn = Conn::open(addr)?;
                for j in 0..50 {
                    let path = if j % 5 == 4 { format!("/missing/{i}/{j}") } else { format!("/users/{i}") };
                    conn.request("GET", &path, b"")?;
                }
                conn.request("POST", "/echo", b"0123456789")?;
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.join().map_err(|_| "client thread panicked")??;
    }

    let samples = scrape(addr)?;
    assert_eq!(
        family(&samples, "http_requests_total"),
        counts(&[
            ("GET", "/users/{id}", "200", 320.0),
            ("GET", "unmatched", "404", 80.0),
            ("POST", "/echo", "200", 8.0),
        ])
    );
    let echo = [("method", "POST"), ("route", "/echo"), ("status", "200")];
    assert_eq!(samples.get(&series("http_request_size_bytes_sum", &echo, 0.0).0), Some(&80.0));
    // `livesum`: one series per label set, summed over live processes, no pid label.
    assert_eq!(
        samples
            .get(&series("http_requests_in_flight", &[("method", "GET"), ("route", "/users/{id}")], 0.0).0),
        Some(&0.0),
        "{samples:?}"
    );
    Ok(())
}

#[test]
fn connections_are_spread_over_the_worker_threads() -> TestResult {
    // The premise of the test above, checked: actix hands connections to its workers
    // in turn, so they do record from several threads.
    let metrics = herd_actix::Metrics::new(&Registry::new())?;
    let server = Server::start(move |listener| {
        Ok(HttpServer::new(move || {
            actix_web::App::new()
                .wrap(metrics.clone())
                .route("/thread", aweb::get().to(|| async { format!("{:?}", thread::current().id()) }))
        })
        .workers(4)
        .disable_signals()
        .listen(listener)?
        .run())
    })?;
    let mut conns: Vec<Conn> = (0..8).map(|_| Conn::open(server.addr)).collect::<AnyResult<_>>()?;
    let mut threads = BTreeSet::new();
    for conn in &mut conns {
        threads.insert(conn.request("GET", "/thread", b"")?.body);
    }
    assert!(threads.len() >= 2, "{threads:?}");
    Ok(())
}

#[test]
fn the_examples_metrics_pass_promtool_and_client_python() -> TestResult {
    let example = Example::start(env!("CARGO_BIN_EXE_actix-basic"))?;
    web::the_examples_metrics_pass_promtool_and_client_python(example.addr)
}

#[test]
fn the_example_rejects_unknown_arguments() -> TestResult {
    web::the_example_rejects_unknown_arguments(env!("CARGO_BIN_EXE_actix-basic"))
}

#[test]
fn hostile_targets_and_methods_never_become_labels() -> TestResult {
    let (server, _file, _dir) = Server::example_in_files(2)?;
    web::attack::hostile_requests_never_become_labels(server.addr)
}

#[test]
fn a_cardinality_attack_through_the_middleware_leaves_three_series() -> TestResult {
    let (server, file, _dir) = Server::example_in_files(2)?;
    web::attack::cardinality_attack_leaves_the_file(server.addr, &file)
}
