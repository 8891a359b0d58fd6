//! What the web examples' tests share (`axum.rs`, `actix.rs`, `parity.rs`): a small
//! HTTP/1.1 client on `std`'s `TcpStream`, so that a test controls every byte and when
//! the socket closes; `/metrics` read as `series -> value`; the example binaries; and
//! the scenarios of herd-axum's documented table, run over real TCP against any server
//! of the examples' routes, so that both adapters are held to the very same checks;
//! and, in `attack.rs`, the hostile requests and cardinality attacks both must survive.
//!
//! Every read has a timeout and every wait a deadline.

#![allow(dead_code, unreachable_pub)]

pub mod attack;

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use herd_core::Format;
use herd_testkit::{http_get, promtool_check, python_parse, PyFormat};

pub type TestResult = Result<(), Box<dyn Error + Send + Sync>>;
pub type AnyResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A response as the client read it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> AnyResult<Self> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self { reader: BufReader::new(stream) })
    }

    pub fn send_head(&mut self, method: &str, path: &str, body: &[u8]) -> AnyResult<()> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        Ok(())
    }

    pub fn read_head(&mut self) -> AnyResult<(u16, Vec<(String, String)>)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line.split(' ').nth(1).ok_or_else(|| format!("bad status line {line:?}"))?.parse()?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err("connection closed in the headers".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                return Ok((status, headers));
            }
            let (k, v) = l.split_once(':').ok_or_else(|| format!("bad header {l:?}"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }

    /// Reads one chunk of a chunked body; `None` at its end.
    pub fn read_chunk(&mut self) -> AnyResult<Option<Vec<u8>>> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or_default(), 16)?;
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        chunk.truncate(size);
        if size == 0 {
            return Ok(None);
        }
        Ok(Some(chunk))
    }

    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> AnyResult<Reply> {
        self.send_head(method, path, body)?;
        let (status, headers) = self.read_head()?;
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let mut body = Vec::new();
        if method == "HEAD" || status == 204 || status == 304 {
            // No body, whatever the headers say.
        } else if header("transfer-encoding") == Some("chunked") {
            while let Some(chunk) = self.read_chunk()? {
                body.extend_from_slice(&chunk);
            }
        } else {
            let len: usize = header("content-length").ok_or("no content-length")?.parse()?;
            body.resize(len, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok(Reply { status, headers, body })
    }
}

pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> AnyResult<Reply> {
    Conn::open(addr)?.request(method, path, body)
}

/// The server's `/metrics` in text 0.0.4, as `series -> value` (`name{labels}` exactly
/// as written).
pub fn scrape(addr: SocketAddr) -> AnyResult<BTreeMap<String, f64>> {
    let (status, _, body) = http_get(addr, "/metrics", &[])?;
    assert_eq!(status, 200);
    let text = String::from_utf8(body)?;
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| format!("bad line {line:?}"))?;
        samples.insert(series.to_owned(), value.parse()?);
    }
    Ok(samples)
}

/// The samples of metric `name` (exact name, any labels).
pub fn family(samples: &BTreeMap<String, f64>, name: &str) -> BTreeMap<String, f64> {
    samples.iter().filter(|(k, _)| k.split('{').next() == Some(name)).map(|(k, v)| (k.clone(), *v)).collect()
}

pub fn series(name: &str, labels: &[(&str, &str)], value: f64) -> (String, f64) {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    (format!("{name}{{{}}}", labels.join(",")), value)
}

pub fn counts(entries: &[(&str, &str, &str, f64)]) -> BTreeMap<String, f64> {
    entries
        .iter()
        .map(|(m, r, s, v)| series("http_requests_total", &[("method", m), ("route", r), ("status", s)], *v))
        .collect()
}

/// Waits until the server's `/metrics` has `series` (exactly as written) at `value`.
/// Scrapes are excluded from the examples' metrics, so waiting changes nothing.
pub fn wait_for_sample(addr: SocketAddr, series: &str, value: f64) -> TestResult {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if scrape(addr)?.get(series) == Some(&value) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(format!("timed out waiting for {series} {value}").into())
}

/// An example binary (`axum-basic`, `actix-basic`) listening on a port of the kernel's
/// choice, killed on drop.
pub struct Example {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Example {
    /// Starts `binary` (an `env!("CARGO_BIN_EXE_...")` path).
    pub fn start(binary: &str) -> AnyResult<Self> {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        // The line arrives as soon as the socket is bound; EOF means the child died.
        BufReader::new(stdout).read_line(&mut line)?;
        let addr =
            line.trim().strip_prefix("listening on http://").ok_or_else(|| format!("unexpected {line:?}"))?;
        let addr = addr.parse()?;
        Ok(Self { child, addr })
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The scenarios: each takes the address of a server of the examples' routes
// (`axum_app`, `actix_app`), recording into fresh families.

pub fn matched_routes_are_counted_by_template(addr: SocketAddr) -> TestResult {
    let mut conn = Conn::open(addr)?;
    for _ in 0..3 {
        let reply = conn.request("GET", "/hello", b"")?;
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"hello, world\n"[..]));
    }
    for id in ["1", "2", "abc"] {
        assert_eq!(
            conn.request("GET", &format!("/users/{id}"), b"")?.body,
            format!("user {id}\n").as_bytes()
        );
    }
    for _ in 0..2 {
        assert_eq!(conn.request("POST", "/echo", b"ping")?.body, b"ping");
    }
    assert_eq!(conn.request("HEAD", "/hello", b"")?.status, 200);
    // Scrapes are excluded: /metrics appears in no label, however often it is read.
    scrape(addr)?;
    let samples = scrape(addr)?;

    assert_eq!(
        family(&samples, "http_requests_total"),
        counts(&[
            ("GET", "/hello", "200", 3.0),
            ("GET", "/users/{id}", "200", 3.0),
            ("POST", "/echo", "200", 2.0),
            ("HEAD", "/hello", "200", 1.0),
        ])
    );
    let echo = [("method", "POST"), ("route", "/echo"), ("status", "200")];
    assert_eq!(samples.get(&series("http_request_size_bytes_sum", &echo, 0.0).0), Some(&8.0));
    assert_eq!(samples.get(&series("http_response_size_bytes_sum", &echo, 0.0).0), Some(&8.0));
    assert_eq!(samples.get(&series("http_request_duration_seconds_count", &echo, 0.0).0), Some(&2.0));
    assert!(family(&samples, "http_requests_aborted_total").is_empty(), "{samples:?}");
    let in_flight = family(&samples, "http_requests_in_flight");
    assert_eq!(in_flight.len(), 4, "{in_flight:?}");
    assert!(in_flight.values().all(|v| *v == 0.0), "{in_flight:?}");
    assert!(!samples.keys().any(|k| k.contains("/metrics")), "{samples:?}");
    Ok(())
}

pub fn ten_thousand_random_404_paths_make_one_series(addr: SocketAddr) -> TestResult {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        // xorshift64: distinct, unpredictable-looking paths without a dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let shapes = ["/{}", "/wp-admin/{}.php", "/.env.{}", "/api/v1/users/{}/delete", "/{}?q=1&x=%00"];
    let mut paths = std::collections::HashSet::new();
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::open(addr)).collect::<AnyResult<_>>()?;
    for i in 0..10_000 {
        let path = shapes[i % shapes.len()].replace("{}", &format!("{:016x}", next()));
        let reply = conns[i % 4].request("GET", &path, b"")?;
        assert_eq!(reply.status, 404, "{path}");
        assert!(paths.insert(path));
    }
    let samples = scrape(addr)?;
    assert_eq!(family(&samples, "http_requests_total"), counts(&[("GET", "unmatched", "404", 10_000.0)]));
    let routes: std::collections::BTreeSet<&str> =
        samples.keys().filter_map(|k| k.split("route=\"").nth(1)?.split('"').next()).collect();
    assert_eq!(routes.into_iter().collect::<Vec<_>>(), ["unmatched"]);
    assert_eq!(family(&samples, "http_request_duration_seconds_count").len(), 1);
    Ok(())
}

pub fn unusual_methods_fold_into_other(addr: SocketAddr) -> TestResult {
    let mut conn = Conn::open(addr)?;
    for method in ["PROPFIND", "get", "BREW", "X-ONE-VERY-LONG-EXTENSION-METHOD"] {
        assert_eq!(conn.request(method, "/hello", b"")?.status, 405, "{method}");
    }
    for i in 0..100 {
        assert_eq!(conn.request(&format!("M{i}"), "/nowhere", b"")?.status, 404);
    }
    assert_eq!(conn.request("DELETE", "/hello", b"")?.status, 405);
    assert_eq!(conn.request("OPTIONS", "/users/7", b"")?.status, 405);
    let samples = scrape(addr)?;
    assert_eq!(
        family(&samples, "http_requests_total"),
        counts(&[
            ("_OTHER", "/hello", "405", 4.0),
            ("_OTHER", "unmatched", "404", 100.0),
            ("DELETE", "/hello", "405", 1.0),
            ("OPTIONS", "/users/{id}", "405", 1.0),
        ])
    );
    Ok(())
}

pub fn a_streamed_response_is_timed_to_its_end(addr: SocketAddr) -> TestResult {
    let reply = request(addr, "GET", "/stream?chunks=5&delay_ms=40", b"")?;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.contains(&("transfer-encoding".into(), "chunked".into())));
    assert_eq!(reply.body, b"chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    let samples = scrape(addr)?;
    let labels = [("method", "GET"), ("route", "/stream"), ("status", "200")];
    let get = |name: &str| samples.get(&series(name, &labels, 0.0).0).copied();
    assert_eq!(family(&samples, "http_requests_total"), counts(&[("GET", "/stream", "200", 1.0)]));
    assert_eq!(get("http_response_size_bytes_sum"), Some(40.0));
    let (duration, headers) = (
        get("http_request_duration_seconds_sum").ok_or("no duration")?,
        get("http_time_to_headers_seconds_sum").ok_or("no headers")?,
    );
    // Not a speed assertion: the body pauses 4 x 40 ms after its headers, so a duration
    // that ends with the body exceeds the time to headers by at least that much.
    assert!(duration - headers >= 0.16, "duration {duration}, headers {headers}");
    Ok(())
}

pub fn a_client_disconnecting_mid_body_is_counted_as_aborted(addr: SocketAddr) -> TestResult {
    let mut conn = Conn::open(addr)?;
    conn.send_head("GET", "/stream?chunks=100000&delay_ms=5", b"")?;
    assert_eq!(conn.read_head()?.0, 200);
    assert_eq!(conn.read_chunk()?, Some(b"chunk 0\n".to_vec()));
    drop(conn);
    // The server notices when a write fails, a few chunks later.
    wait_for_sample(addr, r#"http_requests_aborted_total{method="GET",route="/stream",status="200"}"#, 1.0)?;
    let samples = scrape(addr)?;
    assert_eq!(family(&samples, "http_requests_total"), counts(&[("GET", "/stream", "200", 1.0)]));
    assert_eq!(
        family(&samples, "http_requests_in_flight"),
        BTreeMap::from([series("http_requests_in_flight", &[("method", "GET"), ("route", "/stream")], 0.0)])
    );
    let labels = [("method", "GET"), ("route", "/stream"), ("status", "200")];
    let sent =
        samples.get(&series("http_response_size_bytes_sum", &labels, 0.0).0).copied().ok_or("no size")?;
    assert!((8.0..100_000.0 * 8.0).contains(&sent), "{sent}");
    Ok(())
}

pub fn the_examples_metrics_pass_promtool_and_client_python(addr: SocketAddr) -> TestResult {
    let mut conn = Conn::open(addr)?;
    assert_eq!(conn.request("GET", "/hello", b"")?.status, 200);
    assert_eq!(conn.request("GET", "/users/42", b"")?.status, 200);
    assert_eq!(conn.request("POST", "/echo", b"{\"x\":1}")?.body, b"{\"x\":1}");
    assert_eq!(conn.request("GET", "/stream", b"")?.status, 200);
    assert_eq!(conn.request("GET", "/no/such/page", b"")?.status, 404);
    assert_eq!(conn.request("PROPFIND", "/hello", b"")?.status, 405);

    let (status, headers, text) = http_get(addr, "/metrics", &[])?;
    assert_eq!(status, 200);
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some(Format::Text.content_type()));
    promtool_check(&text)?;
    let body = String::from_utf8(text)?;
    for needle in [
        r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"http_requests_total{method="_OTHER",route="/hello",status="405"} 1"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/stream",status="200",le="7.5"} 1"#,
    ] {
        assert!(body.contains(needle), "{needle} missing from\n{body}");
    }

    let accept = [("Accept", "application/openmetrics-text;version=1.0.0")];
    let (status, _, openmetrics) = http_get(addr, "/metrics", &accept)?;
    assert_eq!(status, 200);
    let families = python_parse(&openmetrics, PyFormat::OpenMetrics)?;
    let names: std::collections::BTreeSet<&str> = families.iter().map(|f| f.name.as_str()).collect();
    for name in [
        "http_requests",
        "http_request_duration_seconds",
        "http_requests_in_flight",
        "http_request_size_bytes",
        "http_response_size_bytes",
        "http_time_to_headers_seconds",
    ] {
        assert!(names.contains(name), "{name} not in {names:?}");
    }
    Ok(())
}

pub fn the_example_rejects_unknown_arguments(binary: &str) -> TestResult {
    let out = Command::new(binary).args(["--port", "1"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("usage"));
    Ok(())
}
