//! async-io's readiness and timer, in the shape fdpass-core's driver wants.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use fdpass_core::driver::{Direction, Reactor};
use fdpass_core::SharedSocket;

/// async-io's readiness for the passer's socket and a timer for its deadlines.
///
/// Not constructed by users: it is the reactor behind
/// [`Passer`](crate::Passer), named only inside the future aliases
/// [`SendFd`](crate::SendFd), [`RecvFd`](crate::RecvFd) and
/// [`Flush`](crate::Flush).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, _b) = fdpass_smol::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// // `fdpass_smol::SendFd<'_>` is `fdpass_core::driver::SendFd<'_, SmolReactor>`.
/// let sending: fdpass_smol::SendFd<'_> = a.send(read_end.into());
/// sending.await?;
/// # Ok(()) })
/// # }
/// ```
pub struct SmolReactor {
    /// The registration owns a shared handle on the socket (the core passer
    /// owns the other), so the descriptor cannot close while it is
    /// registered, whichever is dropped first, and no descriptor is added.
    io: Async<Arc<SharedSocket>>,
    timer: Option<(Instant, Timer)>,
}

impl SmolReactor {
    /// Registers the core passer's socket with async-io's reactor.
    pub(crate) fn new(passer: &fdpass_core::Passer) -> io::Result<Self> {
        // The core passer has already made the socket non-blocking (or was
        // told it is), so registering skips async-io's own `FIONBIO`.
        let io = Async::new_nonblocking(passer.shared_socket())?;
        Ok(SmolReactor { io, timer: None })
    }
}

impl Reactor for SmolReactor {
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        attempt: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        // The driver asks only after the socket said "would block", and
        // async-io's readiness is one event per `Ready`: nothing to clear or
        // keep, whatever `attempt` reports.
        match direction {
            Direction::Read => ready!(self.io.poll_readable(cx))?,
            Direction::Write => ready!(self.io.poll_writable(cx))?,
        }
        attempt();
        Poll::Ready(Ok(()))
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        // A fired async-io timer stays pending forever; a deadline that has
        // passed is therefore answered from the clock, not from the timer.
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        let timer = match &mut self.timer {
            Some((at, timer)) => {
                if *at != deadline {
                    timer.set_at(deadline);
                    *at = deadline;
                }
                timer
            }
            None => &mut self.timer.insert((deadline, Timer::at(deadline))).1,
        };
        Pin::new(timer).poll(cx).map(|_| ())
    }
}
