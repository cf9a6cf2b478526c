//! The old process's side: one upgrade at a time, each decided by the core's
//! [`Attempt`] from what this adapter observes.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use fdpass_core::child::Handoff;
use fdpass_core::upgrade::{
    Attempt, NamedFds, UpgradeError, DEFAULT_READY_TIMEOUT, NOT_INHERITED_VARS, SUCCESSOR_VAR,
};
use fdpass_core::Message;

use super::pid_file;
use super::timer::Timer;
use crate::{Error, Passer};

/// The old process's side of an upgrade: the named descriptors to hand on,
/// one upgrade at a time. Cheap to clone (shared).
///
/// ```
/// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
/// assert!(!upgrader.is_upgrading());
/// ```
#[derive(Debug, Clone)]
pub struct Upgrader {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    fds: NamedFds,
    busy: AtomicBool,
    ready_timeout: Duration,
    pid_file: Option<PathBuf>,
}

/// A successor that said it is ready: the old process now stops accepting,
/// drains and exits.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), fdpass_tokio::upgrade::UpgradeError> {
/// # let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
/// let upgraded = upgrader.upgrade_by_spawning(std::process::Command::new("/usr/local/bin/server")).await?;
/// println!("handed over to {:?}", upgraded.pid);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Upgraded {
    /// The successor's process id, when known (a spawned child's, or a
    /// connected successor's as `SO_PEERCRED` reports it).
    pub pid: Option<u32>,
    /// The successor, when this process spawned it. Dropping it neither
    /// kills nor waits for it (tokio reaps it in the background if it
    /// exits first): it outlives the old process.
    pub child: Option<tokio::process::Child>,
}

/// Resets the upgrader's "busy" flag when the upgrade ends, however it ends
/// (also when its future is dropped).
struct OneAtATime<'a>(&'a AtomicBool);

impl Drop for OneAtATime<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A spawned successor whose upgrade is not decided: should the upgrade's
/// future be dropped half-way, the successor is killed rather than left
/// running half started (tokio reaps it in the background).
struct Undecided(Option<tokio::process::Child>);

impl Drop for Undecided {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.start_kill();
        }
    }
}

/// What the control connection said, in the end.
enum Heard {
    Answer(Message),
    Closed,
    Failed(Error),
}

impl Upgrader {
    /// An upgrader that hands copies of `fds` to each successor; the set
    /// stays open in this process (the old one keeps serving with the
    /// originals until it decides to stop).
    ///
    /// ```
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
    /// assert!(upgrader.fds().is_empty());
    /// ```
    pub fn new(fds: NamedFds) -> Upgrader {
        Upgrader {
            shared: Arc::new(Shared {
                fds,
                busy: AtomicBool::new(false),
                ready_timeout: DEFAULT_READY_TIMEOUT,
                pid_file: None,
            }),
        }
    }

    /// Waits at most `timeout` (from the successor's start, or connection)
    /// for the successor's answer; [`DEFAULT_READY_TIMEOUT`] otherwise.
    /// Call it before cloning: on an upgrader already cloned it changes
    /// nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default())
    ///     .with_ready_timeout(Duration::from_secs(3));
    /// assert_eq!(upgrader.ready_timeout(), Duration::from_secs(3));
    /// ```
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Upgrader {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.ready_timeout = timeout;
        }
        self
    }

    /// Keeps a pid file at `path`: this process's id is written now, and a
    /// successor's when it is ready (atomically, by rename: a reader sees
    /// the old pid or the new one, never a mix). Call it before cloning.
    ///
    /// # Errors
    ///
    /// Writing the pid file failed (creating, writing, syncing or renaming
    /// its temporary file beside `path`; for example
    /// [`io::ErrorKind::NotFound`] when the directory does not exist), or
    /// the upgrader was cloned already ([`io::ErrorKind::Other`]).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("fdpass-tokio-doc-pid-{}", std::process::id()));
    /// let _upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default()).with_pid_file(&path)?;
    /// assert_eq!(std::fs::read_to_string(&path)?, format!("{}\n", std::process::id()));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_pid_file(mut self, path: impl AsRef<Path>) -> io::Result<Upgrader> {
        let Some(shared) = Arc::get_mut(&mut self.shared) else {
            return Err(io::Error::other(
                "the upgrader was cloned already; configure it before cloning",
            ));
        };
        // Once, at start-up, before serving: a blocking write is fine here.
        pid_file::write(path.as_ref(), std::process::id())?;
        shared.pid_file = Some(path.as_ref().to_path_buf());
        Ok(self)
    }

    /// The bound on the wait for a successor's answer.
    ///
    /// ```
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
    /// assert_eq!(upgrader.ready_timeout(), fdpass_tokio::upgrade::DEFAULT_READY_TIMEOUT);
    /// ```
    pub fn ready_timeout(&self) -> Duration {
        self.shared.ready_timeout
    }

    /// The descriptors handed to each successor.
    ///
    /// ```
    /// assert_eq!(fdpass_tokio::upgrade::Upgrader::new(Default::default()).fds().len(), 0);
    /// ```
    pub fn fds(&self) -> &NamedFds {
        &self.shared.fds
    }

    /// Gives the descriptors back, for example to close the listeners once
    /// the successor is ready; an upgrader shared with clones comes back
    /// unchanged as the error.
    ///
    /// # Errors
    ///
    /// Another clone of this upgrader exists (or an upgrade of it runs).
    ///
    /// ```
    /// let upgrader = fdpass_tokio::upgrade::Upgrader::new(Default::default());
    /// let clone = upgrader.clone();
    /// let upgrader = upgrader.into_fds().expect_err("shared");
    /// drop(clone);
    /// assert!(upgrader.into_fds().expect("no clone left").is_empty());
    /// ```
    pub fn into_fds(self) -> Result<NamedFds, Upgrader> {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => Ok(shared.fds),
            Err(shared) => Err(Upgrader { shared }),
        }
    }

    /// Whether an upgrade is under way.
    ///
    /// ```
    /// assert!(!fdpass_tokio::upgrade::Upgrader::new(Default::default()).is_upgrading());
    /// ```
    pub fn is_upgrading(&self) -> bool {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// Starts `command` (a std or a tokio `Command`) as the successor and
    /// hands over to it: the child inherits a control connection (see
    /// [`fdpass_core::child`]) and
    /// [`SUCCESSOR_VAR`](fdpass_core::upgrade::SUCCESSOR_VAR)`=1`, and not
    /// this process's `LISTEN_FDS`, `LISTEN_FDNAMES` or `LISTEN_PID` (what
    /// it needs comes over the connection). Resolves when the successor is
    /// ready, or with the reason it is not, at most
    /// [`ready_timeout`](Self::ready_timeout) after the spawn (plus the
    /// time a failed successor takes to die once killed). The runtime goes
    /// on serving meanwhile: nothing here blocks a thread.
    ///
    /// Dropping the future before it resolves kills a successor that is
    /// not ready yet, and ends the upgrade. A tokio `Command` set to
    /// `kill_on_drop(true)` would also kill a ready successor when
    /// [`Upgraded::child`] is dropped: leave it unset.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::InProgress`] while another upgrade runs (nothing is
    /// started); [`UpgradeError::Spawn`] (also outside a tokio runtime);
    /// and, after the successor was killed and reaped:
    /// [`UpgradeError::SuccessorExited`] with its exit status (it exited
    /// or closed the connection before it was ready),
    /// [`UpgradeError::ReadyTimeout`], [`UpgradeError::SuccessorFailed`],
    /// [`UpgradeError::UnexpectedAnswer`], [`UpgradeError::Channel`]. A
    /// failure to update the pid file after the successor is ready is
    /// [`UpgradeError::PidFile`]: the successor runs then.
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
        command: impl Into<tokio::process::Command>,
    ) -> Result<Upgraded, UpgradeError> {
        let _turn = self.begin()?;
        // tokio panics when a child is spawned outside a runtime.
        crate::reactor::require_runtime("an upgrade's successor").map_err(UpgradeError::Spawn)?;
        let mut command = command.into();
        let handoff = Handoff::new().map_err(UpgradeError::Spawn)?;
        handoff.configure(command.as_std_mut());
        command.env(SUCCESSOR_VAR, "1");
        for var in NOT_INHERITED_VARS {
            command.env_remove(var);
        }
        let mut spawned = command.spawn().map_err(UpgradeError::Spawn)?;
        let pid = spawned.id();
        // `Child::wait` closes the child's stdin first; a successor given a
        // pipe keeps it: the attempt's waits go without it.
        let stdin = spawned.stdin.take();
        let mut child = Undecided(Some(spawned));
        let mut attempt = Attempt::spawned(Instant::now(), self.shared.ready_timeout);
        self.run(&mut attempt, handoff.finish(), child.0.as_mut())
            .await?;
        // Ready: from here on the successor runs, whatever else happens.
        let mut child = child.0.take();
        if let Some(child) = child.as_mut() {
            child.stdin = stdin;
        }
        if let Some(pid) = pid {
            self.record(pid).await?;
        }
        Ok(Upgraded { pid, child })
    }

    /// Hands over to a successor that connected to this process (for
    /// example through a [`HandoverListener`](super::HandoverListener),
    /// started by someone else): `socket` is the accepted connection.
    /// Resolves at most [`ready_timeout`](Self::ready_timeout) after the
    /// call. The successor is not killed on failure (this process did not
    /// start it); its connection is closed.
    ///
    /// # Errors
    ///
    /// As [`upgrade_by_spawning`](Self::upgrade_by_spawning), without
    /// `Spawn`; `SuccessorExited` carries no status.
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
        let _turn = self.begin()?;
        let mut attempt = Attempt::connected(Instant::now(), self.shared.ready_timeout);
        let pid = fdpass_core::socket::peer_credentials(&socket)
            .ok()
            .and_then(|peer| peer.pid)
            .and_then(|pid| u32::try_from(pid).ok());
        self.run(&mut attempt, socket, None).await?;
        if let Some(pid) = pid {
            self.record(pid).await?;
        }
        Ok(Upgraded { pid, child: None })
    }

    fn begin(&self) -> Result<OneAtATime<'_>, UpgradeError> {
        if self.shared.busy.swap(true, Ordering::SeqCst) {
            return Err(UpgradeError::InProgress);
        }
        Ok(OneAtATime(&self.shared.busy))
    }

    async fn record(&self, pid: u32) -> Result<(), UpgradeError> {
        match &self.shared.pid_file {
            Some(path) => pid_file::write_off_runtime(path.clone(), pid)
                .await
                .map_err(UpgradeError::PidFile),
            None => Ok(()),
        }
    }

    /// Sends copies of the set over `socket` and feeds `attempt` until it is
    /// decided: the connection's end, the successor's exit (`child`, when
    /// spawned), the deadline. Kills `child` when the attempt says so.
    async fn run(
        &self,
        attempt: &mut Attempt,
        socket: OwnedFd,
        mut child: Option<&mut tokio::process::Child>,
    ) -> Result<(), UpgradeError> {
        let passer = Passer::new(socket)
            .map_err(|e| attempt.abandon(UpgradeError::Channel(e)))
            .ok();
        let set = self
            .shared
            .fds
            .try_clone()
            .map_err(|e| attempt.abandon(UpgradeError::Channel(e.into())))
            .ok()
            .and_then(|copies| {
                copies
                    .into_message()
                    .map_err(|e| attempt.abandon(UpgradeError::HandOver(e)))
                    .ok()
            });
        let mut timer = Timer::new()
            .map_err(|e| attempt.abandon(UpgradeError::Channel(e.into())))
            .ok();
        let mut conversation = std::pin::pin!(converse(passer.as_ref(), set));
        let (mut heard, mut exited, mut killed) = (false, false, false);
        std::future::poll_fn(|cx| loop {
            if let Some(outcome) = attempt.take_outcome() {
                return Poll::Ready(outcome);
            }
            if attempt.must_stop_successor() && !killed {
                killed = true;
                if let Some(child) = child.as_mut() {
                    // An error means it exited already: its exit is next.
                    let _ = child.start_kill();
                }
            }
            let mut progressed = false;
            if !heard {
                if let Poll::Ready(said) = conversation.as_mut().poll(cx) {
                    heard = true;
                    progressed = true;
                    match said {
                        Heard::Answer(answer) => attempt.handle_answer(answer),
                        Heard::Closed => attempt.handle_closed(),
                        Heard::Failed(e) => attempt.handle_failed(e),
                    }
                }
            }
            if !exited {
                if let Some(child) = child.as_mut() {
                    // `wait` is cancel safe: a new one each time resumes.
                    if let Poll::Ready(status) = std::pin::pin!(child.wait()).poll(cx) {
                        exited = true;
                        progressed = true;
                        attempt.handle_exit(status.ok());
                    }
                }
            }
            if let (Some(deadline), Some(timer)) = (attempt.deadline(), timer.as_mut()) {
                if timer.poll_at(cx, deadline).is_ready() {
                    progressed = true;
                    attempt.handle_timeout(Instant::now());
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        })
        .await
    }
}

/// Sends the named set and receives the answer. Without a passer or a set
/// (the attempt was abandoned), it never ends.
async fn converse(passer: Option<&Passer>, set: Option<Message>) -> Heard {
    let (Some(passer), Some(set)) = (passer, set) else {
        return std::future::pending().await;
    };
    if let Err(e) = passer.send_message(set).await {
        return Heard::Failed(e);
    }
    match passer.recv_message().await {
        Ok(Some(answer)) => Heard::Answer(answer),
        Ok(None) => Heard::Closed,
        Err(e) => Heard::Failed(e),
    }
}
