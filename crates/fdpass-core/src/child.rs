//! Handing one end of a new connection to a child process.
//!
//! Replaces AnyEvent::FDpasser's fork + `i_am_parent`/`i_am_child`: the
//! parent makes a [`Handoff`], lets it [`configure`](Handoff::configure) the
//! `Command` (the child inherits its end at the same descriptor number, named
//! in the environment variable [`ENV_VAR`]), spawns, and keeps
//! [`Handoff::finish`]'s end. The child calls [`adopt_inherited`].
//!
//! Only the child being spawned inherits the descriptor: it stays
//! close-on-exec in the parent, and is made inheritable in the child between
//! fork and exec. Other threads spawning processes at the same time do not
//! leak it. Only that child can adopt it: the environment also names the
//! socket's identity ([`ID_VAR`]), so the child's own children, which
//! inherit the variables but not the socket, cannot take over whatever else
//! sits at that number.
//!
//! ```
//! use std::process::Command;
//! use fdpass_core::child::Handoff;
//! use fdpass_core::{Config, Passer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let handoff = Handoff::new()?;
//! // `true` stands in for a worker that calls `adopt_inherited`.
//! let mut command = Command::new("true");
//! handoff.configure(&mut command);
//! let mut child = command.spawn()?;
//! let passer = Passer::new(handoff.finish(), Config::default())?;
//! assert!(child.wait()?.success());
//! # drop(passer);
//! # Ok(()) }
//! ```
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::FdFlags;

/// The environment variable that tells a child which descriptor it inherited.
///
/// ```
/// use std::process::Command;
/// use fdpass_core::child::{Handoff, ENV_VAR};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handoff = Handoff::new()?;
/// let mut command = Command::new("sh");
/// command.args(["-c", "echo $FDPASS_FD"]);
/// handoff.configure(&mut command);
/// let configured = command.get_envs().find(|(key, _)| *key == ENV_VAR).and_then(|(_, value)| value);
/// let configured = configured.expect("configure sets it").to_owned();
/// // The child sees the number of the descriptor it inherited.
/// let output = command.output()?;
/// assert_eq!(String::from_utf8(output.stdout)?.trim(), configured);
/// # Ok(()) }
/// ```
pub const ENV_VAR: &str = "FDPASS_FD";

/// The environment variable that names *which* socket was handed off: its
/// device and inode numbers as `fstat(2)` reports them, in decimal, as
/// `<st_dev>:<st_ino>` (for example `8:123456`).
///
/// [`ENV_VAR`] alone cannot tell the process a hand-off was made for from
/// its descendants: the environment is inherited, the socket is not (the
/// adopter makes it close-on-exec again). A descendant that has some other
/// file open at the same number would otherwise take it over while its real
/// owner still holds it, and the process aborts on the second close (an I/O
/// safety violation). An open socket's inode identifies it uniquely, so
/// [`adopt_inherited`] adopts only the very socket the parent configured.
///
/// systemd guards `LISTEN_FDS` with `LISTEN_PID` instead, which it sets in
/// the child after `fork`. `std::process::Command` builds the child's
/// environment before it forks, so the child's pid cannot be put in it
/// without an exec wrapper; the socket's identity is known before the spawn.
/// A parent written in another language hands off a socket by setting both
/// variables.
///
/// ```
/// use std::process::Command;
/// use fdpass_core::child::{Handoff, ID_VAR};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handoff = Handoff::new()?;
/// let mut command = Command::new("sh");
/// command.args(["-c", "echo $FDPASS_SOCKET_ID"]);
/// handoff.configure(&mut command);
/// let output = command.output()?;
/// let id = String::from_utf8(output.stdout)?;
/// let (dev, ino) = id.trim().split_once(':').expect("<st_dev>:<st_ino>");
/// assert!(dev.parse::<u64>().is_ok() && ino.parse::<u64>().is_ok());
/// # assert_eq!(ID_VAR, "FDPASS_SOCKET_ID");
/// # Ok(()) }
/// ```
pub const ID_VAR: &str = "FDPASS_SOCKET_ID";

/// Why [`adopt_inherited`] took no descriptor. Nothing was adopted and no
/// descriptor was closed in any of these cases.
///
/// Converts into [`io::Error`] (kind in each variant's docs) and into
/// [`Error::Inherit`](crate::Error::Inherit).
///
/// ```
/// use fdpass_core::child::InheritError;
///
/// let err = InheritError::NotHandedOff;
/// assert!(err.to_string().contains("not started by a hand-off"));
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotConnected);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InheritError {
    /// [`ENV_VAR`] is not set: this process was not started by a hand-off
    /// (`io::ErrorKind::NotConnected`). A program that can also run on its
    /// own matches on this one.
    NotHandedOff,
    /// A hand-off variable is missing or is not in the documented format
    /// (`io::ErrorKind::InvalidInput`): the parent did not set up the
    /// hand-off with [`Handoff::configure`].
    Malformed {
        /// The variable at fault, [`ENV_VAR`] or [`ID_VAR`].
        variable: &'static str,
        /// Its value, or `None` when it is not set.
        value: Option<String>,
    },
    /// The variables name a socket that is not open at that number in this
    /// process (`io::ErrorKind::PermissionDenied`): they were inherited from
    /// an ancestor's hand-off, which belonged to the process it was made
    /// for. Whatever is open at that number (if anything) belongs to someone
    /// else and was left alone.
    NotForThisProcess {
        /// The descriptor number [`ENV_VAR`] names.
        fd: RawFd,
    },
    /// This process already adopted its inherited socket
    /// (`io::ErrorKind::AlreadyExists`); it has one owner, the first caller.
    AlreadyAdopted,
}

impl fmt::Display for InheritError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InheritError::NotHandedOff => write!(
                f,
                "this process was not started by a hand-off ({ENV_VAR} is not set); start it with Handoff::configure or an adapter's spawn helper, or connect another way"
            ),
            InheritError::Malformed { variable, value: None } => write!(
                f,
                "{variable} is not set although {ENV_VAR} is; the parent must set up the hand-off with Handoff::configure (or set both {ENV_VAR} and {ID_VAR})"
            ),
            InheritError::Malformed { variable, value: Some(value) } => write!(
                f,
                "{variable}={value:?} is not in the hand-off format; the parent must set it with Handoff::configure"
            ),
            InheritError::NotForThisProcess { fd } => write!(
                f,
                "descriptor {fd} is not the socket handed off ({ENV_VAR} and {ID_VAR} were inherited from an ancestor's hand-off); it was left alone; remove both variables from the environment of programs that are not hand-off workers"
            ),
            InheritError::AlreadyAdopted => f.write_str(
                "the inherited socket was already adopted in this process; keep the first passer (clone it) instead of adopting again",
            ),
        }
    }
}

impl std::error::Error for InheritError {}

impl From<InheritError> for io::Error {
    fn from(e: InheritError) -> Self {
        let kind = match e {
            InheritError::NotHandedOff => io::ErrorKind::NotConnected,
            InheritError::Malformed { .. } => io::ErrorKind::InvalidInput,
            InheritError::NotForThisProcess { .. } => io::ErrorKind::PermissionDenied,
            InheritError::AlreadyAdopted => io::ErrorKind::AlreadyExists,
        };
        io::Error::new(kind, e)
    }
}

/// A socketpair whose second end is about to be inherited by a child.
///
/// ```no_run
/// use std::process::Command;
/// use fdpass_core::child::Handoff;
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let handoff = Handoff::new()?;
/// let mut command = Command::new("/usr/bin/worker");
/// handoff.configure(&mut command);
/// let child = command.spawn()?;
/// let passer = Passer::new(handoff.finish(), Config::default())?;
/// # drop((child, passer)); Ok(()) }
/// ```
#[derive(Debug)]
pub struct Handoff {
    parent: OwnedFd,
    child: OwnedFd,
    /// The child end's [`ID_VAR`] value.
    id: String,
}

impl Handoff {
    /// A new `SOCK_STREAM` socketpair, both ends close-on-exec.
    ///
    /// ```
    /// use rustix::io::FdFlags;
    ///
    /// let handoff = fdpass_core::child::Handoff::new()?;
    /// let ours = handoff.finish(); // no spawn: just our end
    /// assert!(rustix::io::fcntl_getfd(&ours)?.contains(FdFlags::CLOEXEC));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Handoff> {
        let (parent, child) = crate::socket::pair()?;
        // A parent without standard descriptors (a daemon that closed them)
        // gets the lowest free numbers, 0 to 2, from socketpair. In the
        // child the spawn sets up stdin, stdout and stderr over those
        // numbers (or leaves the socket there as one of them), so the
        // child's end must live above them.
        let child = if child.as_raw_fd() <= 2 {
            rustix::io::fcntl_dupfd_cloexec(&child, 3)?
        } else {
            child
        };
        let id = identity(child.as_fd())?;
        Ok(Handoff { parent, child, id })
    }

    /// Makes `command`'s child inherit the child end at its current number,
    /// sets [`ENV_VAR`] to that number and [`ID_VAR`] to the socket's
    /// identity. Call before every spawn that should receive it.
    ///
    /// Only that child can adopt the socket: its own children inherit the
    /// variables but not the socket, and [`adopt_inherited`] refuses them.
    ///
    /// Spawn while this hand-off lives (before [`finish`](Self::finish)). A
    /// command spawned after it was dropped or finished fails to spawn
    /// (`EBADF`) rather than pass the child whatever file of this process
    /// then has the number.
    ///
    /// ```
    /// use std::process::Command;
    /// use fdpass_core::child::{Handoff, ENV_VAR};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let handoff = Handoff::new()?;
    /// let mut command = Command::new("true");
    /// handoff.configure(&mut command);
    /// assert!(command.get_envs().any(|(key, _)| key == ENV_VAR));
    /// assert!(command.status()?.success());
    /// # drop(handoff.finish());
    /// # Ok(()) }
    /// ```
    pub fn configure(&self, command: &mut Command) {
        let fd = self.child.as_raw_fd();
        command.env(ENV_VAR, fd.to_string());
        command.env(ID_VAR, &self.id);
        // The command may be spawned after this hand-off is gone, when the
        // number is closed or names another file of the parent's: the child
        // then checks it is still the very socket, and the spawn fails
        // rather than pass that file on.
        let (dev, ino) = match rustix::fs::fstat(&self.child) {
            Ok(stat) => (Some(stat.st_dev), Some(stat.st_ino)),
            Err(_) => (None, None),
        };
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed. It makes an fstat and an fcntl
        // system call through rustix (no allocation, no lock) on the number
        // the child end had; a number closed since only makes them fail
        // with EBADF, and one reused for another file is told apart by its
        // identity and left alone.
        unsafe {
            command.pre_exec(move || {
                let borrowed = BorrowedFd::borrow_raw(fd);
                let stat = rustix::fs::fstat(borrowed)?;
                if Some(stat.st_dev) != dev || Some(stat.st_ino) != ino {
                    return Err(io::Error::from(rustix::io::Errno::BADF));
                }
                rustix::io::fcntl_setfd(borrowed, FdFlags::empty()).map_err(io::Error::from)
            });
        }
    }

    /// After the spawn: closes our copy of the child's end and returns ours.
    ///
    /// ```
    /// use std::process::Command;
    /// use std::time::Instant;
    /// use fdpass_core::child::Handoff;
    /// use fdpass_core::{Config, Event, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let handoff = Handoff::new()?;
    /// let mut command = Command::new("true");
    /// handoff.configure(&mut command);
    /// assert!(command.status()?.success());
    /// let mut passer = Passer::new(handoff.finish(), Config::default())?;
    /// // The child exited without sending; with our copy of its end closed too,
    /// // ours reads end-of-stream.
    /// passer.push_recv()?;
    /// passer.handle_readable(Instant::now());
    /// assert!(matches!(passer.poll_event(), Some(Event::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn finish(self) -> OwnedFd {
        drop(self.child);
        self.parent
    }
}

/// Set once a process adopted its inherited descriptor, so that no two owners
/// can ever close it.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// In the child: takes ownership of the socket named by [`ENV_VAR`] and makes
/// it close-on-exec again, so the child's own children do not inherit it.
///
/// The socket is adopted only if it is the one the parent handed off
/// ([`ID_VAR`] matches what is open at that number), so a descendant that
/// inherited the variables but not the socket cannot take over an unrelated
/// descriptor that happens to sit at the same number. The variables stay in
/// the environment (removing them is not thread-safe); they are harmless to
/// descendants for that reason.
///
/// # Errors
/// An [`InheritError`]: [`NotHandedOff`](InheritError::NotHandedOff) when
/// this process was not started by a hand-off,
/// [`NotForThisProcess`](InheritError::NotForThisProcess) when the variables
/// came from an ancestor's hand-off,
/// [`Malformed`](InheritError::Malformed) or
/// [`AlreadyAdopted`](InheritError::AlreadyAdopted).
///
/// ```
/// use fdpass_core::child::{adopt_inherited, InheritError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// match adopt_inherited() {
///     Ok(socket) => {
///         let passer = fdpass_core::Passer::new(socket, fdpass_core::Config::default())?;
///         # drop(passer);
///     }
///     // Started by hand, not by a parent's hand-off (as this example is).
///     Err(InheritError::NotHandedOff) => {}
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(()) }
/// ```
pub fn adopt_inherited() -> Result<OwnedFd, InheritError> {
    let value = match std::env::var_os(ENV_VAR) {
        None => return Err(InheritError::NotHandedOff),
        Some(value) => value,
    };
    let malformed = |variable, value: Option<&std::ffi::OsStr>| InheritError::Malformed {
        variable,
        value: value.map(|v| v.to_string_lossy().into_owned()),
    };
    let fd: RawFd = value
        .to_str()
        .and_then(|v| v.parse().ok())
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| malformed(ENV_VAR, Some(&value)))?;
    let expected = std::env::var_os(ID_VAR).ok_or_else(|| malformed(ID_VAR, None))?;
    let expected = expected
        .to_str()
        .filter(|id| is_identity(id))
        .ok_or_else(|| malformed(ID_VAR, Some(&expected)))?
        .to_owned();
    // Check what the number names before owning it: the very socket handed
    // off. Anything else open there belongs to someone else in this process.
    // SAFETY: borrowed for this one fstat; a number that is not open makes it
    // fail with EBADF, and nothing else uses the borrow.
    let found = identity(unsafe { BorrowedFd::borrow_raw(fd) });
    if found.ok().as_deref() != Some(expected.as_str()) {
        return Err(InheritError::NotForThisProcess { fd });
    }
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return Err(InheritError::AlreadyAdopted);
    }
    // SAFETY: the descriptor is open and is the socket the parent's Handoff
    // made this process inherit (its identity matched), which nothing in this
    // process owned before; ADOPTED guarantees this is its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Setting a flag on a descriptor known to be open cannot fail (fcntl(2):
    // F_SETFD fails only with EBADF); were it to, the socket would merely
    // stay inheritable.
    let _ = rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC);
    Ok(owned)
}

/// The [`ID_VAR`] value of `fd`: `<st_dev>:<st_ino>` if it is a socket.
fn identity(fd: BorrowedFd<'_>) -> io::Result<String> {
    let stat = rustix::fs::fstat(fd)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"));
    }
    Ok(format!("{}:{}", stat.st_dev, stat.st_ino))
}

/// Whether `id` has the shape `<digits>:<digits>`.
fn is_identity(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once(':')
        .is_some_and(|(dev, ino)| digits(dev) && digits(ino))
}
