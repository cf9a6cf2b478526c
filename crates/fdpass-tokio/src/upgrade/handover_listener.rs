//! The control path where a successor started by someone else asks for the hand-over.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

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
    /// connection to [`Upgrader::upgrade_over`](super::Upgrader::upgrade_over). Cancel safe.
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
