//! Accepting passers at a filesystem path.

use std::os::unix::net::UnixListener;
use std::path::Path;

use async_io::Async;
use fdpass_core::{Config, Error};

use crate::Passer;

/// A listening socket at a filesystem path whose connections become passers.
///
/// Created like [`fdpass_core::socket::Listener`]: mode `0600` unless asked
/// otherwise, with no moment at which it is more open; a stale socket file is
/// replaced, a live one is an error.
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
#[derive(Debug)]
pub struct Listener {
    inner: Async<UnixListener>,
    config: Config,
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
        let listener = fdpass_core::socket::Listener::bind_with_mode(path, mode)?;
        // The core listener is created non-blocking already.
        let inner = Async::new_nonblocking(UnixListener::from(listener.into_fd()))?;
        Ok(Listener { inner, config })
    }

    /// Waits for the next connection and wraps it in a passer.
    ///
    /// # Cancel safety
    /// This method is cancel safe: a connection is taken from the kernel only
    /// in the poll that completes.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let client = fdpass_smol::Passer::connect(dir.join("sock")).await?;
    /// let server = listener.accept().await?;
    /// client.close();
    /// assert!(server.recv().await?.is_none());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub async fn accept(&self) -> Result<Passer, Error> {
        // Accept without registering the new stream: the passer registers
        // its own socket.
        let (stream, _addr) = self.inner.read_with(|listener| listener.accept()).await?;
        Passer::with_config(stream.into(), self.config)
    }
}
