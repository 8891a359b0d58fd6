//! [`Error`]: what can go wrong in a supervisor.

use std::fmt;
use std::io;

/// What went wrong, in binding or inheriting a listener or in running workers.
///
/// Each variant's message names what failed; the operating-system cause, if any, is
/// its [`source`](std::error::Error::source), so a chain prints each once.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The builder was asked for zero workers.
    NoWorkers,
    /// Neither an address to bind nor a listener was given (nor one inherited from
    /// systemd, when asked for).
    NoListener,
    /// The address is neither `HOST:PORT` nor a Unix socket path.
    BadAddress {
        /// The address as given.
        address: String,
    },
    /// Binding the address failed.
    Bind {
        /// The address as given.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// `LISTEN_FDS`/`LISTEN_PID` name this process but do not describe usable
    /// listening sockets.
    Systemd {
        /// What is wrong with them.
        reason: String,
        /// The operating system's error, if one was the reason.
        source: Option<io::Error>,
    },
    /// The listener is of another kind than the one asked for (a Unix socket where a
    /// TCP one was wanted).
    WrongKind {
        /// The kind that was wanted.
        wanted: &'static str,
    },
    /// The settings do not go together.
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
    /// Preparing the listener or the master (non-blocking mode, signal mask) failed.
    Setup {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// Forking a worker failed (the process has threads, or `fork(2)` failed).
    Fork(io::Error),
    /// Waiting for workers failed.
    Wait(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoWorkers => f.write_str("a supervisor needs at least one worker"),
            Self::NoListener => f.write_str("no address to listen on and no listener given"),
            Self::BadAddress { address } => {
                write!(f, "{address:?} is neither HOST:PORT nor a Unix socket path (unix:PATH)")
            }
            Self::Bind { address, .. } => write!(f, "cannot listen on {address}"),
            Self::Systemd { reason, .. } => write!(f, "socket activation: {reason}"),
            Self::WrongKind { wanted } => write!(f, "the listener is not a {wanted} socket"),
            Self::Unsupported { what } => write!(f, "not supported: {what}"),
            Self::Setup { what, .. } => write!(f, "cannot {what}"),
            Self::Fork(_) => f.write_str("cannot fork a worker"),
            Self::Wait(_) => f.write_str("cannot wait for workers"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. }
            | Self::Setup { source, .. }
            | Self::Fork(source)
            | Self::Wait(source) => Some(source),
            Self::Systemd { source, .. } => source.as_ref().map(|e| e as _),
            _ => None,
        }
    }
}

/// For workers' closures that return `io::Result`: `?` on a listener's
/// [`Error::WrongKind`] and the like.
impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Bind { source, .. }
            | Error::Setup { source, .. }
            | Error::Fork(source)
            | Error::Wait(source) => source.kind(),
            Error::BadAddress { .. }
            | Error::WrongKind { .. }
            | Error::NoWorkers
            | Error::Unsupported { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}
