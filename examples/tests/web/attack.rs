//! Attacks on a web adapter's RED metrics, written against nothing but a socket
//! address, so that every adapter runs the same ones (`axum.rs`, `actix.rs`, each on
//! its example with herd-mmap storage).
//!
//! The server under attack serves `GET /hello`, `GET /users/{id}` and, unrecorded,
//! `GET /metrics` (text 0.0.4), with herd's Prometheus preset (`http_requests_total`
//! by `method`, `route`, `status`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

use herd_testkit::{http_get, python_parse, HttpConn, PyFormat, HOSTILE_REQUEST_TARGETS};

use super::AnyResult;

/// The route labels a server with the routes above may ever write.
const ROUTES: [&str; 3] = ["/hello", "/users/{id}", "unmatched"];
/// The method labels herd may ever write: the nine RFC 9110 methods and `_OTHER`.
const METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"];

/// `(method, route, status) -> count` of `http_requests_total`, read by client_python,
/// after checking that every label of every series of the scrape is one herd may write.
pub(crate) fn requests_by_series(addr: SocketAddr) -> AnyResult<BTreeMap<(String, String, String), f64>> {
    let (status, _, body) = http_get(addr, "/metrics", &[])?;
    if status != 200 {
        return Err(format!("/metrics answered {status}").into());
    }
    let mut counts = BTreeMap::new();
    for family in python_parse(&body, PyFormat::Text)? {
        for sample in &family.samples {
            let label = |name: &str| sample.labels.get(name).cloned();
            if let Some(route) = label("route") {
                if !ROUTES.contains(&route.as_str()) {
                    return Err(format!("route label {route:?} in {}", sample.name).into());
                }
            }
            if let Some(method) = label("method") {
                if !METHODS.contains(&method.as_str()) {
                    return Err(format!("method label {method:?} in {}", sample.name).into());
                }
            }
            if let Some(status) = label("status") {
                let three_digits = status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit());
                if !three_digits && status != "error" && status != "cancelled" {
                    return Err(format!("status label {status:?} in {}", sample.name).into());
                }
            }
            if sample.name == "http_requests_total" {
                let key = (
                    label("method").unwrap_or_default(),
                    label("route").unwrap_or_default(),
                    label("status").unwrap_or_default(),
                );
                *counts.entry(key).or_insert(0.0) += sample.value;
            }
        }
    }
    Ok(counts)
}

/// The distinct label sets of the whole scrape, self-metrics included: what a
/// Prometheus server would have to keep.
pub(crate) fn series_count(addr: SocketAddr) -> AnyResult<usize> {
    let (_, _, body) = http_get(addr, "/metrics", &[])?;
    let mut series = BTreeSet::new();
    for family in python_parse(&body, PyFormat::Text)? {
        for sample in family.samples {
            series.insert(format!("{}{:?}", sample.name, sample.labels));
        }
    }
    Ok(series.len())
}

/// Every hostile request target and method is labelled with a template, `unmatched`
/// or `_OTHER`, never with what was sent; and every request the service answered
/// is counted once.
pub(crate) fn hostile_requests_never_become_labels(addr: SocketAddr) -> AnyResult<()> {
    let mut conn = HttpConn::new(addr);
    let mut answered = 0;
    let mut not_found = 0;
    let mut found = 0;
    for target in HOSTILE_REQUEST_TARGETS {
        // A server may refuse a malformed request line outright: hyper answers 400,
        // actix-web may just close the connection. Either way the request never reached
        // the service, so it is not counted; the client reconnects for the next one.
        let Ok((status, _)) = conn.request(b"GET", target) else { continue };
        answered += 1;
        match status {
            404 => not_found += 1,
            200 => found += 1,
            _ => {}
        }
    }
    // Percent-encoded ids reach `/users/{id}`, scanners' paths are 404s: both kinds
    // must have made it past the HTTP parser, or this test would prove nothing.
    if not_found < 5 || found < 3 {
        return Err(format!("only {not_found} targets answered 404 and {found} 200").into());
    }
    let long_method = vec![b'X'; 1000];
    let methods: [&[u8]; 6] = [b"PROPFIND", b"get", b"M-SEARCH", b"BREW", b"G\"T", &long_method];
    for method in methods {
        if conn.request(method, b"/hello").is_ok() {
            answered += 1;
        }
    }
    let counts = requests_by_series(addr)?;
    let total: f64 = counts.values().sum();
    // Requests refused by the HTTP parser before the service never reach the layer.
    if total > f64::from(answered) || total < f64::from(not_found) {
        return Err(format!(
            "{total} requests counted of {answered} answered, {not_found} of them 404: {counts:?}"
        )
        .into());
    }
    let users: f64 = counts.iter().filter(|((_, route, _), _)| route == "/users/{id}").map(|(_, n)| n).sum();
    if users < f64::from(found) - 0.5 {
        return Err(
            format!("{found} ids were answered but {users} counted under /users/{{id}}: {counts:?}").into()
        );
    }
    let unmatched: f64 = counts
        .iter()
        .filter(|((_, route, status), _)| route == "unmatched" && status == "404")
        .map(|(_, n)| n)
        .sum();
    if unmatched < f64::from(not_found) - 0.5 {
        return Err(
            format!("{not_found} answers were 404 but {unmatched} counted as unmatched: {counts:?}").into()
        );
    }
    Ok(())
}

/// `n` requests, each with a label value never seen before: a third to random paths
/// no route matches, a third to `/users/{id}` with random ids, a third with random
/// extension methods. The scrape must hold exactly three `http_requests_total` series
/// with the exact counts, and the whole scrape stays as small as it was after the first
/// few requests.
pub(crate) fn cardinality_attack(addr: SocketAddr, n: usize, connections: usize) -> AnyResult<()> {
    // One request of each kind first: the series that exist from then on are all
    // there will ever be.
    send_distinct(addr, 0..3, 1)?;
    let before = series_count(addr)?;
    send_distinct(addr, 3..n, connections)?;
    let third = |k: usize| (n + 2 - k) / 3;
    let want: BTreeMap<(String, String, String), f64> = [
        (("GET", "unmatched", "404"), third(0)),
        (("GET", "/users/{id}", "200"), third(1)),
        (("_OTHER", "/hello", "405"), third(2)),
    ]
    .into_iter()
    .map(|((m, r, s), c)| ((m.to_owned(), r.to_owned(), s.to_owned()), c as f64))
    .collect();
    let got = requests_by_series(addr)?;
    if got != want {
        return Err(format!("http_requests_total after {n} requests: {got:?}, not {want:?}").into());
    }
    let after = series_count(addr)?;
    if after != before {
        return Err(format!("{before} series after 3 requests, {after} after {n}").into());
    }
    Ok(())
}

/// [`cardinality_attack`] with 100,000 requests over four connections on a server whose
/// metrics live in `worker_file`: the file never grows past its first segment, whose
/// size is what the three series (and the layer's other families) took, not what the
/// attacker sent.
pub(crate) fn cardinality_attack_leaves_the_file(addr: SocketAddr, worker_file: &Path) -> AnyResult<()> {
    let first_segment = std::fs::metadata(worker_file)?.len();
    cardinality_attack(addr, 100_000, 4)?;
    let after = std::fs::metadata(worker_file)?.len();
    if after != first_segment {
        return Err(format!("the worker file grew from {first_segment} to {after} bytes").into());
    }
    if first_segment > 64 * 1024 {
        return Err(format!("the worker file's first segment is {first_segment} bytes").into());
    }
    Ok(())
}

/// Requests `range`, over `connections` keep-alive connections: request `i` is of
/// kind `i % 3` and carries a label value never sent before.
fn send_distinct(addr: SocketAddr, range: std::ops::Range<usize>, connections: usize) -> AnyResult<()> {
    let mut threads = Vec::new();
    for c in 0..connections {
        let range = range.clone();
        threads.push(std::thread::spawn(move || -> AnyResult<()> {
            let mut conn = HttpConn::new(addr);
            // xorshift64, a different stream per connection: distinct values without
            // a dependency (the index makes them distinct for certain).
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (range.start as u64 + c as u64 + 1);
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for i in range.skip(c).step_by(connections) {
                let (method, target, want): (Vec<u8>, String, u16) = match i % 3 {
                    0 => (b"GET".to_vec(), format!("/scan/{:016x}/{i}", next()), 404),
                    1 => (b"GET".to_vec(), format!("/users/{:016x}{i}", next()), 200),
                    _ => (format!("X{:016X}{i}", next()).into_bytes(), "/hello".to_owned(), 405),
                };
                let (status, _) = conn.request(&method, target.as_bytes())?;
                if status != want {
                    return Err(format!(
                        "{} {target}: {status}, not {want}",
                        String::from_utf8_lossy(&method)
                    )
                    .into());
                }
            }
            Ok(())
        }));
    }
    for t in threads {
        t.join().map_err(|_| "a client thread panicked")??;
    }
    Ok(())
}
