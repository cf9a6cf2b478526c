//! The futures returned by [`Passer`]'s async methods.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use fdpass_core::driver::{RecvRequest, Waiter};
use fdpass_core::{Error, SendToken};

use crate::passer::Inner;
use crate::Passer;

/// Future of [`Passer::send`]: resolves once the kernel took the descriptor.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, _b) = fdpass_smol::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// let sending: fdpass_smol::SendFd<'_> = a.send(read_end.into());
/// sending.await?;
/// # Ok(()) })
/// # }
/// ```
#[must_use = "the descriptor is queued either way; await to learn when it was sent"]
#[derive(Debug)]
pub struct SendFd<'a> {
    passer: &'a Passer,
    /// The queued descriptor's token, or why it could not be queued.
    token: Option<Result<SendToken, Error>>,
    waiter: Waiter,
}

impl<'a> SendFd<'a> {
    pub(crate) fn new(passer: &'a Passer, token: Result<SendToken, Error>) -> Self {
        SendFd {
            passer,
            token: Some(token),
            waiter: Waiter::default(),
        }
    }
}

impl Future for SendFd<'_> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let token = match this.token.take() {
            Some(Ok(token)) => token,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => panic!("SendFd polled after completion"),
        };
        let mut inner = this.passer.shared.lock();
        let Inner { reactor, driver } = &mut *inner;
        let poll = driver.poll_sent(cx, reactor, token, &mut this.waiter);
        if poll.is_pending() {
            this.token = Some(Ok(token));
        }
        poll
    }
}

impl Drop for SendFd<'_> {
    fn drop(&mut self) {
        self.passer.shared.lock().driver.forget(&mut self.waiter);
    }
}

/// Future of [`Passer::recv`]: the next descriptor, or `None` at the peer's
/// orderly close. Cancel safe.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, b) = fdpass_smol::Passer::pair()?;
/// let receiving: fdpass_smol::RecvFd<'_> = b.recv();
/// drop(a);
/// assert!(receiving.await?.is_none());
/// # Ok(()) })
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct RecvFd<'a> {
    passer: &'a Passer,
    request: RecvRequest,
}

impl<'a> RecvFd<'a> {
    pub(crate) fn new(passer: &'a Passer) -> Self {
        RecvFd {
            passer,
            request: RecvRequest::default(),
        }
    }
}

impl Future for RecvFd<'_> {
    type Output = Result<Option<OwnedFd>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut inner = this.passer.shared.lock();
        let Inner { reactor, driver } = &mut *inner;
        driver.poll_recv(cx, reactor, &mut this.request)
    }
}

impl Drop for RecvFd<'_> {
    fn drop(&mut self) {
        self.passer
            .shared
            .lock()
            .driver
            .cancel_recv(&mut self.request);
    }
}

/// Future of [`Passer::flush`]: resolves once everything queued was sent.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, _b) = fdpass_smol::Passer::pair()?;
/// let flushing: fdpass_smol::Flush<'_> = a.flush();
/// flushing.await?; // nothing was queued
/// # Ok(()) })
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Flush<'a> {
    passer: &'a Passer,
    waiter: Waiter,
}

impl<'a> Flush<'a> {
    pub(crate) fn new(passer: &'a Passer) -> Self {
        Flush {
            passer,
            waiter: Waiter::default(),
        }
    }
}

impl Future for Flush<'_> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut inner = this.passer.shared.lock();
        let Inner { reactor, driver } = &mut *inner;
        driver.poll_flush(cx, reactor, &mut this.waiter)
    }
}

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        self.passer.shared.lock().driver.forget(&mut self.waiter);
    }
}
