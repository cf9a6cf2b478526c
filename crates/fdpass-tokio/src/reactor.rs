//! tokio's readiness and timer, in the shape fdpass-core's driver wants.
#![allow(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use fdpass_core::driver::{Direction, Reactor};
use fdpass_core::SharedSocket;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;

use crate::alarm::{self, Alarm};

/// tokio's readiness for the passer's socket and a timer for its deadlines.
///
/// Not constructed by users: it is the reactor behind
/// [`Passer`](crate::Passer), named only inside the future aliases
/// [`SendFd`](crate::SendFd), [`RecvFd`](crate::RecvFd) and
/// [`Flush`](crate::Flush).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, _b) = fdpass_tokio::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// // `fdpass_tokio::SendFd<'_>` is `fdpass_core::driver::SendFd<'_, TokioReactor>`.
/// let sending: fdpass_tokio::SendFd<'_> = a.send(read_end.into());
/// sending.await?;
/// # Ok(()) }
/// ```
pub struct TokioReactor {
    io: AsyncFd<Arc<SharedSocket>>,
    /// Retry deadlines: not tokio's timer, which panics once its runtime shut
    /// down (see the `alarm` module).
    alarms: &'static alarm::Queue,
    alarm: Alarm,
}

/// `Ok` inside a tokio runtime; otherwise an error of kind `Other` saying
/// that `what` needs one. tokio panics instead when a socket is registered
/// or a child spawned outside any runtime, and there is no way to ask it
/// beforehand but this.
pub(crate) fn require_runtime(what: &str) -> io::Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other(format!(
            "fdpass-tokio: {what} must be created inside a tokio runtime (with IO enabled)"
        ))),
    }
}

impl TokioReactor {
    /// Registers the passer's socket with the current runtime's reactor.
    ///
    /// # Errors
    /// Outside a tokio runtime, an error of kind `Other` (tokio itself would
    /// panic); `EAGAIN` if the process's alarm thread cannot be started.
    pub(crate) fn new(socket: Arc<SharedSocket>) -> io::Result<Self> {
        require_runtime("a passer")?;
        let alarms = alarm::queue()?;
        // SAFETY: the registration owns a shared handle on the socket (the
        // core passer holds the other), so the descriptor stays open and
        // names the same socket for as long as the `AsyncFd` exists, and an
        // `Arc<SharedSocket>` always reports the same number.
        let io = unsafe {
            AsyncFd::register_with_interest(socket, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(TokioReactor {
            io,
            alarms,
            alarm: Alarm::default(),
        })
    }
}

impl TokioReactor {
    fn poll_guard(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'_, Arc<SharedSocket>>>> {
        match direction {
            Direction::Read => self.io.poll_read_ready(cx),
            Direction::Write => self.io.poll_write_ready(cx),
        }
    }
}

/// Runs `attempt` under `guard` as `AsyncFd::try_io` does: readiness is
/// cleared only when the socket said "would block", so no event is lost.
fn attempt_under(
    mut guard: AsyncFdReadyGuard<'_, Arc<SharedSocket>>,
    attempt: &mut dyn FnMut() -> bool,
) {
    if attempt() {
        guard.clear_ready();
    } else {
        guard.retain_ready();
    }
}

impl Reactor for TokioReactor {
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        attempt: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        let guard = ready!(self.poll_guard(cx, direction))?;
        attempt_under(guard, attempt);
        Poll::Ready(Ok(()))
    }

    /// A try goes through tokio's readiness guard whenever tokio holds
    /// readiness from the last event: an attempt that blocks then clears it,
    /// and the wait that follows does not try once more in vain. Without
    /// readiness (a new socket whose first event tokio has not seen yet, or
    /// one that blocked since) the passer tries anyway, as it asked to: a
    /// fire-and-forget `push_send` on a fresh passer must still write at once.
    fn poll_try(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        attempt: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        match self.poll_guard(cx, direction) {
            Poll::Ready(Ok(guard)) => attempt_under(guard, attempt),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                attempt();
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        self.alarm.poll_at(self.alarms, cx, deadline)
    }
}
