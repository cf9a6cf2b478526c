//! One round of a `poll(2)` loop around a [`Passer`], the way the core's
//! documentation drives it: run due retries, wait for exactly what the passer
//! wants (no longer than its retry deadline or the caller's), tell it what
//! happened, collect its events.

use std::io;
use std::time::Instant;

use fdpass_core::sys::Sys;
use fdpass_core::{Event, Passer, Want};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// What one [`step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// `poll` returned `EINTR` (a signal arrived while it waited); nothing
    /// was handled this round.
    pub interrupted: bool,
    /// The passer wanted nothing and had no retry pending, and the caller
    /// gave no deadline: nothing can happen by waiting, so the round did not
    /// wait. The caller must change something (push work) or give up.
    pub stuck: bool,
}

/// Runs one round for `passer`, waiting at most until `until` (if given),
/// and appends the events it produced to `events`.
///
/// # Errors
/// Only a failing `poll` (other than `EINTR`). Passer failures arrive as
/// [`Event::Failed`].
pub fn step<S: Sys>(
    passer: &mut Passer<S>,
    until: Option<Instant>,
    events: &mut Vec<Event>,
) -> io::Result<Round> {
    let mut round = Round::default();
    let now = Instant::now();
    passer.handle_timeout(now);
    let interest = passer.interest();
    let mut flags = PollFlags::empty();
    if interest.read == Want::WhenReady {
        flags |= PollFlags::IN;
    }
    if interest.write == Want::WhenReady {
        flags |= PollFlags::OUT;
    }
    let must_act = interest.read == Want::Now || interest.write == Want::Now;
    let deadline = match (passer.poll_timeout(), until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let timeout = if must_act {
        Some(Timespec::default())
    } else if let Some(deadline) = deadline {
        Some(
            Timespec::try_from(deadline.saturating_duration_since(now))
                .map_err(io::Error::other)?,
        )
    } else if !flags.is_empty() {
        None
    } else {
        round.stuck = true;
        return Ok(round);
    };
    // Only a passer that waits for readiness goes into the poll set: poll
    // reports a hang-up even for an empty mask, which would make waiting for
    // a deadline a busy loop once the peer is gone.
    let mut fds = [PollFd::new(&*passer, flags)];
    let fds = if flags.is_empty() {
        &mut fds[..0]
    } else {
        &mut fds[..]
    };
    match poll(fds, timeout.as_ref()) {
        Ok(_) => {}
        Err(Errno::INTR) => {
            round.interrupted = true;
            return Ok(round);
        }
        Err(e) => return Err(e.into()),
    }
    let ready = fds.first().map_or(PollFlags::empty(), |fd| fd.revents());
    let now = Instant::now();
    if interest.read == Want::Now
        || ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
    {
        passer.handle_readable(now);
    }
    if interest.write == Want::Now
        || ready.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR)
    {
        passer.handle_writable(now);
    }
    while let Some(event) = passer.poll_event() {
        events.push(event);
    }
    Ok(round)
}
