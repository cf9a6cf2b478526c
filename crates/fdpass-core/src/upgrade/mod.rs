//! Upgrading a running server without refusing a connection, sans-IO: the
//! protocol between the old process and its successor, and the decisions
//! of one upgrade attempt. Nothing here blocks, polls, spawns, waits for a
//! process or reads the clock; an adapter does that and feeds in what
//! happened (`fdpass_tokio::upgrade` is the complete lifecycle on tokio).
//!
//! The old process starts a successor, hands it its named descriptors
//! (copies: it keeps serving with its own), waits a bounded time for the
//! successor to say it is ready, and only then stops accepting, drains and
//! exits. The control connection carries two messages (see
//! `docs/handover.md`):
//!
//! 1. old to successor: one named descriptor set ([`NamedFds`], whose
//!    bytes `docs/handover.md` specifies);
//! 2. successor to old: an [`Answer`]: [`READY`] (no descriptors), or
//!    [`FAILED_PREFIX`] followed by a reason in UTF-8.
//!
//! [`Attempt`] decides one upgrade on the old side from the connection's
//! outcome, the successor's exit and the time: it says when to give up
//! ([`Attempt::deadline`]), when a successor this process started must be
//! stopped ([`Attempt::must_stop_successor`]) and, at the end, the outcome
//! with a typed [`UpgradeError`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use fdpass_core::upgrade::{Answer, Attempt, UpgradeError};
//!
//! // The adapter spawned a successor and sent it the named set; the
//! // successor answers `FAILED=...`.
//! let start = Instant::now();
//! let mut attempt = Attempt::spawned(start, Duration::from_secs(5));
//! assert_eq!(attempt.deadline(), Some(start + Duration::from_secs(5)));
//! attempt.handle_answer(Answer::Failed { reason: "no config".into() }.into_message());
//! // It must not go on running half started: the adapter kills it and
//! // reports its exit.
//! assert!(attempt.must_stop_successor());
//! # use std::os::unix::process::ExitStatusExt;
//! # let status = std::process::ExitStatus::from_raw(9); // killed by SIGKILL
//! attempt.handle_exit(Some(status));
//! let outcome = attempt.take_outcome().expect("decided");
//! assert!(matches!(outcome, Err(UpgradeError::SuccessorFailed { reason }) if reason == "no config"));
//! ```

mod answer;
mod attempt;
mod error;

use std::ffi::OsStr;
use std::time::Duration;

pub use crate::handover::NamedFds;
pub use answer::Answer;
pub use attempt::Attempt;
pub use error::UpgradeError;

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

/// The environment variable, set to `1`, that tells a process an upgrade
/// started it as a successor (next to the variables of [`crate::child`],
/// which name its control connection).
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

/// The variables a spawned successor must not inherit: systemd's socket
/// activation (`sd_listen_fds(3)`) names the old process's descriptors, and
/// the successor gets what it needs over the control connection instead.
///
/// ```
/// assert!(fdpass_core::upgrade::NOT_INHERITED_VARS.contains(&"LISTEN_FDS"));
/// ```
pub const NOT_INHERITED_VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"];

/// Whether this process was started by an upgrade as a successor:
/// [`SUCCESSOR_VAR`] is `1`. Then it takes its control connection with
/// [`crate::child::adopt_inherited`]; otherwise it starts afresh.
///
/// ```
/// // A process started normally is not a successor.
/// assert!(!fdpass_core::upgrade::started_as_successor());
/// ```
pub fn started_as_successor() -> bool {
    std::env::var_os(SUCCESSOR_VAR).as_deref() == Some(OsStr::new("1"))
}
