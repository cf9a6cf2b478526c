//! Making the connected sockets a passer wraps: pairs, listeners, connections.
//!
//! ```
//! use fdpass_core::{Config, Passer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (ours, theirs) = fdpass_core::socket::pair()?;
//! let passer = Passer::new(ours, Config::default())?;
//! # drop((passer, theirs));
//! # Ok(()) }
//! ```

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::SocketAddrUnix;

use crate::platform::{self, Atomicity};

/// A new connected `SOCK_STREAM` socketpair, both ends close-on-exec
/// (atomically with `SOCK_CLOEXEC`; on macOS, which lacks it, by `fcntl` right
/// after `socketpair`).
///
/// ```
/// let (a, b) = fdpass_core::socket::pair()?;
/// # drop((a, b)); Ok::<(), std::io::Error>(())
/// ```
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(platform::socketpair(Atomicity::AtCreation)?)
}

/// Connects to a [`Listener`] (or any `AF_UNIX` stream listener) at `path`.
/// The returned socket is close-on-exec and blocking; the passer built on it
/// makes it non-blocking.
///
/// Connecting to a Unix socket completes at once unless the listener's
/// backlog is full, in which case this call waits for room like `connect(2)`.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fdpass-doc-connect-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let listener = fdpass_core::socket::Listener::bind(dir.join("sock"))?;
/// let client = fdpass_core::socket::connect(dir.join("sock"))?;
/// # drop((client, listener)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect(path: impl AsRef<Path>) -> io::Result<OwnedFd> {
    let addr = SocketAddrUnix::new(path.as_ref())?;
    let socket = platform::socket(Atomicity::AtCreation, false)?;
    rustix::net::connect(&socket, &addr)?;
    Ok(socket)
}

/// A listening `AF_UNIX` stream socket bound at a filesystem path.
///
/// The socket file is created with mode `0600` (or the mode you choose) with
/// no moment at which it is more open: it is bound inside a fresh private
/// directory, given its mode there, and then renamed into place. A stale
/// socket file left by a dead process is replaced; a path where something is
/// still listening is an error ([`io::ErrorKind::AddrInUse`]).
///
/// The listener is non-blocking: [`accept`](Self::accept) returns
/// [`io::ErrorKind::WouldBlock`] when no connection waits, and the listener
/// can be registered with any reactor through [`AsFd`].
///
/// ```
/// use fdpass_core::socket::{connect, Listener};
///
/// let dir = std::env::temp_dir().join(format!("fdpass-doc-listener-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let listener = Listener::bind(dir.join("sock"))?;
/// let _client = connect(listener.path())?;
/// let _server_side = listener.accept()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Listener {
    socket: OwnedFd,
    path: PathBuf,
    admit: Option<PeerCheck>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("socket", &self.socket)
            .field("path", &self.path)
            .field("peer_check", &self.admit.is_some())
            .finish()
    }
}

/// Who is at the other end of a Unix-domain socket, as the kernel recorded it
/// when the peer connected: `SO_PEERCRED` on Linux and OpenBSD,
/// `LOCAL_PEERCRED` on macOS and FreeBSD, `LOCAL_PEEREID` on NetBSD,
/// `getpeerucred` on illumos.
///
/// ```
/// let (a, _b) = fdpass_core::socket::pair()?;
/// let peer: fdpass_core::socket::PeerCredentials = fdpass_core::socket::peer_credentials(&a)?;
/// assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id at connect time, where the system reports it
    /// (Linux, Android, OpenBSD, NetBSD, illumos); `None` on macOS and
    /// FreeBSD, whose `LOCAL_PEERCRED` carries no process id as read here.
    pub pid: Option<i32>,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// A caller's rule for which peers a [`Listener`] admits.
///
/// ```
/// use std::sync::Arc;
/// use fdpass_core::socket::{admit, pair, PeerCheck};
///
/// let me = rustix::process::geteuid().as_raw();
/// let same_user: PeerCheck = Arc::new(move |peer| peer.uid == me);
/// let (a, _b) = pair()?;
/// assert!(admit(a, &same_user).is_ok());
/// # Ok::<(), std::io::Error>(())
/// ```
pub type PeerCheck = std::sync::Arc<dyn Fn(&PeerCredentials) -> bool + Send + Sync>;

/// The credentials of the process at the other end of `socket`. See
/// [`PeerCredentials`] for the call each system answers.
///
/// ```
/// let (a, _b) = fdpass_core::socket::pair()?;
/// let peer = fdpass_core::socket::peer_credentials(&a)?;
/// if cfg!(target_os = "linux") {
///     assert_eq!(peer.pid, Some(std::process::id() as i32));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn peer_credentials(socket: impl AsFd) -> io::Result<PeerCredentials> {
    let cred = rustix::net::sockopt::socket_peercred(socket)?;
    Ok(PeerCredentials {
        pid: Some(cred.pid.as_raw_pid()),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

/// The credentials of the process at the other end of `socket`. See
/// [`PeerCredentials`] for the call each system answers.
///
/// rustix reads `SO_PEERCRED` on Linux only; the `uds` crate wraps each other
/// system's call (including illumos's `getpeerucred`, which `nix` lacks)
/// behind one safe function, which it offers on a standard `UnixStream`: the
/// socket is duplicated for the call (`F_DUPFD_CLOEXEC`) and the copy closed.
///
/// ```
/// let (a, _b) = fdpass_core::socket::pair()?;
/// let peer = fdpass_core::socket::peer_credentials(&a)?;
/// assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn peer_credentials(socket: impl AsFd) -> io::Result<PeerCredentials> {
    use uds::UnixStreamExt;
    let copy = std::os::unix::net::UnixStream::from(socket.as_fd().try_clone_to_owned()?);
    let cred = copy.initial_peer_credentials()?;
    Ok(PeerCredentials {
        pid: cred.pid().and_then(|pid| i32::try_from(pid.get()).ok()),
        uid: cred.euid(),
        gid: cred.egid().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the system reported the peer's user but no group",
            )
        })?,
    })
}

/// Applies `check` to the peer of a freshly accepted `socket`: `Ok` hands the
/// socket back, a refusal closes it and returns
/// [`io::ErrorKind::PermissionDenied`] naming the peer. Adapters' listeners
/// call this so every one of them enforces the same rule.
///
/// ```
/// use std::sync::Arc;
/// let (a, _b) = fdpass_core::socket::pair()?;
/// let nobody_else: fdpass_core::socket::PeerCheck = Arc::new(|peer| peer.uid == 65534);
/// let err = fdpass_core::socket::admit(a, &nobody_else).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn admit(socket: OwnedFd, check: &PeerCheck) -> io::Result<OwnedFd> {
    let peer = peer_credentials(&socket)?;
    if check(&peer) {
        Ok(socket)
    } else {
        drop(socket);
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refused a connection from {} (uid {}, gid {}): the peer check said no",
                peer.pid
                    .map_or_else(|| "a process".to_owned(), |pid| format!("pid {pid}")),
                peer.uid,
                peer.gid
            ),
        ))
    }
}

impl Listener {
    /// Binds at `path` with mode `0600`. See [`Listener`].
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    ///
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-bind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_core::socket::Listener::bind(dir.join("sock"))?;
    /// let mode = std::fs::metadata(listener.path())?.permissions().mode() & 0o777;
    /// assert_eq!(mode, 0o600);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Listener> {
        Listener::bind_with_mode(path, 0o600)
    }

    /// Binds at `path` with the given permission bits (for example `0o660` to
    /// let a group connect).
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-mode-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_core::socket::Listener::bind_with_mode(dir.join("sock"), 0o660)?;
    /// let mode = std::fs::metadata(listener.path())?.permissions().mode() & 0o777;
    /// assert_eq!(mode, 0o660);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> io::Result<Listener> {
        let path = path.as_ref().to_path_buf();
        refuse_live_listener(&path)?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = private_dir(&parent)?;
        let result = bind_in(&staging, &path, mode);
        let _ = std::fs::remove_dir(&staging);
        result
    }

    /// Accepts one waiting connection (close-on-exec), or returns
    /// [`io::ErrorKind::WouldBlock`] when none waits. With a peer check set
    /// ([`set_peer_check`](Self::set_peer_check)), a refused peer's connection
    /// is closed and reported as [`io::ErrorKind::PermissionDenied`]; accept
    /// again for the next one.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use fdpass_core::socket::{connect, Listener};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = Listener::bind(dir.join("sock"))?;
    /// assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// let _client = connect(listener.path())?;
    /// let server = Passer::new(listener.accept()?, Config::default())?;
    /// # drop(server); std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn accept(&self) -> io::Result<OwnedFd> {
        let socket = platform::accept(Atomicity::AtCreation, &self.socket)?;
        match &self.admit {
            Some(check) => admit(socket, check),
            None => Ok(socket),
        }
    }

    /// Admits only peers whose credentials (`SO_PEERCRED`: pid, uid, gid at
    /// connect time) pass `check`.
    ///
    /// ```
    /// use fdpass_core::socket::{connect, Listener};
    ///
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-peer-check-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = Listener::bind(dir.join("sock"))?;
    /// let me = rustix::process::getuid().as_raw();
    /// listener.set_peer_check(move |peer| peer.uid == me);
    /// let _client = connect(listener.path())?;
    /// assert!(listener.accept().is_ok());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_peer_check(
        &mut self,
        check: impl Fn(&PeerCredentials) -> bool + Send + Sync + 'static,
    ) {
        self.admit = Some(std::sync::Arc::new(check));
    }

    /// The peer check set with [`set_peer_check`](Self::set_peer_check), for
    /// adapters that accept through their own reactor.
    ///
    /// ```
    /// use fdpass_core::socket::{admit, connect, Listener};
    ///
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-peer-check-get-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut listener = Listener::bind(dir.join("sock"))?;
    /// assert!(listener.peer_check().is_none());
    /// let me = rustix::process::geteuid().as_raw();
    /// listener.set_peer_check(move |peer| peer.uid == me);
    /// // An adapter that accepts through its own reactor applies the same rule.
    /// let check = listener.peer_check().expect("a check was set").clone();
    /// let _client = connect(listener.path())?;
    /// let socket = rustix::net::accept(&listener)?;
    /// assert!(admit(socket, &check).is_ok());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_check(&self) -> Option<&PeerCheck> {
        self.admit.as_ref()
    }

    /// The path the listener is bound at.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_core::socket::Listener::bind(dir.join("sock"))?;
    /// assert_eq!(listener.path(), dir.join("sock"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening socket, for example to hand it to a successor process.
    /// A peer check does not travel with it.
    ///
    /// ```
    /// use std::os::unix::net::UnixListener;
    ///
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-into-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_core::socket::Listener::bind(dir.join("sock"))?;
    /// let std_listener = UnixListener::from(listener.into_fd());
    /// let _client = fdpass_core::socket::connect(dir.join("sock"))?;
    /// let (_server_side, _addr) = std_listener.accept()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_fd(self) -> OwnedFd {
        self.socket
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Errors if something is listening at `path`; a stale socket file is left
/// for the rename to replace, anything that is not a socket is an error.
fn refuse_live_listener(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if !meta.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
        )),
        Ok(_) => match connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "a process is listening at {}; stop it or choose another path",
                    path.display()
                ),
            )),
            Err(e) if e.raw_os_error() == Some(Errno::CONNREFUSED.raw_os_error()) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// A new directory only we can enter, beside the final path (same filesystem,
/// so the rename is atomic).
fn private_dir(parent: &Path) -> io::Result<PathBuf> {
    for attempt in 0u32..100 {
        let name = format!(".fdpass-bind-{}-{}-{attempt}", std::process::id(), unique());
        let dir = parent.join(name);
        match rustix::fs::mkdir(&dir, Mode::from_raw_mode(0o700)) {
            Ok(()) => return Ok(dir),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a private staging directory",
    ))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The permission bits of `mode` as the system's `mode_t` (16 bits on
/// macOS and FreeBSD, 32 elsewhere); bits above `0o7777` mean nothing to
/// `chmod` and are dropped.
fn permission_bits(mode: u32) -> rustix::fs::RawMode {
    (mode & 0o7777) as rustix::fs::RawMode
}

fn bind_in(staging: &Path, path: &Path, mode: u32) -> io::Result<Listener> {
    let staged = staging.join(
        path.file_name()
            .unwrap_or_else(|| std::ffi::OsStr::new("sock")),
    );
    let socket = platform::socket(Atomicity::AtCreation, true)?;
    rustix::net::bind(&socket, &SocketAddrUnix::new(&staged)?)?;
    let placed = rustix::fs::chmod(&staged, Mode::from_raw_mode(permission_bits(mode)))
        .map_err(io::Error::from)
        .and_then(|()| rustix::net::listen(&socket, 128).map_err(io::Error::from))
        .and_then(|()| std::fs::rename(&staged, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    Ok(Listener {
        socket,
        path: path.to_path_buf(),
        admit: None,
    })
}
