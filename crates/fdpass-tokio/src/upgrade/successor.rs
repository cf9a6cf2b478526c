//! The new process's side: receive the named set, then answer.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use fdpass_core::upgrade::{Answer, NamedFds, UpgradeError};

use super::timer::Timer;
use crate::Passer;

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
    /// The control connection, kept so that the answer goes back over it.
    passer: Passer,
    fds: NamedFds,
}

impl Successor {
    /// The hand-over this process was started for by
    /// [`Upgrader::upgrade_by_spawning`](super::Upgrader::upgrade_by_spawning),
    /// or `None` when it was not started by an upgrade
    /// ([`SUCCESSOR_VAR`](fdpass_core::upgrade::SUCCESSOR_VAR) is not `1`):
    /// then it starts afresh. Waits at most `timeout` for the named set.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::Inherit`] when the control connection cannot be
    /// adopted (see [`fdpass_core::child::adopt_inherited`]);
    /// [`UpgradeError::ReadyTimeout`], [`UpgradeError::SuccessorExited`]
    /// (here: the old process went away), [`UpgradeError::Channel`] (also
    /// outside a tokio runtime), [`UpgradeError::HandOver`] (a malformed
    /// set, whose descriptors were closed).
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
        if !fdpass_core::upgrade::started_as_successor() {
            return Ok(None);
        }
        // The connection can be adopted once only: check first what could
        // make its passer fail after the adoption.
        crate::reactor::require_runtime("a successor's control connection")
            .map_err(|e| UpgradeError::Channel(e.into()))?;
        let socket = fdpass_core::child::adopt_inherited().map_err(UpgradeError::Inherit)?;
        Successor::from_connection(socket, timeout).await.map(Some)
    }

    /// Connects to an old process's
    /// [`HandoverListener`](super::HandoverListener) at `path` and receives
    /// the hand-over, waiting at most `timeout` for it.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::Spawn`] when the connection cannot be made (nothing
    /// listens at `path`); otherwise as
    /// [`from_connection`](Self::from_connection).
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
        Successor::from_connection(socket, timeout).await
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use fdpass_tokio::upgrade::{Successor, UpgradeError};
    /// let (ours, theirs) = fdpass_core::socket::pair()?;
    /// drop(theirs); // the old process went away
    /// let err = Successor::from_connection(ours, Duration::from_secs(10)).await.unwrap_err();
    /// assert!(matches!(err, UpgradeError::SuccessorExited { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn from_connection(
        socket: OwnedFd,
        timeout: Duration,
    ) -> Result<Successor, UpgradeError> {
        let since = Instant::now();
        let passer = Passer::new(socket).map_err(UpgradeError::Channel)?;
        let mut timer = Timer::new().map_err(|e| UpgradeError::Channel(e.into()))?;
        let received = timer
            .within(since + timeout, passer.recv_message())
            .await
            .ok_or_else(|| UpgradeError::ReadyTimeout {
                waited: since.elapsed(),
            })?;
        let message = match received {
            Ok(Some(message)) => message,
            Ok(None) => return Err(UpgradeError::SuccessorExited { status: None }),
            Err(e) => return Err(UpgradeError::from_connection(e)),
        };
        let fds = NamedFds::from_message(message).map_err(UpgradeError::HandOver)?;
        Ok(Successor { passer, fds })
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
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(successor) = fdpass_tokio::upgrade::Successor::inherit(std::time::Duration::from_secs(10)).await? {
    ///     successor.ready(std::time::Duration::from_secs(10)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ready(self, timeout: Duration) -> Result<(), UpgradeError> {
        self.answer(Answer::Ready, timeout).await
    }

    /// Tells the old process this one will not take over, and why; the old
    /// one goes on serving ([`UpgradeError::SuccessorFailed`] there).
    ///
    /// # Errors
    ///
    /// As [`ready`](Self::ready).
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
        let reason = reason.to_owned();
        self.answer(Answer::Failed { reason }, timeout).await
    }

    async fn answer(self, answer: Answer, timeout: Duration) -> Result<(), UpgradeError> {
        let since = Instant::now();
        let Successor { passer, fds } = self;
        // Descriptors not taken are closed here, as they would be on drop.
        drop(fds);
        let mut timer = Timer::new().map_err(|e| UpgradeError::Channel(e.into()))?;
        match timer
            .within(since + timeout, passer.send_message(answer.into_message()))
            .await
        {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(UpgradeError::from_connection(e)),
            None => Err(UpgradeError::ReadyTimeout {
                waited: since.elapsed(),
            }),
        }
    }
}
