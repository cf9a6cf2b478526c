//! The futures of an async passer's `send`, `recv`, `send_message`,
//! `recv_message`, `flush` and `closed`, generic over the adapter's reactor.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::handle::{Locked, Shared};
use super::{Reactor, RecvRequest, Waiter};
use crate::{Error, Message, PushError, SendToken};

/// Future of `send`: resolves once the kernel took the descriptor.
///
/// The descriptor was queued when `send` was called if the send queue had
/// room under [`Config::max_queued_sends`](crate::Config::max_queued_sends)
/// (always, by default); otherwise polling waits for room and queues it
/// then (back-pressure). Dropping the future once the descriptor is queued
/// never un-sends it (only the notification is lost); dropping it while it
/// still waits for room lets go of the descriptor, which was never queued.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::Waker;
/// use fdpass_core::driver::{Handle, SendFd};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let mut cx = Context::from_waker(Waker::noop());
/// let (read_end, _write_end) = std::io::pipe()?;
/// let sending: SendFd<'_, TryAlways> = a.send(read_end.into());
/// assert!(matches!(pin!(sending).poll(&mut cx), Poll::Ready(Ok(()))));
/// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
/// # Ok(()) }
/// ```
#[must_use = "the descriptor is queued either way; await to learn when it was sent"]
pub struct SendFd<'a, R> {
    shared: &'a Shared<R>,
    /// The descriptor while it waits for room in the send queue.
    pending: Option<OwnedFd>,
    /// Its token once queued (or why it never will be); `None` while pending.
    token: Option<Result<SendToken, Error>>,
    waiter: Waiter,
}

impl<'a, R> SendFd<'a, R> {
    pub(crate) fn new(shared: &'a Shared<R>, fd: OwnedFd) -> Self {
        let (pending, token) = match shared.lock().driver.push_send(fd) {
            Ok(token) => (None, Some(Ok(token))),
            Err(PushError::Full(fd)) => (Some(fd), None),
            Err(e) => (None, Some(Err(Error::from(e)))),
        };
        SendFd {
            shared,
            pending,
            token,
            waiter: Waiter::default(),
        }
    }
}

impl<R: Reactor> Future for SendFd<'_, R> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Polled again after completing, it answers the same (no panic): a
        // sent token stays sent, a failure stays the failure.
        if let Some(Err(e)) = &this.token {
            return Poll::Ready(Err(e.clone()));
        }
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        let token = match this.token {
            Some(Ok(token)) => token,
            _ => match driver.poll_push(cx, reactor, &mut this.pending, &mut this.waiter) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.token = Some(Err(e.clone()));
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(token)) => {
                    this.token = Some(Ok(token));
                    token
                }
            },
        };
        driver.poll_sent(cx, reactor, token, &mut this.waiter)
    }
}

impl<R> Drop for SendFd<'_, R> {
    fn drop(&mut self) {
        // A future that never waited (the common case) has nothing to undo:
        // skip the lock.
        if self.waiter.is_registered() {
            self.shared.lock().driver.forget(&mut self.waiter);
        }
        // Never queued: it may be the last reference to someone else's
        // file, so it is not closed on this thread.
        if let Some(fd) = self.pending.take() {
            crate::disposal::dispose(fd);
        }
    }
}

impl<R> std::fmt::Debug for SendFd<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFd")
            .field("token", &self.token)
            .field("waiting_for_room", &self.pending.is_some())
            .finish()
    }
}

/// Future of `recv`: the next descriptor, or `None` at the peer's orderly
/// close. Requests are served in the order `recv` was called, whichever
/// future is polled first. Cancel safe: a descriptor that arrived for a
/// dropped `RecvFd` goes to the next request, in order.
///
/// A `recv` takes descriptors of messages that carry no payload. One whose
/// turn comes at a message with payload bytes (or an empty message)
/// resolves to [`Error::UnexpectedMessage`] and takes nothing: the message
/// waits, whole, for the next `recv_message`, and the passer stays usable.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::future::Future;
/// use std::pin::{pin, Pin};
/// use std::task::Waker;
/// use fdpass_core::driver::{Handle, RecvFd};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let mut cx = Context::from_waker(Waker::noop());
/// let mut first: RecvFd<'_, TryAlways> = b.recv();
/// assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
/// drop(first); // cancelled: nothing is lost
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.push_send(read_end.into())?;
/// assert!(matches!(pin!(b.recv()).poll(&mut cx), Poll::Ready(Ok(Some(_)))));
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RecvFd<'a, R> {
    shared: &'a Shared<R>,
    request: RecvRequest,
}

impl<'a, R> RecvFd<'a, R> {
    /// Takes its place in line now, at the call, not at the first poll.
    pub(crate) fn new(shared: &'a Shared<R>) -> Self {
        RecvFd {
            shared,
            request: shared.lock().driver.request_recv(),
        }
    }
}

impl<R: Reactor> Future for RecvFd<'_, R> {
    type Output = Result<Option<OwnedFd>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_recv(cx, reactor, &mut this.request)
    }
}

impl<R> Drop for RecvFd<'_, R> {
    fn drop(&mut self) {
        // A completed future holds neither a request nor a waker: skip the
        // lock.
        if self.request.is_pending() {
            self.shared.lock().driver.cancel_recv(&mut self.request);
        }
    }
}

impl<R> std::fmt::Debug for RecvFd<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvFd")
            .field("request", &self.request)
            .finish()
    }
}

/// Future of `send_message`: resolves once the kernel took the message.
///
/// The message was queued when `send_message` was called if the send queue
/// had room for it under
/// [`Config::max_queued_sends`](crate::Config::max_queued_sends) and
/// [`Config::max_queued_bytes`](crate::Config::max_queued_bytes) (always, by
/// default); otherwise polling waits for room and queues it then
/// (back-pressure, in descriptors and in payload bytes). Dropping the future
/// once the message is queued never un-sends it (only the notification is
/// lost); dropping it while it still waits for room lets go of the message,
/// which was never queued. A message the peer can never take resolves to
/// [`Error::MessageTooLarge`] and is let go of (`push_send_message` hands
/// it back instead).
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::Waker;
/// use fdpass_core::driver::{Handle, SendMessage};
/// use fdpass_core::{Config, Message, Passer};
///
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let mut cx = Context::from_waker(Waker::noop());
/// let sending: SendMessage<'_, TryAlways> = a.send_message(Message::from_payload("job 7"));
/// assert!(matches!(pin!(sending).poll(&mut cx), Poll::Ready(Ok(()))));
/// let Poll::Ready(Ok(Some(message))) = pin!(b.recv_message()).poll(&mut cx) else { panic!() };
/// assert_eq!(message.payload, b"job 7");
/// # Ok(()) }
/// ```
#[must_use = "the message is queued either way; await to learn when it was sent"]
pub struct SendMessage<'a, R> {
    shared: &'a Shared<R>,
    /// The message while it waits for room in the send queue.
    pending: Option<Message>,
    /// Its token once queued (or why it never will be); `None` while pending.
    token: Option<Result<SendToken, Error>>,
    waiter: Waiter,
}

impl<'a, R> SendMessage<'a, R> {
    pub(crate) fn new(shared: &'a Shared<R>, message: Message) -> Self {
        let (pending, token) = match shared.lock().driver.push_send_message(message) {
            Ok(token) => (None, Some(Ok(token))),
            Err(PushError::Full(message)) => (Some(message), None),
            Err(e) => (None, Some(Err(Error::from(e)))),
        };
        SendMessage {
            shared,
            pending,
            token,
            waiter: Waiter::default(),
        }
    }
}

impl<R: Reactor> Future for SendMessage<'_, R> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(Err(e)) = &this.token {
            return Poll::Ready(Err(e.clone()));
        }
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        let token = match this.token {
            Some(Ok(token)) => token,
            _ => match driver.poll_push_message(cx, reactor, &mut this.pending, &mut this.waiter) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.token = Some(Err(e.clone()));
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(token)) => {
                    this.token = Some(Ok(token));
                    token
                }
            },
        };
        driver.poll_sent(cx, reactor, token, &mut this.waiter)
    }
}

impl<R> Drop for SendMessage<'_, R> {
    fn drop(&mut self) {
        if self.waiter.is_registered() {
            self.shared.lock().driver.forget(&mut self.waiter);
        }
        // Never queued: its descriptors may be the last references to
        // someone else's files, so they are not closed on this thread.
        if let Some(message) = self.pending.take() {
            message.fds.into_iter().for_each(crate::disposal::dispose);
        }
    }
}

impl<R> std::fmt::Debug for SendMessage<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMessage")
            .field("token", &self.token)
            .field("waiting_for_room", &self.pending.is_some())
            .finish()
    }
}

/// Future of `recv_message`: the next message, whole, or `None` at the
/// peer's orderly close. Served in line with `recv` and `recv_many`, in the
/// order they were called, whichever future is polled first. Cancel safe: a
/// message that arrived for a dropped `RecvMessage` goes to the next request
/// in line, in order (a descriptor request takes its descriptors if it
/// carries no payload, and is refused with
/// [`Error::UnexpectedMessage`] if it does).
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::future::Future;
/// use std::pin::{pin, Pin};
/// use std::task::Waker;
/// use fdpass_core::driver::{Handle, RecvMessage};
/// use fdpass_core::{Config, Message, Passer};
///
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let mut cx = Context::from_waker(Waker::noop());
/// let mut first: RecvMessage<'_, TryAlways> = b.recv_message();
/// assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
/// drop(first); // cancelled: nothing is lost
/// a.push_send_message(Message::from_payload("ping"))?;
/// let Poll::Ready(Ok(Some(message))) = pin!(b.recv_message()).poll(&mut cx) else { panic!() };
/// assert_eq!(message.payload, b"ping");
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RecvMessage<'a, R> {
    shared: &'a Shared<R>,
    request: RecvRequest,
}

impl<'a, R> RecvMessage<'a, R> {
    /// Takes its place in line now, at the call, not at the first poll.
    pub(crate) fn new(shared: &'a Shared<R>) -> Self {
        RecvMessage {
            shared,
            request: shared.lock().driver.request_recv_message(),
        }
    }
}

impl<R: Reactor> Future for RecvMessage<'_, R> {
    type Output = Result<Option<Message>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_recv_message(cx, reactor, &mut this.request)
    }
}

impl<R> Drop for RecvMessage<'_, R> {
    fn drop(&mut self) {
        if self.request.is_pending() {
            self.shared.lock().driver.cancel_recv(&mut self.request);
        }
    }
}

impl<R> std::fmt::Debug for RecvMessage<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMessage")
            .field("request", &self.request)
            .finish()
    }
}

/// The future of [`Handle::recv_many`](super::Handle::recv_many): waits for
/// the next descriptor, then moves it and what else is already here, up to a
/// limit, into the caller's vector.
///
/// Dropping it before it completes loses nothing: a descriptor that already
/// arrived for it goes to the next receiver, in order, and `buf` is only
/// written when it completes.
///
/// It takes descriptors across messages that carry no payload and stops
/// before one that does; if its turn comes at such a message it resolves
/// to [`Error::UnexpectedMessage`] as `recv` does, and the message waits
/// for a `recv_message`.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::Waker;
/// use fdpass_core::driver::Handle;
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let mut cx = Context::from_waker(Waker::noop());
/// let mut buf = Vec::new();
/// assert!(pin!(b.recv_many(&mut buf, 10)).poll(&mut cx).is_pending()); // dropped: nothing lost
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.push_send(read_end.into())?;
/// assert!(matches!(pin!(b.recv_many(&mut buf, 10)).poll(&mut cx), Poll::Ready(Ok(1))));
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RecvMany<'a, R> {
    shared: &'a Shared<R>,
    request: RecvRequest,
    buf: &'a mut Vec<OwnedFd>,
    limit: usize,
}

impl<'a, R> RecvMany<'a, R> {
    /// Takes its place in line now, at the call, not at the first poll.
    pub(crate) fn new(shared: &'a Shared<R>, buf: &'a mut Vec<OwnedFd>, limit: usize) -> Self {
        RecvMany {
            shared,
            request: shared.lock().driver.request_recv_many(limit),
            buf,
            limit,
        }
    }
}

impl<R: Reactor> Future for RecvMany<'_, R> {
    type Output = Result<usize, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_recv_many(cx, reactor, &mut this.request, this.buf, this.limit)
    }
}

impl<R> Drop for RecvMany<'_, R> {
    fn drop(&mut self) {
        if self.request.is_pending() {
            self.shared.lock().driver.cancel_recv(&mut self.request);
        }
    }
}

impl<R> std::fmt::Debug for RecvMany<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvMany")
            .field("request", &self.request)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Future of `flush`: resolves once everything queued was sent. Cancel safe.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::Waker;
/// use fdpass_core::driver::{Flush, Handle};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let mut cx = Context::from_waker(Waker::noop());
/// for _ in 0..2 {
///     let (read_end, _write_end) = std::io::pipe()?;
///     drop(a.send(read_end.into())); // queued; dropping the future keeps it queued
/// }
/// let flushing: Flush<'_, TryAlways> = a.flush();
/// assert!(matches!(pin!(flushing).poll(&mut cx), Poll::Ready(Ok(()))));
/// for _ in 0..2 {
///     assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
/// }
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Flush<'a, R> {
    shared: &'a Shared<R>,
    waiter: Waiter,
}

impl<'a, R> Flush<'a, R> {
    pub(crate) fn new(shared: &'a Shared<R>) -> Self {
        Flush {
            shared,
            waiter: Waiter::default(),
        }
    }
}

impl<R: Reactor> Future for Flush<'_, R> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_flush(cx, reactor, &mut this.waiter)
    }
}

impl<R> Drop for Flush<'_, R> {
    fn drop(&mut self) {
        if self.waiter.is_registered() {
            self.shared.lock().driver.forget(&mut self.waiter);
        }
    }
}

impl<R> std::fmt::Debug for Flush<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flush").finish_non_exhaustive()
    }
}

/// Future of `closed`: resolves once the connection ended, with `Ok(())` at
/// the peer's orderly hang-up, the failure's error if the passer failed, or
/// [`Error::Closed`] after a local close (see
/// [`Driver::poll_closed`](super::Driver::poll_closed)). A passer that only
/// sends learns this way that nobody is listening any more. Cancel safe.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::Waker;
/// use fdpass_core::driver::{Closed, Handle};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let a = Handle::new(a, TryAlways);
/// let mut cx = Context::from_waker(Waker::noop());
/// drop(b);
/// let closed: Closed<'_, TryAlways> = a.closed();
/// assert!(matches!(pin!(closed).poll(&mut cx), Poll::Ready(Ok(()))));
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Closed<'a, R> {
    shared: &'a Shared<R>,
    waiter: Waiter,
}

impl<'a, R> Closed<'a, R> {
    pub(crate) fn new(shared: &'a Shared<R>) -> Self {
        Closed {
            shared,
            waiter: Waiter::default(),
        }
    }
}

impl<R: Reactor> Future for Closed<'_, R> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_closed(cx, reactor, &mut this.waiter)
    }
}

impl<R> Drop for Closed<'_, R> {
    fn drop(&mut self) {
        if self.waiter.is_registered() {
            self.shared.lock().driver.forget(&mut self.waiter);
        }
    }
}

impl<R> std::fmt::Debug for Closed<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

/// Future of `shutdown`: resolves once the graceful shutdown ended, with
/// `Ok(())` when everything queued was sent and the socket shut down, or the
/// error that ended it ([`Error::ShutdownTimedOut`] at the deadline, the
/// peer's failure, [`Error::Closed`] after an abortive close); then
/// [`Handle::take_unsent`](super::Handle::take_unsent) hands back what was
/// not sent. Dropping it does not stop the shutdown, which any other task
/// polling the passer drives on, up to its deadline.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::Waker;
/// use fdpass_core::driver::{Handle, Shutdown};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, _b) = Passer::pair(Config::default())?;
/// let a = Handle::new(a, TryAlways);
/// let mut cx = Context::from_waker(Waker::noop());
/// let deadline = Instant::now() + std::time::Duration::from_secs(5);
/// let ending: Shutdown<'_, TryAlways> = a.shutdown(deadline);
/// assert!(matches!(pin!(ending).poll(&mut cx), Poll::Ready(Ok(())))); // only the hello was owed
/// # Ok(()) }
/// ```
#[must_use = "the shutdown advances only while the passer is polled; await it"]
pub struct Shutdown<'a, R> {
    shared: &'a Shared<R>,
    waiter: Waiter,
}

impl<'a, R> Shutdown<'a, R> {
    pub(crate) fn new(shared: &'a Shared<R>) -> Self {
        Shutdown {
            shared,
            waiter: Waiter::default(),
        }
    }
}

impl<R: Reactor> Future for Shutdown<'_, R> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut locked = this.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_shutdown(cx, reactor, &mut this.waiter)
    }
}

impl<R> Drop for Shutdown<'_, R> {
    fn drop(&mut self) {
        if self.waiter.is_registered() {
            self.shared.lock().driver.forget(&mut self.waiter);
        }
    }
}

impl<R> std::fmt::Debug for Shutdown<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").finish_non_exhaustive()
    }
}
