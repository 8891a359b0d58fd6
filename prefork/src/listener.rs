//! [`Listener`]: the listening socket a master shares with its workers, bound from an
//! address, inherited from systemd, or bound per process with `SO_REUSEPORT`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::error::Error;
use crate::sys;

/// How many connections may wait in the kernel for a worker to accept them; the
/// kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 1024;

/// A listening socket, TCP or Unix.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix stream socket.
    Unix(UnixListener),
}

impl Listener {
    /// Binds `address`: `HOST:PORT` (port 0 picks a free one), or a Unix socket path
    /// written `unix:PATH` or as an absolute path.
    ///
    /// # Errors
    ///
    /// [`Error::BadAddress`] for an address of neither form, [`Error::Bind`] if binding
    /// fails (a Unix socket path that exists already fails: remove a stale one first).
    pub fn bind(address: &str) -> Result<Self, Error> {
        let bind_error = |source| Error::Bind { address: address.to_owned(), source };
        if let Some(path) = unix_path(address) {
            return UnixListener::bind(path).map(Self::Unix).map_err(bind_error);
        }
        let addrs: Vec<SocketAddr> = address
            .to_socket_addrs()
            .map_err(|_| Error::BadAddress { address: address.to_owned() })?
            .collect();
        TcpListener::bind(&addrs[..]).map(Self::Tcp).map_err(bind_error)
    }

    /// Binds a TCP socket at `address` with `SO_REUSEPORT`, so that other sockets of
    /// the same user may bind the same address too: the kernel then spreads new
    /// connections over all of them. For processes that share a port without a master
    /// (each binds its own), or workers that each want their own accept queue.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if a step fails (creating, setting the option, binding,
    /// listening).
    pub fn bind_reuse_port(address: SocketAddr) -> Result<Self, Error> {
        Self::reuse_port_socket(address, true)
    }

    /// A socket bound with `SO_REUSEPORT`, listening or only holding the port (a
    /// socket that does not listen takes no connection from the others).
    pub(crate) fn reuse_port_socket(address: SocketAddr, listen: bool) -> Result<Self, Error> {
        let bind = || -> io::Result<TcpListener> {
            let family = if address.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
            let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
            rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
            rustix::net::bind(&fd, &address)?;
            if listen {
                rustix::net::listen(&fd, BACKLOG)?;
            }
            Ok(TcpListener::from(fd))
        };
        bind().map(Self::Tcp).map_err(|source| Error::Bind { address: address.to_string(), source })
    }

    /// The listening sockets systemd passed to this process (socket activation:
    /// `LISTEN_FDS` descriptors from 3, for the process `LISTEN_PID` names), in order.
    /// Empty when the variables are absent or name another process. The variables are
    /// removed, so that processes this one starts do not take the sockets for theirs;
    /// the descriptors are marked close-on-exec.
    ///
    /// # Errors
    ///
    /// [`Error::Systemd`] if the variables are malformed, a descriptor is not open or
    /// not a listening stream socket, or the sockets were already taken.
    pub fn from_systemd() -> Result<Vec<Self>, Error> {
        let bad = |reason: String, source: Option<io::Error>| Error::Systemd { reason, source };
        let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
            return Ok(Vec::new());
        };
        let pid: u32 =
            pid.trim().parse().map_err(|_| bad(format!("LISTEN_PID={pid:?} is not a pid"), None))?;
        if pid != std::process::id() {
            return Ok(Vec::new());
        }
        let count: i32 =
            count.trim().parse().map_err(|_| bad(format!("LISTEN_FDS={count:?} is not a number"), None))?;
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
        // The protocol's first descriptor, SD_LISTEN_FDS_START.
        let fds = sys::adopt_passed_fds(3, count)
            .map_err(|e| bad(format!("cannot take the {count} passed descriptors"), Some(e)))?;
        fds.into_iter().map(|fd| Self::from_passed(fd).map_err(|(reason, e)| bad(reason, e))).collect()
    }

    /// A passed descriptor that is no listening socket is left open, not closed: with
    /// wrong variables it may be a file something else of this process owns.
    fn from_passed(fd: OwnedFd) -> Result<Self, (String, Option<io::Error>)> {
        match Self::check_passed(&fd) {
            Ok(true) => Ok(Self::Unix(UnixListener::from(fd))),
            Ok(false) => Ok(Self::Tcp(TcpListener::from(fd))),
            Err(e) => {
                let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
                Err(e)
            }
        }
    }

    /// Whether the passed descriptor is a Unix (true) or TCP (false) listening socket.
    fn check_passed(fd: &OwnedFd) -> Result<bool, (String, Option<io::Error>)> {
        let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
        let os =
            |what: &str, e: rustix::io::Errno| (format!("descriptor {raw}: cannot {what}"), Some(e.into()));
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC).map_err(|e| os("set close-on-exec", e))?;
        if rustix::net::sockopt::socket_type(fd).map_err(|e| os("read its socket type", e))?
            != SocketType::STREAM
        {
            return Err((format!("descriptor {raw} is not a stream socket"), None));
        }
        if !rustix::net::sockopt::socket_acceptconn(fd).map_err(|e| os("read its state", e))? {
            return Err((format!("descriptor {raw} is not listening"), None));
        }
        let family = rustix::net::getsockname(fd).map_err(|e| os("read its address", e))?.address_family();
        if family == AddressFamily::UNIX {
            Ok(true)
        } else if family == AddressFamily::INET || family == AddressFamily::INET6 {
            Ok(false)
        } else {
            Err((format!("descriptor {raw} is neither a TCP nor a Unix socket"), None))
        }
    }

    /// Another handle to the same socket (a `dup`).
    ///
    /// # Errors
    ///
    /// The error of `dup`.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Tcp(l) => l.try_clone().map(Self::Tcp),
            Self::Unix(l) => l.try_clone().map(Self::Unix),
        }
    }

    /// Sets or clears non-blocking mode, which the socket's every handle shares (async
    /// runtimes require it set).
    ///
    /// # Errors
    ///
    /// The error of `ioctl(FIONBIO)`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.set_nonblocking(nonblocking),
            Self::Unix(l) => l.set_nonblocking(nonblocking),
        }
    }

    /// The TCP address the socket is bound to, if it is a TCP socket.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(_) => None,
        }
    }

    /// The TCP socket.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKind`] for a Unix socket.
    pub fn into_tcp(self) -> Result<TcpListener, Error> {
        match self {
            Self::Tcp(l) => Ok(l),
            Self::Unix(_) => Err(Error::WrongKind { wanted: "TCP" }),
        }
    }

    /// The Unix socket.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKind`] for a TCP socket.
    pub fn into_unix(self) -> Result<UnixListener, Error> {
        match self {
            Self::Unix(l) => Ok(l),
            Self::Tcp(_) => Err(Error::WrongKind { wanted: "Unix" }),
        }
    }
}

/// `HOST:PORT`, or `unix:PATH`.
impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(l) => match l.local_addr() {
                Ok(addr) => write!(f, "{addr}"),
                Err(_) => f.write_str("an unknown TCP address"),
            },
            Self::Unix(l) => {
                match l.local_addr().ok().as_ref().and_then(|a| a.as_pathname().map(Path::to_owned)) {
                    Some(path) => write!(f, "unix:{}", path.display()),
                    None => f.write_str("an unnamed Unix socket"),
                }
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(l) => l.as_fd(),
            Self::Unix(l) => l.as_fd(),
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

impl From<UnixListener> for Listener {
    fn from(listener: UnixListener) -> Self {
        Self::Unix(listener)
    }
}

fn unix_path(address: &str) -> Option<&Path> {
    match address.strip_prefix("unix:") {
        Some(path) => Some(Path::new(path)),
        None if address.starts_with('/') => Some(Path::new(address)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_each_form_bind_and_bad_ones_are_named() -> Result<(), Box<dyn std::error::Error>> {
        let tcp = Listener::bind("127.0.0.1:0")?;
        assert!(tcp.tcp_addr().is_some_and(|a| a.port() != 0));
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.sock");
        let unix = Listener::bind(&format!("unix:{}", path.display()))?;
        assert_eq!(unix.to_string(), format!("unix:{}", path.display()));
        assert!(matches!(unix.into_tcp(), Err(Error::WrongKind { wanted: "TCP" })));
        let err = Listener::bind("nowhere").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("\"nowhere\" is neither"), "{err}");
        Ok(())
    }

    #[test]
    fn two_reuse_port_sockets_share_a_port() -> Result<(), Box<dyn std::error::Error>> {
        let first = Listener::bind_reuse_port(([127, 0, 0, 1], 0).into())?;
        let addr = first.tcp_addr().ok_or("no address")?;
        let second = Listener::bind_reuse_port(addr)?;
        assert_eq!(second.tcp_addr(), Some(addr));
        assert!(Listener::bind(&addr.to_string()).is_err(), "a socket without the option is refused");
        Ok(())
    }
}
