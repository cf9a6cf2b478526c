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
//! leak it.
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

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
        Ok(Handoff { parent, child })
    }

    /// Makes `command`'s child inherit the child end at its current number and
    /// sets [`ENV_VAR`] to that number. Call before every spawn that should
    /// receive it.
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
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed. It makes one fcntl system call
        // through rustix (no allocation, no lock) on a descriptor the parent
        // keeps open until the spawn has returned.
        unsafe {
            command.pre_exec(move || {
                let borrowed = BorrowedFd::borrow_raw(fd);
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
/// # Errors
/// [`io::ErrorKind::NotFound`] if the variable is missing,
/// [`io::ErrorKind::InvalidInput`] if it is not a descriptor number or names
/// something other than a socket, [`io::ErrorKind::AlreadyExists`] on a second
/// call in one process.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let socket = fdpass_core::child::adopt_inherited()?;
/// let passer = fdpass_core::Passer::new(socket, fdpass_core::Config::default())?;
/// # drop(passer); Ok(()) }
/// ```
pub fn adopt_inherited() -> io::Result<OwnedFd> {
    let value = std::env::var(ENV_VAR).map_err(|_| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{ENV_VAR} is not set: this process was not started with a Handoff"),
        )
    })?;
    let fd: RawFd = value.parse().ok().filter(|fd| *fd >= 0).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV_VAR}={value} is not a descriptor number"),
        )
    })?;
    // Check what the number names before owning it: an open socket.
    // SAFETY: borrowed for this one fstat; a number that is not open makes it
    // fail with EBADF, and nothing else uses the borrow.
    let stat = rustix::fs::fstat(unsafe { BorrowedFd::borrow_raw(fd) }).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV_VAR}={fd} is not an open descriptor: {e}"),
        )
    })?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV_VAR}={fd} does not name a socket"),
        ));
    }
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the inherited descriptor was already adopted",
        ));
    }
    // SAFETY: the descriptor is open (fstat succeeded), was put there for us by
    // the parent's Handoff, and ADOPTED guarantees this is its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC)?;
    Ok(owned)
}
