//! One upgrade attempt on the old process's side, as a state machine: the
//! adapter spawns or accepts the successor, sends the named set, listens on
//! the connection, watches the successor's exit and keeps the time; this
//! decides what all of that means.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::{Error, Message};

use super::{Answer, UpgradeError};

/// One upgrade attempt, from the named set's sending to the outcome.
///
/// Inputs: the successor's answer ([`handle_answer`](Self::handle_answer)),
/// the end of the control connection ([`handle_closed`](Self::handle_closed),
/// [`handle_failed`](Self::handle_failed)), the exit of a successor this
/// process spawned ([`handle_exit`](Self::handle_exit)), the time
/// ([`handle_timeout`](Self::handle_timeout)), and the adapter's own
/// failures ([`abandon`](Self::abandon)). Outputs: the next deadline, whether
/// the successor must be stopped, and the outcome. It makes no system call:
/// the only descriptors it lets go of (those of an unexpected answer) go
/// through [`disposal`](crate::disposal).
///
/// The rules:
/// - `READY=1` decides `Ok` at once; a spawned successor then runs on;
/// - any failure of a spawned successor whose exit is not known yet asks
///   for it to be stopped ([`must_stop_successor`](Self::must_stop_successor))
///   and is decided when its exit is reported, so the old process never
///   returns with a half-started successor running beside it;
/// - the successor's exit alone decides nothing: the connection still
///   holds what it sent before exiting (an answer, or its end), and says it
///   at once unless another process inherited the connection; the deadline
///   bounds that wait too. A successor that exits before it answered is
///   [`UpgradeError::SuccessorExited`] with its exit status.
///
/// ```
/// use std::time::{Duration, Instant};
/// use std::os::unix::process::ExitStatusExt;
/// use fdpass_core::upgrade::{Attempt, UpgradeError};
///
/// let start = Instant::now();
/// let mut attempt = Attempt::spawned(start, Duration::from_secs(2));
/// attempt.handle_timeout(start + Duration::from_secs(1)); // too early: nothing
/// assert!(attempt.take_outcome().is_none());
/// attempt.handle_timeout(start + Duration::from_secs(2)); // the bound
/// assert!(attempt.must_stop_successor());
/// assert_eq!(attempt.deadline(), None);
/// attempt.handle_exit(Some(std::process::ExitStatus::from_raw(9))); // killed, reaped
/// let err = attempt.take_outcome().expect("decided").unwrap_err();
/// assert!(matches!(err, UpgradeError::ReadyTimeout { waited } if waited == Duration::from_secs(2)));
/// ```
#[derive(Debug)]
pub struct Attempt {
    started: Instant,
    deadline: Instant,
    /// This process started the successor: stop it on failure.
    spawned: bool,
    /// The spawned successor's exit was reported.
    exited: bool,
    exit: Option<ExitStatus>,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    /// The named set is on its way, or sent: waiting for the answer.
    Waiting,
    /// Failed; the spawned successor is being stopped, its exit awaited.
    Stopping(UpgradeError),
    /// The outcome, until taken.
    Decided(Option<Result<(), UpgradeError>>),
}

impl Attempt {
    /// An attempt with a successor this process spawned at `now`, which
    /// must answer within `ready_timeout`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let now = Instant::now();
    /// let attempt = fdpass_core::upgrade::Attempt::spawned(now, Duration::from_secs(30));
    /// assert_eq!(attempt.deadline(), Some(now + Duration::from_secs(30)));
    /// ```
    pub fn spawned(now: Instant, ready_timeout: Duration) -> Attempt {
        Attempt::new(now, ready_timeout, true)
    }

    /// An attempt with a successor that connected to this process at `now`
    /// (someone else started it: it is never stopped from here), which
    /// must answer within `ready_timeout`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::Attempt;
    /// let mut attempt = Attempt::connected(Instant::now(), Duration::from_secs(30));
    /// attempt.handle_closed();
    /// assert!(!attempt.must_stop_successor());
    /// assert!(attempt.take_outcome().expect("decided").is_err());
    /// ```
    pub fn connected(now: Instant, ready_timeout: Duration) -> Attempt {
        Attempt::new(now, ready_timeout, false)
    }

    fn new(now: Instant, ready_timeout: Duration, spawned: bool) -> Attempt {
        Attempt {
            started: now,
            // A bound too far for `Instant` is no bound.
            deadline: now
                .checked_add(ready_timeout)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
            spawned,
            exited: false,
            exit: None,
            phase: Phase::Waiting,
        }
    }

    /// The successor's message arrived (the first after the named set).
    /// `READY=1` decides the attempt `Ok`; `FAILED=...` is
    /// [`UpgradeError::SuccessorFailed`]; anything else
    /// [`UpgradeError::UnexpectedAnswer`], its descriptors let go of. Once
    /// the attempt failed, a message changes nothing.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Answer, Attempt};
    /// let mut attempt = Attempt::spawned(Instant::now(), Duration::from_secs(30));
    /// attempt.handle_answer(Answer::Ready.into_message());
    /// assert!(!attempt.must_stop_successor());
    /// assert!(attempt.take_outcome().expect("decided").is_ok());
    /// ```
    pub fn handle_answer(&mut self, answer: Message) {
        if !matches!(self.phase, Phase::Waiting) {
            answer.fds.into_iter().for_each(crate::disposal::dispose);
            return;
        }
        match Answer::from_message(answer) {
            Ok(Answer::Ready) => self.phase = Phase::Decided(Some(Ok(()))),
            Ok(Answer::Failed { reason }) => self.fail(UpgradeError::SuccessorFailed { reason }),
            Err(e) => self.fail(e),
        }
    }

    /// The successor closed the control connection (the receive ended with
    /// its orderly close) before answering:
    /// [`UpgradeError::SuccessorExited`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Attempt, UpgradeError};
    /// let mut attempt = Attempt::connected(Instant::now(), Duration::from_secs(30));
    /// attempt.handle_closed();
    /// assert!(matches!(attempt.take_outcome(), Some(Err(UpgradeError::SuccessorExited { status: None }))));
    /// ```
    pub fn handle_closed(&mut self) {
        self.fail(UpgradeError::SuccessorExited { status: None });
    }

    /// Sending the set or receiving the answer failed with `error`: the
    /// peer's going away (see [`UpgradeError::from_connection`]) counts as
    /// its close, anything else is [`UpgradeError::Channel`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Attempt, UpgradeError};
    /// let mut attempt = Attempt::connected(Instant::now(), Duration::from_secs(30));
    /// attempt.handle_failed(fdpass_core::Error::PeerClosed);
    /// assert!(matches!(attempt.take_outcome(), Some(Err(UpgradeError::SuccessorExited { .. }))));
    /// ```
    pub fn handle_failed(&mut self, error: Error) {
        self.fail(UpgradeError::from_connection(error));
    }

    /// The spawned successor exited with `status` (on its own, or stopped
    /// because [`must_stop_successor`](Self::must_stop_successor) said so);
    /// `None` when it ended but its status could not be read (`wait(2)`
    /// failed). Report it once.
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Attempt, UpgradeError};
    /// let mut attempt = Attempt::spawned(Instant::now(), Duration::from_secs(30));
    /// attempt.handle_exit(Some(std::process::ExitStatus::from_raw(7 << 8))); // exit(7)
    /// assert!(attempt.take_outcome().is_none(), "the connection has the last word");
    /// attempt.handle_closed();
    /// match attempt.take_outcome() {
    ///     Some(Err(UpgradeError::SuccessorExited { status: Some(status) })) => assert_eq!(status.code(), Some(7)),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn handle_exit(&mut self, status: Option<ExitStatus>) {
        self.exited = true;
        self.exit = status;
        if let Phase::Stopping(_) = self.phase {
            if let Phase::Stopping(error) = std::mem::replace(&mut self.phase, Phase::Waiting) {
                self.decide_failed(error);
            }
        }
    }

    /// The time is `now`: past the deadline, an attempt still waiting for
    /// its answer fails with [`UpgradeError::ReadyTimeout`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::Attempt;
    /// let start = Instant::now();
    /// let mut attempt = Attempt::connected(start, Duration::from_secs(1));
    /// attempt.handle_timeout(start + Duration::from_secs(1));
    /// assert!(attempt.take_outcome().expect("timed out").is_err());
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Waiting) && now >= self.deadline {
            self.fail(UpgradeError::ReadyTimeout {
                waited: now.saturating_duration_since(self.started),
            });
        }
    }

    /// The adapter could not go on for a reason of its own (the control
    /// connection could not be set up, the set not copied): the attempt
    /// fails with `error`, stopping a spawned successor first.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Attempt, UpgradeError};
    /// let mut attempt = Attempt::spawned(Instant::now(), Duration::from_secs(30));
    /// attempt.abandon(UpgradeError::Channel(std::io::Error::other("no memory").into()));
    /// assert!(attempt.must_stop_successor());
    /// ```
    pub fn abandon(&mut self, error: UpgradeError) {
        self.fail(error);
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the
    /// ready deadline while the answer is awaited, `None` once it no longer
    /// matters (stopping a successor waits for its exit only).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Answer, Attempt};
    /// let mut attempt = Attempt::connected(Instant::now(), Duration::from_secs(30));
    /// assert!(attempt.deadline().is_some());
    /// attempt.handle_answer(Answer::Ready.into_message());
    /// assert_eq!(attempt.deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting => Some(self.deadline),
            _ => None,
        }
    }

    /// Whether the adapter must stop (kill) the successor it spawned and
    /// then report its exit with [`handle_exit`](Self::handle_exit): the
    /// attempt failed and the successor may still run.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::Attempt;
    /// let mut attempt = Attempt::spawned(Instant::now(), Duration::from_secs(30));
    /// assert!(!attempt.must_stop_successor());
    /// attempt.handle_closed();
    /// assert!(attempt.must_stop_successor());
    /// ```
    pub fn must_stop_successor(&self) -> bool {
        matches!(self.phase, Phase::Stopping(_))
    }

    /// The outcome, once decided (given out once): `Ok` when the successor
    /// is ready, otherwise why not (see [`UpgradeError`]).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::upgrade::{Answer, Attempt};
    /// let mut attempt = Attempt::connected(Instant::now(), Duration::from_secs(30));
    /// assert!(attempt.take_outcome().is_none());
    /// attempt.handle_answer(Answer::Ready.into_message());
    /// assert!(attempt.take_outcome().is_some());
    /// assert!(attempt.take_outcome().is_none());
    /// ```
    pub fn take_outcome(&mut self) -> Option<Result<(), UpgradeError>> {
        match &mut self.phase {
            Phase::Decided(outcome) => outcome.take(),
            _ => None,
        }
    }

    fn fail(&mut self, error: UpgradeError) {
        if !matches!(self.phase, Phase::Waiting) {
            return;
        }
        if self.spawned && !self.exited {
            self.phase = Phase::Stopping(error);
        } else {
            self.decide_failed(error);
        }
    }

    fn decide_failed(&mut self, error: UpgradeError) {
        let error = match error {
            UpgradeError::SuccessorExited { status: None } => {
                UpgradeError::SuccessorExited { status: self.exit }
            }
            error => error,
        };
        self.phase = Phase::Decided(Some(Err(error)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const BOUND: Duration = Duration::from_secs(2);

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn killed() -> ExitStatus {
        ExitStatus::from_raw(9)
    }

    #[test]
    fn ready_decides_at_once_and_leaves_a_spawned_successor_running() {
        let mut attempt = Attempt::spawned(Instant::now(), BOUND);
        attempt.handle_answer(Answer::Ready.into_message());
        assert!(!attempt.must_stop_successor());
        assert!(matches!(attempt.take_outcome(), Some(Ok(()))));
    }

    #[test]
    fn a_spawned_successor_that_closes_is_stopped_and_reported_with_its_status() {
        let mut attempt = Attempt::spawned(Instant::now(), BOUND);
        attempt.handle_closed();
        assert!(attempt.must_stop_successor());
        assert!(attempt.take_outcome().is_none(), "not before its exit");
        attempt.handle_exit(Some(exited(7)));
        match attempt.take_outcome() {
            Some(Err(UpgradeError::SuccessorExited {
                status: Some(status),
            })) => assert_eq!(status.code(), Some(7)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_exit_seen_before_the_close_needs_no_stop() {
        let mut attempt = Attempt::spawned(Instant::now(), BOUND);
        attempt.handle_exit(Some(exited(3)));
        assert!(attempt.take_outcome().is_none());
        assert!(attempt.deadline().is_some(), "still bounded");
        attempt.handle_failed(Error::PeerClosed);
        assert!(!attempt.must_stop_successor());
        assert!(matches!(
            attempt.take_outcome(),
            Some(Err(UpgradeError::SuccessorExited { status: Some(s) })) if s.code() == Some(3)
        ));
    }

    #[test]
    fn a_ready_answer_read_after_the_exit_still_counts() {
        let mut attempt = Attempt::spawned(Instant::now(), BOUND);
        attempt.handle_exit(Some(exited(0)));
        attempt.handle_answer(Answer::Ready.into_message());
        assert!(matches!(attempt.take_outcome(), Some(Ok(()))));
    }

    #[test]
    fn the_deadline_fails_the_attempt_with_the_time_waited() {
        let start = Instant::now();
        let mut attempt = Attempt::spawned(start, BOUND);
        attempt.handle_timeout(start + BOUND - Duration::from_millis(1));
        assert!(!attempt.must_stop_successor());
        attempt.handle_timeout(start + BOUND + Duration::from_millis(5));
        assert!(attempt.must_stop_successor());
        // Nothing after the failure changes it.
        attempt.handle_answer(Answer::Ready.into_message());
        attempt.handle_exit(Some(killed()));
        assert!(matches!(
            attempt.take_outcome(),
            Some(Err(UpgradeError::ReadyTimeout { waited })) if waited == BOUND + Duration::from_millis(5)
        ));
    }

    #[test]
    fn a_connected_successor_is_never_stopped_from_here() {
        let start = Instant::now();
        let mut attempt = Attempt::connected(start, BOUND);
        attempt.handle_answer(
            Answer::Failed {
                reason: "no".into(),
            }
            .into_message(),
        );
        assert!(!attempt.must_stop_successor());
        assert!(matches!(
            attempt.take_outcome(),
            Some(Err(UpgradeError::SuccessorFailed { reason })) if reason == "no"
        ));
    }

    #[test]
    fn an_unexpected_answer_is_a_typed_error() {
        let (read_end, _write_end) = std::io::pipe().expect("pipe");
        let mut attempt = Attempt::connected(Instant::now(), BOUND);
        attempt.handle_answer(Message::new(b"HELLO".to_vec(), vec![read_end.into()]));
        assert!(matches!(
            attempt.take_outcome(),
            Some(Err(UpgradeError::UnexpectedAnswer {
                payload_len: 5,
                descriptors: 1
            }))
        ));
    }

    #[test]
    fn a_connection_error_other_than_the_peer_going_away_is_a_channel_error() {
        let mut attempt = Attempt::connected(Instant::now(), BOUND);
        attempt.handle_failed(Error::from(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied,
        )));
        assert!(matches!(
            attempt.take_outcome(),
            Some(Err(UpgradeError::Channel(_)))
        ));
    }
}
