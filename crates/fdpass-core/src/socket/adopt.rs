//! Checking that a descriptor inherited or received from another process is
//! the listening socket the caller expects, before wrapping it.
//!
//! A descriptor found at a number (`LISTEN_FDS`), or taken by name from a
//! set a peer sent, may be anything: a file, a connected socket, a socket
//! of another family. Wrapping it as a listener unchecked would turn that
//! mistake into an `accept` that fails, or blocks, much later. The checks
//! are the kernel's own answers: `getsockname(2)` for the family,
//! `SO_TYPE` for the type, `SO_ACCEPTCONN` (`socket(7)`) for whether
//! `listen(2)` was called (not on macOS, which declares the option but
//! does not implement it: there a socket that is not listening fails at its
//! first `accept`, with `EINVAL`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::{Errno, FdFlags};
use rustix::net::{AddressFamily, SocketType};

/// The family of listening socket a descriptor must be.
///
/// ```
/// use fdpass_core::socket::{check_listening, ListeningFamily};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// assert!(check_listening(&listener, ListeningFamily::Tcp).is_ok());
/// assert!(check_listening(&listener, ListeningFamily::Unix).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListeningFamily {
    /// `AF_UNIX`, `SOCK_STREAM`.
    Unix,
    /// `AF_INET` or `AF_INET6`, `SOCK_STREAM`.
    Tcp,
}

impl ListeningFamily {
    fn describe(self) -> &'static str {
        match self {
            ListeningFamily::Unix => "a listening AF_UNIX stream socket",
            ListeningFamily::Tcp => "a listening TCP socket (AF_INET or AF_INET6, SOCK_STREAM)",
        }
    }
}

/// Checks that `fd` is a listening stream socket of `family`.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`], saying what the descriptor is instead:
/// not a socket (`ENOTSOCK`), a socket of another family or type, or one on
/// which `listen(2)` was not called. Other errors of `getsockname(2)` or
/// `getsockopt(2)` as the kernel reports them (`EBADF` is not possible for
/// a borrowed descriptor).
///
/// ```
/// use fdpass_core::socket::{check_listening, ListeningFamily};
///
/// let (connected, _peer) = std::os::unix::net::UnixStream::pair()?;
/// let err = check_listening(&connected, ListeningFamily::Unix).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// let (read_end, _write_end) = std::io::pipe()?;
/// assert!(check_listening(&read_end, ListeningFamily::Unix).unwrap_err().to_string().contains("not a socket"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn check_listening(fd: impl AsFd, family: ListeningFamily) -> io::Result<()> {
    let fd = fd.as_fd();
    let wrong = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "descriptor {fd:?} is {what}, not {}; check which descriptor was handed over",
                family.describe()
            ),
        )
    };
    let address = match rustix::net::getsockname(fd) {
        Ok(address) => address,
        Err(Errno::NOTSOCK) => return Err(wrong("not a socket".to_owned())),
        Err(e) => return Err(e.into()),
    };
    let found = address.address_family();
    let family_ok = match family {
        ListeningFamily::Unix => found == AddressFamily::UNIX,
        ListeningFamily::Tcp => found == AddressFamily::INET || found == AddressFamily::INET6,
    };
    if !family_ok {
        return Err(wrong(format!("a socket of address family {found:?}")));
    }
    let kind = rustix::net::sockopt::socket_type(fd)?;
    if kind != SocketType::STREAM {
        return Err(wrong(format!("a socket of type {kind:?}")));
    }
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    if !rustix::net::sockopt::socket_acceptconn(fd)? {
        return Err(wrong("a socket that is not listening".to_owned()));
    }
    Ok(())
}

/// Checks `fd` as [`check_listening`] does, then makes it non-blocking and
/// close-on-exec (an inherited descriptor is inheritable; a received one
/// is close-on-exec already), ready for a reactor.
pub(crate) fn adopt_listening(fd: OwnedFd, family: ListeningFamily) -> io::Result<OwnedFd> {
    check_listening(&fd, family)?;
    rustix::io::ioctl_fionbio(&fd, true)?;
    let flags = rustix::io::fcntl_getfd(&fd)?;
    rustix::io::fcntl_setfd(&fd, flags | FdFlags::CLOEXEC)?;
    Ok(fd)
}

/// A std TCP listener built from a listening TCP socket inherited or
/// received from another process: checked as [`check_listening`] does, then
/// made non-blocking and close-on-exec. Give it up with
/// `OwnedFd::from(listener)`; closing a copy never disturbs the others.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] when `fd` is not a listening TCP socket
/// (it is closed then); other errors of the checks or of `fcntl(2)`.
///
/// ```
/// use std::os::fd::OwnedFd;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let address = listener.local_addr()?;
/// let moved = fdpass_core::socket::tcp_listener_from_fd(OwnedFd::from(listener))?;
/// assert_eq!(moved.local_addr()?, address);
/// let (read_end, _write_end) = std::io::pipe()?;
/// assert!(fdpass_core::socket::tcp_listener_from_fd(read_end.into()).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn tcp_listener_from_fd(fd: OwnedFd) -> io::Result<std::net::TcpListener> {
    adopt_listening(fd, ListeningFamily::Tcp).map(std::net::TcpListener::from)
}

/// A std Unix listener built from a listening `AF_UNIX` stream socket
/// inherited or received from another process, checked and set up as
/// [`tcp_listener_from_fd`] does. (For one whose connections become passers,
/// use [`Listener::from_fd`](crate::socket::Listener::from_fd).)
///
/// # Errors
///
/// As [`tcp_listener_from_fd`], for `AF_UNIX`.
///
/// ```
/// use std::os::fd::OwnedFd;
///
/// let dir = std::env::temp_dir().join(format!("fdpass-doc-unix-from-fd-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let listener = std::os::unix::net::UnixListener::bind(dir.join("sock"))?;
/// let moved = fdpass_core::socket::unix_listener_from_fd(OwnedFd::from(listener))?;
/// assert!(moved.local_addr()?.as_pathname().is_some());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn unix_listener_from_fd(fd: OwnedFd) -> io::Result<std::os::unix::net::UnixListener> {
    adopt_listening(fd, ListeningFamily::Unix).map(std::os::unix::net::UnixListener::from)
}
