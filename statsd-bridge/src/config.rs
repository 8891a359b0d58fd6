//! Settings, the builder's setters and errors: a leaf, which knows nothing of the
//! bridge (`StatsdBuilder::build` lives beside it, in `bridge`).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cadence::{MetricSink, UdpMetricSink, UnixMetricSink};
use herd_core::FamilyDesc;

use crate::render::{Renderer, TagStyle};
use crate::table::SeriesTable;

/// Default packet size for UDP: the largest payload that is not fragmented on a
/// 1500-byte MTU (Etsy statsd's and datadog-go's guidance).
pub const DEFAULT_UDP_PACKET_SIZE: usize = 1432;
/// Default packet size for Unix datagram sockets: the Datadog agent's
/// `dogstatsd_buffer_size`.
pub const DEFAULT_UNIX_PACKET_SIZE: usize = 8192;
/// Largest packet size accepted: the largest UDP payload over IPv4.
pub const MAX_PACKET_SIZE: usize = 65_507;
/// Default number of lines the queue holds.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Default longest time a line waits in a packet before it is sent.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Default longest time the sender thread waits for the socket to take one packet.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_millis(100);
/// Default longest time [`StatsdBridge::flush`], [`StatsdBridge::pause`] and dropping
/// the last handle wait for the sender thread.
///
/// [`StatsdBridge::flush`]: crate::StatsdBridge::flush
/// [`StatsdBridge::pause`]: crate::StatsdBridge::pause
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds the sink of one process: called on the sender thread when it starts, again
/// in every forked child, and to retry (at most once a second) after it failed.
pub type SinkFactory = Arc<dyn Fn() -> io::Result<Box<dyn MetricSink + Send>> + Send + Sync>;

/// How the observations of histograms and summaries are sent.
///
/// A family is a *duration* family when its unit is `seconds` or its name ends with
/// `_seconds`; the builder chooses separately for durations
/// ([`StatsdBuilder::durations`]) and for every other family
/// ([`StatsdBuilder::values`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObserveAs {
    /// A StatsD timer, `|ms`. A duration is sent in milliseconds (seconds × 1000,
    /// fraction kept: Etsy statsd and statsd_exporter both read `12.5|ms`, and the
    /// exporter divides by 1000 again, so Prometheus sees seconds); any other value
    /// is sent as it is. Negative values are dropped (`invalid_value`): StatsD
    /// refuses negative timers.
    Timer,
    /// A DogStatsD histogram, `|h`, in the family's unit (seconds for durations).
    /// Etsy statsd counts unknown types as counters: use it with the Datadog agent or
    /// statsd_exporter.
    Histogram,
    /// A DogStatsD distribution, `|d`, in the family's unit. Same caveat as
    /// [`ObserveAs::Histogram`].
    Distribution,
}

/// Whether, and how often, the updates of a family are mirrored.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Mirror {
    /// Not mirrored.
    Off,
    /// Every update is sent.
    Every,
    /// Counter increments and observations are sent with this probability, and
    /// marked `|@rate` so that the server scales them back up. Gauges ignore it
    /// (a skipped `set` would be lost, not scaled): they are sent every time. A rate
    /// of 1 or more means [`Mirror::Every`]; 0, less or NaN means [`Mirror::Off`].
    Sampled(f64),
}

/// Whether a mirrored family's updates are aggregated in the process before they
/// are sent (the default), or sent one line per update.
///
/// Aggregated, per series and per flush interval: counter increments are summed
/// into one line; gauges send their last `set` (then the sum of relative changes
/// made after it); observations are counted exactly and sent as a uniform sample of
/// at most [`StatsdBuilder::samples_per_interval`] values, each marked
/// `|@kept/count` when values were left out, so that the server's count (Etsy
/// statsd's timer count, statsd_exporter's and the Datadog agent's histogram
/// count) is the number of observations. A million increments in an interval are
/// one line, and the caller's update is an atomic add on the series' slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aggregation {
    /// Aggregated per flush interval (the default).
    PerInterval,
    /// One line per update, through the bounded queue: every event reaches the
    /// socket while the queue has room (a full queue drops, counted as
    /// `queue_full`). Over UDP, datagrams the receiver has no room for are lost
    /// where the sender cannot see it; packets are paced
    /// ([`StatsdBuilder::max_packets_per_second`]) so that a burst does not outrun a
    /// local receiver, but under sustained load this mode is lossy.
    PerEvent,
}

/// Why a bridge could not be built, or an operation did not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The UDP address did not resolve to any socket address.
    Address {
        /// The address as given.
        addr: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A setting is out of range; the message says which and why.
    Config(String),
    /// Fork detection could not be set up (`pthread_atfork` failed).
    WatchForks(io::Error),
    /// The sender thread could not be started.
    Spawn(io::Error),
    /// The sender thread did not finish in time; what it had not sent yet stays
    /// queued.
    Timeout(Duration),
    /// The bridge is paused in this process ([`StatsdBridge::pause`]).
    ///
    /// [`StatsdBridge::pause`]: crate::StatsdBridge::pause
    Paused,
    /// This process descends from the one that built the bridge through more nested
    /// forks than the bridge follows (8); its updates are dropped (`no_sender`).
    ForkDepth,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address { addr, source } => write!(f, "cannot resolve StatsD address {addr:?}: {source}"),
            Self::Config(why) => write!(f, "invalid StatsD bridge setting: {why}"),
            Self::WatchForks(e) => write!(f, "cannot watch for forks: {e}"),
            Self::Spawn(e) => write!(f, "cannot start the StatsD sender thread: {e}"),
            Self::Timeout(t) => write!(f, "the StatsD sender thread did not finish within {t:?}"),
            Self::Paused => f.write_str("the StatsD bridge is paused in this process"),
            Self::ForkDepth => f.write_str("too many nested forks since the StatsD bridge was built"),
        }
    }
}

impl std::error::Error for Error {
    /// The `io::Error` is part of the message (`Display`); the chain goes on with its
    /// own source, so no message is printed twice.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Address { source, .. } | Self::WatchForks(source) | Self::Spawn(source) => source.source(),
            _ => None,
        }
    }
}

/// Where lines go.
#[derive(Clone)]
pub(crate) enum Target {
    Udp(SocketAddr),
    Unix(PathBuf),
    Sink(SinkFactory),
}

impl Target {
    /// Opens this process's socket, wrapped in cadence's unbuffered sink (one
    /// `emit` is one datagram: the bridge builds the packets itself).
    pub(crate) fn connect(&self, send_timeout: Duration) -> io::Result<Box<dyn MetricSink + Send>> {
        match self {
            Self::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let socket = UdpSocket::bind(local)?;
                socket.set_write_timeout(Some(send_timeout))?;
                let sink = UdpMetricSink::from(*addr, socket).map_err(io::Error::other)?;
                Ok(Box::new(sink))
            }
            Self::Unix(path) => {
                // Non-blocking: a full receiver is seen (EAGAIN) and the sender
                // retries until the send timeout, rather than sleeping in the kernel.
                let _ = send_timeout;
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Ok(Box::new(UnixMetricSink::from(path, socket)))
            }
            Self::Sink(factory) => factory(),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Udp(addr) => write!(f, "udp://{addr}"),
            Self::Unix(path) => write!(f, "unixgram://{}", path.display()),
            Self::Sink(_) => f.write_str("custom sink"),
        }
    }
}

type MirrorPolicy = Arc<dyn Fn(&FamilyDesc) -> Mirror + Send + Sync>;
type AggregationPolicy = Arc<dyn Fn(&FamilyDesc) -> Aggregation + Send + Sync>;

/// Default number of observed values sent per series and flush interval, when
/// aggregated.
pub const DEFAULT_SAMPLES_PER_INTERVAL: usize = 64;
/// Default pace over UDP and custom sinks, in datagrams per second.
pub const DEFAULT_MAX_PACKETS_PER_SECOND: u32 = 5_000;

/// Everything the bridge and its sender threads share: the settings, fixed at build,
/// and the table of series lines, which only grows.
pub(crate) struct Config {
    pub(crate) series: SeriesTable,
    pub(crate) target: Target,
    pub(crate) renderer: Renderer,
    pub(crate) durations: ObserveAs,
    pub(crate) values: ObserveAs,
    pub(crate) max_packet: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) flush_timeout: Duration,
    pub(crate) mirror: MirrorPolicy,
    pub(crate) aggregation: AggregationPolicy,
    pub(crate) samples: usize,
    /// `None`: unpaced.
    pub(crate) max_pps: Option<u32>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("target", &self.target)
            .field("style", &self.renderer.style())
            .field("max_packet", &self.max_packet)
            .field("queue_capacity", &self.queue_capacity)
            .field("flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

/// Configures a [`StatsdBridge`]; start from [`StatsdBridge::udp`],
/// [`StatsdBridge::unix`] or [`StatsdBridge::sink`].
///
/// [`StatsdBridge`]: crate::StatsdBridge
/// [`StatsdBridge::udp`]: crate::StatsdBridge::udp
/// [`StatsdBridge::unix`]: crate::StatsdBridge::unix
/// [`StatsdBridge::sink`]: crate::StatsdBridge::sink
#[must_use = "a builder does nothing until `build` is called"]
pub struct StatsdBuilder {
    pub(crate) target: Result<Target, Error>,
    pub(crate) prefix: String,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) style: TagStyle,
    pub(crate) durations: ObserveAs,
    pub(crate) values: ObserveAs,
    pub(crate) max_packet: Option<usize>,
    pub(crate) queue_capacity: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) flush_timeout: Duration,
    pub(crate) mirror: MirrorPolicy,
    pub(crate) aggregation: AggregationPolicy,
    pub(crate) samples: usize,
    pub(crate) max_pps: Option<Option<u32>>,
}

impl fmt::Debug for StatsdBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsdBuilder")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("tags", &self.tags)
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

impl StatsdBuilder {
    pub(crate) fn new(target: Result<Target, Error>) -> Self {
        Self {
            target,
            prefix: String::new(),
            tags: Vec::new(),
            style: TagStyle::default(),
            durations: ObserveAs::Timer,
            values: ObserveAs::Histogram,
            max_packet: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            mirror: Arc::new(|_| Mirror::Every),
            aggregation: Arc::new(|_| Aggregation::PerInterval),
            samples: DEFAULT_SAMPLES_PER_INTERVAL,
            max_pps: None,
        }
    }

    /// Puts `prefix.` before every metric name (sanitized as names are).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Adds a tag sent with every line (after the series' labels; a label with the
    /// same key wins). The key and value are sanitized as labels are; an empty key
    /// makes [`build`](Self::build) fail, an empty value leaves the tag out.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// How labels and tags are written; [`TagStyle::DogStatsd`] by default.
    pub fn tag_style(mut self, style: TagStyle) -> Self {
        self.style = style;
        self
    }

    /// How observations of duration families are sent; [`ObserveAs::Timer`] (`|ms`,
    /// milliseconds) by default.
    pub fn durations(mut self, how: ObserveAs) -> Self {
        self.durations = how;
        self
    }

    /// How observations of other histogram and summary families are sent;
    /// [`ObserveAs::Histogram`] (`|h`, the value as it is) by default.
    pub fn values(mut self, how: ObserveAs) -> Self {
        self.values = how;
        self
    }

    /// The largest datagram sent, in bytes (64 to 65,507); by default
    /// [`DEFAULT_UDP_PACKET_SIZE`] for UDP and custom sinks,
    /// [`DEFAULT_UNIX_PACKET_SIZE`] for Unix datagram sockets. A line longer than
    /// this is dropped (`oversize`).
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.max_packet = Some(bytes);
        self
    }

    /// How many lines the queue between callers and the sender thread holds
    /// (2 to 2^24; [`DEFAULT_QUEUE_CAPACITY`] by default). When it is full, updates
    /// are dropped and counted (`queue_full`).
    pub fn queue_capacity(mut self, lines: usize) -> Self {
        self.queue_capacity = lines;
        self
    }

    /// How often the sender thread wakes to drain the queue and send what it holds
    /// ([`DEFAULT_FLUSH_INTERVAL`] by default); it also wakes when the queue is half
    /// full. At least 1 ms.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// How long the sender thread waits for the socket to take one packet before the
    /// packet is dropped (`send_error`); [`DEFAULT_SEND_TIMEOUT`] by default. Only
    /// the sender thread ever waits: callers never do.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long [`StatsdBridge::flush`], [`StatsdBridge::pause`] and dropping the
    /// last handle wait for the sender thread; [`DEFAULT_FLUSH_TIMEOUT`] by default.
    ///
    /// [`StatsdBridge::flush`]: crate::StatsdBridge::flush
    /// [`StatsdBridge::pause`]: crate::StatsdBridge::pause
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Chooses, per family, whether its updates are mirrored and at what sample
    /// rate; every family is mirrored, unsampled, by default. Asked once per series,
    /// when an adapter (or [`StatsdBridge::mirror`]) first sees it.
    ///
    /// [`StatsdBridge::mirror`]: crate::StatsdBridge::mirror
    pub fn mirror(mut self, policy: impl Fn(&FamilyDesc) -> Mirror + Send + Sync + 'static) -> Self {
        self.mirror = Arc::new(policy);
        self
    }

    /// Chooses, per family, whether its updates are aggregated per flush interval
    /// ([`Aggregation::PerInterval`], the default for every family) or sent one line
    /// per update ([`Aggregation::PerEvent`]). A family mirrored with
    /// [`Mirror::Sampled`] is always sent per event (its sample rate is what bounds
    /// its traffic). Asked once per series, as [`StatsdBuilder::mirror`] is.
    pub fn aggregation(
        mut self,
        policy: impl Fn(&FamilyDesc) -> Aggregation + Send + Sync + 'static,
    ) -> Self {
        self.aggregation = Arc::new(policy);
        self
    }

    /// How many observed values an aggregated histogram or summary series sends per
    /// flush interval at most (1 to 4,096; [`DEFAULT_SAMPLES_PER_INTERVAL`] by
    /// default). Its count is always exact: with more observations than this, the
    /// values sent are a uniform sample marked with the rate that scales them back.
    pub fn samples_per_interval(mut self, values: usize) -> Self {
        self.samples = values;
        self
    }

    /// Paces the sender thread to at most `packets` datagrams per second (bursts of
    /// up to 32 go at once), so that a burst of lines does not overflow a local
    /// receiver's socket buffer; `0` turns pacing off. By default
    /// [`DEFAULT_MAX_PACKETS_PER_SECOND`] over UDP and custom sinks, and unpaced over
    /// a Unix datagram socket, whose full receiver the sender sees and waits for.
    /// Only the sender thread ever waits.
    pub fn max_packets_per_second(mut self, packets: u32) -> Self {
        self.max_pps = Some((packets > 0).then_some(packets));
        self
    }
}

/// Resolves `addr` once, at build: a typo fails early rather than in every process.
pub(crate) fn resolve_udp(addr: &str) -> Result<Target, Error> {
    let mut addrs =
        addr.to_socket_addrs().map_err(|source| Error::Address { addr: addr.to_owned(), source })?;
    addrs.next().map(Target::Udp).ok_or_else(|| Error::Address {
        addr: addr.to_owned(),
        source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
    })
}
