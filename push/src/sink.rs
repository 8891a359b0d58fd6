//! Where a pusher sends: the receiver, its protocol, and the labels that say who pushed.

use std::fmt;

use herd_core::labels::validate_label_name;

use crate::http::Endpoint;
use crate::PushError;

/// The protocol a [`Sink`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SinkKind {
    /// Prometheus Pushgateway: text 0.0.4 to `/metrics/job/<job>{/<label>/<value>}`.
    Pushgateway,
    /// Prometheus remote write 1.0: a snappy-compressed `prompb.WriteRequest`.
    RemoteWrite,
    /// OTLP over HTTP: a protobuf `ExportMetricsServiceRequest`.
    Otlp,
}

impl SinkKind {
    /// The value of the `sink` label of `herd_push_failures_total`: `pushgateway`,
    /// `remote_write` or `otlp`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pushgateway => "pushgateway",
            Self::RemoteWrite => "remote_write",
            Self::Otlp => "otlp",
        }
    }

    /// Whether a push that got `status` may be sent again, per the protocol.
    ///
    /// Remote write 1.0: 5xx and 429, never another 4xx. OTLP/HTTP: 429, 502, 503 and
    /// 504 only. The Pushgateway has no written rule; it gets remote write's (its 400
    /// means the push itself is invalid, and sending it again cannot help).
    pub fn retries(self, status: u16) -> bool {
        match self {
            Self::Pushgateway | Self::RemoteWrite => status == 429 || (500..600).contains(&status),
            Self::Otlp => matches!(status, 429 | 502 | 503 | 504),
        }
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How a Pushgateway push treats what the group held before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PushMethod {
    /// `PUT`: the push replaces every metric of the grouping key (client_python's
    /// `push_to_gateway`, client_golang's `Push`). The default: an aggregate is
    /// complete, so what it no longer holds should go.
    #[default]
    Put,
    /// `POST`: the push replaces only the metric names it carries
    /// (`pushadd_to_gateway`, `Add`).
    Post,
}

/// A receiver and how to talk to it.
///
/// `job` and the labels say who pushed, in each protocol's own way:
///
/// | | `job` | [`label`](Sink::label)s |
/// | --- | --- | --- |
/// | Pushgateway | the grouping key's `job` | the rest of the grouping key |
/// | remote write | a `job` label on every series | labels on every series (a series' own label of the same name wins) |
/// | OTLP | the resource attribute `service.name` | resource attributes |
///
/// # Examples
///
/// ```
/// use herd_push::Sink;
///
/// let sink = Sink::pushgateway("http://127.0.0.1:9091", "nightly_backup")?
///     .label("path", "/var/tmp")?
///     .label("instance", "db 1")?;
/// assert_eq!(
///     sink.pushgateway_path(),
///     Some("/metrics/job/nightly_backup/path@base64/L3Zhci90bXA/instance/db%201".to_owned())
/// );
/// # Ok::<(), herd_push::PushError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sink {
    pub(crate) kind: SinkKind,
    pub(crate) endpoint: Endpoint,
    pub(crate) job: Option<String>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) method: PushMethod,
    pub(crate) native_histograms: bool,
}

impl Sink {
    /// A Pushgateway at `url` (its base, such as `http://127.0.0.1:9091`), grouping
    /// by `job`.
    ///
    /// # Errors
    ///
    /// [`PushError::Url`] for a URL that is not `http://`.
    pub fn pushgateway(url: &str, job: &str) -> Result<Self, PushError> {
        Self::new(SinkKind::Pushgateway, url).map(|s| s.job(job))
    }

    /// A remote-write receiver at `url`, the full URL (Prometheus:
    /// `http://HOST:9090/api/v1/write`; VictoriaMetrics: `http://HOST:8428/api/v1/write`).
    ///
    /// # Errors
    ///
    /// [`PushError::Url`] for a URL that is not `http://`.
    pub fn remote_write(url: &str) -> Result<Self, PushError> {
        Self::new(SinkKind::RemoteWrite, url)
    }

    /// An OTLP/HTTP receiver: `url` is the full metrics URL, or a base URL without a
    /// path, to which `/v1/metrics` is added (as `OTEL_EXPORTER_OTLP_ENDPOINT` works).
    ///
    /// # Errors
    ///
    /// [`PushError::Url`] for a URL that is not `http://`.
    pub fn otlp(url: &str) -> Result<Self, PushError> {
        Self::new(SinkKind::Otlp, url)
    }

    /// A sink of `kind` at `url`, without a job.
    ///
    /// # Errors
    ///
    /// [`PushError::Url`] for a URL that is not `http://`.
    pub fn new(kind: SinkKind, url: &str) -> Result<Self, PushError> {
        let mut endpoint = Endpoint::parse(url)?;
        if kind == SinkKind::Otlp && endpoint.path.is_empty() {
            endpoint.path = "/v1/metrics".to_owned();
        }
        Ok(Self {
            kind,
            endpoint,
            job: None,
            labels: Vec::new(),
            method: PushMethod::Put,
            native_histograms: false,
        })
    }

    /// Sets the job (see the table above). A Pushgateway sink without one pushes as
    /// job `herd`.
    #[must_use]
    pub fn job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    /// Adds a label (see the table above). Values may hold anything, `/` and spaces
    /// included: the Pushgateway path escapes them.
    ///
    /// # Errors
    ///
    /// [`PushError::Label`] for a name that is not a Prometheus label name, starts
    /// with `__`, is `job` (set with [`job`](Sink::job)) or was given already.
    pub fn label(mut self, name: &str, value: impl Into<String>) -> Result<Self, PushError> {
        let refuse = |reason| PushError::Label { name: name.to_owned(), reason };
        validate_label_name(name).map_err(|_| refuse("not a valid label name"))?;
        if name.starts_with("__") {
            return Err(refuse("names starting with __ are reserved"));
        }
        if name == "job" {
            return Err(refuse("set the job with --job (Sink::job), not as a label"));
        }
        if self.labels.iter().any(|(n, _)| n == name) {
            return Err(refuse("given twice"));
        }
        self.labels.push((name.to_owned(), value.into()));
        Ok(self)
    }

    /// Sets the Pushgateway method (`PUT` by default); other sinks ignore it.
    #[must_use]
    pub fn method(mut self, method: PushMethod) -> Self {
        self.method = method;
        self
    }

    /// Whether histograms with native buckets go out as native histograms too; off
    /// unless set. Remote write sends each as a native histogram (series `<name>`)
    /// beside its classic `_bucket`, `_sum` and `_count` series: a receiver without
    /// native histograms enabled (Prometheus 2.42 without
    /// `--enable-feature=native-histograms`) refuses the whole request. OTLP sends
    /// such a family as an `ExponentialHistogram` instead of a `Histogram`. The
    /// Pushgateway ignores it (it ingests text).
    #[must_use]
    pub fn native_histograms(mut self, on: bool) -> Self {
        self.native_histograms = on;
        self
    }

    /// The protocol.
    pub fn kind(&self) -> SinkKind {
        self.kind
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// For a Pushgateway sink, the path of its group: `/metrics/job/<job>` and a
    /// `/<name>/<value>` per label, in the order given. A value that is empty or holds
    /// a `/` goes as `<name>@base64/<URL-safe base64>` (`=` for the empty value), as
    /// Pushgateway 1.5 requires; any other value is percent-encoded.
    pub fn pushgateway_path(&self) -> Option<String> {
        if self.kind != SinkKind::Pushgateway {
            return None;
        }
        let mut path = self.endpoint.path.clone();
        path.push_str("/metrics");
        push_segment(&mut path, "job", self.job.as_deref().unwrap_or("herd"));
        for (name, value) in &self.labels {
            push_segment(&mut path, name, value);
        }
        Some(path)
    }
}

fn push_segment(path: &mut String, name: &str, value: &str) {
    path.push('/');
    path.push_str(name);
    if value.is_empty() || value.contains('/') {
        path.push_str("@base64/");
        if value.is_empty() {
            path.push('=');
        } else {
            base64_url(value.as_bytes(), path);
        }
    } else {
        path.push('/');
        percent_encode(value, path);
    }
}

/// RFC 4648 §5 (URL- and file-name-safe) base64, without padding (the Pushgateway
/// accepts either).
pub(crate) fn base64_url(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        let mut out = String::new();
        base64_url(s.as_bytes(), &mut out);
        out
    }

    #[test]
    fn base64_matches_the_pushgateway_readme() {
        assert_eq!(b64("/var/tmp"), "L3Zhci90bXA");
        assert_eq!(b64("a"), "YQ");
        assert_eq!(b64("ab"), "YWI");
        assert_eq!(b64("abc"), "YWJj");
        // The URL-safe alphabet: `>>>` and `???` in the standard one give `+` and `/`.
        assert_eq!(b64(">>>"), "Pj4-");
        assert_eq!(b64("???"), "Pz8_");
    }

    #[test]
    fn grouping_key_paths() -> Result<(), PushError> {
        let sink = Sink::pushgateway("http://h:1/base/", "a/b")?.label("e", "")?.label("s", "x y")?;
        assert_eq!(
            sink.pushgateway_path().as_deref(),
            Some("/base/metrics/job@base64/YS9i/e@base64/=/s/x%20y")
        );
        assert!(Sink::remote_write("http://h/api/v1/write")?.pushgateway_path().is_none());
        for bad in ["__x", "job", "1a", "a-b"] {
            assert!(Sink::pushgateway("http://h", "j")?.label(bad, "v").is_err(), "{bad}");
        }
        assert!(Sink::pushgateway("http://h", "j")?.label("a", "1")?.label("a", "2").is_err());
        Ok(())
    }

    #[test]
    fn retry_rules() {
        for (status, rw, otlp) in [
            (500, true, false),
            (502, true, true),
            (429, true, true),
            (400, false, false),
            (404, false, false),
            (503, true, true),
        ] {
            assert_eq!(SinkKind::RemoteWrite.retries(status), rw, "{status}");
            assert_eq!(SinkKind::Otlp.retries(status), otlp, "{status}");
        }
    }
}
