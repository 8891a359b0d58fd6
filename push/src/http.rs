//! A minimal blocking HTTP/1.1 client for `http://` URLs, over `std::net::TcpStream`.
//!
//! Why not a crate: a pusher sends one request at a time from its own thread, so it
//! needs neither async nor a pool, and the well-kept blocking clients either pull in
//! a TLS stack or need a newer Rust than herd's 1.82. One connection per request
//! (`Connection: close`), bounded by timeouts; an answer's body is read up to
//! [`MAX_BODY`] bytes (only its start is kept, for error messages), and of its headers
//! only `Content-Length` and `Retry-After` are read. No TLS: put a
//! local proxy (or the collector sidecar itself) in front of an `https://` receiver.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::PushError;

/// How much of an answer's body is read; the rest is dropped with the connection.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// How much of it an error message keeps.
const ERROR_BODY: usize = 256;

/// Where requests go: a parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The URL as given, for messages.
    pub(crate) url: String,
    /// `host:port`, for connecting.
    pub(crate) authority: String,
    /// The `Host` header.
    pub(crate) host: String,
    /// The path, without a trailing `/` (empty for the root).
    pub(crate) path: String,
}

impl Endpoint {
    /// Parses `url`; only `http://` is supported, without user info, query or fragment.
    pub(crate) fn parse(url: &str) -> Result<Self, PushError> {
        let bad = |reason| PushError::Url { url: url.to_owned(), reason };
        let rest = match url.strip_prefix("http://") {
            Some(rest) => rest,
            None if url.starts_with("https://") => {
                return Err(bad("https is not supported by herd-push's built-in HTTP client; push through a local proxy or collector"))
            }
            None => return Err(bad("only http:// URLs are supported")),
        };
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if host_port.is_empty() {
            return Err(bad("no host"));
        }
        if host_port.contains('@') || path.contains(['?', '#']) {
            return Err(bad("user info, queries and fragments are not supported"));
        }
        if host_port.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("spaces and control characters must be percent-encoded"));
        }
        let has_port = match host_port.rfind(':') {
            // `[::1]` alone has a colon inside the brackets only.
            Some(i) => !host_port[i..].contains(']'),
            None => false,
        };
        let authority = if has_port { host_port.to_owned() } else { format!("{host_port}:80") };
        Ok(Self {
            url: url.to_owned(),
            authority,
            host: host_port.to_owned(),
            path: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// A receiver's answer: the status and the start of the body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// How long the receiver asked to be left alone (`Retry-After`), when it said so in
    /// a form [`retry_after`] reads.
    pub(crate) retry_after: Option<Duration>,
}

impl Reply {
    /// The body's start on one line, for an error message.
    pub(crate) fn summary(&self) -> String {
        let end = self.body.len().min(ERROR_BODY);
        String::from_utf8_lossy(&self.body[..end]).split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Why one exchange failed: the connection, or an answer that is not HTTP.
#[derive(Debug)]
pub(crate) enum Failure {
    Io(io::Error),
    Protocol(&'static str),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Sends one request and reads its answer, every step bounded by `timeout`.
pub(crate) fn send(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Reply, Failure> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
    let mut stream = None;
    for addr in endpoint.authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or(last)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // Small requests (a DELETE) must not wait for Nagle.
    stream.set_nodelay(true)?;

    let mut head = Vec::with_capacity(256);
    write!(head, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", endpoint.host)?;
    write!(head, "User-Agent: herd-push/{}\r\n", env!("CARGO_PKG_VERSION"))?;
    for (name, value) in headers {
        write!(head, "{name}: {value}\r\n")?;
    }
    write!(head, "Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    let mut writer = &stream;
    writer.write_all(&head)?;
    writer.write_all(body)?;
    writer.flush()?;
    read_reply(&stream)
}

fn read_reply(stream: &TcpStream) -> Result<Reply, Failure> {
    let mut reader = BufReader::new(stream.take((MAX_BODY + 16 * 1024) as u64));
    let mut line = String::new();
    let status = loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(Failure::Protocol("the connection closed before an answer"));
        }
        let status = parse_status(&line)?;
        // Interim answers (100 Continue) come before the real one.
        if !(100..200).contains(&status) {
            break status;
        }
        skip_headers(&mut reader, &mut line)?;
    };
    let mut length = None;
    let mut retry_after_value = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(Failure::Protocol("the connection closed inside the headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("retry-after") {
                retry_after_value = retry_after(value.trim(), SystemTime::now());
            }
        }
    }
    let mut body = Vec::new();
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    // A body cut short by the peer is still an answer: the status is what matters.
    let _ = reader.take(want as u64).read_to_end(&mut body);
    Ok(Reply { status, body, retry_after: retry_after_value })
}

/// The wait a `Retry-After` value asks for at `now`: delay-seconds, or an HTTP date
/// in the preferred form (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 section 5.6.7),
/// a date already past being no wait. `None` for anything else, such as the two
/// obsolete date forms, which receivers no longer send: the retry policy's own
/// backoff applies then.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is a wait of centuries: as good as forever.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(value: &str) -> Option<u64> {
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let (day, month, year, time, zone) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || zone != "GMT" || day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return None;
    }
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<u64>().ok()).flatten();
    let (day, year) = (number(day)?, number(year)?);
    let mut clock = time.split(':').map(number);
    let (h, m, sec) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's `days_from_civil`), for years from 1970.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

fn parse_status(line: &str) -> Result<u16, Failure> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => {
            code.parse().map_err(|_| Failure::Protocol("the status line has no status code"))
        }
        _ => Err(Failure::Protocol("the answer does not start with an HTTP/1.x status line")),
    }
}

fn skip_headers(reader: &mut impl BufRead, line: &mut String) -> Result<(), Failure> {
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Err(Failure::Protocol("the connection closed inside the headers"));
        }
        if line.trim_end().is_empty() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:9091/").map_err(|e| e.to_string());
        assert_eq!(e.as_ref().map(|e| (e.authority.as_str(), e.path.as_str())), Ok(("127.0.0.1:9091", "")));
        let e = Endpoint::parse("http://localhost/api/v1/write").map_err(|e| e.to_string());
        assert_eq!(
            e.as_ref().map(|e| (e.authority.as_str(), e.host.as_str(), e.path.as_str())),
            Ok(("localhost:80", "localhost", "/api/v1/write"))
        );
        let e = Endpoint::parse("http://[::1]/x").map_err(|e| e.to_string());
        assert_eq!(e.as_ref().map(|e| e.authority.as_str()), Ok("[::1]:80"));
        for bad in ["https://x/", "ftp://x", "http://", "http://u@x/", "http://x/?a=1", "http://x/a b"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_the_preferred_date_form() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let now = at(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(retry_after("99999999999999999999999", now), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:51:07 GMT", now), Some(Duration::from_secs(90)));
        // A date already past is no wait.
        assert_eq!(retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        // Leap day, and the end of a year.
        assert_eq!(http_date("Thu, 29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert_eq!(http_date("Tue, 31 Dec 2024 23:59:59 GMT"), Some(1_735_689_599));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        for bad in [
            "",
            "-1",
            "1.5",
            " 12",
            "soon",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn status_lines() {
        assert!(matches!(parse_status("HTTP/1.1 204 No Content\r\n"), Ok(204)));
        assert!(parse_status("SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status("HTTP/1.1 abc\r\n").is_err());
    }
}
