//! herd-statsd: herd's metrics as StatsD or DogStatsD lines, for processes that cannot
//! be scraped (job-queue workers, batch jobs), without ever blocking the caller.
//!
//! Two modes, each usable alone, with no Prometheus scraping at all:
//!
//! - **Mirror**: every update of chosen families is also sent. Adapters (herd-axum,
//!   herd-actix) take the bridge as their [`Observer`](herd_core::Observer); for your
//!   own families, [`StatsdBridge::mirror`] returns a [`Mirrored`] handle.
//! - **Periodic**: [`StatsdBridge::flush_every`] sends a registry's counter deltas,
//!   gauge values and histogram/summary `_count`/`_sum` deltas on an interval.
//!
//! By default updates are aggregated in the process per series and flush interval
//! ([`Aggregation::PerInterval`]): counters summed, gauges kept last, observations
//! counted exactly with a bounded sample of values, so however fast a worker goes
//! the server gets a few lines per series per interval; the caller's update is an
//! atomic operation on the series' slot. Per event ([`Aggregation::PerEvent`]), an
//! update formats one number into a fixed buffer and pushes it onto a bounded
//! lock-free queue. Either way: no lock, no allocation, no system call. A
//! sender thread per process drains the queue into packets no larger than the
//! configured size and sends them through a cadence
//! [`MetricSink`](cadence::MetricSink) (UDP, Unix datagram, or your own). A full
//! queue drops the update and counts it.
//!
//! The README next to this crate's `Cargo.toml` documents the line grammar of every
//! tag style, the units, the sanitizing rule, fork behaviour and drop accounting.
//!
//! # Examples
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use herd_core::Registry;
//! use herd_statsd::StatsdBridge;
//!
//! let server = UdpSocket::bind("127.0.0.1:0")?;
//! # server.set_read_timeout(Some(Duration::from_secs(30)))?;
//! // Only `flush` sends here: with an hour-long interval the sender thread cannot
//! // send the first increment alone, however slow the machine.
//! let bridge = StatsdBridge::udp(server.local_addr()?)
//!     .prefix("app")
//!     .tag("env", "prod")
//!     .flush_interval(Duration::from_secs(3600))
//!     .build()?;
//!
//! let registry = Registry::new();
//! let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
//! let emails = bridge.mirror(&jobs, ["emails"]);
//! emails.inc();
//! emails.inc_by(2);
//! bridge.flush()?;
//!
//! let mut packet = [0u8; 1432];
//! let len = server.recv(&mut packet)?;
//! assert_eq!(
//!     std::str::from_utf8(&packet[..len])?,
//!     // Aggregated in the process: one line per series and flush interval.
//!     "app.jobs_total:3|c|#queue:emails,env:prod"
//! );
//! assert_eq!(emails.handle().get(), 3.0);
//! assert_eq!(bridge.stats().sent_lines, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limitations
//!
//! - UDP and Unix datagram sockets only (a custom sink can do anything else).
//! - Gauge increments are sent as relative gauges (`+1|g`), which Etsy statsd and
//!   statsd_exporter apply but the Datadog agent reads as absolute values: with the
//!   agent, send gauges in periodic mode.
//! - A forked child discards its copy of what its parent had queued (the parent sends
//!   it), and inherits no periodic flush.
//! - StatsD sets (`|s`), events and service checks are not sent.
#![forbid(unsafe_code)]

/// The crate's README, whose examples are compiled (and run, where they touch no
/// system path) with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod agg;
mod bridge;
mod config;
#[doc(hidden)]
pub mod fuzzing;
mod mirrored;
mod periodic;
mod pipe;
mod render;
mod rng;
mod sender;
mod stats;
mod table;
mod update;

pub use bridge::StatsdBridge;
pub use config::{
    Aggregation, Error, Mirror, ObserveAs, SinkFactory, StatsdBuilder, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_PACKETS_PER_SECOND, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_SAMPLES_PER_INTERVAL, DEFAULT_SEND_TIMEOUT, DEFAULT_UDP_PACKET_SIZE, DEFAULT_UNIX_PACKET_SIZE,
    MAX_PACKET_SIZE,
};
pub use mirrored::Mirrored;
pub use render::{TagStyle, REPLACEMENT};
pub use stats::{DropReason, Stats, DROPPED_METRIC, QUEUED_METRIC, SENT_LINES_METRIC, SENT_PACKETS_METRIC};

/// cadence, re-exported for [`SinkFactory`] implementations.
pub use cadence;
