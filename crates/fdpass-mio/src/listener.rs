//! Accepting passers at a filesystem path, from a mio loop.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;

use fdpass_core::{Config, Error};
use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::Passer;

/// A listening socket at a filesystem path whose connections become passers.
/// It is a [`mio::event::Source`]: register it for readability and, on every
/// event, [`accept`](Self::accept) until it returns `None` (mio is
/// edge-triggered: a connection left waiting brings no new event).
///
/// Created like [`fdpass_core::socket::Listener`]: mode `0600` unless asked
/// otherwise, with no moment at which it is more open; a stale socket file is
/// replaced, a live one is an error.
///
/// ```
/// use std::time::Duration;
/// use mio::{Events, Interest, Poll, Token};
/// use fdpass_mio::{Listener, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-listener-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut listener = Listener::bind(dir.join("sock"))?;
/// let mut poll = Poll::new()?;
/// poll.registry().register(&mut listener, Token(0), Interest::READABLE)?;
///
/// let _client = Passer::connect(listener.path())?;
/// let mut events = Events::with_capacity(8);
/// let mut accepted = Vec::new();
/// while accepted.is_empty() {
///     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
///     while let Some(passer) = listener.accept()? {
///         accepted.push(passer);
///     }
/// }
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Listener {
    inner: fdpass_core::socket::Listener,
    config: Config,
}

impl Listener {
    /// Binds at `path` with mode `0600`; accepted passers use the default
    /// [`Config`].
    ///
    /// # Errors
    /// As [`fdpass_core::socket::Listener::bind`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-bind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// assert!(listener.accept()?.is_none()); // nobody connected yet
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> Result<Listener, Error> {
        Listener::bind_with(path, 0o600, Config::default())
    }

    /// Binds at `path` with mode `0600`; accepted passers use `config`.
    ///
    /// # Errors
    /// As [`fdpass_core::socket::Listener::bind`], or
    /// [`Error::InvalidConfig`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-bind-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let _listener = fdpass_mio::Listener::bind_with_config(dir.join("sock"), config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind_with_config(path: impl AsRef<Path>, config: Config) -> Result<Listener, Error> {
        Listener::bind_with(path, 0o600, config)
    }

    /// Binds at `path` with the given permission bits; accepted passers use
    /// `config`.
    ///
    /// # Errors
    /// As [`fdpass_core::socket::Listener::bind_with_mode`], or
    /// [`Error::InvalidConfig`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-bind-with-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let _listener = fdpass_mio::Listener::bind_with(dir.join("sock"), 0o660, config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind_with(path: impl AsRef<Path>, mode: u32, config: Config) -> Result<Listener, Error> {
        // Refuse a bad config now rather than at every accept.
        config.validate()?;
        let inner = fdpass_core::socket::Listener::bind_with_mode(path, mode)?;
        Ok(Listener { inner, config })
    }

    /// A listener built from a listening `AF_UNIX` stream socket inherited
    /// or received from another process (see
    /// [`fdpass_core::socket::Listener::from_fd`] for the checks); accepted
    /// passers use the default [`Config`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind `InvalidInput` when `fd` is not a listening
    /// `AF_UNIX` stream socket; `fd` is closed then.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-from-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let old = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// let moved = fdpass_mio::Listener::from_fd(old.into_fd())?;
    /// let _client = fdpass_mio::Passer::connect(dir.join("sock"))?;
    /// assert!(moved.accept()?.is_some());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Listener, Error> {
        Listener::from_fd_with_config(fd, Config::default())
    }

    /// As [`from_fd`](Self::from_fd); accepted passers use `config`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-from-fd-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let old = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let _moved = fdpass_mio::Listener::from_fd_with_config(old.into_fd(), config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_fd_with_config(
        fd: std::os::fd::OwnedFd,
        config: Config,
    ) -> Result<Listener, Error> {
        config.validate()?;
        let inner = fdpass_core::socket::Listener::from_fd(fd)?;
        Ok(Listener { inner, config })
    }

    /// Gives the listening socket up, open and listening, with the
    /// connections waiting to be accepted still queued, for example to hand
    /// it to a successor. Deregister it from the registry first. Dropping the
    /// listener instead shuts the socket down for every process that holds
    /// it. A peer check does not travel with it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-into-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// let _client = fdpass_mio::Passer::connect(dir.join("sock"))?;
    /// let std_listener = std::os::unix::net::UnixListener::from(listener.into_fd());
    /// assert!(std_listener.accept().is_ok());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn into_fd(self) -> std::os::fd::OwnedFd {
        self.inner.into_fd()
    }

    /// Admits only peers whose credentials (`SO_PEERCRED`: pid, uid, gid at
    /// connect time) pass `check`. [`accept`](Self::accept) closes and skips
    /// the connections of refused peers: a refusal is never an error, so an
    /// accept loop using `?` goes on serving. `check` sees every refused
    /// peer's credentials; log or count them there.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-peer-check-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// listener.set_peer_check(|peer| peer.uid == u32::MAX); // nobody passes
    /// let _client = fdpass_mio::Passer::connect(listener.path())?;
    /// assert!(listener.accept()?.is_none()); // refused and closed; nothing else waits
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn set_peer_check(
        &mut self,
        check: impl Fn(&fdpass_core::socket::PeerCredentials) -> bool + Send + Sync + 'static,
    ) {
        self.inner.set_peer_check(check);
    }

    /// Accepts one waiting connection that the peer check (if any) admits as
    /// a passer, or returns `None` when no such connection waits. Refused
    /// peers' connections are closed and skipped on the way.
    ///
    /// # Errors
    /// Only the listener's own: a failed `accept(2)` (for example `EMFILE`),
    /// or a failure to set up the passer (see [`Passer::with_config`]). A
    /// refused peer is never an error.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// let _client = fdpass_mio::Passer::connect(listener.path())?;
    /// // A Unix-socket connect completes at once, so it waits already.
    /// assert!(listener.accept()?.is_some());
    /// assert!(listener.accept()?.is_none());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn accept(&self) -> Result<Option<Passer>, Error> {
        loop {
            // The core listener applies the peer check and skips refusals.
            match self.inner.accept() {
                Ok(socket) => return Passer::with_config(socket, self.config).map(Some),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // A connection that was reset while waiting, or a signal: the
                // next one may be fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The path the listener is bound at (empty for one built with
    /// `from_fd`, which cannot know it).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// assert_eq!(listener.path(), dir.join("sock"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// Registers the listening socket with the `interests` given
/// ([`Interest::READABLE`] is the one that reports connections).
///
/// ```
/// use mio::{Interest, Poll, Token};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-source-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
/// let poll = Poll::new()?;
/// poll.registry().register(&mut listener, Token(0), Interest::READABLE)?;
/// poll.registry().deregister(&mut listener)?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
impl Source for Listener {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.inner.as_fd().as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.inner.as_fd().as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.inner.as_fd().as_raw_fd()).deregister(registry)
    }
}

impl AsFd for Listener {
    /// The listening socket.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-asfd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// let _socket = listener.as_fd();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for Listener {
    /// The listening socket's number.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-asrawfd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// assert!(listener.as_raw_fd() >= 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_fd().as_raw_fd()
    }
}
