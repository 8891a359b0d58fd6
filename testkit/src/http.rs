//! A tiny HTTP/1.1 test server on hyper, and clients on `std` only that send
//! exactly the bytes they are given (hyper's client would refuse malformed ones).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// How long a client's socket read blocks before its deadline is re-checked.
const POLL: Duration = Duration::from_millis(100);
/// How long dropping a [`TestServer`] waits for handlers still running.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of [`http_get`].
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted start or header line.
const MAX_LINE: usize = 64 * 1024;
/// Most header lines accepted in one message.
const MAX_HEADERS: usize = 256;
/// Largest accepted body.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// Chunk size used when the server sends `Transfer-Encoding: chunked`.
const CHUNK: usize = 1024;
/// How many requests [`TestServer::requests`] keeps.
const KEEP_REQUESTS: usize = 1000;

/// An HTTP request received by [`TestServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, such as `GET`.
    pub method: String,
    /// Request target as sent: the path including any `?query`.
    pub path: String,
    /// Headers in arrival order, except that the repeats of a name follow its
    /// first occurrence (hyper's `HeaderMap`); names are lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Body, de-chunked if it was sent chunked.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An HTTP response produced by a [`TestServer`] handler.
///
/// The server adds `Content-Length` unless the handler sets it or sets
/// `Transfer-Encoding: chunked`, in which case the server chunk-encodes
/// `body` itself (in 1024-byte chunks). It adds `Connection: close` when it
/// is going to close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, such as 200.
    pub status: u16,
    /// Headers to send, in order.
    pub headers: Vec<(String, String)>,
    /// Body (unencoded).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A 200 response with the given `Content-Type` and body.
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response::new(200).with_header("Content-Type", content_type).with_body(body)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn header_has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler panic never happens while one of these locks is held, but
    // even so the data stays usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------
// Reading HTTP messages with deadlines.

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("timed out {what}"))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A buffered reader over a socket whose read timeout is [`POLL`]: every
/// read retries until data arrives or the deadline passes.
struct HttpReader {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
}

impl HttpReader {
    fn new(stream: TcpStream, deadline: Instant) -> HttpReader {
        HttpReader { stream, buf: Vec::new(), pos: 0, deadline }
    }

    fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes into the buffer; Ok(0) means end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            if Instant::now() >= self.deadline {
                return Err(timed_out("reading from the peer"));
            }
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One line without its `\r\n`/`\n`; None at a clean end of stream.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buffered().iter().position(|&b| b == b'\n') {
                let mut line = self.buffered().get(..i).unwrap_or_default().to_vec();
                self.consume(i + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buffered().len() > MAX_LINE {
                return Err(bad("line too long"));
            }
            if self.fill()? == 0 {
                if self.buffered().is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a line",
                ));
            }
        }
    }

    fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n > MAX_BODY {
            return Err(bad(format!("body of {n} bytes is too large")));
        }
        while self.buffered().len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {} of {n} body bytes", self.buffered().len()),
                ));
            }
        }
        let out = self.buffered().get(..n).unwrap_or_default().to_vec();
        self.consume(n);
        Ok(out)
    }

    fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? != 0 {
            if self.buffered().len() > MAX_BODY {
                return Err(bad("body too large"));
            }
        }
        let out = self.buffered().to_vec();
        self.consume(out.len());
        Ok(out)
    }
}

/// A start line and the headers that follow it.
type Head = (String, Vec<(String, String)>);

/// Start line and headers of a message; None at a clean end of stream
/// before the first byte.
fn read_head(r: &mut HttpReader) -> io::Result<Option<Head>> {
    // Tolerate stray empty lines before the start line (RFC 9112 §2.2).
    let start = loop {
        match r.read_line()? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let start = String::from_utf8(start).map_err(|_| bad("start line is not UTF-8"))?;
    let mut headers = Vec::new();
    loop {
        let line =
            r.read_line()?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in headers"))?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        let line = String::from_utf8_lossy(&line);
        let (name, value) =
            line.split_once(':').ok_or_else(|| bad(format!("malformed header line {line:?}")))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad(format!("malformed header name {name:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Some((start, headers)))
}

/// Reads a body framed by `Transfer-Encoding: chunked` or `Content-Length`;
/// without either, reads to end of stream if `until_eof`, else nothing.
fn read_body(r: &mut HttpReader, headers: &[(String, String)], until_eof: bool) -> io::Result<Vec<u8>> {
    if header_has_token(headers, "transfer-encoding", "chunked") {
        let mut body = Vec::new();
        loop {
            let line = r
                .read_line()?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in chunked body"))?;
            let line = String::from_utf8_lossy(&line);
            let size = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // Trailer section, ended by an empty line.
                loop {
                    match r.read_line()? {
                        Some(l) if !l.is_empty() => continue,
                        _ => return Ok(body),
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("chunked body too large"));
            }
            body.extend_from_slice(&r.read_exact_vec(size)?);
            match r.read_line()? {
                Some(l) if l.is_empty() => {}
                _ => return Err(bad("chunk not followed by CRLF")),
            }
        }
    }
    if let Some(len) = find_header(headers, "content-length") {
        let len: usize = len.parse().map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        return r.read_exact_vec(len);
    }
    if until_eof {
        return r.read_to_end();
    }
    Ok(Vec::new())
}

// ---------------------------------------------------------------------------
// Server.

type Handler = dyn Fn(&Request) -> Response + Send + Sync + 'static;

struct Shared {
    handler: Box<Handler>,
    requests: Mutex<VecDeque<Request>>,
}

/// A tiny HTTP/1.1 server on `127.0.0.1:<random port>` for tests, on hyper.
///
/// One thread runs a current-thread tokio runtime that accepts and serves
/// every connection; handlers run on tokio's blocking pool, so a slow handler
/// does not hold up other connections. A connection may carry any number of
/// keep-alive requests (as Prometheus does) until the client closes it or
/// sends `Connection: close`. Every request is recorded (the last 1000 are
/// kept, see [`TestServer::requests`]). A handler panic is answered with a
/// 500, a request hyper cannot parse with a 400 (and it is not recorded).
/// Dropping the server closes every connection and waits at most 2 s for
/// handlers still running.
///
/// ```no_run
/// use herd_testkit::{http_get, Response, TestServer};
/// let server = TestServer::start(|_req| {
///     Response::ok("text/plain; version=0.0.4; charset=utf-8", "up 1\n")
/// })?;
/// let (status, _headers, body) = http_get(server.addr(), "/metrics", &[])?;
/// assert_eq!((status, body.as_slice()), (200, &b"up 1\n"[..]));
/// # Ok::<(), String>(())
/// ```
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropped to stop the server thread.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish()
    }
}

impl TestServer {
    /// Binds `127.0.0.1:0` and starts serving with `handler`.
    pub fn start<F>(handler: F) -> Result<TestServer, String>
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("TestServer: cannot bind 127.0.0.1:0: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("TestServer: local_addr: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("TestServer: set_nonblocking: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("TestServer: cannot build a tokio runtime: {e}"))?;
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| format!("TestServer: cannot register the listener: {e}"))?
        };
        let shared = Arc::new(Shared { handler: Box::new(handler), requests: Mutex::new(VecDeque::new()) });
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("herd-testkit-server-{}", addr.port()))
                .spawn(move || {
                    runtime.spawn(accept_loop(listener, shared));
                    // Returns when the TestServer drops `stop`.
                    let _ = runtime.block_on(stopped);
                    // Drops every connection task (closing its socket); a handler
                    // still running on the blocking pool is waited for, boundedly.
                    runtime.shutdown_timeout(STOP_TIMEOUT);
                })
                .map_err(|e| format!("TestServer: cannot spawn the server thread: {e}"))?
        };
        Ok(TestServer { addr, shared, stop: Some(stop), thread: Some(thread) })
    }

    /// The bound address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A copy of the recorded requests, oldest first (at most the last 1000).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).iter().cloned().collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // Bounded by STOP_TIMEOUT: see the server thread in `start`.
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            // E.g. EMFILE or a connection reset before accept: keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(Arc::clone(&shared), req));
            // An error (a malformed request, already answered with a 400, or a
            // peer that went away) ends only this connection.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn respond(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Chunks>, hyper::Error> {
    let (head, body) = req.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let headers = head
        .headers
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let request =
        Request { method: head.method.as_str().to_owned(), path: head.uri.to_string(), headers, body };
    {
        let mut log = lock(&shared.requests);
        if log.len() >= KEEP_REQUESTS {
            log.pop_front();
        }
        log.push_back(request.clone());
    }
    // The handler is synchronous and may block: off the runtime's only thread.
    let response =
        tokio::task::spawn_blocking(move || (shared.handler)(&request)).await.unwrap_or_else(|_| {
            Response::new(500)
                .with_header("Content-Type", "text/plain; charset=utf-8")
                .with_body("TestServer handler panicked\n")
        });
    Ok(to_hyper(response))
}

/// `response` for hyper; a status or header hyper cannot send becomes a 500
/// that says why.
fn to_hyper(response: Response) -> hyper::Response<Chunks> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Chunks(Bytes::from(response.body))).unwrap_or_else(|e| {
        let mut error = hyper::Response::new(Chunks(Bytes::from(format!("TestServer: bad response: {e}\n"))));
        *error.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        error
    })
}

/// A response body handed to hyper in frames of at most [`CHUNK`] bytes, so
/// that a `Transfer-Encoding: chunked` response has chunks of that size. Its
/// exact size lets hyper add `Content-Length` when no framing header is set.
struct Chunks(Bytes);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.0.len().min(CHUNK);
        Poll::Ready(Some(Ok(Frame::data(self.0.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.len() as u64)
    }
}

// ---------------------------------------------------------------------------
// Client.

/// `GET path_and_query` from `addr` over HTTP/1.1 with `Connection: close`.
///
/// Adds `Host` and `Connection: close` unless `headers` sets them. Handles
/// `Content-Length`, chunked and read-until-close bodies (no decompression:
/// it never asks for gzip). Returns `(status, headers, body)`, header names
/// lowercased. The whole exchange is bounded by 10 s.
#[allow(clippy::type_complexity)] // the plain tuple is the documented API
pub fn http_get(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    http_get_timeout(addr, path_and_query, headers, CLIENT_TIMEOUT)
}

#[allow(clippy::type_complexity)]
pub(crate) fn http_get_timeout(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let ctx = |e: &dyn std::fmt::Display| format!("GET http://{addr}{path_and_query}: {e}");
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| ctx(&e))?;
    let setup = || -> io::Result<TcpStream> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.try_clone()
    };
    let mut out = setup().map_err(|e| ctx(&e))?;

    let mut req = format!("GET {path_and_query} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("connection") {
        req.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    out.write_all(req.as_bytes()).and_then(|()| out.flush()).map_err(|e| ctx(&e))?;

    let mut reader = HttpReader::new(stream, deadline);
    loop {
        let (start, resp_headers) = read_head(&mut reader)
            .map_err(|e| ctx(&e))?
            .ok_or_else(|| ctx(&"connection closed before a response"))?;
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| ctx(&format!("malformed status line {start:?}")))?;
        if (100..200).contains(&status) {
            continue; // interim response
        }
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else {
            read_body(&mut reader, &resp_headers, true).map_err(|e| ctx(&e))?
        };
        return Ok((status, resp_headers, body));
    }
}

/// Percent-encodes `s` for a URL query value: every byte of its UTF-8 form
/// except `A-Z a-z 0-9 - _ . ~` becomes `%XX` (space is `%20`).
///
/// ```
/// assert_eq!(herd_testkit::url_encode("up{job=\"a b\"}"), "up%7Bjob%3D%22a%20b%22%7D");
/// ```
pub fn url_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// One keep-alive HTTP/1.1 connection that sends request lines byte for byte, for
/// hostile requests (invalid UTF-8, control characters, odd methods) and for many
/// requests in a row.
///
/// Each exchange is bounded by 10 s. A server that answers with `Connection: close`
/// (or closes) is reconnected to on the next request.
pub struct HttpConn {
    addr: SocketAddr,
    conn: Option<(TcpStream, HttpReader)>,
}

impl HttpConn {
    /// A client of `addr`; connects on the first request.
    pub fn new(addr: SocketAddr) -> HttpConn {
        HttpConn { addr, conn: None }
    }

    /// Sends `METHOD TARGET HTTP/1.1` with `Host` and no body, exactly these bytes
    /// for `method` and `target`, and returns the status and the body.
    ///
    /// # Errors
    ///
    /// The connection failed, timed out, or the response was malformed.
    pub fn request(&mut self, method: &[u8], target: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let ctx = |e: &dyn std::fmt::Display| {
            format!(
                "{} {} on {}: {e}",
                String::from_utf8_lossy(method),
                String::from_utf8_lossy(target),
                self.addr
            )
        };
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, CLIENT_TIMEOUT).map_err(|e| ctx(&e))?;
            let setup = || -> io::Result<TcpStream> {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(POLL))?;
                stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
                stream.try_clone()
            };
            let out = setup().map_err(|e| ctx(&e))?;
            self.conn = Some((out, HttpReader::new(stream, deadline)));
        }
        let Some((out, reader)) = self.conn.as_mut() else { return Err(ctx(&"not connected")) };
        reader.deadline = deadline;
        let mut req = Vec::with_capacity(method.len() + target.len() + 64);
        req.extend_from_slice(method);
        req.push(b' ');
        req.extend_from_slice(target);
        req.extend_from_slice(format!(" HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).as_bytes());
        let result = out.write_all(&req).and_then(|()| out.flush()).and_then(|()| loop {
            let Some((start, headers)) = read_head(reader)? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            };
            let status: u16 = start.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {start:?}"))
            })?;
            if (100..200).contains(&status) {
                continue;
            }
            let body =
                if status == 204 || status == 304 { Vec::new() } else { read_body(reader, &headers, false)? };
            let close = header_has_token(&headers, "connection", "close");
            return Ok((status, body, close));
        });
        match result {
            Ok((status, body, close)) => {
                if close {
                    self.conn = None;
                }
                Ok((status, body))
            }
            Err(e) => {
                self.conn = None;
                Err(ctx(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one response from a raw keep-alive connection.
    fn read_response(r: &mut HttpReader) -> Result<(Head, Vec<u8>), String> {
        let (start, headers) = read_head(r).map_err(|e| e.to_string())?.ok_or("connection closed")?;
        let body = read_body(r, &headers, false).map_err(|e| e.to_string())?;
        Ok(((start, headers), body))
    }

    #[test]
    fn keep_alive_serves_many_requests_on_one_connection() -> Result<(), String> {
        let server = TestServer::start(|req| {
            Response::ok(
                "text/plain",
                format!("{} {} {}", req.method, req.path, String::from_utf8_lossy(&req.body)),
            )
        })?;
        let stream = TcpStream::connect(server.addr()).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(POLL)).map_err(|e| e.to_string())?;
        let mut out = stream.try_clone().map_err(|e| e.to_string())?;
        let mut reader = HttpReader::new(stream, Instant::now() + Duration::from_secs(10));

        // 1: plain GET, connection stays open.
        out.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
        let ((start, headers), body) = read_response(&mut reader)?;
        assert_eq!(start, "HTTP/1.1 200 OK");
        assert_eq!(find_header(&headers, "connection"), None);
        assert_eq!(body, b"GET /one ");

        // 2 and 3 pipelined: a chunked POST body, then a Content-Length one.
        out.write_all(
            b"POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n\
              POST /three?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        )
        .map_err(|e| e.to_string())?;
        let (_, body) = read_response(&mut reader)?;
        assert_eq!(body, b"POST /two hello world");
        let (_, body) = read_response(&mut reader)?;
        assert_eq!(body, b"POST /three?q=1 abc");

        // 4: Connection: close ends it.
        out.write_all(b"GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let ((_, headers), body) = read_response(&mut reader)?;
        assert_eq!(find_header(&headers, "connection"), Some("close"));
        assert_eq!(body, b"GET /four ");
        assert_eq!(reader.read_line().map_err(|e| e.to_string())?, None);

        let requests = server.requests();
        let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/one", "/two", "/three?q=1", "/four"]);
        assert_eq!(requests[1].body, b"hello world");
        assert_eq!(requests[1].header("transfer-encoding"), Some("chunked"));
        Ok(())
    }

    #[test]
    fn chunked_response_is_sent_in_1024_byte_chunks() -> Result<(), String> {
        let server = TestServer::start(|_| {
            Response::ok("text/plain", vec![b'x'; 2500]).with_header("Transfer-Encoding", "chunked")
        })?;
        let mut stream = TcpStream::connect(server.addr()).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").ok_or("no end of head")?;
        assert!(!head.to_ascii_lowercase().contains("content-length"), "{head}");
        let x = |n: usize| "x".repeat(n);
        // Chunk sizes are hex of either case (hyper writes upper case).
        assert_eq!(
            body.to_ascii_lowercase(),
            format!("400\r\n{}\r\n400\r\n{}\r\n1c4\r\n{}\r\n0\r\n\r\n", x(1024), x(1024), x(452))
        );
        Ok(())
    }

    #[test]
    fn malformed_request_gets_400() -> Result<(), String> {
        let server = TestServer::start(|_| Response::new(200))?;
        let stream = TcpStream::connect(server.addr()).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(POLL)).map_err(|e| e.to_string())?;
        let mut out = stream.try_clone().map_err(|e| e.to_string())?;
        let mut reader = HttpReader::new(stream, Instant::now() + Duration::from_secs(10));
        out.write_all(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").map_err(|e| e.to_string())?;
        let ((start, _), _) = read_response(&mut reader)?;
        assert_eq!(start, "HTTP/1.1 400 Bad Request");
        assert!(server.requests().is_empty());
        Ok(())
    }

    #[test]
    fn drop_closes_idle_keep_alive_connections() -> Result<(), String> {
        let server = TestServer::start(|_| Response::new(200))?;
        let addr = server.addr();
        let mut idle = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        drop(server);
        // The server's side is closed: the read ends (EOF or a reset), rather than
        // waiting for bytes until the read time-out.
        idle.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut idle, &mut byte) {
            Ok(0) => {}
            Ok(n) => return Err(format!("{n} unexpected bytes on an idle connection")),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ),
                "the idle connection was left open: {e}"
            ),
        }
        Ok(())
    }
}
