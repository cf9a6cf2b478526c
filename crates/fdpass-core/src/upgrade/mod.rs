//! Upgrading a running server without refusing a connection: the old
//! process starts a successor, hands it its named descriptors (copies: it
//! keeps serving with its own), waits a bounded time for the successor to
//! say it is ready, and only then stops accepting, drains and exits.
//!
//! This module is the blocking, runtime-free form (each call blocks the
//! calling thread at most until its deadline); `fdpass_tokio::upgrade` wraps
//! it for async code. The protocol on the control connection is two
//! messages (see `docs/handover.md`):
//!
//! 1. old to successor: one named descriptor set
//!    ([`NamedFds`], `docs/handover.md` for its bytes);
//! 2. successor to old: [`READY`] (no descriptors), or a payload starting
//!    with [`FAILED_PREFIX`] followed by a reason in UTF-8.
//!
//! A successor that exits, closes the connection, sends anything else, or
//! says nothing before the deadline is killed and reaped, and the old
//! process goes on serving: [`UpgradeError`] says which. One upgrade runs at
//! a time per [`Upgrader`].
//!
//! ```
//! use std::time::Duration;
//! use fdpass_core::handover::NamedFds;
//! use fdpass_core::upgrade::{Upgrader, UpgradeError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let mut fds = NamedFds::new();
//! fds.insert("http", listener.try_clone()?.into())?;
//! let upgrader = Upgrader::new(fds).with_ready_timeout(Duration::from_secs(5));
//! // `false` stands for a successor that crashes before it is ready.
//! let err = upgrader.upgrade_by_spawning(&mut std::process::Command::new("false")).unwrap_err();
//! assert!(matches!(err, UpgradeError::SuccessorExited { .. }));
//! // The old process still holds its listener and goes on serving.
//! let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
//! # Ok(()) }
//! ```

mod channel;
mod error;
mod pid_file;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::child::Handoff;
use crate::handover::NamedFds;
use crate::Message;

use channel::{Channel, ChannelError};
pub use error::UpgradeError;
pub use pid_file::write_pid_file;

/// The successor's "ready" message: this payload, no descriptors.
///
/// ```
/// assert_eq!(fdpass_core::upgrade::READY, b"READY=1");
/// ```
pub const READY: &[u8] = b"READY=1";

/// The start of a successor's "I will not take over" message; a reason in
/// UTF-8 follows.
///
/// ```
/// assert_eq!(fdpass_core::upgrade::FAILED_PREFIX, b"FAILED=");
/// ```
pub const FAILED_PREFIX: &[u8] = b"FAILED=";

/// The environment variable, set to `1`, that tells a process the
/// [`Upgrader`] started it as a successor (next to the variables of
/// [`crate::child`], which name its control connection).
///
/// ```
/// assert_eq!(fdpass_core::upgrade::SUCCESSOR_VAR, "FDPASS_UPGRADE");
/// ```
pub const SUCCESSOR_VAR: &str = "FDPASS_UPGRADE";

/// How long an upgrade waits for its successor's answer by default.
///
/// ```
/// assert_eq!(fdpass_core::upgrade::DEFAULT_READY_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The old process's side: holds the named descriptors to hand on, and runs
/// one upgrade at a time.
///
/// ```
/// use fdpass_core::handover::NamedFds;
/// use fdpass_core::upgrade::Upgrader;
///
/// let upgrader = Upgrader::new(NamedFds::new());
/// assert!(upgrader.fds().is_empty());
/// ```
#[derive(Debug)]
pub struct Upgrader {
    fds: NamedFds,
    busy: AtomicBool,
    ready_timeout: Duration,
    pid_file: Option<PathBuf>,
}

/// A successor that said it is ready: the old process now stops accepting,
/// drains and exits.
///
/// ```no_run
/// # use fdpass_core::{handover::NamedFds, upgrade::Upgrader};
/// # let upgrader = Upgrader::new(NamedFds::new());
/// let upgraded = upgrader.upgrade_by_spawning(&mut std::process::Command::new("/usr/local/bin/server"))?;
/// println!("handed over to {:?}", upgraded.pid);
/// # Ok::<(), fdpass_core::upgrade::UpgradeError>(())
/// ```
#[derive(Debug)]
pub struct Upgraded {
    /// The successor's process id, when known (a spawned child's, or a
    /// connected successor's as `SO_PEERCRED` reports it).
    pub pid: Option<u32>,
    /// The successor, when this process spawned it. Dropping it neither
    /// kills nor waits for it: it outlives the old process.
    pub child: Option<Child>,
}

/// Resets the upgrader's "busy" flag when the upgrade ends, however it ends.
struct OneAtATime<'a>(&'a AtomicBool);

impl Drop for OneAtATime<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Upgrader {
    /// An upgrader that hands copies of `fds` to each successor; the set
    /// stays open in this process (the old one keeps serving with the
    /// originals until it decides to stop).
    ///
    /// ```
    /// use fdpass_core::handover::NamedFds;
    /// let (r, _w) = std::io::pipe()?;
    /// let mut fds = NamedFds::new();
    /// fds.insert("input", r.into())?;
    /// let upgrader = fdpass_core::upgrade::Upgrader::new(fds);
    /// assert_eq!(upgrader.fds().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(fds: NamedFds) -> Upgrader {
        Upgrader {
            fds,
            busy: AtomicBool::new(false),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            pid_file: None,
        }
    }

    /// Waits at most `timeout` (from the successor's start, or connection)
    /// for the successor's answer; [`DEFAULT_READY_TIMEOUT`] otherwise.
    ///
    /// ```
    /// use std::time::Duration;
    /// let upgrader = fdpass_core::upgrade::Upgrader::new(Default::default())
    ///     .with_ready_timeout(Duration::from_secs(2));
    /// assert_eq!(upgrader.ready_timeout(), Duration::from_secs(2));
    /// ```
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Upgrader {
        self.ready_timeout = timeout;
        self
    }

    /// The bound on the wait for a successor's answer.
    ///
    /// ```
    /// let upgrader = fdpass_core::upgrade::Upgrader::new(Default::default());
    /// assert_eq!(upgrader.ready_timeout(), fdpass_core::upgrade::DEFAULT_READY_TIMEOUT);
    /// ```
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    /// Keeps a pid file at `path`: this process's id is written now, and a
    /// successor's when it is ready (atomically, by rename: a reader sees
    /// the old pid or the new one, never a mix).
    ///
    /// # Errors
    ///
    /// Writing the file failed (see [`write_pid_file`]).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("fdpass-doc-pid-{}", std::process::id()));
    /// let _upgrader = fdpass_core::upgrade::Upgrader::new(Default::default()).with_pid_file(&path)?;
    /// assert_eq!(std::fs::read_to_string(&path)?, format!("{}\n", std::process::id()));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_pid_file(mut self, path: impl AsRef<Path>) -> std::io::Result<Upgrader> {
        write_pid_file(path.as_ref(), std::process::id())?;
        self.pid_file = Some(path.as_ref().to_path_buf());
        Ok(self)
    }

    /// The descriptors handed to each successor.
    ///
    /// ```
    /// let upgrader = fdpass_core::upgrade::Upgrader::new(Default::default());
    /// assert_eq!(upgrader.fds().names().count(), 0);
    /// ```
    pub fn fds(&self) -> &NamedFds {
        &self.fds
    }

    /// Gives the descriptors back, for example to close the listeners once
    /// the successor is ready.
    ///
    /// ```
    /// let upgrader = fdpass_core::upgrade::Upgrader::new(Default::default());
    /// assert!(upgrader.into_fds().is_empty());
    /// ```
    pub fn into_fds(self) -> NamedFds {
        self.fds
    }

    /// Whether an upgrade is under way.
    ///
    /// ```
    /// assert!(!fdpass_core::upgrade::Upgrader::new(Default::default()).is_upgrading());
    /// ```
    pub fn is_upgrading(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Starts `command` as the successor and hands over to it: the child
    /// inherits a control connection (see [`crate::child`]) and
    /// [`SUCCESSOR_VAR`]`=1`, and not this process's `LISTEN_FDS`,
    /// `LISTEN_FDNAMES` or `LISTEN_PID` (what it needs comes over the
    /// connection). Blocks until the successor is ready or the upgrade
    /// failed, at most [`ready_timeout`](Self::ready_timeout) after the
    /// spawn.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::InProgress`] while another upgrade runs (nothing is
    /// started); [`UpgradeError::Spawn`]; and, after the successor was
    /// killed and reaped: [`UpgradeError::SuccessorExited`] (it exited or
    /// closed the connection before it was ready),
    /// [`UpgradeError::ReadyTimeout`], [`UpgradeError::SuccessorFailed`],
    /// [`UpgradeError::UnexpectedAnswer`], [`UpgradeError::Channel`]. A
    /// failure to update the pid file after the successor is ready is
    /// [`UpgradeError::PidFile`]: the successor runs then.
    ///
    /// ```
    /// use fdpass_core::upgrade::{Upgrader, UpgradeError};
    /// let upgrader = Upgrader::new(Default::default());
    /// let err = upgrader.upgrade_by_spawning(&mut std::process::Command::new("/nonexistent")).unwrap_err();
    /// assert!(matches!(err, UpgradeError::Spawn(_)));
    /// ```
    pub fn upgrade_by_spawning(&self, command: &mut Command) -> Result<Upgraded, UpgradeError> {
        let _guard = self.begin()?;
        let deadline = Instant::now() + self.ready_timeout;
        let handoff = Handoff::new().map_err(UpgradeError::Spawn)?;
        handoff.configure(command);
        command
            .env(SUCCESSOR_VAR, "1")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("LISTEN_PID");
        let mut child = command.spawn().map_err(UpgradeError::Spawn)?;
        let pid = child.id();
        match self.hand_over(handoff.finish(), deadline) {
            Ok(()) => {
                self.record(pid)?;
                Ok(Upgraded {
                    pid: Some(pid),
                    child: Some(child),
                })
            }
            Err(e) => {
                // It must not go on serving next to us, half started.
                let _ = child.kill();
                let status = child.wait().ok();
                Err(match e {
                    UpgradeError::SuccessorExited { .. } => {
                        UpgradeError::SuccessorExited { status }
                    }
                    e => e,
                })
            }
        }
    }

    /// Hands over to a successor that connected to this process (for
    /// example through a listener at a control path, started by someone
    /// else): `socket` is the accepted connection. Blocks at most
    /// [`ready_timeout`](Self::ready_timeout). The successor is not killed
    /// on failure (this process did not start it); its connection is closed.
    ///
    /// # Errors
    ///
    /// As [`upgrade_by_spawning`](Self::upgrade_by_spawning), without
    /// `Spawn`; `SuccessorExited` carries no status.
    ///
    /// ```
    /// use fdpass_core::upgrade::{Successor, Upgrader};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (old_end, new_end) = fdpass_core::socket::pair()?;
    /// let successor = std::thread::spawn(move || -> Result<(), fdpass_core::upgrade::UpgradeError> {
    ///     let successor = Successor::from_connection(new_end, std::time::Duration::from_secs(10))?;
    ///     successor.ready(std::time::Duration::from_secs(10))
    /// });
    /// let upgraded = Upgrader::new(Default::default()).upgrade_over(old_end)?;
    /// assert_eq!(upgraded.pid, Some(std::process::id()));
    /// successor.join().expect("no panic")?;
    /// # Ok(()) }
    /// ```
    pub fn upgrade_over(&self, socket: OwnedFd) -> Result<Upgraded, UpgradeError> {
        let _guard = self.begin()?;
        let deadline = Instant::now() + self.ready_timeout;
        let pid = crate::socket::peer_credentials(&socket)
            .ok()
            .and_then(|peer| peer.pid)
            .and_then(|pid| u32::try_from(pid).ok());
        self.hand_over(socket, deadline)?;
        if let Some(pid) = pid {
            self.record(pid)?;
        }
        Ok(Upgraded { pid, child: None })
    }

    fn begin(&self) -> Result<OneAtATime<'_>, UpgradeError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(UpgradeError::InProgress);
        }
        Ok(OneAtATime(&self.busy))
    }

    fn record(&self, pid: u32) -> Result<(), UpgradeError> {
        match &self.pid_file {
            Some(path) => write_pid_file(path, pid).map_err(UpgradeError::PidFile),
            None => Ok(()),
        }
    }

    /// Sends copies of the set over `socket` and waits for the answer.
    fn hand_over(&self, socket: OwnedFd, deadline: Instant) -> Result<(), UpgradeError> {
        let mut channel = Channel::new(socket).map_err(UpgradeError::Channel)?;
        let copies = self
            .fds
            .try_clone()
            .map_err(|e| UpgradeError::Channel(e.into()))?;
        let message = copies.into_message().map_err(UpgradeError::HandOver)?;
        let waited_from = Instant::now();
        let waited = |e| from_channel(e, waited_from);
        channel.send(message, deadline).map_err(waited)?;
        let answer = channel.recv(deadline).map_err(waited)?;
        interpret_answer(answer)
    }
}

fn from_channel(e: ChannelError, since: Instant) -> UpgradeError {
    match e {
        ChannelError::TimedOut => UpgradeError::ReadyTimeout {
            waited: since.elapsed(),
        },
        ChannelError::Closed => UpgradeError::SuccessorExited { status: None },
        ChannelError::Failed(e) => UpgradeError::Channel(e),
    }
}

fn interpret_answer(answer: Message) -> Result<(), UpgradeError> {
    if answer.payload == READY && answer.fds.is_empty() {
        return Ok(());
    }
    if answer.fds.is_empty() {
        if let Some(reason) = answer.payload.strip_prefix(FAILED_PREFIX) {
            return Err(UpgradeError::SuccessorFailed {
                reason: String::from_utf8_lossy(reason).into_owned(),
            });
        }
    }
    let error = UpgradeError::UnexpectedAnswer {
        payload_len: answer.payload.len(),
        descriptors: answer.fds.len(),
    };
    // Descriptors a peer chose: their close may block (see `disposal`).
    answer.fds.into_iter().for_each(crate::disposal::dispose);
    Err(error)
}

/// The new process's side: the descriptors handed over, and the way to say
/// it is ready.
///
/// ```
/// // A process started normally is not a successor.
/// assert!(fdpass_core::upgrade::Successor::inherit(std::time::Duration::from_secs(1))?.is_none());
/// # Ok::<(), fdpass_core::upgrade::UpgradeError>(())
/// ```
#[derive(Debug)]
pub struct Successor {
    channel: ChannelHandle,
    fds: NamedFds,
}

/// The control connection, kept so that "ready" goes back over it.
struct ChannelHandle(Channel);

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Channel")
    }
}

impl Successor {
    /// The hand-over this process was started for by
    /// [`Upgrader::upgrade_by_spawning`], or `None` when it was not started
    /// by an upgrade ([`SUCCESSOR_VAR`] is not `1`): then it starts afresh.
    /// Waits at most `timeout` for the named set.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::Inherit`] when the control connection cannot be
    /// adopted (see [`crate::child::adopt_inherited`]);
    /// [`UpgradeError::ReadyTimeout`], [`UpgradeError::SuccessorExited`]
    /// (here: the old process went away), [`UpgradeError::Channel`],
    /// [`UpgradeError::HandOver`] (a malformed set, whose descriptors were
    /// closed).
    ///
    /// ```
    /// use fdpass_core::upgrade::Successor;
    /// match Successor::inherit(std::time::Duration::from_secs(10))? {
    ///     Some(successor) => {
    ///         // take the listeners from successor.fds(), then ready()
    ///         drop(successor)
    ///     }
    ///     None => { /* bind the listeners afresh */ }
    /// }
    /// # Ok::<(), fdpass_core::upgrade::UpgradeError>(())
    /// ```
    pub fn inherit(timeout: Duration) -> Result<Option<Successor>, UpgradeError> {
        if std::env::var_os(SUCCESSOR_VAR).as_deref() != Some(std::ffi::OsStr::new("1")) {
            return Ok(None);
        }
        let socket = crate::child::adopt_inherited().map_err(UpgradeError::Inherit)?;
        Successor::from_connection(socket, timeout).map(Some)
    }

    /// The hand-over over `socket`, a connection to the old process (one
    /// this process made to the old one's control path, for a successor
    /// started by someone else). Waits at most `timeout` for the named set.
    ///
    /// # Errors
    ///
    /// As [`inherit`](Self::inherit), without `Inherit`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fdpass_core::upgrade::{Successor, UpgradeError};
    /// let (ours, theirs) = fdpass_core::socket::pair()?;
    /// drop(theirs); // the old process went away
    /// let err = Successor::from_connection(ours, Duration::from_secs(10)).unwrap_err();
    /// assert!(matches!(err, UpgradeError::SuccessorExited { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_connection(socket: OwnedFd, timeout: Duration) -> Result<Successor, UpgradeError> {
        let since = Instant::now();
        let deadline = since + timeout;
        let mut channel = Channel::new(socket).map_err(UpgradeError::Channel)?;
        let message = channel.recv(deadline).map_err(|e| from_channel(e, since))?;
        let fds = NamedFds::from_message(message).map_err(UpgradeError::HandOver)?;
        Ok(Successor {
            channel: ChannelHandle(channel),
            fds,
        })
    }

    /// The descriptors handed over, to take by name.
    ///
    /// ```no_run
    /// # let mut successor = fdpass_core::upgrade::Successor::inherit(std::time::Duration::from_secs(10))?.unwrap();
    /// let http = successor.fds().take("http").map(fdpass_core::socket::tcp_listener_from_fd);
    /// # Ok::<(), fdpass_core::upgrade::UpgradeError>(())
    /// ```
    pub fn fds(&mut self) -> &mut NamedFds {
        &mut self.fds
    }

    /// Tells the old process this one is ready: from now on it stops
    /// accepting, drains and exits. Call it once everything that could
    /// fail has been set up (listeners rebuilt, signal handlers installed:
    /// a signal meant for the next upgrade must not kill this one). Waits
    /// at most `timeout` for the kernel to take the message.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::SuccessorExited`] (the old process is gone; this one
    /// simply carries on), [`UpgradeError::ReadyTimeout`],
    /// [`UpgradeError::Channel`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use fdpass_core::upgrade::{Successor, Upgrader};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (old_end, new_end) = fdpass_core::socket::pair()?;
    /// let old = std::thread::spawn(move || Upgrader::new(Default::default()).upgrade_over(old_end));
    /// let successor = Successor::from_connection(new_end, Duration::from_secs(10))?;
    /// successor.ready(Duration::from_secs(10))?;
    /// assert!(old.join().expect("no panic").is_ok());
    /// # Ok(()) }
    /// ```
    pub fn ready(self, timeout: Duration) -> Result<(), UpgradeError> {
        self.answer(Message::from_payload(READY), timeout)
    }

    /// Tells the old process this one will not take over, and why; the old
    /// one goes on serving ([`UpgradeError::SuccessorFailed`] there).
    ///
    /// # Errors
    ///
    /// As [`ready`](Self::ready).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fdpass_core::upgrade::{Successor, Upgrader, UpgradeError};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (old_end, new_end) = fdpass_core::socket::pair()?;
    /// let old = std::thread::spawn(move || Upgrader::new(Default::default()).upgrade_over(old_end));
    /// let successor = Successor::from_connection(new_end, Duration::from_secs(10))?;
    /// successor.fail("configuration invalid", Duration::from_secs(10))?;
    /// let err = old.join().expect("no panic").unwrap_err();
    /// assert!(matches!(err, UpgradeError::SuccessorFailed { reason } if reason == "configuration invalid"));
    /// # Ok(()) }
    /// ```
    pub fn fail(self, reason: &str, timeout: Duration) -> Result<(), UpgradeError> {
        let mut payload = FAILED_PREFIX.to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.answer(Message::from_payload(payload), timeout)
    }

    fn answer(self, message: Message, timeout: Duration) -> Result<(), UpgradeError> {
        let since = Instant::now();
        let Successor { channel, fds } = self;
        // Descriptors not taken are closed here, as they would be on drop.
        drop(fds);
        let mut channel = channel.0;
        channel
            .send(message, since + timeout)
            .map_err(|e| from_channel(e, since))
    }
}
