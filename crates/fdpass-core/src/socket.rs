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

use rustix::io::Errno;
use rustix::net::SocketAddrUnix;

use crate::shared_socket::SharedSocket;

mod adopt;
mod bind;

pub use adopt::{check_listening, tcp_listener_from_fd, unix_listener_from_fd, ListeningFamily};

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
/// Never waits. Connecting to a Unix socket completes at once, except when
/// the listener's backlog is full: a blocking `connect(2)` would then wait
/// for room for as long as the listener (or other clients filling its
/// backlog) likes, so the connect is made non-blocking and a full backlog is
/// an error of kind [`io::ErrorKind::WouldBlock`] (`EAGAIN`, Linux's
/// `unix_stream_connect` in `net/unix/af_unix.c`); try again later. BSD
/// kernels and macOS refuse a full backlog with `ECONNREFUSED` instead.
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
    // The system's error as is (callers match on `raw_os_error`); the
    // adapters' `connect` adds the path and advice with `connect_error`.
    let addr = SocketAddrUnix::new(path.as_ref())?;
    // Non-blocking for the connect only, so that a full backlog is an error
    // at once instead of a wait the listener chooses.
    let socket = platform::socket(Atomicity::AtCreation, true)?;
    rustix::net::connect(&socket, &addr)?;
    rustix::io::ioctl_fionbio(&socket, false)?;
    Ok(socket)
}

/// The error the adapters' `connect` returns when connecting to `path`
/// failed with `e`: the same [`io::ErrorKind`], with the path and what to do
/// in the message (nothing listening, no permission, a path too long for
/// `sun_path`). [`connect`] itself returns the system's error unchanged, so
/// that callers can match on its `raw_os_error`.
///
/// ```
/// use std::io::ErrorKind;
///
/// let dir = std::env::temp_dir().join(format!("fdpass-doc-connect-error-{}", std::process::id()));
/// let path = dir.join("nobody-listens");
/// let raw = fdpass_core::socket::connect(&path).unwrap_err();
/// let err = fdpass_core::socket::connect_error(&path, raw);
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert!(err.to_string().contains("nobody-listens"), "{err}");
/// assert!(err.to_string().contains("start the listener"), "{err}");
/// ```
pub fn connect_error(path: &Path, e: io::Error) -> io::Error {
    let advice = match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOENT) | Some(Errno::CONNREFUSED) => {
            "nothing is listening there; start the listener first or check the path"
        }
        Some(Errno::ACCESS) | Some(Errno::PERM) => {
            "no permission to connect; the listener's mode or a directory on the path keeps this user out"
        }
        Some(Errno::NAMETOOLONG) | Some(Errno::INVAL) => {
            "the path does not fit in a Unix socket address (about 100 bytes); use a shorter one"
        }
        Some(Errno::AGAIN) => "the listener's backlog is full; try again later",
        _ => "check that a listener runs at that path",
    };
    io::Error::new(
        e.kind(),
        format!("connecting to {}: {e}; {advice}", path.display()),
    )
}

/// A listening `AF_UNIX` stream socket bound at a filesystem path.
///
/// [`bind`](Self::bind) behaves like `bind(2)` (std's
/// `UnixListener::bind`) plus the safe replacement of a stale socket file,
/// even in a directory another user owns and whatever other processes do at
/// the same moment:
///
/// - **The same paths, the same failures.** Any path std accepts is accepted
///   (relative, through symlinked directories, up to the full `sun_path`);
///   a path std refuses fails with the same [`io::ErrorKind`]. Anything
///   already at the path (file, directory, FIFO, symlink, dangling or not,
///   a live listener, a socket of another type) is
///   [`io::ErrorKind::AddrInUse`], and is left as it is. The one difference:
///   a socket file with no listener (`connect(2)` says `ECONNREFUSED`) is
///   replaced, and only if it is still that same file at the moment of
///   replacement.
/// - **It never blocks.** Whether something listens is asked with a
///   non-blocking connect: a live listener with a full backlog answers
///   `EAGAIN` (Linux, `net/unix/af_unix.c`, `unix_stream_connect`), which is
///   in use, not stale.
/// - **It never follows a link and changes no file but its own socket.**
///   Every step acts through a descriptor of the directory or of the file
///   it checked, never by a path checked earlier.
/// - **Never more open than asked, not even for an instant.** The socket is
///   bound inside a fresh directory only its owner can enter (mode `0700`,
///   used only through its descriptor), given exactly the asked mode there,
///   whatever the umask, and then moved into place by a rename that never
///   replaces. On Linux the unbound socket also gets the mode with `fchmod`
///   before `bind`, because `unix_bind` creates the file with the socket
///   inode's mode minus the umask (`net/unix/af_unix.c`, `unix_bind_bsd`).
///   The umask is never changed.
/// - **Another user can neither redirect it nor take it over.** Whoever owns
///   the directory can always rename or remove entries in it, ours too, and
///   so prevent a bind there (`bind` then fails, it never serves a path it
///   does not hold); no one else can interfere.
///
/// The listener is non-blocking: [`accept`](Self::accept) returns
/// [`io::ErrorKind::WouldBlock`] when no connection waits, and the listener
/// can be registered with any reactor through [`AsFd`].
///
/// Dropping it never blocks: Linux releases the connections still waiting to
/// be accepted together with the listener, and their queues may hold files a
/// client passed, whose last close can wait as long as that client likes
/// (`unix_release_sock` in `net/unix/af_unix.c`). So the listener is shut
/// down at once (new connections are refused from then on) and closed on a
/// background thread (see [`disposal`](crate::disposal)). The socket file
/// stays at the path, as with std's `UnixListener`.
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
    /// Released off the dropping thread when the listener is dropped: the
    /// connections still waiting to be accepted are released with it, and
    /// their queues may hold files a client chose (see `disposal`).
    socket: SharedSocket,
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
/// [`io::ErrorKind::PermissionDenied`] naming the peer. For code that accepts
/// one connection and wants the refusal as an error; a listener loop uses
/// [`screen`], which cannot be mistaken for a failure of the listener.
///
/// ```
/// use std::sync::Arc;
/// let (a, _b) = fdpass_core::socket::pair()?;
/// let nobody_else: fdpass_core::socket::PeerCheck = Arc::new(|peer| peer.uid == 65534);
/// let err = fdpass_core::socket::admit(a, &nobody_else).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
/// assert!(err.to_string().contains("peer check refused"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn admit(socket: OwnedFd, check: &PeerCheck) -> io::Result<OwnedFd> {
    // A refused peer may already have queued messages carrying descriptors;
    // releasing the socket frees them, and their close can block: the
    // release happens off this thread (see `disposal`).
    let peer = match peer_credentials(&socket) {
        Ok(peer) => peer,
        Err(e) => {
            crate::disposal::release_socket(socket);
            return Err(e);
        }
    };
    if check(&peer) {
        Ok(socket)
    } else {
        crate::disposal::release_socket(socket);
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the peer check refused a connection from {} (uid {}, gid {}) and closed it; widen the check to admit this peer",
                peer.pid
                    .map_or_else(|| "a process".to_owned(), |pid| format!("pid {pid}")),
                peer.uid,
                peer.gid
            ),
        ))
    }
}

/// What every listener of fdpass does with a freshly accepted `socket` when a
/// peer check is set: `Some(socket)` if `check` admits its peer, `None` after
/// closing it otherwise. A refusal is not an error, so an accept loop that
/// stops at the first error (`?` in a mio loop) goes on serving: the check
/// itself sees every refused peer's credentials, the place to log or count
/// them. A peer whose credentials cannot be read (it is already gone) is
/// refused without calling `check`.
///
/// ```
/// use std::sync::Arc;
/// use fdpass_core::socket::{pair, screen, PeerCheck};
///
/// let me = rustix::process::geteuid().as_raw();
/// let same_user: PeerCheck = Arc::new(move |peer| peer.uid == me);
/// let nobody: PeerCheck = Arc::new(|_peer| false);
/// let (a, _b) = pair()?;
/// let (c, _d) = pair()?;
/// assert!(screen(a, &same_user).is_some());
/// assert!(screen(c, &nobody).is_none()); // closed, not an error
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn screen(socket: OwnedFd, check: &PeerCheck) -> Option<OwnedFd> {
    match peer_credentials(&socket) {
        Ok(peer) if check(&peer) => Some(socket),
        _ => {
            // As in `admit`: the refused peer may have queued descriptors
            // whose close can block, so the socket is released off this thread.
            crate::disposal::release_socket(socket);
            None
        }
    }
}

impl Listener {
    /// Binds at `path` with mode `0600`: a listening, non-blocking,
    /// close-on-exec socket. See [`Listener`] for what is guaranteed.
    ///
    /// # Errors
    ///
    /// - [`io::ErrorKind::AddrInUse`]: something is at `path` that is not a
    ///   stale socket file (a live listener, whatever its backlog; any other
    ///   file, directory or link), or it appeared or changed while binding.
    /// - [`io::ErrorKind::InvalidInput`]: `path` is empty, holds a NUL byte or
    ///   does not fit `sun_path` (107 bytes on Linux), as for std.
    /// - [`io::ErrorKind::PermissionDenied`]: no permission to create an
    ///   entry in the directory, or its owner replaced the staging directory
    ///   while `bind` made it.
    /// - Other errors of `open(2)`, `mkdir(2)`, `bind(2)` or `rename(2)` on
    ///   the directory, as the kernel reports them (for example
    ///   [`io::ErrorKind::NotFound`] for a missing directory).
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// # let dir = std::env::temp_dir().join(format!("fdpass-doc-bind-busy-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let first = fdpass_core::socket::Listener::bind(dir.join("sock"))?;
    /// // Something listens there: in use, and the first listener keeps its path.
    /// let err = fdpass_core::socket::Listener::bind(dir.join("sock")).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AddrInUse);
    /// drop(first);
    /// // Now the file is stale: it is replaced.
    /// let _second = fdpass_core::socket::Listener::bind(dir.join("sock"))?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    /// let a group connect), exactly, whatever the umask. `mode` holds
    /// permission bits only: anything beyond `0o777` is
    /// [`io::ErrorKind::InvalidInput`]. Other errors as for
    /// [`bind`](Self::bind).
    ///
    /// If the directory has a default ACL, the file gets it as any new file
    /// there does; its mask is the group bits of `mode`, so named users and
    /// groups get no more than the group was given.
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
        let path = path.as_ref();
        Ok(Listener {
            socket: SharedSocket::new(bind::bind_listening(path, mode)?),
            path: path.to_path_buf(),
            admit: None,
        })
    }

    /// Accepts one waiting connection (close-on-exec), or returns
    /// [`io::ErrorKind::WouldBlock`] when none waits. With a peer check set
    /// ([`set_peer_check`](Self::set_peer_check)), refused peers' connections
    /// are closed and skipped (see [`screen`]): an error is always the
    /// listener's own, never a refusal.
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
        loop {
            let socket = platform::accept(Atomicity::AtCreation, &self.socket)?;
            match &self.admit {
                Some(check) => match screen(socket, check) {
                    Some(socket) => return Ok(socket),
                    None => continue,
                },
                None => return Ok(socket),
            }
        }
    }

    /// Admits only peers whose credentials (`SO_PEERCRED`: pid, uid, gid at
    /// connect time) pass `check`; [`accept`](Self::accept) closes and skips
    /// the others.
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

    /// The path the listener is bound at (empty for one built with
    /// `from_fd`, which cannot know it).
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
        self.socket.into_fd()
    }

    /// A listener built from a listening `AF_UNIX` stream socket inherited
    /// or received from another process (for example one that
    /// [`into_fd`](Self::into_fd) gave up there). It is checked first (see
    /// [`check_listening`]), then made non-blocking and close-on-exec.
    ///
    /// Its [`path`](Self::path) is empty: the kernel reports the address a
    /// socket was bound at, and [`bind`](Self::bind) binds in a staging
    /// directory before moving the file into place, so that address is not
    /// where clients connect. Carry the path along with the descriptor (a
    /// named set's metadata, see [`handover`](crate::handover)) when the new
    /// owner needs it.
    ///
    /// To hand a listener on while keeping it, send a copy; to give it up,
    /// use [`into_fd`](Self::into_fd): dropping a listener shuts the socket
    /// down, for every process that holds it.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when `fd` is not a listening
    /// `AF_UNIX` stream socket (it is closed then); other errors of the
    /// checks or of `fcntl(2)`.
    ///
    /// ```
    /// use fdpass_core::socket::{connect, Listener};
    ///
    /// let dir = std::env::temp_dir().join(format!("fdpass-doc-from-fd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let first = Listener::bind(dir.join("sock"))?;
    /// let moved = Listener::from_fd(first.into_fd())?;
    /// let _client = connect(dir.join("sock"))?;
    /// assert!(moved.accept().is_ok());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// assert!(Listener::from_fd(read_end.into()).is_err());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> io::Result<Listener> {
        let fd = adopt::adopt_listening(fd, ListeningFamily::Unix)?;
        Ok(Listener {
            socket: SharedSocket::new(fd),
            path: PathBuf::new(),
            admit: None,
        })
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
