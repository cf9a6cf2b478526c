//! Accepting passers at a filesystem path.

use std::os::fd::AsFd;
use std::path::Path;

use fdpass_core::socket::{PeerCheck, PeerCredentials};
use fdpass_core::{Config, Error};

use crate::Passer;

/// A listening socket at a filesystem path whose connections become passers.
///
/// Created like [`fdpass_core::socket::Listener`]: mode `0600` unless asked
/// otherwise, with no moment at which it is more open; a stale socket file is
/// replaced, a live one is an error. It must be created inside a tokio
/// runtime with I/O enabled; outside any runtime, binding is an
/// [`Error::Io`] and nothing is bound. Dropping it never blocks, like the
/// core listener's drop (connections still waiting to be accepted are
/// released on a background thread).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-listener-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let listener = fdpass_tokio::Listener::bind(dir.join("sock"))?;
/// let (client, server) = tokio::try_join!(fdpass_tokio::Passer::connect(dir.join("sock")), listener.accept())?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// client.send(read_end.into()).await?;
/// assert!(server.recv().await?.is_some());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub struct Listener {
    /// A copy of `bound`'s socket, registered with the runtime. Declared
    /// first so it is dropped first: its close is then not the last.
    inner: tokio::net::UnixListener,
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
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-bind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let _listener = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// let mode = std::fs::metadata(dir.join("sock"))?.permissions().mode() & 0o777;
    /// assert_eq!(mode, 0o600);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> Result<Listener, Error> {
        Listener::bind_with(path, 0o600, Config::default())
    }

    /// Binds at `path` with mode `0600`; accepted passers use `config`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-bind-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_tokio::Config::default().with_max_fds_per_message(1);
    /// let _listener = fdpass_tokio::Listener::bind_with_config(dir.join("sock"), config)?;
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-bind-with-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_tokio::Config::default().with_max_fds_per_message(1);
    /// let _listener = fdpass_tokio::Listener::bind_with(dir.join("sock"), 0o660, config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind_with(path: impl AsRef<Path>, mode: u32, config: Config) -> Result<Listener, Error> {
        // Refuse a bad config now rather than at every accept.
        config.validate()?;
        // Registering outside a runtime would panic in tokio; checked before
        // anything is bound.
        crate::reactor::require_runtime("a listener")?;
        let bound = fdpass_core::socket::Listener::bind_with_mode(path, mode)?;
        Listener::register(bound, config)
    }

    /// A listener built from a listening `AF_UNIX` stream socket inherited
    /// or received from another process (see
    /// [`fdpass_core::socket::Listener::from_fd`] for the checks); accepted
    /// passers use the default [`Config`]. Inside a tokio runtime only.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] of kind `InvalidInput` when `fd` is not a listening
    /// `AF_UNIX` stream socket, or outside a runtime; `fd` is closed then
    /// (closed, never shut down: other processes holding the socket keep
    /// serving).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-from-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let old = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// let moved = fdpass_tokio::Listener::from_fd(old.into_fd())?;
    /// let (_client, _server) = tokio::try_join!(fdpass_tokio::Passer::connect(dir.join("sock")), moved.accept())?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Listener, Error> {
        Listener::from_fd_with_config(fd, Config::default())
    }

    /// As [`from_fd`](Self::from_fd); accepted passers use `config`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-from-fd-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let old = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// let config = fdpass_tokio::Config::default().with_max_fds_per_message(1);
    /// let _moved = fdpass_tokio::Listener::from_fd_with_config(old.into_fd(), config)?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_fd_with_config(
        fd: std::os::fd::OwnedFd,
        config: Config,
    ) -> Result<Listener, Error> {
        config.validate()?;
        crate::reactor::require_runtime("a listener")?;
        let bound = fdpass_core::socket::Listener::from_fd(fd)?;
        Listener::register(bound, config)
    }

    /// Registers a copy of `bound`'s socket with the runtime. On failure the
    /// socket is closed without being shut down: it may be one another
    /// process still serves on.
    fn register(bound: fdpass_core::socket::Listener, config: Config) -> Result<Listener, Error> {
        let registered = bound
            .as_fd()
            .try_clone_to_owned()
            .map(std::os::unix::net::UnixListener::from)
            .and_then(tokio::net::UnixListener::from_std);
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
    /// successor: it is deregistered from the runtime and returned open and
    /// listening, with the connections waiting to be accepted still queued.
    /// Dropping the listener instead shuts the socket down for every process
    /// that holds it. A peer check does not travel with it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-into-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// let client = fdpass_tokio::Passer::connect(dir.join("sock")).await?;
    /// // The waiting connection stays queued in the socket given up.
    /// let socket = listener.into_fd();
    /// let std_listener = std::os::unix::net::UnixListener::from(socket);
    /// assert!(std_listener.accept().is_ok());
    /// # drop(client); std::fs::remove_dir_all(&dir)?;
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-peer-check-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// let me = rustix::process::getuid().as_raw();
    /// listener.set_peer_check(move |peer| peer.uid == me);
    /// let (_client, _server) = tokio::try_join!(fdpass_tokio::Passer::connect(dir.join("sock")), listener.accept())?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// let refused = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&refused);
    /// // Refuse the first peer, admit the next.
    /// listener.set_peer_check(move |_peer| seen.fetch_add(1, Ordering::SeqCst) > 0);
    /// let first = fdpass_tokio::Passer::connect(dir.join("sock")).await?;
    /// let (second, server) = tokio::try_join!(fdpass_tokio::Passer::connect(dir.join("sock")), listener.accept())?;
    /// assert!(first.recv().await?.is_none()); // its connection was closed
    /// assert_eq!(refused.load(Ordering::SeqCst), 2); // asked about both
    /// # drop((second, server)); std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn accept(&self) -> Result<Passer, Error> {
        loop {
            let (stream, _addr) = self.inner.accept().await?;
            let socket: std::os::fd::OwnedFd = stream.into_std()?.into();
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_tokio::Listener::bind(dir.join("sock"))?;
    /// assert_eq!(listener.path(), dir.join("sock"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        self.bound.path()
    }
}
