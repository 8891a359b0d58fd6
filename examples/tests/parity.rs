//! One dashboard serves both adapters: the same request sequence sent to the
//! `axum-basic` and `actix-basic` binaries yields identical `http_requests_total`
//! samples, and the same series (names and label sets) in every family.

mod web;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use web::{family, scrape, AnyResult, Conn, Example, TestResult};

/// The sequence: every route, methods known and unknown, HEAD, 404s of several
/// shapes, near misses of the templates, an upload, a stream, and scrapes (which are
/// excluded). Each is `(method, path, body)`.
fn sequence() -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push =
        |method: &str, path: &str, body: &[u8]| out.push((method.into(), path.into(), body.to_vec()));
    for i in 0..3 {
        push("GET", "/hello", b"");
        push("GET", &format!("/users/{i}"), b"");
        push("POST", "/echo", format!("payload {i}").as_bytes());
    }
    push("POST", "/echo", b"");
    push("GET", "/users/caf%C3%A9", b"");
    push("HEAD", "/hello", b"");
    push("HEAD", "/users/9", b"");
    push("GET", "/stream?chunks=3&delay_ms=1", b"");
    push("GET", "/stream", b"");
    for method in ["PROPFIND", "get", "BREW", "DELETE", "OPTIONS", "PUT", "PATCH", "TRACE"] {
        push(method, "/hello", b"");
        push(method, "/users/7", b"");
    }
    // Without a body: a server may close a connection whose request body it never read.
    push("POST", "/hello", b"");
    push("GET", "/echo", b"");
    for path in
        ["/", "/nope", "/users", "/users/", "/users/1/2", "/hello/", "/HELLO", "/.env", "/wp-admin/x.php"]
    {
        push("GET", path, b"");
    }
    push("M1", "/nowhere", b"");
    push("GET", "/metrics", b"");
    out
}

/// Sends the sequence to `addr` on one keep-alive connection; returns the statuses.
fn send(addr: SocketAddr) -> AnyResult<Vec<u16>> {
    let mut conn = Conn::open(addr)?;
    let mut statuses = Vec::new();
    for (method, path, body) in sequence() {
        let reply =
            conn.request(&method, &path, &body).map_err(|e| format!("{method} {path} to {addr}: {e}"))?;
        statuses.push(reply.status);
    }
    Ok(statuses)
}

/// Every series name with its labels, values left out.
fn series_keys(samples: &BTreeMap<String, f64>) -> BTreeSet<String> {
    samples.keys().cloned().collect()
}

#[test]
fn axum_and_actix_count_the_same_requests_the_same_way() -> TestResult {
    let axum = Example::start(env!("CARGO_BIN_EXE_axum-basic"))?;
    let actix = Example::start(env!("CARGO_BIN_EXE_actix-basic"))?;
    let (axum_statuses, actix_statuses) = (send(axum.addr)?, send(actix.addr)?);
    assert_eq!(axum_statuses, actix_statuses, "the two apps answered differently");

    let (axum_samples, actix_samples) = (scrape(axum.addr)?, scrape(actix.addr)?);
    let axum_counts = family(&axum_samples, "http_requests_total");
    let actix_counts = family(&actix_samples, "http_requests_total");
    assert_eq!(axum_counts, actix_counts);
    // Guards against two empty maps agreeing: every request but the scrape counted.
    let total: f64 = axum_counts.values().sum();
    assert_eq!(total, (sequence().len() - 1) as f64, "{axum_counts:?}");

    // Durations and sizes differ in value, never in series.
    assert_eq!(series_keys(&axum_samples), series_keys(&actix_samples));
    Ok(())
}
