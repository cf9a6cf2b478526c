//! tokio's readiness and timer, in the shape fdpass-core's driver wants.
#![allow(unsafe_code)]

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use fdpass_core::driver::{Direction, Reactor};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Sleep;

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
    io: AsyncFd<Arc<OwnedFd>>,
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl TokioReactor {
    /// Registers the passer's socket with the current runtime's reactor.
    pub(crate) fn new(socket: Arc<OwnedFd>) -> io::Result<Self> {
        // SAFETY: the registration owns a shared handle on the socket (the
        // core passer holds the other), so the descriptor stays open and
        // names the same socket for as long as the `AsyncFd` exists, and an
        // `Arc<OwnedFd>` always reports the same number.
        let io = unsafe {
            AsyncFd::register_with_interest(socket, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(TokioReactor { io, timer: None })
    }
}

impl Reactor for TokioReactor {
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        attempt: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        let mut guard = match direction {
            Direction::Read => ready!(self.io.poll_read_ready(cx))?,
            Direction::Write => ready!(self.io.poll_write_ready(cx))?,
        };
        // As `AsyncFd::try_io` does: clear readiness only when the socket
        // said "would block", so no event is lost.
        if attempt() {
            guard.clear_ready();
        } else {
            guard.retain_ready();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let sleep = match &mut self.timer {
            Some((at, sleep)) => {
                if *at != deadline {
                    sleep.as_mut().reset(deadline.into());
                    *at = deadline;
                }
                sleep
            }
            None => {
                &mut self
                    .timer
                    .insert((
                        deadline,
                        Box::pin(tokio::time::sleep_until(deadline.into())),
                    ))
                    .1
            }
        };
        sleep.as_mut().poll(cx)
    }
}
