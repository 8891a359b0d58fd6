//! One aggregator for all the workers of a pre-fork server.
//!
//! Every worker can be the one a scrape reaches, so every worker must be able to answer
//! `/metrics` with the whole directory's aggregate. If each built its own herd-mmap
//! `Aggregator`, each would hold an index of the whole directory (about 48 bytes per
//! (file, series) pair plus a label set per distinct series): N workers, N copies.
//! Instead one worker is designated (`prefork-demo` designates slot 0): it keeps the
//! only long-lived aggregator, on one thread that answers, on a Unix socket in the
//! (private) metrics directory, every scrape, its own worker's included. A relaying
//! worker holds no index at all and streams the body through in small chunks, on its
//! runtime's own threads.
//!
//! One thread, one scrape at a time, and no body held whole outside it: this is what
//! keeps the memory down, more than the index. An allocator such as glibc's keeps what
//! a thread freed in that thread's arena, so a body or snapshot built on each of
//! several threads (a blocking pool's, a thread per connection) stays resident once
//! per thread; measured, that was more than the index itself.
//!
//! When the designated worker cannot be reached (it is being restarted), a relaying
//! worker answers from an aggregator of its own made for that one scrape and dropped
//! after it: the scrape is still exact, it only costs a cold aggregation.
//!
//! The relay's wire is local and trivial, both sides being this module. Request: the
//! `Accept` header (`-` when absent, else `+` and the value) and the `Accept-Encoding`
//! headers joined by `,`, a line each. Response: `status content-encoding|- length
//! content-type`, one line, then exactly `length` bytes of body.

use std::fmt;
use std::io::{self, BufRead as _, Write as _};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

use herd_core::http::{MetricsSource, ScrapeResponse};
use herd_mmap::Aggregator;

/// The relay socket's name inside the metrics directory (which herd-mmap's readers
/// ignore: it is not a worker file).
pub const RELAY_SOCKET: &str = "relay.sock";

/// How long either side waits on the other before giving up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The chunks a relaying worker streams the body in: small enough that no chunk is a
/// large allocation that the allocator would keep per thread.
const CHUNK: usize = 32 * 1024;

/// The designated worker's side and the relaying workers' side of one directory's
/// aggregate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ScrapeRelay {
    dir: PathBuf,
    socket: PathBuf,
    process_metrics: bool,
}

/// A scrape's answer as the relay carries it: what an HTTP handler copies into its
/// response (with `Vary: Accept, Accept-Encoding`, as herd's handlers send).
pub struct Relayed {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` value.
    pub content_type: String,
    /// The `Content-Encoding` value, if the body is compressed.
    pub content_encoding: Option<String>,
    /// The body's length in bytes.
    pub len: u64,
    /// The body, in chunks.
    pub body: BodyStream,
}

/// A relayed body: chunks as they arrive, an error ending it early.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

impl fmt::Debug for Relayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relayed")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl From<ScrapeResponse> for Relayed {
    fn from(r: ScrapeResponse) -> Self {
        Self {
            status: r.status,
            content_type: r.content_type.to_owned(),
            content_encoding: r.content_encoding.map(str::to_owned),
            len: r.body.len() as u64,
            body: Box::pin(futures_util::stream::iter([Ok(Bytes::from(r.body))])),
        }
    }
}

impl ScrapeRelay {
    /// The relay of the metrics directory `dir` (its socket is `dir/relay.sock`);
    /// `process_metrics` as `Aggregator::process_metrics`, for the fallback aggregator.
    pub fn new(dir: impl Into<PathBuf>, process_metrics: bool) -> Self {
        let dir = dir.into();
        let socket = dir.join(RELAY_SOCKET);
        Self { dir, socket, process_metrics }
    }

    /// The socket the designated worker listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// In the designated worker: answers relayed scrapes from `source`, one at a time,
    /// on a thread of its own for the life of the process (scrapes of one aggregator
    /// are serialized by its lock anyway). A socket left by an earlier designated
    /// worker is replaced.
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub fn serve(&self, source: MetricsSource) -> io::Result<()> {
        match std::fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&self.socket)?;
        std::thread::Builder::new().name("herd-relay".into()).spawn(move || {
            // A relaying worker that stalls holds the others up to the timeout, no
            // longer.
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &source);
            }
        })?;
        Ok(())
    }

    /// In any worker: the designated worker's answer to a scrape with these headers,
    /// its body streamed from the socket, or, when it cannot be reached, this worker's
    /// own from an aggregator made for this scrape and dropped after it (on the
    /// runtime's blocking pool). Needs a Tokio runtime (axum's, actix-web's).
    pub async fn respond(&self, accept: Option<&str>, accept_encoding: &[&str]) -> Relayed {
        match self.ask(accept, accept_encoding).await {
            Ok(relayed) => relayed,
            Err(e) => {
                log::debug!("herd relay: the designated worker did not answer ({e}); aggregating here");
                let (relay, accept) = (self.clone(), accept.map(str::to_owned));
                let encodings: Vec<String> = accept_encoding.iter().map(|&e| e.to_owned()).collect();
                tokio::task::spawn_blocking(move || {
                    let encodings: Vec<&str> = encodings.iter().map(String::as_str).collect();
                    relay.respond_here(accept.as_deref(), &encodings)
                })
                .await
                .unwrap_or_else(|e| ScrapeResponse::failed(&e).into())
            }
        }
    }

    fn respond_here(&self, accept: Option<&str>, accept_encoding: &[&str]) -> Relayed {
        match Aggregator::new(&self.dir) {
            Ok(aggregator) => {
                let source = MetricsSource::from(Arc::new(aggregator.process_metrics(self.process_metrics)));
                source.respond(accept, accept_encoding.iter().copied()).into()
            }
            Err(e) => ScrapeResponse::failed(&e).into(),
        }
    }

    async fn ask(&self, accept: Option<&str>, accept_encoding: &[&str]) -> io::Result<Relayed> {
        let timed = |e: tokio::time::error::Elapsed| io::Error::new(io::ErrorKind::TimedOut, e);
        let mut stream =
            tokio::time::timeout(TIMEOUT, UnixStream::connect(&self.socket)).await.map_err(timed)??;
        let accept = accept.map_or_else(|| "-".to_owned(), |a| format!("+{}", one_line(a)));
        let encodings: Vec<String> = accept_encoding.iter().map(|e| one_line(e)).collect();
        let request = format!("{accept}\n{}\n", encodings.join(","));
        tokio::time::timeout(TIMEOUT, stream.write_all(request.as_bytes())).await.map_err(timed)??;
        let mut reader = BufReader::with_capacity(CHUNK, stream);
        let mut head = String::new();
        // The whole aggregation happens before the first byte of the answer.
        tokio::time::timeout(TIMEOUT, reader.read_line(&mut head)).await.map_err(timed)??;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad relay answer {head:?}"));
        let mut fields = head.trim_end_matches('\n').splitn(4, ' ');
        let (Some(status), Some(encoding), Some(len), Some(content_type)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let status = status.parse().map_err(|_| bad())?;
        let len: u64 = len.parse().map_err(|_| bad())?;
        let body = futures_util::stream::unfold((reader, len), |(mut reader, left)| async move {
            if left == 0 {
                return None;
            }
            let mut chunk = vec![0; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            let read = match tokio::time::timeout(TIMEOUT, reader.read(&mut chunk)).await {
                Ok(Ok(0)) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(io::Error::new(io::ErrorKind::TimedOut, e)),
            };
            Some(match read {
                Ok(n) => {
                    chunk.truncate(n);
                    (Ok(Bytes::from(chunk)), (reader, left - n as u64))
                }
                // Ends the stream after the error: the response is cut short, which the
                // scraper sees (a body shorter than its Content-Length).
                Err(e) => (Err(e), (reader, 0)),
            })
        });
        Ok(Relayed {
            status,
            content_type: content_type.to_owned(),
            content_encoding: (encoding != "-").then(|| encoding.to_owned()),
            len,
            body: Box::pin(body),
        })
    }
}

/// A header value on one line of the relay's wire.
fn one_line(value: &str) -> String {
    value.replace(['\n', '\r'], " ")
}

/// The designated worker's answer to one relayed scrape.
fn answer(stream: std::os::unix::net::UnixStream, source: &MetricsSource) -> io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let (mut accept, mut encodings) = (String::new(), String::new());
    reader.read_line(&mut accept)?;
    reader.read_line(&mut encodings)?;
    let accept = accept.trim_end_matches('\n').strip_prefix('+');
    let encodings = encodings.trim_end_matches('\n');
    let response = source.respond(accept, (!encodings.is_empty()).then_some(encodings));
    // The content type last: it is the one field with spaces.
    let head = format!(
        "{} {} {} {}\n",
        response.status,
        response.content_encoding.unwrap_or("-"),
        response.body.len(),
        one_line(response.content_type),
    );
    let mut stream = stream;
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)
}
