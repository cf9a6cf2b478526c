//! Accepting passers at a filesystem path.

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::Path;

use async_io::Async;
use fdpass_core::socket::{PeerCheck, PeerCredentials};
use fdpass_core::{Config, Error};

use crate::Passer;

/// A listening socket at a filesystem path whose connections become passers.
///
/// Created like [`fdpass_core::socket::Listener`]: mode `0600` unless asked
/// otherwise, with no moment at which it is more open; a stale socket file is
/// replaced, a live one is an error. Dropping it never blocks, like the
/// core listener's drop (connections still waiting to be accepted are
/// released on a background thread).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-listener-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
/// let (client, server) = futures_util::try_join!(fdpass_smol::Passer::connect(dir.join("sock")), listener.accept())?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// client.send(read_end.into()).await?;
/// assert!(server.recv().await?.is_some());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) })
/// # }
/// ```
pub struct Listener {
    /// A copy of `bound`'s socket, registered with the reactor. Declared
    /// first so it is dropped first: its close is then not the last.
    inner: Async<UnixListener>,
    /// The socket itself, whose drop releases it off this thread (Linux
    /// releases the connections waiting to be accepted with it, and their
    /// queues may hold files whose close blocks: see the core listener).
    bound: fdpass_core::socket::Listener,
    config: Config,
    peer_check: Option<PeerCheck>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("peer_check", &self.peer_check.is_some())
            .finish()
    }
}

impl Listener {
    /// Binds at `path` with mode `0600`; accepted passers use the default
    /// [`Config`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-bind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let _listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> Result<Listener, Error> {
        Listener::bind_with(path, 0o600, Config::default())
    }

    /// Binds at `path` with mode `0600`; accepted passers use `config`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-bind-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let _listener = fdpass_smol::Listener::bind_with_config(dir.join("sock"), config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind_with_config(path: impl AsRef<Path>, config: Config) -> Result<Listener, Error> {
        Listener::bind_with(path, 0o600, config)
    }

    /// Binds at `path` with the given permission bits; accepted passers use
    /// `config`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-bind-with-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let _listener = fdpass_smol::Listener::bind_with(dir.join("sock"), 0o660, config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind_with(path: impl AsRef<Path>, mode: u32, config: Config) -> Result<Listener, Error> {
        // Refuse a bad config now rather than at every accept.
        config.validate()?;
        let bound = fdpass_core::socket::Listener::bind_with_mode(path, mode)?;
        Listener::register(bound, config)
    }

    /// A listener built from a listening `AF_UNIX` stream socket inherited
    /// or received from another process (see
    /// [`fdpass_core::socket::Listener::from_fd`] for the checks); accepted
    /// passers use the default [`Config`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind `InvalidInput` when `fd` is not a listening
    /// `AF_UNIX` stream socket; `fd` is closed then (closed, never shut
    /// down: other processes holding the socket keep serving).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-from-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let old = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let moved = fdpass_smol::Listener::from_fd(old.into_fd())?;
    /// let (_client, _server) = futures_util::try_join!(fdpass_smol::Passer::connect(dir.join("sock")), moved.accept())?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Listener, Error> {
        Listener::from_fd_with_config(fd, Config::default())
    }

    /// As [`from_fd`](Self::from_fd); accepted passers use `config`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-from-fd-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let old = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let _moved = fdpass_smol::Listener::from_fd_with_config(old.into_fd(), config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_fd_with_config(
        fd: std::os::fd::OwnedFd,
        config: Config,
    ) -> Result<Listener, Error> {
        config.validate()?;
        let bound = fdpass_core::socket::Listener::from_fd(fd)?;
        Listener::register(bound, config)
    }

    /// Registers a copy of `bound`'s socket with the reactor. On failure the
    /// socket is closed without being shut down: it may be one another
    /// process still serves on.
    fn register(bound: fdpass_core::socket::Listener, config: Config) -> Result<Listener, Error> {
        // The core listener is non-blocking already (a copy shares that flag).
        let registered = bound
            .as_fd()
            .try_clone_to_owned()
            .and_then(|copy| Async::new_nonblocking(UnixListener::from(copy)));
        match registered {
            Ok(inner) => Ok(Listener {
                inner,
                bound,
                config,
                peer_check: None,
            }),
            Err(e) => {
                drop(bound.into_fd());
                Err(e.into())
            }
        }
    }

    /// Gives the listening socket up, for example to hand it to a
    /// successor: it is removed from the reactor and returned open and
    /// listening, with the connections waiting to be accepted still queued.
    /// Dropping the listener instead shuts the socket down for every process
    /// that holds it. A peer check does not travel with it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-into-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let _client = std::os::unix::net::UnixStream::connect(dir.join("sock"))?;
    /// let std_listener = std::os::unix::net::UnixListener::from(listener.into_fd());
    /// assert!(std_listener.accept().is_ok());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn into_fd(self) -> std::os::fd::OwnedFd {
        let Listener { inner, bound, .. } = self;
        drop(inner);
        bound.into_fd()
    }

    /// Admits only peers whose credentials (`SO_PEERCRED`: pid, uid, gid at
    /// connect time) pass `check`. [`accept`](Self::accept) closes and skips
    /// the connections of refused peers: a refusal is never an error. `check`
    /// sees every refused peer's credentials; log or count them there.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-peer-check-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let me = rustix::process::getuid().as_raw();
    /// listener.set_peer_check(move |peer| peer.uid == me);
    /// let (_client, server) = futures_util::try_join!(fdpass_smol::Passer::connect(dir.join("sock")), listener.accept())?;
    /// assert_eq!(server.peer_credentials()?.uid, me);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn set_peer_check(
        &mut self,
        check: impl Fn(&PeerCredentials) -> bool + Send + Sync + 'static,
    ) {
        self.peer_check = Some(std::sync::Arc::new(check));
    }

    /// Waits for the next connection that the peer check (if any) admits and
    /// wraps it in a passer. Refused peers' connections are closed and
    /// skipped, so an error is always the listener's own (for example
    /// `EMFILE`) or the new passer's set-up, never a refusal.
    ///
    /// # Cancel safety
    /// This method is cancel safe: a connection is taken from the kernel only
    /// in the poll that completes, or closed there if refused.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let asked = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&asked);
    /// // Refuse the first peer, admit the next.
    /// listener.set_peer_check(move |_peer| seen.fetch_add(1, Ordering::SeqCst) > 0);
    /// let first = fdpass_smol::Passer::connect(dir.join("sock")).await?;
    /// let second = fdpass_smol::Passer::connect(dir.join("sock")).await?;
    /// let server = listener.accept().await?;
    /// assert!(first.recv().await?.is_none()); // its connection was closed
    /// assert_eq!(asked.load(Ordering::SeqCst), 2);
    /// # drop((second, server)); std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub async fn accept(&self) -> Result<Passer, Error> {
        loop {
            // Accept without registering the new stream: the passer registers
            // its own socket.
            let (stream, _addr) = self.inner.read_with(|listener| listener.accept()).await?;
            let socket = std::os::fd::OwnedFd::from(stream);
            let socket = match &self.peer_check {
                Some(check) => match fdpass_core::socket::screen(socket, check) {
                    Some(socket) => socket,
                    None => continue,
                },
                None => socket,
            };
            return Passer::with_config(socket, self.config);
        }
    }

    /// The path the listener is bound at (empty for one built with
    /// `from_fd`, which cannot know it).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// assert_eq!(listener.path(), dir.join("sock"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        self.bound.path()
    }
}
