//! RED metrics for gRPC servers: the names, codes and per-call recording that
//! herd-tonic (or any other gRPC adapter) records with.
//!
//! A gRPC adapter sees HTTP/2 requests whose path is `/package.Service/Method`, and
//! responses whose status travels in a `grpc-status` header (a Trailers-Only response,
//! an immediate error) or in the trailers at the end of the body. This module holds
//! what does not depend on how those are read:
//!
//! - **Names** ([`Preset`], [`GrpcNames`]): go-grpc-prometheus's by default
//!   (`grpc_server_started_total`, `grpc_server_handled_total`,
//!   `grpc_server_msg_received_total`, `grpc_server_msg_sent_total`,
//!   `grpc_server_handling_seconds`; labels `grpc_type`, `grpc_service`,
//!   `grpc_method`, `grpc_code`), or OpenTelemetry's RPC semantic conventions.
//! - **Bounded labels**: only methods declared in [`GrpcOptions`] are recorded under
//!   their own names; any other path folds into [`UNKNOWN`] service and method, so
//!   random method names cannot create series. Codes outside 0–16 fold into
//!   `UNKNOWN` (2).
//! - **[`GrpcMetrics`]** registers the families and starts a [`CallTimer`] per call;
//!   a call's series are resolved once per (method, code) and cached, so a call
//!   costs one probe of a fixed table of the declared paths, two clock reads and a
//!   few atomic operations, and allocates nothing. [`CallTimer::rpc_type`] lets an
//!   adapter count the one request message of a unary or server-streaming call at
//!   its start.
//! - **[`FrameCounter`]** counts the length-prefixed messages of a gRPC body.
//!
//! # When a call is counted
//!
//! Started when [`GrpcMetrics::start`] is called; handled **once**, with the first
//! code given to [`CallTimer::code`] (from the headers or the trailers), when
//! [`CallTimer::finish`] is called. A timer dropped before `finish` (the client
//! cancelled, the connection closed) records [`code::CANCELLED`] unless a code was
//! already known; a timer finished with no code records [`code::UNKNOWN`], as a
//! client would see a response without `grpc-status`.
//!
//! # Examples
//!
//! ```
//! use herd_core::grpc::{code, GrpcMetrics, GrpcOptions, RpcType};
//! use herd_core::{Format, Registry};
//!
//! let registry = Registry::new();
//! let options = GrpcOptions::new().method("/shop.Orders/Get", RpcType::Unary);
//! let grpc = GrpcMetrics::register(&registry, options)?;
//!
//! let mut call = grpc.start("/shop.Orders/Get");
//! call.messages().received(1);
//! call.messages().sent(1);
//! call.code(code::NOT_FOUND);
//! call.finish();
//! grpc.start("/shop.Orders/Nope").code(code::UNIMPLEMENTED);
//!
//! let text = String::from_utf8(registry.encode(Format::Text))?;
//! let handled: Vec<&str> = text.lines().filter(|l| l.starts_with("grpc_server_handled_total{")).collect();
//! assert_eq!(handled, [
//!     r#"grpc_server_handled_total{grpc_type="unary",grpc_service="shop.Orders",grpc_method="Get",grpc_code="NotFound"} 1"#,
//!     r#"grpc_server_handled_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"} 1"#,
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::io::IoSlice;
use std::sync::Arc;

use once_cell::race::OnceBox;

use crate::clock::monotonic_nanos;
use crate::error::RegistryError;
use crate::family::Family;
use crate::http::Tracked;
use crate::metrics::{Counter, Histogram};
use crate::observe::Observer;
#[cfg(doc)]
use crate::options::DURATION_BUCKETS;
use crate::options::{sealed, Kind, ServerOptions};
use crate::registry::Registry;

/// The service, method and type label of a call to a method that was not declared.
pub const UNKNOWN: &str = "unknown";

/// gRPC status codes, as numbers (`grpc-status` values).
pub mod code {
    /// Not an error.
    pub const OK: u8 = 0;
    /// The call was cancelled, typically by the caller.
    pub const CANCELLED: u8 = 1;
    /// Unknown error; also any code outside 0–16.
    pub const UNKNOWN: u8 = 2;
    /// The client gave an invalid argument.
    pub const INVALID_ARGUMENT: u8 = 3;
    /// The deadline expired.
    pub const DEADLINE_EXCEEDED: u8 = 4;
    /// Some requested entity was not found.
    pub const NOT_FOUND: u8 = 5;
    /// The entity a client tried to create exists.
    pub const ALREADY_EXISTS: u8 = 6;
    /// The caller may not do this.
    pub const PERMISSION_DENIED: u8 = 7;
    /// Some resource is exhausted.
    pub const RESOURCE_EXHAUSTED: u8 = 8;
    /// The system is not in a state required for the operation.
    pub const FAILED_PRECONDITION: u8 = 9;
    /// The operation was aborted.
    pub const ABORTED: u8 = 10;
    /// Out of range.
    pub const OUT_OF_RANGE: u8 = 11;
    /// The method is not implemented (an unknown method).
    pub const UNIMPLEMENTED: u8 = 12;
    /// Internal error.
    pub const INTERNAL: u8 = 13;
    /// The service is unavailable.
    pub const UNAVAILABLE: u8 = 14;
    /// Unrecoverable data loss.
    pub const DATA_LOSS: u8 = 15;
    /// The caller is not authenticated.
    pub const UNAUTHENTICATED: u8 = 16;
}

/// Number of gRPC codes.
const CODES: usize = 17;

/// The codes as go-grpc-prometheus labels them (Go's `codes.Code.String()`).
pub const GO_CODE_NAMES: [&str; CODES] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The codes as OpenTelemetry labels them: the number.
pub const NUMERIC_CODE_NAMES: [&str; CODES] =
    ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"];

/// The code of a `grpc-status` value: its number, or [`code::UNKNOWN`] when it is not
/// a number from 0 to 16.
///
/// ```
/// use herd_core::grpc::{code, parse_code};
/// assert_eq!(parse_code(b"0"), code::OK);
/// assert_eq!(parse_code(b"5"), code::NOT_FOUND);
/// assert_eq!(parse_code(b"17"), code::UNKNOWN);
/// assert_eq!(parse_code(b"x"), code::UNKNOWN);
/// ```
#[inline]
pub fn parse_code(value: &[u8]) -> u8 {
    match value {
        [d @ b'0'..=b'9'] => d - b'0',
        [b'1', d @ b'0'..=b'6'] => 10 + (d - b'0'),
        _ => code::UNKNOWN,
    }
}

/// The code of a response that is not gRPC (its HTTP status is not 200), as gRPC's
/// "HTTP to gRPC status code mapping" gives it.
///
/// ```
/// use herd_core::grpc::{code, http_status_code};
/// assert_eq!(http_status_code(404), code::UNIMPLEMENTED);
/// assert_eq!(http_status_code(503), code::UNAVAILABLE);
/// assert_eq!(http_status_code(418), code::UNKNOWN);
/// ```
pub fn http_status_code(status: u16) -> u8 {
    match status {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The kind of a method, as go-grpc-prometheus's `grpc_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcType {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStream,
    /// One request, a stream of responses.
    ServerStream,
    /// Streams both ways.
    BidiStream,
}

impl RpcType {
    /// The `grpc_type` label value.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

/// One family's name and HELP text.
pub use crate::http::MetricSpec;

/// The names of every family and label a [`Preset`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrpcNames {
    /// Calls started, by type, service and method.
    pub started: MetricSpec,
    /// Calls handled, by type, service, method and code; `None` in presets that count
    /// calls as the duration histogram's `_count`.
    pub handled: Option<MetricSpec>,
    /// Request messages received, by type, service and method.
    pub msg_received: MetricSpec,
    /// Response messages sent, by type, service and method.
    pub msg_sent: MetricSpec,
    /// Call duration histogram.
    pub duration: MetricSpec,
    /// Whether the duration histogram has the code label (OpenTelemetry) or not
    /// (go-grpc-prometheus).
    pub duration_by_code: bool,
    /// The label holding the type; see [`type_value`](Self::type_value).
    pub type_label: &'static str,
    /// When set, the type label holds this value for every call (OpenTelemetry's
    /// `rpc_system="grpc"`) instead of the method's [`RpcType`].
    pub type_value: Option<&'static str>,
    /// The label holding the service.
    pub service_label: &'static str,
    /// The label holding the method.
    pub method_label: &'static str,
    /// The label holding the code.
    pub code_label: &'static str,
    /// The code label values, indexed by code.
    pub code_names: &'static [&'static str; CODES],
}

/// Which names the families get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preset {
    /// go-grpc-prometheus's names: `grpc_server_started_total`,
    /// `grpc_server_handled_total`, `grpc_server_msg_received_total`,
    /// `grpc_server_msg_sent_total`, `grpc_server_handling_seconds` (without the code
    /// label, as there); labels `grpc_type`, `grpc_service`, `grpc_method`, `grpc_code`
    /// with Go's code names (`OK`, `NotFound`, `Canceled`, `Unimplemented`, ...).
    #[default]
    GoGrpcPrometheus,
    /// OpenTelemetry's RPC semantic conventions as a Prometheus exporter names them:
    /// `rpc_server_call_duration_seconds` with labels `rpc_system` (always `grpc`),
    /// `rpc_service`, `rpc_method`, `rpc_grpc_status_code` (the number). Calls are
    /// counted as the histogram's `_count`. The conventions have no started or
    /// message counters; herd adds `rpc_server_calls_started_total`,
    /// `rpc_server_messages_received_total` and `rpc_server_messages_sent_total`.
    OpenTelemetry,
}

const GO_NAMES: GrpcNames = GrpcNames {
    started: MetricSpec { name: "grpc_server_started_total", help: "Total number of RPCs started on the server." },
    handled: Some(MetricSpec {
        name: "grpc_server_handled_total",
        help: "Total number of RPCs completed on the server, regardless of success or failure.",
    }),
    msg_received: MetricSpec {
        name: "grpc_server_msg_received_total",
        help: "Total number of RPC stream messages received on the server.",
    },
    msg_sent: MetricSpec {
        name: "grpc_server_msg_sent_total",
        help: "Total number of gRPC stream messages sent by the server.",
    },
    duration: MetricSpec {
        name: "grpc_server_handling_seconds",
        help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    },
    duration_by_code: false,
    type_label: "grpc_type",
    type_value: None,
    service_label: "grpc_service",
    method_label: "grpc_method",
    code_label: "grpc_code",
    code_names: &GO_CODE_NAMES,
};

const OTEL_NAMES: GrpcNames = GrpcNames {
    started: MetricSpec { name: "rpc_server_calls_started_total", help: "RPCs started on the server." },
    handled: None,
    msg_received: MetricSpec {
        name: "rpc_server_messages_received_total",
        help: "RPC request messages received by the server.",
    },
    msg_sent: MetricSpec { name: "rpc_server_messages_sent_total", help: "RPC response messages sent by the server." },
    duration: MetricSpec {
        name: "rpc_server_call_duration_seconds",
        help: "Time from an RPC's arrival until its last response frame was sent or the call was dropped, in seconds.",
    },
    duration_by_code: true,
    type_label: "rpc_system",
    type_value: Some("grpc"),
    service_label: "rpc_service",
    method_label: "rpc_method",
    code_label: "rpc_grpc_status_code",
    code_names: &NUMERIC_CODE_NAMES,
};

impl Preset {
    /// The names this preset gives families and labels.
    pub const fn names(self) -> &'static GrpcNames {
        match self {
            Self::GoGrpcPrometheus => &GO_NAMES,
            Self::OpenTelemetry => &OTEL_NAMES,
        }
    }
}

/// How [`GrpcMetrics`] registers its families, and which methods it knows.
///
/// The defaults ([`GrpcOptions::new`]): [`Preset::GoGrpcPrometheus`] names, no prefix,
/// the OpenTelemetry duration buckets ([`DURATION_BUCKETS`]), no method declared
/// (every call is [`UNKNOWN`]), 2,000 series per family, no observer. The setters it
/// shares with HTTP's [`RedOptions`](crate::http::RedOptions) are [`ServerOptions`]'.
pub type GrpcOptions = ServerOptions<GrpcKind>;

/// What gRPC's [`GrpcOptions`] add to the shared [`ServerOptions`]: the declared
/// methods.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GrpcKind {
    methods: Vec<(String, RpcType)>,
}

impl sealed::Sealed for GrpcKind {}

impl Kind for GrpcKind {
    type Preset = Preset;
}

impl ServerOptions<GrpcKind> {
    /// Declares a method by its path, `/package.Service/Method`, so that its calls
    /// are recorded under its service and method names with this type. Calls to any
    /// other path are recorded as [`UNKNOWN`]. A path not of that form is ignored.
    pub fn method(mut self, path: impl Into<String>, kind: RpcType) -> Self {
        self.kind.methods.push((path.into(), kind));
        self
    }

    /// Declares every method of `service` (`package.Service`, tonic's
    /// `NamedService::NAME`): `methods` are the method names and types.
    pub fn service(mut self, service: &str, methods: &[(&str, RpcType)]) -> Self {
        for (method, kind) in methods {
            self.kind.methods.push((format!("/{service}/{method}"), *kind));
        }
        self
    }
}

/// Splits `/package.Service/Method` into service and method.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some((service, method))
}

struct Families {
    names: &'static GrpcNames,
    started: Family<Counter, 3>,
    handled: Option<Family<Counter, 4>>,
    received: Family<Counter, 3>,
    sent: Family<Counter, 3>,
    duration: DurationFamily,
}

/// The duration histogram, without the code label (go-grpc-prometheus) or with it
/// (OpenTelemetry).
enum DurationFamily {
    ByMethod(Family<Histogram, 3>),
    ByCode(Family<Histogram, 4>),
}

/// The series of one method that do not depend on the code.
struct MethodSeries {
    started: Tracked<Counter>,
    received: Tracked<Counter>,
    sent: Tracked<Counter>,
    /// The duration series of a preset without the code label.
    duration: Option<Tracked<Histogram>>,
}

/// The series of one (method, code): everything the end of a call records into, so
/// that it costs one lookup.
struct CodeSeries {
    handled: Option<Tracked<Counter>>,
    /// The duration series: the (method, code)'s, or, in a preset without the code
    /// label, a clone of the method's handle (and its observer).
    duration: Tracked<Histogram>,
}

/// A known method (or the [`UNKNOWN`] one, at index 0), its series made on first use.
struct MethodEntry {
    /// The declared path; empty for the unknown method.
    path: Box<str>,
    labels: [Box<str>; 3],
    /// The declared type; `None` for the unknown method.
    kind: Option<RpcType>,
    series: OnceBox<MethodSeries>,
    codes: [OnceBox<CodeSeries>; CODES],
}

struct Inner {
    families: Families,
    observer: Option<Arc<dyn Observer>>,
    methods: Box<[MethodEntry]>,
    index: PathIndex,
}

/// Declared paths to method indices: an open-addressing table built once, at
/// registration.
///
/// A request's path only ever probes it, never inserts, so an unseeded hash of a few
/// of its bytes is safe: paths made to collide cost at most a comparison with every
/// declared path. It replaces a seeded `HashMap`, whose hashing of the whole path and
/// probing were a tenth of the CPU herd-tonic added to a unary call.
struct PathIndex {
    /// Method indices (never 0, the unknown method); 0 marks an empty slot. At least
    /// half the slots are empty, so every probe ends.
    slots: Box<[u32]>,
}

impl PathIndex {
    fn new(methods: &[MethodEntry]) -> Self {
        let len = (2 * methods.len()).next_power_of_two();
        let mut slots = vec![0; len].into_boxed_slice();
        for (i, m) in methods.iter().enumerate().skip(1) {
            let mut at = path_hash(m.path.as_bytes()) as usize;
            loop {
                at &= len - 1;
                match slots.get_mut(at) {
                    Some(slot @ 0) => {
                        *slot = i as u32;
                        break;
                    }
                    Some(_) => at += 1,
                    None => break,
                }
            }
        }
        Self { slots }
    }

    /// The index of the method declared with `path`, or 0.
    #[inline]
    fn get(&self, methods: &[MethodEntry], path: &str) -> u32 {
        let mask = self.slots.len() - 1;
        let mut at = path_hash(path.as_bytes()) as usize;
        loop {
            at &= mask;
            let i = self.slots.get(at).copied().unwrap_or(0);
            match methods.get(i as usize) {
                Some(m) if i != 0 => {
                    if same_path(m.path.as_bytes(), path.as_bytes()) {
                        return i;
                    }
                }
                _ => return 0,
            }
            at += 1;
        }
    }
}

/// Whether two paths are equal, compared 8 bytes at a time: for paths of a few dozen
/// bytes, `==` on slices (a call of the C library's `bcmp`) cost three times the
/// comparison itself.
#[inline]
fn same_path(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| <[u8; 8]>::try_from(c).map_or(0, u64::from_ne_bytes);
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    if !x.by_ref().zip(y.by_ref()).all(|(p, q)| word(p) == word(q)) {
        return false;
    }
    // The last 8 bytes, overlapping the words compared, cover the rest; a path shorter
    // than 8 bytes is compared byte by byte.
    match (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(p), Some(q)) => p == q,
        _ => x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q),
    }
}

/// A hash of a path's length and its first and last 8 bytes (the package and the
/// method name, where declared paths differ), folded by one multiplication.
#[inline]
fn path_hash(path: &[u8]) -> u64 {
    let (head, tail) = match (path.first_chunk::<8>(), path.last_chunk::<8>()) {
        (Some(head), Some(tail)) => (u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
        // Shorter than any declared path ("/a.S/M" is the shortest form, at 6 bytes
        // still rare): byte by byte.
        _ => (path.iter().fold(0, |w, &b| (w << 8) | u64::from(b)), 0),
    };
    let product = u128::from(head ^ 0x243f_6a88_85a3_08d3)
        * u128::from(tail ^ 0x1319_8a2e_0370_7344 ^ path.len() as u64);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Inner {
    #[inline]
    fn entry(&self, method: u32) -> &MethodEntry {
        // Indices come from `index` or are 0; the table is never empty.
        &self.methods[method as usize]
    }

    #[inline]
    fn series(&self, method: u32) -> &MethodSeries {
        self.series_of(self.entry(method))
    }

    #[inline]
    fn series_of<'a>(&'a self, e: &'a MethodEntry) -> &'a MethodSeries {
        e.series.get_or_init(|| Box::new(self.new_series(e)))
    }

    #[cold]
    fn new_series(&self, e: &MethodEntry) -> MethodSeries {
        let [t, s, m] = &e.labels;
        let labels = [&**t, &**s, &**m];
        let f = &self.families;
        let obs = self.observer.as_ref();
        MethodSeries {
            started: Tracked::new(&f.started, labels, obs),
            received: Tracked::new(&f.received, labels, obs),
            sent: Tracked::new(&f.sent, labels, obs),
            duration: match &f.duration {
                DurationFamily::ByMethod(h) => Some(Tracked::new(h, labels, obs)),
                DurationFamily::ByCode(_) => None,
            },
        }
    }

    #[inline]
    fn code_series(&self, method: u32, code: u8) -> &CodeSeries {
        let e = self.entry(method);
        let code = usize::from(code).min(CODES - 1);
        e.codes[code].get_or_init(|| Box::new(self.new_code_series(e, code)))
    }

    #[cold]
    fn new_code_series(&self, e: &MethodEntry, code: usize) -> CodeSeries {
        let [t, s, m] = &e.labels;
        let labels = [&**t, &**s, &**m, self.families.names.code_names[code]];
        let f = &self.families;
        let obs = self.observer.as_ref();
        let duration = match &f.duration {
            DurationFamily::ByCode(h) => Tracked::new(h, labels, obs),
            DurationFamily::ByMethod(h) => match &self.series_of(e).duration {
                Some(by_method) => by_method.clone(),
                // Not so: a method's series hold this family's series.
                None => Tracked::new(h, [&**t, &**s, &**m], obs),
            },
        };
        CodeSeries { handled: f.handled.as_ref().map(|c| Tracked::new(c, labels, obs)), duration }
    }
}

/// The families of gRPC metrics, registered once. Cheap to clone: clones share
/// everything.
///
/// See the [module documentation](self) for the names, labels and when a call is
/// counted.
#[derive(Clone)]
pub struct GrpcMetrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for GrpcMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcMetrics")
            .field("preset", &self.inner.families.names.started.name)
            .field("methods", &self.inner.methods.len())
            .finish()
    }
}

impl GrpcMetrics {
    /// Registers the families `options` describe into `registry`.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid, or the limit is zero.
    pub fn register(registry: &Registry, options: GrpcOptions) -> Result<Self, RegistryError> {
        let names = options.preset.names();
        let name = |spec: &MetricSpec| options.family_name(spec.name);
        let limit = options.cardinality_limit;
        let by_method = [names.type_label, names.service_label, names.method_label];
        let by_code = [names.type_label, names.service_label, names.method_label, names.code_label];
        let counter = |spec: &MetricSpec| {
            registry.counter(name(spec), spec.help).cardinality_limit(limit).labels(by_method).register()
        };
        let histogram = || {
            let builder = registry.histogram(name(&names.duration), names.duration.help).unit("seconds");
            options.duration_buckets_of(builder).cardinality_limit(limit)
        };
        let families = Families {
            names,
            started: counter(&names.started)?,
            handled: names
                .handled
                .as_ref()
                .map(|spec| {
                    registry
                        .counter(name(spec), spec.help)
                        .cardinality_limit(limit)
                        .labels(by_code)
                        .register()
                })
                .transpose()?,
            received: counter(&names.msg_received)?,
            sent: counter(&names.msg_sent)?,
            duration: if names.duration_by_code {
                DurationFamily::ByCode(histogram().labels(by_code).register()?)
            } else {
                DurationFamily::ByMethod(histogram().labels(by_method).register()?)
            },
        };
        let entry = |path: &str, kind: Option<RpcType>, service: &str, method: &str| MethodEntry {
            path: path.into(),
            labels: [
                names.type_value.unwrap_or(kind.map_or(UNKNOWN, RpcType::label)).into(),
                service.into(),
                method.into(),
            ],
            kind,
            series: OnceBox::new(),
            codes: Default::default(),
        };
        let mut methods = vec![entry("", None, UNKNOWN, UNKNOWN)];
        let mut seen = HashSet::new();
        for (path, kind) in &options.kind.methods {
            let Some((service, method)) = split_path(path) else { continue };
            if seen.insert(path.as_str()) {
                methods.push(entry(path, Some(*kind), service, method));
            }
        }
        let index = PathIndex::new(&methods);
        Ok(Self {
            inner: Arc::new(Inner {
                families,
                observer: options.observer,
                methods: methods.into_boxed_slice(),
                index,
            }),
        })
    }

    /// The names in use.
    pub fn names(&self) -> &'static GrpcNames {
        self.inner.families.names
    }

    /// Starts recording a call to `path` (the request's path, `/package.Service/Method`):
    /// counts it started and starts its clock. An undeclared path records as
    /// [`UNKNOWN`].
    #[inline]
    pub fn start(&self, path: &str) -> CallTimer {
        let start = monotonic_nanos();
        let method = self.inner.index.get(&self.inner.methods, path);
        self.inner.series(method).started.borrow().inc();
        CallTimer {
            messages: Messages { inner: self.inner.clone(), method },
            start,
            sent_left: 0,
            sent_header: 0,
            state: NO_CODE,
        }
    }
}

/// Counts a call's messages; a clone goes into the request body.
#[derive(Clone)]
pub struct Messages {
    inner: Arc<Inner>,
    method: u32,
}

impl fmt::Debug for Messages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [t, s, m] = &self.inner.entry(self.method).labels;
        f.debug_struct("Messages").field("type", t).field("service", s).field("method", m).finish()
    }
}

impl Messages {
    /// `n` more request messages were received.
    #[inline]
    pub fn received(&self, n: u64) {
        if n > 0 {
            self.inner.series(self.method).received.borrow().add(n);
        }
    }

    /// `n` more response messages were sent.
    #[inline]
    pub fn sent(&self, n: u64) {
        if n > 0 {
            self.inner.series(self.method).sent.borrow().add(n);
        }
    }
}

/// [`CallTimer::state`] before a code is known.
const NO_CODE: u8 = u8::MAX - 1;
/// [`CallTimer::state`] once the call is recorded.
const DONE: u8 = u8::MAX;

/// One call being recorded, from [`GrpcMetrics::start`] until its response ends.
///
/// 32 bytes: an adapter moves it with the response on every hop of a call (the
/// response future, then the response body), so it keeps the start as nanoseconds of
/// the monotonic clock, its code and whether it was recorded in one byte, and counts
/// the response's messages itself ([`count_sent`](Self::count_sent)).
#[must_use = "a call is recorded when its timer is finished or dropped"]
pub struct CallTimer {
    messages: Messages,
    /// The monotonic clock at the start, in nanoseconds.
    start: u64,
    /// The response body's [`FrameCounter`] fields, for [`count_sent`](Self::count_sent):
    /// two fields rather than a `FrameCounter`, whose padding would make the timer 40
    /// bytes.
    sent_left: u32,
    sent_header: u8,
    /// The code given (0–16), [`NO_CODE`], or [`DONE`].
    state: u8,
}

impl fmt::Debug for CallTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallTimer")
            .field("messages", &self.messages)
            .field("start_nanos", &self.start)
            .field("code", &(usize::from(self.state) < CODES).then_some(self.state))
            .finish()
    }
}

impl CallTimer {
    /// The call's message counter.
    pub fn messages(&self) -> &Messages {
        &self.messages
    }

    /// Counts the response messages that `chunk`, the next bytes of the response body
    /// (cut anywhere), completes, as a [`FrameCounter`] over the body would, and adds
    /// them to the call's sent messages. The counter lives in the timer, so that a
    /// response body needs no counter of its own beside it.
    #[inline]
    pub fn count_sent(&mut self, chunk: &[u8]) {
        let n = feed(&mut self.sent_header, &mut self.sent_left, chunk);
        self.messages.sent(n);
    }

    /// The declared type of the call's method; `None` for a path that was not
    /// declared (recorded as [`UNKNOWN`]).
    ///
    /// A unary or server-streaming method takes exactly one request message, so an
    /// adapter may count it when the call starts rather than watch the request body
    /// for it, as go-grpc-prometheus counts it once per call its interceptor sees.
    #[inline]
    pub fn rpc_type(&self) -> Option<RpcType> {
        self.messages.inner.entry(self.messages.method).kind
    }

    /// The call's status code is known (from `grpc-status` in the headers or the
    /// trailers). Only the first call counts; a code outside 0–16 is
    /// [`code::UNKNOWN`].
    #[inline]
    pub fn code(&mut self, code: u8) {
        if self.state == NO_CODE {
            self.state = if usize::from(code) < CODES { code } else { code::UNKNOWN };
        }
    }

    /// Whether a code is known.
    pub fn has_code(&self) -> bool {
        usize::from(self.state) < CODES
    }

    /// The response ended: records the call with its code, or [`code::UNKNOWN`] if
    /// none was given.
    #[inline]
    pub fn finish(mut self) {
        self.record(code::UNKNOWN);
    }

    /// Records the call unless it was: inlined, so that dropping a finished timer is
    /// a flag test rather than a call.
    #[inline]
    fn record(&mut self, missing: u8) {
        let code = match std::mem::replace(&mut self.state, DONE) {
            DONE => return,
            NO_CODE => missing,
            code => code,
        };
        self.record_now(code);
    }

    fn record_now(&self, code: u8) {
        // The clock never goes back; saturating all the same, so that a start read on
        // another core can never make a negative duration wrap.
        let seconds = monotonic_nanos().saturating_sub(self.start) as f64 * 1e-9;
        // One lookup: the (method, code) series hold the method's duration series too.
        let c = self.messages.inner.code_series(self.messages.method, code);
        if let Some(h) = &c.handled {
            h.borrow().inc();
        }
        c.duration.borrow().observe(seconds);
    }
}

impl Drop for CallTimer {
    #[inline]
    fn drop(&mut self) {
        self.record(code::CANCELLED);
    }
}

/// Counts the messages of a gRPC body (each a 1-byte flag, a 4-byte big-endian
/// length, then that many bytes) across chunks cut anywhere.
///
/// Eight bytes, so that a body wrapping it stays small: it is moved with the response
/// on every hop of a call.
#[derive(Debug, Clone, Default)]
pub struct FrameCounter {
    /// Header bytes seen of the current message, 0–4; 0 also while in its payload.
    header: u8,
    /// While reading a header, the length read so far; after it, the payload bytes
    /// still to come of the current message (a length is a `u32`).
    left: u32,
}

impl FrameCounter {
    /// A counter at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the body; returns how many messages it completed.
    #[inline]
    pub fn feed(&mut self, chunk: &[u8]) -> u64 {
        feed(&mut self.header, &mut self.left, chunk)
    }

    /// Feeds a chunk held in several slices (`bytes::Buf::chunks_vectored`).
    pub fn feed_vectored(&mut self, slices: &[IoSlice<'_>]) -> u64 {
        slices.iter().map(|s| self.feed(s)).sum()
    }
}

/// A [`FrameCounter`]'s step, on its two fields wherever they are kept: feeds the next
/// chunk of a body, returns how many messages it completed.
#[inline]
fn feed(header: &mut u8, left: &mut u32, mut chunk: &[u8]) -> u64 {
    let mut done = 0;
    while !chunk.is_empty() {
        if *header == 0 && *left > 0 {
            let take = u32::try_from(chunk.len()).unwrap_or(u32::MAX).min(*left);
            *left -= take;
            chunk = chunk.get(take as usize..).unwrap_or_default();
            if *left == 0 {
                done += 1;
            }
            continue;
        }
        // A whole header in this chunk (the usual case): read it at once.
        if *header == 0 {
            if let [_, a, b, c, d, ref rest @ ..] = *chunk {
                chunk = rest;
                match u32::from_be_bytes([a, b, c, d]) {
                    0 => done += 1,
                    len => *left = len,
                }
                continue;
            }
        }
        let Some((&byte, rest)) = chunk.split_first() else { break };
        chunk = rest;
        // The flag byte (header 0) is skipped; `left` is 0 until the length starts.
        if *header > 0 {
            *left = (*left << 8) | u32::from(byte);
        }
        *header += 1;
        if *header == 5 {
            // `left` now holds the whole length: the payload to come.
            *header = 0;
            if *left == 0 {
                done += 1;
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn lines(registry: &Registry, prefix: &str) -> Vec<String> {
        let text = String::from_utf8(registry.encode(Format::Text)).unwrap_or_default();
        text.lines().filter(|l| l.starts_with(prefix)).map(str::to_owned).collect()
    }

    #[test]
    fn codes_parse_and_fold() {
        for c in 0..=16u8 {
            assert_eq!(parse_code(c.to_string().as_bytes()), c);
        }
        for bad in [&b""[..], b"17", b"99", b"-1", b"00x", b" 1", b"01"] {
            assert_eq!(parse_code(bad), code::UNKNOWN, "{bad:?}");
        }
    }

    #[test]
    fn frames_are_counted_across_any_cut() {
        let mut body = Vec::new();
        for len in [0usize, 3, 300, 1] {
            body.push(0);
            body.extend_from_slice(&(len as u32).to_be_bytes());
            body.extend(std::iter::repeat_n(7, len));
        }
        for cut in 1..body.len() {
            let mut f = FrameCounter::new();
            let n: u64 = body.chunks(cut).map(|c| f.feed(c)).sum();
            assert_eq!(n, 4, "cut {cut}");
        }
        // A length in three bytes, read whole and byte by byte.
        let mut long = vec![0, 0, 1, 0x11, 0x70];
        long.extend(std::iter::repeat_n(7, 0x01_1170));
        long.extend_from_slice(&[0, 0, 0, 0, 0]);
        for cut in [1, 2, 3, 4, 5, 6, 4096, 0x01_1174, 0x01_1175, long.len()] {
            let mut f = FrameCounter::new();
            let n: u64 = long.chunks(cut).map(|c| f.feed(c)).sum();
            assert_eq!(n, 2, "cut {cut}");
        }
    }

    #[test]
    fn calls_count_once_with_their_code_and_cancel_when_dropped() {
        let registry = Registry::new();
        let grpc = GrpcMetrics::register(
            &registry,
            GrpcOptions::new().service("a.S", &[("U", RpcType::Unary), ("Ss", RpcType::ServerStream)]),
        )
        .unwrap();
        let mut ok = grpc.start("/a.S/U");
        ok.code(code::OK);
        ok.code(code::INTERNAL);
        ok.finish();
        let s = grpc.start("/a.S/Ss");
        s.messages().sent(3);
        drop(s);
        grpc.start("/a.S/U").finish();
        assert_eq!(
            lines(&registry, "grpc_server_handled_total{"),
            [
                r#"grpc_server_handled_total{grpc_type="unary",grpc_service="a.S",grpc_method="U",grpc_code="OK"} 1"#,
                r#"grpc_server_handled_total{grpc_type="server_stream",grpc_service="a.S",grpc_method="Ss",grpc_code="Canceled"} 1"#,
                r#"grpc_server_handled_total{grpc_type="unary",grpc_service="a.S",grpc_method="U",grpc_code="Unknown"} 1"#,
            ]
        );
        assert_eq!(
            lines(&registry, "grpc_server_msg_sent_total{"),
            [
                r#"grpc_server_msg_sent_total{grpc_type="unary",grpc_service="a.S",grpc_method="U"} 0"#,
                r#"grpc_server_msg_sent_total{grpc_type="server_stream",grpc_service="a.S",grpc_method="Ss"} 3"#,
            ]
        );
        assert_eq!(
            lines(&registry, "grpc_server_handling_seconds_count"),
            [
                r#"grpc_server_handling_seconds_count{grpc_type="unary",grpc_service="a.S",grpc_method="U"} 2"#,
                r#"grpc_server_handling_seconds_count{grpc_type="server_stream",grpc_service="a.S",grpc_method="Ss"} 1"#,
            ]
        );
    }

    #[test]
    fn the_timer_counts_sent_messages_across_chunks_and_folds_bad_codes() {
        let registry = Registry::new();
        let grpc = GrpcMetrics::register(&registry, GrpcOptions::new().method("/a.S/B", RpcType::BidiStream))
            .unwrap();
        let mut call = grpc.start("/a.S/B");
        // Three messages (12, 0 and 3 bytes), cut inside a header and inside a payload.
        let body = b"\0\0\0\0\x0chello, world\0\0\0\0\0\0\0\0\0\x03abc";
        for piece in [&body[..3], &body[3..9], &body[9..24], &body[24..]] {
            call.count_sent(piece);
        }
        assert!(!call.has_code());
        call.code(200);
        assert!(call.has_code());
        call.finish();
        assert_eq!(
            lines(&registry, "grpc_server_msg_sent_total{"),
            [r#"grpc_server_msg_sent_total{grpc_type="bidi_stream",grpc_service="a.S",grpc_method="B"} 3"#]
        );
        assert_eq!(
            lines(&registry, "grpc_server_handled_total{"),
            [
                r#"grpc_server_handled_total{grpc_type="bidi_stream",grpc_service="a.S",grpc_method="B",grpc_code="Unknown"} 1"#
            ]
        );
    }

    #[test]
    fn the_opentelemetry_preset_renames_everything() {
        let registry = Registry::new();
        let grpc = GrpcMetrics::register(
            &registry,
            GrpcOptions::new().preset(Preset::OpenTelemetry).method("/a.S/U", RpcType::Unary),
        )
        .unwrap();
        let mut c = grpc.start("/a.S/U");
        c.code(code::NOT_FOUND);
        c.finish();
        assert_eq!(
            lines(&registry, "rpc_server_call_duration_seconds_count"),
            [
                r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="a.S",rpc_method="U",rpc_grpc_status_code="5"} 1"#
            ]
        );
        assert!(lines(&registry, "grpc_").is_empty());
    }

    #[test]
    fn every_declared_path_resolves_to_its_own_method_and_no_other_path_does() {
        let registry = Registry::new();
        // Paths sharing their first and last 8 bytes, and lengths, collide in the
        // index's hash: they must still resolve each to its own method.
        let paths: Vec<String> = (0..300).map(|i| format!("/pkg.Service{i:03}x/Method")).collect();
        let mut options = GrpcOptions::new();
        for p in &paths {
            options = options.method(p.as_str(), RpcType::Unary);
        }
        let grpc = GrpcMetrics::register(&registry, options).unwrap();
        let inner = &*grpc.inner;
        for (i, p) in paths.iter().enumerate() {
            let m = inner.index.get(&inner.methods, p);
            assert_eq!(&*inner.entry(m).path, p.as_str());
            assert_eq!(m as usize, i + 1);
        }
        for unknown in
            ["", "/", "/pkg.Service000x/Metho", "/pkg.Service000x/Methodd", "/pkg.Service300x/Method"]
        {
            assert_eq!(inner.index.get(&inner.methods, unknown), 0, "{unknown}");
        }
    }

    #[test]
    fn undeclared_and_malformed_paths_fold_into_one_series() {
        let registry = Registry::new();
        let grpc = GrpcMetrics::register(&registry, GrpcOptions::new().method("not a path", RpcType::Unary))
            .unwrap();
        for i in 0..100 {
            grpc.start(&format!("/x{i}.S/M{i}")).code(code::UNIMPLEMENTED);
        }
        assert_eq!(
            lines(&registry, "grpc_server_started_total{"),
            [
                r#"grpc_server_started_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown"} 100"#
            ]
        );
    }
}
