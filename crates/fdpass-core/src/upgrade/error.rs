//! Why an upgrade did not happen.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::child::InheritError;
use crate::handover::NamedFdsError;
use crate::Error;

/// Why an upgrade did not happen. On the old process's side every variant
/// except `PidFile` means it still serves and no successor runs (one it
/// started was killed and reaped).
///
/// ```
/// use fdpass_core::upgrade::UpgradeError;
/// let err = UpgradeError::InProgress;
/// assert!(err.to_string().contains("already under way"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Another upgrade of the same upgrader is under way; nothing was
    /// started.
    InProgress,
    /// The successor could not be started (`fork`/`exec` failed, or the
    /// control connection could not be made).
    Spawn(std::io::Error),
    /// The other process closed the control connection before answering:
    /// on the old side, the successor exited or crashed before it was ready
    /// (`status` is how it ended, when this process started it); on the
    /// successor's side, the old process went away.
    SuccessorExited {
        /// The successor's exit status, when this process spawned it.
        status: Option<ExitStatus>,
    },
    /// No answer within the bound.
    ReadyTimeout {
        /// How long was waited.
        waited: Duration,
    },
    /// The successor said it will not take over.
    SuccessorFailed {
        /// The reason it gave.
        reason: String,
    },
    /// The successor answered with something other than `READY=1` or
    /// `FAILED=...`; descriptors it sent were closed.
    UnexpectedAnswer {
        /// The answer's payload length.
        payload_len: usize,
        /// The descriptors that came with it.
        descriptors: usize,
    },
    /// The control connection failed (bad input from the peer, or a socket
    /// error).
    Channel(Error),
    /// The named set could not be encoded, or the one received was malformed
    /// (its descriptors were closed).
    HandOver(NamedFdsError),
    /// The control connection inherited from the old process could not be
    /// adopted.
    Inherit(InheritError),
    /// The successor is ready and runs, but the pid file could not be
    /// updated to its pid.
    PidFile(std::io::Error),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::InProgress => f.write_str(
                "an upgrade is already under way; wait for its outcome before starting another",
            ),
            UpgradeError::Spawn(e) => write!(f, "could not start the successor: {e}; check the command"),
            UpgradeError::SuccessorExited { status: Some(status) } => write!(
                f,
                "the successor ended before it was ready ({status}); this process goes on serving; check the successor's output"
            ),
            UpgradeError::SuccessorExited { status: None } => f.write_str(
                "the other process closed the control connection before answering (it exited or gave up)",
            ),
            UpgradeError::ReadyTimeout { waited } => write!(
                f,
                "no answer after {waited:?}; the successor was stopped and this process goes on serving; raise the ready timeout if it needs longer to start"
            ),
            UpgradeError::SuccessorFailed { reason } => write!(
                f,
                "the successor declined to take over: {reason}; this process goes on serving"
            ),
            UpgradeError::UnexpectedAnswer { payload_len, descriptors } => write!(
                f,
                "the successor answered with {payload_len} bytes and {descriptors} descriptors instead of READY=1; it does not speak the upgrade protocol"
            ),
            UpgradeError::Channel(e) => write!(f, "the upgrade's control connection failed: {e}"),
            UpgradeError::HandOver(e) => write!(f, "handing the descriptors over failed: {e}"),
            UpgradeError::Inherit(e) => write!(f, "cannot take over from the old process: {e}"),
            UpgradeError::PidFile(e) => write!(
                f,
                "the successor is ready and runs, but the pid file could not be updated: {e}"
            ),
        }
    }
}

impl UpgradeError {
    /// What a failure of the control connection means for the upgrade: the
    /// other process going away (its orderly close, `EPIPE` or
    /// `ECONNRESET` on a send, or [`Error::PeerClosed`]) is
    /// [`SuccessorExited`](Self::SuccessorExited) without a status; any
    /// other error is [`Channel`](Self::Channel).
    ///
    /// ```
    /// use fdpass_core::upgrade::UpgradeError;
    /// let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    /// assert!(matches!(UpgradeError::from_connection(reset.into()), UpgradeError::SuccessorExited { status: None }));
    /// let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    /// assert!(matches!(UpgradeError::from_connection(denied.into()), UpgradeError::Channel(_)));
    /// ```
    pub fn from_connection(error: Error) -> UpgradeError {
        let peer_gone = match &error {
            Error::PeerClosed => true,
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            _ => false,
        };
        if peer_gone {
            UpgradeError::SuccessorExited { status: None }
        } else {
            UpgradeError::Channel(error)
        }
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpgradeError::Spawn(e) | UpgradeError::PidFile(e) => Some(e),
            UpgradeError::Channel(e) => Some(e),
            UpgradeError::HandOver(e) => Some(e),
            UpgradeError::Inherit(e) => Some(e),
            _ => None,
        }
    }
}
