//! herd-prefork: everything process-level that a pre-fork service needs.
//!
//! - **Fork tracking**: [`fork`] (refused in a process with threads), [`follow_forks`]
//!   for objects that must act in a child before `fork()` returns there (herd-mmap's
//!   storage moves to a file of the child's own), and [`watch_forks`] /
//!   [`fork_generation`] for code that rebuilds what does not survive a fork
//!   (herd-statsd's sender thread).
//! - **A supervisor**: [`Supervisor`] binds a TCP or Unix [`Listener`] (or takes the
//!   one systemd passed), forks N workers that each run your closure with it (their
//!   own tokio or actix runtime), restarts a worker that dies (with a growing delay
//!   when it keeps dying at once), stops them all on SIGTERM or SIGINT (forward, wait,
//!   then SIGKILL), makes them die with their master, and reports every event through
//!   the `log` crate.
//!
//! Nothing here is about metrics: with herd-mmap, whatever the master registered
//! before [`Builder::run`] writes into each worker's own file, because the storage
//! follows forks; without it, the supervisor works just the same.
//!
//! # Examples
//!
//! ```no_run
//! use std::io::Write;
//!
//! let stopped = herd_prefork::Supervisor::builder()
//!     .workers(4)
//!     .listen("127.0.0.1:8080")
//!     .run(|worker| -> std::io::Result<()> {
//!         // In the worker: start its runtime here, never before `run`.
//!         let listener = worker.into_listener().into_tcp()?;
//!         listener.set_nonblocking(false)?;
//!         for stream in listener.incoming() {
//!             stream?.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")?;
//!         }
//!         Ok(())
//!     })?;
//! // Only the master gets here, after SIGTERM or SIGINT stopped every worker.
//! assert_eq!(stopped.killed, 0);
//! # Ok::<(), herd_prefork::Error>(())
//! ```
//!
//! # Limitations
//!
//! - Linux only (`PR_SET_PDEATHSIG`, `/proc/self/task`).
//! - The master must stay single-threaded: it forks again whenever a worker dies.
//! - The master blocks SIGTERM, SIGINT and SIGCHLD while it supervises; it restores
//!   its mask in each worker and when [`Running`] is dropped.
//!
//! All `unsafe` code of this crate lives in its `sys` module.
#![deny(unsafe_code)]

/// The crate's README, whose example is compiled with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
mod listener;
mod supervisor;
mod sys;

pub use error::Error;
pub use listener::Listener;
pub use supervisor::{Builder, Running, Stopped, Supervisor, Worker};
pub use sys::{follow_forks, fork, fork_generation, watch_forks, ForkAware, Forked};

/// The mutex [`follow_forks`] takes: parking_lot's, whose lock a fork handler can
/// take on one side of `fork()` and release on the other.
pub use parking_lot::Mutex;
