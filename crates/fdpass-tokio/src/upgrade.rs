//! Upgrading a running tokio server without refusing a connection.
//!
//! The old process holds its listeners in an [`Upgrader`] (as a named set,
//! [`NamedFds`]); on a signal it starts a successor with
//! [`Upgrader::upgrade_by_spawning`] (or accepts one started by someone else
//! on a [`HandoverListener`] and calls [`Upgrader::upgrade_over`]). The
//! successor takes the listeners by name ([`Successor::inherit`] or
//! [`Successor::connect`]), sets itself up, and says
//! [`ready`](Successor::ready). Only then does the upgrade return `Ok` in
//! the old process, which stops accepting, drains its connections and
//! exits. Both processes accept on the same listening sockets meanwhile, so
//! no connection is refused at any moment. A successor that crashes, hangs
//! or declines is killed (if this process started it) and the old process
//! goes on serving: [`UpgradeError`] says what happened, within
//! [`Upgrader::with_ready_timeout`].
//!
//! This is `fdpass_core::upgrade` (blocking, runtime-free; usable from smol
//! with `smol::unblock`) run on tokio's blocking threads, plus tokio
//! listener helpers. `examples/upgrade.rs` is a complete server;
//! `docs/handover.md` describes the protocol and compares it with other
//! tools.
//!
//! ```
//! use fdpass_tokio::upgrade::{tcp_listener_copy, Upgrader, UpgradeError};
//! use fdpass_core::handover::NamedFds;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let mut fds = NamedFds::new();
//! fds.insert("http", tcp_listener_copy(&listener)?)?;
//! let upgrader = Upgrader::new(fds);
//! // `false` stands for a successor that crashes before it is ready: the
//! // old process keeps its listener and serves on.
//! let err = upgrader.upgrade_by_spawning(std::process::Command::new("false")).await.unwrap_err();
//! assert!(matches!(err, UpgradeError::SuccessorExited { .. }));
//! let _client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
//! # Ok(()) }
//! ```

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub use fdpass_core::handover::NamedFds;
pub use fdpass_core::upgrade::{UpgradeError, Upgraded, DEFAULT_READY_TIMEOUT};

/// The old process's side of an upgrade: the named descriptors to hand on,
/// one upgrade at a time. Cheap to clone (shared).
///
/// ```
/// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
/// assert!(!upgrader.is_upgrading());
/// ```
#[derive(Debug, Clone)]
pub struct Upgrader {
    inner: Arc<fdpass_core::upgrade::Upgrader>,
}

impl Upgrader {
    /// An upgrader that hands copies of `fds` to each successor.
    ///
    /// ```
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
    /// assert!(upgrader.fds().is_empty());
    /// ```
    pub fn new(fds: NamedFds) -> Upgrader {
        Upgrader {
            inner: Arc::new(fdpass_core::upgrade::Upgrader::new(fds)),
        }
    }

    /// As [`fdpass_core::upgrade::Upgrader::with_ready_timeout`]. Call it
    /// before cloning: on an upgrader already cloned it changes nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default())
    ///     .with_ready_timeout(Duration::from_secs(3));
    /// assert_eq!(upgrader.ready_timeout(), Duration::from_secs(3));
    /// ```
    pub fn with_ready_timeout(self, timeout: Duration) -> Upgrader {
        self.map(|inner| Ok(inner.with_ready_timeout(timeout)))
            .unwrap_or_else(|(upgrader, _)| upgrader)
    }

    /// As [`fdpass_core::upgrade::Upgrader::with_pid_file`]: writes this
    /// process's pid now, and each ready successor's; call it before
    /// cloning.
    ///
    /// # Errors
    ///
    /// Writing the pid file failed, or the upgrader was cloned already
    /// ([`io::ErrorKind::Other`]).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("fdpass-tokio-doc-pid-{}", std::process::id()));
    /// let _upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default()).with_pid_file(&path)?;
    /// assert_eq!(std::fs::read_to_string(&path)?.trim(), std::process::id().to_string());
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_pid_file(self, path: impl AsRef<Path>) -> io::Result<Upgrader> {
        self.map(|inner| inner.with_pid_file(path))
            .map_err(|(_, e)| e)
    }

    fn map(
        self,
        f: impl FnOnce(fdpass_core::upgrade::Upgrader) -> io::Result<fdpass_core::upgrade::Upgrader>,
    ) -> Result<Upgrader, (Upgrader, io::Error)> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                // `with_pid_file` consumes the upgrader even when it fails;
                // keep a copy of the set to rebuild it then.
                let timeout = inner.ready_timeout();
                let fds = inner.fds().try_clone();
                match f(inner) {
                    Ok(inner) => Ok(Upgrader {
                        inner: Arc::new(inner),
                    }),
                    Err(e) => {
                        let rebuilt = fdpass_core::upgrade::Upgrader::new(fds.unwrap_or_default())
                            .with_ready_timeout(timeout);
                        Err((
                            Upgrader {
                                inner: Arc::new(rebuilt),
                            },
                            e,
                        ))
                    }
                }
            }
            Err(shared) => Err((
                Upgrader { inner: shared },
                io::Error::other("the upgrader was cloned already; configure it before cloning"),
            )),
        }
    }

    /// The bound on the wait for a successor's answer.
    ///
    /// ```
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
    /// assert_eq!(upgrader.ready_timeout(), fdpass_tokio::upgrade::DEFAULT_READY_TIMEOUT);
    /// ```
    pub fn ready_timeout(&self) -> Duration {
        self.inner.ready_timeout()
    }

    /// The descriptors handed to each successor.
    ///
    /// ```
    /// assert_eq!(fdpass_tokio::upgrade::Upgrader::new(Default::default()).fds().len(), 0);
    /// ```
    pub fn fds(&self) -> &NamedFds {
        self.inner.fds()
    }

    /// Whether an upgrade is under way.
    ///
    /// ```
    /// assert!(!fdpass_tokio::upgrade::Upgrader::new(Default::default()).is_upgrading());
    /// ```
    pub fn is_upgrading(&self) -> bool {
        self.inner.is_upgrading()
    }

    /// Starts `command` as the successor and hands over to it (see
    /// [`fdpass_core::upgrade::Upgrader::upgrade_by_spawning`]), on a
    /// blocking thread: the runtime goes on serving meanwhile. Resolves
    /// when the successor is ready, or with the reason it is not, at most
    /// [`ready_timeout`](Self::ready_timeout) after the spawn.
    ///
    /// # Errors
    ///
    /// As the core's; a blocking thread that could not run is
    /// [`UpgradeError::Spawn`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use fdpass_tokio::upgrade::{Upgrader, UpgradeError};
    /// let upgrader = Upgrader::new(Default::default());
    /// let err = upgrader.upgrade_by_spawning(std::process::Command::new("/nonexistent")).await.unwrap_err();
    /// assert!(matches!(err, UpgradeError::Spawn(_)));
    /// # }
    /// ```
    pub async fn upgrade_by_spawning(
        &self,
        mut command: Command,
    ) -> Result<Upgraded, UpgradeError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.upgrade_by_spawning(&mut command)).await
    }

    /// Hands over to a successor that connected to this process, `socket`
    /// being its accepted connection (see [`HandoverListener`] and
    /// [`fdpass_core::upgrade::Upgrader::upgrade_over`]).
    ///
    /// # Errors
    ///
    /// As the core's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use fdpass_tokio::upgrade::{HandoverListener, Successor, Upgrader};
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-upgrade-over-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let control = HandoverListener::bind(dir.join("upgrade.sock"))?;
    /// let upgrader = Upgrader::new(Default::default());
    /// let old = async {
    ///     let socket = control.accept().await?;
    ///     Ok::<_, Box<dyn std::error::Error>>(upgrader.upgrade_over(socket).await?)
    /// };
    /// let new = async {
    ///     let successor = Successor::connect(dir.join("upgrade.sock"), std::time::Duration::from_secs(10)).await?;
    ///     Ok::<_, Box<dyn std::error::Error>>(successor.ready(std::time::Duration::from_secs(10)).await?)
    /// };
    /// let (upgraded, ()) = tokio::try_join!(old, new)?;
    /// assert_eq!(upgraded.pid, Some(std::process::id()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn upgrade_over(&self, socket: OwnedFd) -> Result<Upgraded, UpgradeError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.upgrade_over(socket)).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UpgradeError> + Send + 'static,
) -> Result<T, UpgradeError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(UpgradeError::Spawn(io::Error::other(format!(
            "the upgrade's blocking task did not complete: {e}"
        )))),
    }
}

/// The new process's side: the descriptors handed over, and "ready".
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), fdpass_tokio::upgrade::UpgradeError> {
/// // A process started normally is not a successor.
/// assert!(fdpass_tokio::upgrade::Successor::inherit(std::time::Duration::from_secs(1)).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Successor {
    inner: fdpass_core::upgrade::Successor,
}

impl Successor {
    /// The hand-over this process was started for by
    /// [`Upgrader::upgrade_by_spawning`], or `None` when it was not started
    /// by an upgrade (see [`fdpass_core::upgrade::Successor::inherit`]).
    ///
    /// # Errors
    ///
    /// As the core's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), fdpass_tokio::upgrade::UpgradeError> {
    /// match fdpass_tokio::upgrade::Successor::inherit(std::time::Duration::from_secs(10)).await? {
    ///     Some(successor) => {
    ///         // take the listeners, then ready()
    ///         drop(successor)
    ///     }
    ///     None => { /* bind afresh */ }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn inherit(timeout: Duration) -> Result<Option<Successor>, UpgradeError> {
        let inner = blocking(move || fdpass_core::upgrade::Successor::inherit(timeout)).await?;
        Ok(inner.map(|inner| Successor { inner }))
    }

    /// Connects to an old process's [`HandoverListener`] at `path` and
    /// receives the hand-over, waiting at most `timeout` for it.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::Spawn`] when the connection cannot be made (nothing
    /// listens at `path`); otherwise as
    /// [`fdpass_core::upgrade::Successor::from_connection`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = fdpass_tokio::upgrade::Successor::connect("/nonexistent/upgrade.sock", std::time::Duration::from_secs(1)).await.unwrap_err();
    /// assert!(matches!(err, fdpass_tokio::upgrade::UpgradeError::Spawn(_)));
    /// # }
    /// ```
    pub async fn connect(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Successor, UpgradeError> {
        let socket = fdpass_core::socket::connect(path).map_err(UpgradeError::Spawn)?;
        let inner =
            blocking(move || fdpass_core::upgrade::Successor::from_connection(socket, timeout))
                .await?;
        Ok(Successor { inner })
    }

    /// The descriptors handed over, to take by name. Those not taken when
    /// [`ready`](Self::ready) or [`fail`](Self::fail) is called are closed.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut successor = fdpass_tokio::upgrade::Successor::inherit(std::time::Duration::from_secs(10)).await?.expect("started by an upgrade");
    /// let http = fdpass_tokio::upgrade::tcp_listener(successor.fds().take("http").expect("handed over"))?;
    /// # drop(http); Ok(()) }
    /// ```
    pub fn fds(&mut self) -> &mut NamedFds {
        self.inner.fds()
    }

    /// Tells the old process this one is ready (see
    /// [`fdpass_core::upgrade::Successor::ready`]): install signal handlers
    /// and take every listener first.
    ///
    /// # Errors
    ///
    /// As the core's.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(successor) = fdpass_tokio::upgrade::Successor::inherit(std::time::Duration::from_secs(10)).await? {
    ///     successor.ready(std::time::Duration::from_secs(10)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ready(self, timeout: Duration) -> Result<(), UpgradeError> {
        let inner = self.inner;
        blocking(move || inner.ready(timeout)).await
    }

    /// Tells the old process this one will not take over, and why.
    ///
    /// # Errors
    ///
    /// As the core's.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(successor) = fdpass_tokio::upgrade::Successor::inherit(std::time::Duration::from_secs(10)).await? {
    ///     successor.fail("the configuration does not parse", std::time::Duration::from_secs(10)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn fail(self, reason: &str, timeout: Duration) -> Result<(), UpgradeError> {
        let inner = self.inner;
        let reason = reason.to_owned();
        blocking(move || inner.fail(&reason, timeout)).await
    }
}

/// A control path at which a successor started by someone else (an
/// operator, a supervisor) asks for the hand-over, HAProxy `-x` style:
/// mode `0600`, and only peers of this process's effective user are
/// admitted (others are closed unanswered).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-handover-listener-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let control = fdpass_tokio::upgrade::HandoverListener::bind(dir.join("upgrade.sock"))?;
/// assert_eq!(control.path(), dir.join("upgrade.sock"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HandoverListener {
    /// A copy registered with the runtime; dropped first.
    inner: tokio::net::UnixListener,
    /// The socket itself, with the same-user peer check.
    bound: fdpass_core::socket::Listener,
}

impl HandoverListener {
    /// Binds at `path` (see [`fdpass_core::socket::Listener::bind`]), inside
    /// a tokio runtime.
    ///
    /// # Errors
    ///
    /// As the core listener's bind; outside a runtime, an error of kind
    /// `Other`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-handover-bind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let _control = fdpass_tokio::upgrade::HandoverListener::bind(dir.join("upgrade.sock"))?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<HandoverListener> {
        crate::reactor::require_runtime("a hand-over listener")?;
        let mut bound = fdpass_core::socket::Listener::bind(path)?;
        let me = rustix::process::geteuid().as_raw();
        bound.set_peer_check(move |peer| peer.uid == me);
        let copy = bound.as_fd().try_clone_to_owned()?;
        let inner =
            tokio::net::UnixListener::from_std(std::os::unix::net::UnixListener::from(copy))?;
        Ok(HandoverListener { inner, bound })
    }

    /// Waits for a successor of the same user to connect; pass its
    /// connection to [`Upgrader::upgrade_over`]. Cancel safe.
    ///
    /// # Errors
    ///
    /// The listener's own (`accept(2)`), never a refused peer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-handover-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let control = fdpass_tokio::upgrade::HandoverListener::bind(dir.join("upgrade.sock"))?;
    /// let _client = std::os::unix::net::UnixStream::connect(dir.join("upgrade.sock"))?;
    /// let _socket = control.accept().await?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn accept(&self) -> io::Result<OwnedFd> {
        loop {
            let (stream, _addr) = self.inner.accept().await?;
            let socket: OwnedFd = stream.into_std()?.into();
            let admitted = match self.bound.peer_check() {
                Some(check) => fdpass_core::socket::screen(socket, check),
                None => Some(socket),
            };
            if let Some(socket) = admitted {
                return Ok(socket);
            }
        }
    }

    /// The control path.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-tokio-doc-handover-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let control = fdpass_tokio::upgrade::HandoverListener::bind(dir.join("upgrade.sock"))?;
    /// assert!(control.path().ends_with("upgrade.sock"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &Path {
        self.bound.path()
    }
}

/// A tokio TCP listener built from a listening TCP socket inherited or
/// received (checked, made non-blocking and close-on-exec: see
/// [`fdpass_core::socket::tcp_listener_from_fd`]), inside a runtime.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] when `fd` is not a listening TCP socket;
/// registering with the runtime failed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let copy = fdpass_tokio::upgrade::tcp_listener(fdpass_tokio::upgrade::tcp_listener_copy(&listener)?)?;
/// assert_eq!(copy.local_addr()?, listener.local_addr()?);
/// # Ok(()) }
/// ```
pub fn tcp_listener(fd: OwnedFd) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(fdpass_core::socket::tcp_listener_from_fd(fd)?)
}

/// A copy of `listener`'s socket (`F_DUPFD_CLOEXEC`), to put in the set an
/// [`Upgrader`] hands on while the listener goes on accepting here.
///
/// # Errors
///
/// The `dup` failed (for example `EMFILE`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let copy = std::net::TcpListener::from(fdpass_tokio::upgrade::tcp_listener_copy(&listener)?);
/// assert_eq!(copy.local_addr()?, listener.local_addr()?);
/// # Ok(()) }
/// ```
pub fn tcp_listener_copy(listener: &tokio::net::TcpListener) -> io::Result<OwnedFd> {
    listener.as_fd().try_clone_to_owned()
}
