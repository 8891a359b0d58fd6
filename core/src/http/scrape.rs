//! The framework-free part of a `/metrics` endpoint: where the snapshot comes from,
//! which format and encoding to answer in, and the bytes. Each web adapter's handler
//! only copies headers in and out.

use std::fmt;
use std::sync::Arc;

use crate::collector::{CollectError, Collector};
use crate::encode::{encode, negotiate, Format};
use crate::registry::Registry;
use crate::snapshot::Snapshot;

/// The `Vary` header of every scrape response: the body depends on both headers
/// [`MetricsSource::respond`] reads, so a cache must key on them.
pub const SCRAPE_VARY: &str = "Accept, Accept-Encoding";

type SnapshotFn = dyn Fn() -> Result<Snapshot, CollectError> + Send + Sync;
type EncodeFn = dyn Fn(Format, &mut Vec<u8>) -> Result<(), CollectError> + Send + Sync;

/// The content type of a failed scrape's one-line reason.
const ERROR_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// What a `/metrics` endpoint serves: a registry's snapshot, or what a [`Collector`]
/// collects (in multiprocess mode, herd-mmap's `Aggregator`, which sums every worker's
/// file). Cheap to clone: clones share the source.
///
/// # Examples
///
/// ```
/// use herd_core::http::MetricsSource;
/// use herd_core::{Format, Registry};
///
/// let registry = Registry::new();
/// registry.counter("jobs_total", "Jobs.").register()?.inc();
/// let source = MetricsSource::from(registry);
/// let scrape = source.respond(None, ["gzip;q=0"]);
/// assert_eq!(scrape.content_type, Format::Text.content_type());
/// assert_eq!(scrape.content_encoding, None);
/// assert!(String::from_utf8(scrape.body)?.contains("jobs_total 1\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsSource {
    snapshot: Arc<SnapshotFn>,
    /// What [`respond`](MetricsSource::respond) encodes: the snapshot, encoded, or a
    /// collector's own [`Collector::try_encode`].
    encode: Arc<EncodeFn>,
}

impl fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsSource").finish_non_exhaustive()
    }
}

impl From<Registry> for MetricsSource {
    fn from(registry: Registry) -> Self {
        Self::registry(registry)
    }
}

impl<C: Collector> From<Arc<C>> for MetricsSource {
    fn from(collector: Arc<C>) -> Self {
        Self::collector(collector)
    }
}

impl MetricsSource {
    /// Serves `registry`'s snapshot; a scrape's body is [`Registry::try_encode`]'s.
    /// When one of its collectors cannot collect at all (herd-mmap's `Aggregator` over
    /// a directory that cannot be listed, say), the scrape fails with a 500 and the
    /// reason, as [`collector`](MetricsSource::collector)'s does, rather than answer
    /// the other families alone.
    pub fn registry(registry: Registry) -> Self {
        let encoder = registry.clone();
        Self {
            snapshot: Arc::new(move || registry.try_snapshot()),
            encode: Arc::new(move |format, out| encoder.try_encode(format, out)),
        }
    }

    /// Serves what `collector` collects, sorted by family name as a registry's
    /// snapshot is. When it cannot collect at all ([`Collector::try_collect`]), the
    /// scrape fails with a 500 and the reason.
    ///
    /// A scrape's body is the collector's [`Collector::try_encode`].
    pub fn collector(collector: Arc<dyn Collector>) -> Self {
        let encoder = Arc::clone(&collector);
        Self {
            snapshot: Arc::new(move || {
                let mut snapshot = Snapshot::default();
                collector.try_collect(&mut snapshot.families)?;
                snapshot.sort();
                Ok(snapshot)
            }),
            encode: Arc::new(move |format, out| encoder.try_encode(format, out)),
        }
    }

    /// Serves whatever snapshot `source` takes.
    pub fn from_fn(source: impl Fn() -> Snapshot + Send + Sync + 'static) -> Self {
        Self::try_from_fn(move || Ok(source()))
    }

    /// Serves whatever snapshot `source` takes, or fails the scrape with its error.
    pub fn try_from_fn(source: impl Fn() -> Result<Snapshot, CollectError> + Send + Sync + 'static) -> Self {
        let snapshot: Arc<SnapshotFn> = Arc::new(source);
        let take = Arc::clone(&snapshot);
        let encode = Arc::new(move |format, out: &mut Vec<u8>| {
            encode(&take()?, format, out);
            Ok(())
        });
        Self { snapshot, encode }
    }

    /// Takes a snapshot now.
    ///
    /// # Errors
    ///
    /// The source's [`CollectError`] when it could not collect at all.
    pub fn snapshot(&self) -> Result<Snapshot, CollectError> {
        (self.snapshot)()
    }

    /// The answer to a scrape whose `Accept` header is `accept` and whose
    /// `Accept-Encoding` headers (every one of them, in order) are `accept_encoding`.
    ///
    /// The format is the one [`negotiate`] picks (OpenMetrics for Prometheus, protobuf
    /// for a Prometheus with native histograms enabled, text 0.0.4 otherwise); the body is gzipped when [`accepts_gzip`] says so and the
    /// crate's `gzip` feature is on (herd's web adapters turn it on). Header values that
    /// are not text are the adapter's to skip.
    ///
    /// A source that cannot collect at all gets status 500 and its reason as one line
    /// of plain text, so that Prometheus records the scrape as failed (`up` 0) rather
    /// than store a body with series missing.
    ///
    /// This reads files and compresses: blocking work. An async adapter calls it off
    /// its runtime's worker threads (herd's do).
    pub fn respond<'a>(
        &self,
        accept: Option<&str>,
        accept_encoding: impl IntoIterator<Item = &'a str>,
    ) -> ScrapeResponse {
        let format = negotiate(accept);
        let mut body = Vec::new();
        if let Err(e) = (self.encode)(format, &mut body) {
            return ScrapeResponse::failed(&e);
        }
        let compressed = if accepts_gzip(accept_encoding) { gzip(&body) } else { None };
        let (content_encoding, body) = match compressed {
            Some(body) => (Some("gzip"), body),
            None => (None, body),
        };
        ScrapeResponse { status: 200, content_type: format.content_type(), content_encoding, body }
    }
}

/// A scrape's answer, for an adapter to turn into its framework's response: the body
/// and the values of `Content-Type` and `Content-Encoding` (plus [`SCRAPE_VARY`] for
/// `Vary`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScrapeResponse {
    /// The HTTP status: 200, or 500 when the source could not collect at all.
    pub status: u16,
    /// The negotiated format's content type ([`Format::content_type`]), or plain text
    /// for a failure's reason.
    pub content_type: &'static str,
    /// `Some("gzip")` when the body is compressed.
    pub content_encoding: Option<&'static str>,
    /// The encoded (and maybe compressed) snapshot.
    pub body: Vec<u8>,
}

impl ScrapeResponse {
    /// A 500 whose body is `error`'s one line. What a scrape that fails this way cannot
    /// serve is never half-served.
    pub fn failed(error: &dyn fmt::Display) -> Self {
        let reason = error.to_string().replace(['\n', '\r'], " ");
        Self {
            status: 500,
            content_type: ERROR_CONTENT_TYPE,
            content_encoding: None,
            body: format!("cannot collect metrics: {reason}\n").into_bytes(),
        }
    }

    /// The format the body is in.
    pub fn format(&self) -> Format {
        Format::from_content_type(self.content_type).unwrap_or(Format::Text)
    }
}

#[cfg(feature = "gzip")]
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    // `fast`: a scrape is answered on a worker's time, and metrics text compresses
    // well at any level.
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

#[cfg(not(feature = "gzip"))]
fn gzip(_body: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Whether `Accept-Encoding` headers allow gzip: a `gzip` (or `x-gzip`) entry, or else
/// a `*` entry, with a quality above zero (RFC 9110, section 12.5.3). No header means
/// identity only: Prometheus always sends one, curl only when asked.
///
/// ```
/// use herd_core::http::accepts_gzip;
/// assert!(accepts_gzip(["br, GZIP;q=0.5"]));
/// assert!(!accepts_gzip(["gzip;q=0, *"]));
/// assert!(!accepts_gzip([]));
/// ```
pub fn accepts_gzip<'a>(accept_encoding: impl IntoIterator<Item = &'a str>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in accept_encoding {
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let mut q = 1.0f32;
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q > 0.0);
            } else if coding == "*" {
                any = Some(q > 0.0);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_when_accepted() {
        assert!(!accepts_gzip([]));
        assert!(accepts_gzip(["gzip"]));
        assert!(accepts_gzip(["br, GZIP;q=0.5"]));
        assert!(accepts_gzip(["*"]));
        assert!(!accepts_gzip(["gzip;q=0"]));
        assert!(!accepts_gzip(["gzip;q=0, *"]));
        assert!(!accepts_gzip(["identity, br"]));
        assert!(accepts_gzip(["br", "x-gzip"]));
        assert!(!accepts_gzip(["gzip;q=nonsense"]));
    }

    #[test]
    fn the_answer_follows_both_headers() {
        let registry = Registry::new();
        registry.counter("jobs_total", "Jobs.").register().unwrap().inc();
        let source = MetricsSource::from(registry.clone());

        let plain = source.respond(None, []);
        assert_eq!((plain.content_type, plain.content_encoding), (Format::Text.content_type(), None));
        assert_eq!(plain.body, registry.encode(Format::Text));
        assert_eq!(plain.format(), Format::Text);

        let om = source.respond(Some("application/openmetrics-text;version=1.0.0"), ["gzip"]);
        assert_eq!(om.content_type, Format::OpenMetrics.content_type());
        assert_eq!(om.format(), Format::OpenMetrics);
        if cfg!(feature = "gzip") {
            assert_eq!(om.content_encoding, Some("gzip"));
            assert_eq!(om.body.get(..2), Some(&[0x1f, 0x8b][..]), "gzip magic");
        } else {
            assert_eq!(om.body, registry.encode(Format::OpenMetrics));
        }
    }

    struct CollectRegistry(Registry);

    impl Collector for CollectRegistry {
        fn collect(&self, out: &mut Vec<crate::snapshot::FamilySnapshot>) {
            out.extend(self.0.snapshot().families);
        }
    }

    struct Broken;

    impl Collector for Broken {
        fn collect(&self, _: &mut Vec<crate::snapshot::FamilySnapshot>) {}
        fn try_collect(&self, _: &mut Vec<crate::snapshot::FamilySnapshot>) -> Result<(), CollectError> {
            Err(CollectError::new("cannot list /nowhere:\nNo such file"))
        }
    }

    #[test]
    fn a_collector_that_cannot_collect_fails_the_scrape_in_one_line() {
        let scrape = MetricsSource::from(Arc::new(Broken)).respond(None, ["gzip"]);
        assert_eq!(
            (scrape.status, scrape.content_type, scrape.content_encoding),
            (500, ERROR_CONTENT_TYPE, None)
        );
        assert_eq!(scrape.body, b"cannot collect metrics: cannot list /nowhere: No such file\n");
    }

    #[test]
    fn a_registry_whose_collector_cannot_collect_fails_the_scrape_and_encode_leaves_it_out() {
        let registry = Registry::new();
        registry.counter("a_total", "A.").register().unwrap().inc();
        let readable = registry.snapshot().families.len();
        registry.register_collector(Arc::new(Broken));
        let source = MetricsSource::registry(registry.clone());
        let scrape = source.respond(None, []);
        assert_eq!((scrape.status, scrape.content_type), (500, ERROR_CONTENT_TYPE));
        assert_eq!(scrape.body, b"cannot collect metrics: cannot list /nowhere: No such file\n");
        assert!(source.snapshot().is_err());
        // The body a failed `try_encode` leaves is the one it was given.
        let mut out = b"kept".to_vec();
        assert!(registry.try_encode(Format::Text, &mut out).is_err());
        assert_eq!(out, b"kept");
        // The lenient forms answer the families that could be read.
        let text = String::from_utf8(registry.encode(Format::Text)).unwrap();
        assert!(text.contains("a_total 1\n"), "{text}");
        assert_eq!(registry.snapshot().families.len(), readable);
    }

    #[test]
    fn a_collector_is_served_like_a_registry() {
        let registry = Registry::new();
        registry.gauge("b_gauge", "B.").register().unwrap().set(2.0);
        registry.counter("a_total", "A.").register().unwrap().inc();
        let source = MetricsSource::from(Arc::new(CollectRegistry(registry.clone())));
        assert_eq!(source.respond(None, []).body, registry.encode(Format::Text));
    }
}
