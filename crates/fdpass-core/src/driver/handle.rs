//! One shared, locked driver and reactor, and the handles async adapters give
//! their users.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::futures::{Closed, Flush, RecvFd, RecvMany, RecvMessage, SendFd, SendMessage, Shutdown};
use super::{Driver, Messages, Reactor, RecvRequest, Waiter};
use crate::{Config, Error, Message, Passer, PeerLimits, PushError, Stats};

/// The driver and the reactor of one connection, behind one lock. Every
/// operation locks it briefly and never across an `.await`.
pub(crate) struct Shared<R> {
    inner: Mutex<Locked<R>>,
}

pub(crate) struct Locked<R> {
    pub(crate) reactor: R,
    pub(crate) driver: Driver,
}

impl<R> Shared<R> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked<R>> {
        // A panic while the lock was held cannot leave the passer half-updated
        // in a way that loses descriptors (each step keeps ownership in one
        // place), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an async adapter's passer is made of: a clonable handle on the shared
/// driver and reactor, plus this handle's own state as a `Stream` and a
/// `Sink`. Adapters wrap it in their documented `Passer` type.
///
/// ```
/// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
/// # use fdpass_core::driver::{Direction, Reactor};
/// # #[derive(Debug)] struct TryAlways;
/// # impl Reactor for TryAlways {
/// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
/// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
/// # }
/// use std::task::Waker;
/// use fdpass_core::driver::Handle;
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.push_send(read_end.into())?;
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
/// # Ok(()) }
/// ```
pub struct Handle<R: Reactor> {
    shared: Arc<Shared<R>>,
    /// This handle's pending receive as a `Stream`.
    stream: RecvRequest,
    /// This handle's flush waiter as a `Sink`.
    sink: Waiter,
    /// The stream yielded its end or an error: it yields nothing more.
    stream_ended: bool,
}

impl<R: Reactor> std::fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("passer", self.shared.lock().driver.passer())
            .finish()
    }
}

impl<R: Reactor> Clone for Handle<R> {
    /// Another handle on the same connection, with its own stream and sink state.
    fn clone(&self) -> Self {
        Handle {
            shared: self.shared.clone(),
            stream: RecvRequest::default(),
            sink: Waiter::default(),
            stream_ended: false,
        }
    }
}

impl<R: Reactor> Drop for Handle<R> {
    fn drop(&mut self) {
        let mut locked = self.shared.lock();
        locked.driver.cancel_recv(&mut self.stream);
        locked.driver.forget(&mut self.sink);
    }
}

impl<R: Reactor> Handle<R> {
    /// Joins a passer with the reactor registration of its socket.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (passer, _peer) = Passer::pair(Config::default())?;
    /// let handle = Handle::new(passer, TryAlways);
    /// let clone = handle.clone(); // another handle on the same connection
    /// assert!(clone.poll_ready_now().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn new(passer: Passer, reactor: R) -> Self {
        let mut locked = Locked {
            reactor,
            driver: Driver::new(passer),
        };
        // On the native wire our hello goes out now, not with the first
        // send: a peer that sends before it arrived may put only one
        // descriptor in each `sendmsg`, and reads it as soon as it looks.
        let Locked { reactor, driver } = &mut locked;
        driver.drive_now(reactor);
        Handle {
            shared: Arc::new(Shared {
                inner: Mutex::new(locked),
            }),
            stream: RecvRequest::default(),
            sink: Waiter::default(),
            stream_ended: false,
        }
    }

    /// The passer's settings.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (passer, _peer) = Passer::pair(Config::default().with_max_fds_per_message(1))?;
    /// let handle = Handle::new(passer, TryAlways);
    /// assert_eq!(handle.config().max_fds_per_message, 1);
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> Config {
        *self.shared.lock().driver.passer().config()
    }

    /// A snapshot of the connection's gauges and counters (see
    /// [`Driver::stats`]); every handle on it reads the same.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// a.push_send(read_end.into())?; // written at once
    /// assert_eq!(a.clone().stats().descriptors_sent, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.lock().driver.stats()
    }

    /// Queues `fd` at once if the send queue has room under
    /// [`Config::max_queued_sends`] (always, by default), otherwise when
    /// the future, polled, finds room; it resolves when the kernel took
    /// `fd`. A future dropped before `fd` was queued lets go of it.
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
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// let sent = pin!(a.send(read_end.into())).poll(&mut cx);
    /// assert!(matches!(sent, Poll::Ready(Ok(()))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// # Ok(()) }
    /// ```
    pub fn send(&self, fd: OwnedFd) -> SendFd<'_, R> {
        SendFd::new(&self.shared, fd)
    }

    /// Queues `fd` and writes what the socket takes now.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     a.push_send(read_end.into())?;
    /// }
    /// for _ in 0..3 {
    ///     assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn push_send(&self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>> {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.push_send(fd)?;
        driver.drive_now(reactor);
        Ok(())
    }

    /// Queues every descriptor of `fds`, then writes what the socket takes
    /// now, in messages as full as the batch allows.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut batch = Vec::new();
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     batch.push(read_end.into());
    /// }
    /// a.push_send_many(batch)?; // one message of three
    /// for _ in 0..3 {
    ///     assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn push_send_many<I>(&self, fds: I) -> Result<(), PushError<Vec<OwnedFd>>>
    where
        I: IntoIterator<Item = OwnedFd>,
    {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.push_send_many(fds)?;
        driver.drive_now(reactor);
        Ok(())
    }

    /// The next received descriptor; `None` at the peer's orderly close.
    /// If its turn comes at a message with payload bytes (or an empty
    /// message) it resolves to [`Error::UnexpectedMessage`] and takes
    /// nothing: the message waits, whole, for the next
    /// [`recv_message`](Self::recv_message).
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
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// a.push_send(read_end.into())?;
    /// let Poll::Ready(Ok(Some(_fd))) = pin!(b.recv()).poll(&mut cx) else {
    ///     panic!("the descriptor was already in the socket");
    /// };
    /// # Ok(()) }
    /// ```
    pub fn recv(&self) -> RecvFd<'_, R> {
        RecvFd::new(&self.shared)
    }

    /// Queues `message` (payload bytes and descriptors, received together,
    /// whole) at once if the send queue has room for it under
    /// [`Config::max_queued_sends`] and [`Config::max_queued_bytes`]
    /// (always, by default), otherwise when the future, polled, finds room;
    /// it resolves when the kernel took the message. In push order with
    /// every other push. A future dropped before the message was queued
    /// lets go of it; one the peer can never take resolves to
    /// [`Error::MessageTooLarge`] (see [`SendMessage`]).
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # #[derive(Debug)] struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// let message = Message::new(b"203.0.113.7:41512".to_vec(), vec![read_end.into()]);
    /// assert!(matches!(pin!(a.send_message(message)).poll(&mut cx), Poll::Ready(Ok(()))));
    /// let Poll::Ready(Ok(Some(got))) = pin!(b.recv_message()).poll(&mut cx) else { panic!() };
    /// assert_eq!((got.payload.as_slice(), got.fds.len()), (&b"203.0.113.7:41512"[..], 1));
    /// # Ok(()) }
    /// ```
    pub fn send_message(&self, message: Message) -> SendMessage<'_, R> {
        SendMessage::new(&self.shared, message)
    }

    /// Queues `message` and writes what the socket takes now.
    ///
    /// # Errors
    /// Nothing is queued and the message comes back, its descriptors still
    /// open: [`PushError::Full`] at the high-water marks,
    /// [`PushError::Refused`] for a message the peer can never take,
    /// [`PushError::Unusable`] once sending ended (see
    /// [`Passer::push_send_message`]).
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # #[derive(Debug)] struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// a.push_send_message(Message::from_payload("status?"))?;
    /// let Poll::Ready(Ok(Some(got))) = pin!(b.recv_message()).poll(&mut cx) else { panic!() };
    /// assert_eq!(got.payload, b"status?");
    /// # Ok(()) }
    /// ```
    pub fn push_send_message(&self, message: Message) -> Result<(), PushError<Message>> {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.push_send_message(message)?;
        driver.drive_now(reactor);
        Ok(())
    }

    /// The next message, whole; `None` at the peer's orderly close. Served
    /// in line with [`recv`](Self::recv) and [`recv_many`](Self::recv_many),
    /// in the order they were called; after descriptor requests took some
    /// of a message's descriptors, the rest of it. On the classic wire each
    /// descriptor is a message of its own. Cancel safe (see [`RecvMessage`]).
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # #[derive(Debug)] struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// a.push_send_message(Message::from_payload(""))?; // empty messages travel too
    /// let Poll::Ready(Ok(Some(got))) = pin!(b.recv_message()).poll(&mut cx) else { panic!() };
    /// assert!(got.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn recv_message(&self) -> RecvMessage<'_, R> {
        RecvMessage::new(&self.shared)
    }

    /// What the peer announced in its hello on the native wire (the version
    /// spoken, the most descriptors and payload bytes per message it
    /// takes), once it arrived; `None` before, and on the classic wire.
    /// The hello is read as soon as the passer is driven, whether or not a
    /// receive is outstanding.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # #[derive(Debug)] struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// a.push_send_message(Message::from_payload("hi"))?;
    /// let _ = pin!(b.recv_message()).poll(&mut cx);
    /// assert_eq!(b.peer_limits().map(|peer| peer.max_payload_len), Some(65536));
    /// # Ok(()) }
    /// ```
    pub fn peer_limits(&self) -> Option<PeerLimits> {
        self.shared.lock().driver.peer_limits()
    }

    /// [`take_unsent`](Self::take_unsent), each push whole: messages with
    /// their payload and descriptors (a descriptor pushed alone comes back
    /// as a message of one), in push order, once sending failed; empty
    /// while the passer can send.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # #[derive(Debug)] struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// assert!(a.take_unsent_messages().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn take_unsent_messages(&self) -> Vec<Message> {
        self.shared.lock().driver.take_unsent_messages()
    }

    /// A stream and sink of whole messages on this connection (see
    /// [`Messages`]), with its own receive and sink state; receiving is in
    /// line with every other receive of the connection.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # #[derive(Debug)] struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// a.push_send_message(Message::from_payload("one"))?;
    /// let mut rx = b.messages();
    /// assert!(matches!(rx.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// # Ok(()) }
    /// ```
    pub fn messages(&self) -> Messages<R> {
        Messages::new(self.shared.clone())
    }

    /// Waits for the next descriptor, then moves it and up to `limit - 1`
    /// more that already arrived into `buf`; resolves to how many it moved,
    /// 0 only when `limit` is 0 or at the peer's orderly close (see
    /// [`Driver::poll_recv_many`]).
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
    /// // Polled, b sends its hello, which lets a send more than one
    /// // descriptor per sendmsg.
    /// assert!(pin!(b.closed()).poll(&mut cx).is_pending());
    /// let mut batch = Vec::new();
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     batch.push(read_end.into());
    /// }
    /// a.push_send_many(batch)?; // one sendmsg of three
    /// let mut buf = Vec::new();
    /// assert!(matches!(pin!(b.recv_many(&mut buf, 64)).poll(&mut cx), Poll::Ready(Ok(3))));
    /// # Ok(()) }
    /// ```
    pub fn recv_many<'a>(&'a self, buf: &'a mut Vec<OwnedFd>, limit: usize) -> RecvMany<'a, R> {
        RecvMany::new(&self.shared, buf, limit)
    }

    /// Resolves once everything queued so far was taken by the kernel.
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
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// drop(a.send(read_end.into())); // queued; the notification is not wanted
    /// assert!(matches!(pin!(a.flush()).poll(&mut cx), Poll::Ready(Ok(()))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// # Ok(()) }
    /// ```
    pub fn flush(&self) -> Flush<'_, R> {
        Flush::new(&self.shared)
    }

    /// Resolves once the connection ended: `Ok(())` at the peer's orderly
    /// hang-up, the failure's error, or [`Error::Closed`] after a local close
    /// (see [`Driver::poll_closed`]).
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
    /// use fdpass_core::{Config, Error, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(pin!(a.closed()).poll(&mut cx).is_pending()); // the peer is there
    /// a.close();
    /// assert!(matches!(pin!(a.closed()).poll(&mut cx), Poll::Ready(Err(Error::Closed))));
    /// # drop(b); Ok(()) }
    /// ```
    pub fn closed(&self) -> Closed<'_, R> {
        Closed::new(&self.shared)
    }

    /// Closes the connection for every handle, abortively: what is queued
    /// is dropped, not sent (see [`Driver::close`]; [`shutdown`](Self::shutdown)
    /// sends it first).
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Error, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let other = a.clone();
    /// a.close();
    /// assert!(matches!(other.poll_ready_now(), Err(Error::Closed))); // every handle
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(None))); // the peer's stream ends
    /// # Ok(()) }
    /// ```
    pub fn close(&self) {
        self.shared.lock().driver.close();
    }

    /// The same as [`close`](Self::close), named for what it does to queued
    /// descriptors.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// a.close_abortive();
    /// assert!(a.poll_ready_now().is_err());
    /// # Ok(()) }
    /// ```
    pub fn close_abortive(&self) {
        self.close();
    }

    /// Starts a graceful shutdown for every handle (see
    /// [`Passer::shutdown`]): what is queued is still sent, in order, then
    /// the socket is shut down; receiving ends at once. The future resolves
    /// with `Ok(())` once everything was sent, or with the error that ended
    /// it ([`Error::ShutdownTimedOut`] at `deadline`, the peer's failure);
    /// then [`take_unsent`](Self::take_unsent) hands back what was not sent.
    /// Await it: the shutdown advances while some task polls the passer.
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
    /// use std::time::Duration;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// a.push_send(read_end.into())?;
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// assert!(matches!(pin!(a.shutdown(deadline)).poll(&mut cx), Poll::Ready(Ok(()))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(None)));
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&self, deadline: std::time::Instant) -> Shutdown<'_, R> {
        self.shared.lock().driver.shutdown(deadline);
        Shutdown::new(&self.shared)
    }

    /// The queued descriptors the kernel never took, in push order and
    /// still open, once the passer failed (see [`Passer::take_unsent`]);
    /// empty while it is usable.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// assert!(a.take_unsent().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn take_unsent(&self) -> Vec<OwnedFd> {
        self.shared.lock().driver.take_unsent()
    }

    /// Whether the passer is usable now (no waiting, no I/O); the error
    /// says why not.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// assert!(Handle::new(a, TryAlways).poll_ready_now().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn poll_ready_now(&self) -> Result<(), Error> {
        self.shared.lock().driver.passer().usable()
    }

    /// `Stream::poll_next`: received descriptors in order; ends at the peer's
    /// orderly close or after this side closed; an error is yielded once,
    /// then the stream ends. A message with payload bytes is such an error
    /// ([`Error::UnexpectedMessage`]): it stays for a `recv_message` or a
    /// stream of [`messages`](Self::messages).
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// a.push_send(read_end.into())?;
    /// drop(a);
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(None))); // orderly close
    /// # Ok(()) }
    /// ```
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<OwnedFd, Error>>> {
        // Fused: a `while let Some(..)` consumer stops after the end or the
        // one error instead of being handed the same error forever.
        if self.stream_ended {
            return Poll::Ready(None);
        }
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        let next = match driver.poll_recv(cx, reactor, &mut self.stream) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Some(fd))) => return Poll::Ready(Some(Ok(fd))),
            Poll::Ready(Ok(None)) | Poll::Ready(Err(Error::Closed)) => None,
            Poll::Ready(Err(e)) => Some(Err(e)),
        };
        self.stream_ended = true;
        Poll::Ready(next)
    }

    /// `Sink::poll_ready`: ready while the send queue has room under
    /// [`Config::max_queued_sends`] (always, by default), pending while it
    /// is full (driving the passer meanwhile), an error once the passer is
    /// unusable.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Error, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Handle::new(a, TryAlways);
    /// let mut cx = Context::from_waker(std::task::Waker::noop());
    /// assert!(matches!(a.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    /// a.close();
    /// assert!(matches!(a.poll_ready(&mut cx), Poll::Ready(Err(Error::Closed))));
    /// # Ok(()) }
    /// ```
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_room(cx, reactor, &mut self.sink)
    }

    /// `Sink::start_send`: queues `fd` without writing (past the high-water
    /// mark if another handle filled the queue since `poll_ready`). The `Sink` contract
    /// leaves writing to `poll_flush`, so a `send_all` fills whole messages
    /// instead of writing each descriptor as it comes.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Handle::new(a, TryAlways);
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     a.start_send(read_end.into())?;
    /// }
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(a.poll_flush(&mut cx), Poll::Ready(Ok(())))); // one message of three
    /// # Ok(()) }
    /// ```
    pub fn start_send(&self, fd: OwnedFd) -> Result<(), Error> {
        // `poll_ready` saw room, but another handle may have taken it since:
        // the contract gives no way to hand `fd` back, so it is queued past
        // the mark rather than lost.
        match self.shared.lock().driver.push_send_over_mark(fd) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `Sink::poll_flush`: everything queued taken by the kernel.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// drop(a.send(read_end.into())); // queued, not written yet
    /// assert!(matches!(a.poll_flush(&mut cx), Poll::Ready(Ok(()))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// # Ok(()) }
    /// ```
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_flush(cx, reactor, &mut self.sink)
    }

    /// `Sink::poll_close`: flush, then close the connection.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::task::Waker;
    /// use fdpass_core::driver::Handle;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// drop(a.send(read_end.into())); // queued, not written yet
    /// assert!(matches!(a.poll_close(&mut cx), Poll::Ready(Ok(())))); // flushed, then closed
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// assert!(matches!(b.poll_next(&mut cx), Poll::Ready(None)));
    /// # Ok(()) }
    /// ```
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) | Poll::Ready(Err(Error::Closed)) => {
                self.close();
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
