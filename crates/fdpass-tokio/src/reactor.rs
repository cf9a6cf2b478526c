//! tokio's readiness and timer, in the shape fdpass-core's driver wants.
#![allow(unsafe_code)]

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use fdpass_core::driver::{Direction, Reactor};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Sleep;

/// The passer's socket number, for registration only. The socket itself is
/// owned by the core passer, which outlives this registration (see
/// [`Shared`](crate::passer::Shared): the reactor is dropped first).
pub(crate) struct SocketNumber(RawFd);

impl AsRawFd for SocketNumber {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

pub(crate) struct TokioReactor {
    io: AsyncFd<SocketNumber>,
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
}

impl TokioReactor {
    /// Registers the socket with the current runtime's reactor.
    ///
    /// `fd` must be the socket of the core passer that [`Inner`](crate::passer::Inner)
    /// holds beside this reactor.
    pub(crate) fn new(fd: RawFd) -> io::Result<Self> {
        // SAFETY: `fd` is the socket owned by the core passer in the same
        // `Inner` as this reactor. The core passer closes its socket only when
        // it is dropped (close() and failures shut it down but keep the
        // descriptor), and `Inner` declares the reactor before the driver, so
        // this registration is dropped while the descriptor is still open and
        // still names the same socket. `SocketNumber` always returns `fd`.
        let io = unsafe {
            AsyncFd::register_with_interest(
                SocketNumber(fd),
                Interest::READABLE | Interest::WRITABLE,
            )
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
