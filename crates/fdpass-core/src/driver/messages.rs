//! A handle on a passer that sends and receives whole messages, for an
//! adapter's `Stream` and `Sink` of [`Message`]s.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::handle::{Locked, Shared};
use super::{Reactor, RecvRequest, Waiter};
use crate::{Error, Message};

/// A passer's messages as a stream and a sink: what
/// [`Handle::messages`](super::Handle::messages) returns. Adapters wrap it
/// and implement `Stream<Item = Result<Message, Error>>` and
/// `Sink<Message>` with these methods.
///
/// Receiving takes its place in the same line as every `recv`,
/// `recv_many` and `recv_message` of the connection, served in the order
/// made. Sending shares the connection's one queue, in push order with
/// every other push. Each `Messages` (and each clone) has its own stream
/// and sink state.
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
/// let (mut tx, mut rx) = (a.messages(), b.messages());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(matches!(tx.poll_ready(&mut cx), Poll::Ready(Ok(()))));
/// tx.start_send(Message::from_payload("job 1"))?;
/// assert!(matches!(tx.poll_flush(&mut cx), Poll::Ready(Ok(()))));
/// let Poll::Ready(Some(Ok(message))) = rx.poll_next(&mut cx) else { panic!() };
/// assert_eq!(message.payload, b"job 1");
/// # Ok(()) }
/// ```
pub struct Messages<R: Reactor> {
    shared: Arc<Shared<R>>,
    /// The pending receive of the stream.
    stream: RecvRequest,
    /// The sink's waiter (room, flush).
    sink: Waiter,
    /// The stream yielded its end or an error: it yields nothing more.
    stream_ended: bool,
}

impl<R: Reactor> std::fmt::Debug for Messages<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("passer", self.shared.lock().driver.passer())
            .field("stream_ended", &self.stream_ended)
            .finish()
    }
}

impl<R: Reactor> Clone for Messages<R> {
    /// Another stream and sink of messages on the same connection.
    fn clone(&self) -> Self {
        Messages::new(self.shared.clone())
    }
}

impl<R: Reactor> Drop for Messages<R> {
    /// A message that arrived for the pending receive goes to the next
    /// request in line.
    fn drop(&mut self) {
        let mut locked = self.shared.lock();
        locked.driver.cancel_recv(&mut self.stream);
        locked.driver.forget(&mut self.sink);
    }
}

impl<R: Reactor> Messages<R> {
    pub(crate) fn new(shared: Arc<Shared<R>>) -> Self {
        Messages {
            shared,
            stream: RecvRequest::default(),
            sink: Waiter::default(),
            stream_ended: false,
        }
    }

    /// `Stream::poll_next`: received messages in order; ends at the peer's
    /// orderly close or after this side closed; an error is yielded once,
    /// then the stream ends. Dropping the stream between polls loses
    /// nothing: a message that arrived goes to the next request in line.
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
    /// a.push_send_message(Message::from_payload("last words"))?;
    /// drop(a);
    /// let mut rx = b.messages();
    /// assert!(matches!(rx.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// assert!(matches!(rx.poll_next(&mut cx), Poll::Ready(None))); // orderly close
    /// # Ok(()) }
    /// ```
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        // Fused, as the descriptor stream is: a `while let Some(..)`
        // consumer stops after the end or the one error.
        if self.stream_ended {
            return Poll::Ready(None);
        }
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        let next = match driver.poll_recv_message(cx, reactor, &mut self.stream) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Some(message))) => return Poll::Ready(Some(Ok(message))),
            Poll::Ready(Ok(None)) | Poll::Ready(Err(Error::Closed)) => None,
            Poll::Ready(Err(e)) => Some(Err(e)),
        };
        self.stream_ended = true;
        Poll::Ready(next)
    }

    /// `Sink::poll_ready`: ready while the send queue is below both
    /// high-water marks ([`Config::max_queued_sends`](crate::Config::max_queued_sends)
    /// and [`Config::max_queued_bytes`](crate::Config::max_queued_bytes);
    /// always, by default), pending while it is not (driving the passer
    /// meanwhile), an error once sending is over.
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
    /// use fdpass_core::{Config, Error, Passer};
    ///
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// let mut tx = a.messages();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(tx.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    /// a.close();
    /// assert!(matches!(tx.poll_ready(&mut cx), Poll::Ready(Err(Error::Closed))));
    /// # Ok(()) }
    /// ```
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_room_for_message(cx, reactor, &mut self.sink)
    }

    /// `Sink::start_send`: queues `message` without writing. `poll_ready`
    /// cannot know the next message's size, so a message larger than the
    /// room left (or one sent after another handle took the room) is
    /// queued past the marks rather than lost: the queue exceeds
    /// [`Config::max_queued_bytes`](crate::Config::max_queued_bytes) by at
    /// most one message per sink. The `Sink` contract gives no way to hand
    /// a message back: one the peer can never take
    /// ([`Error::MessageTooLarge`]) or sent after sending ended is let go
    /// of with the error; use `push_send_message` to get it back.
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
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Handle::new(a, TryAlways);
    /// let mut tx = a.messages();
    /// for job in 0..3u8 {
    ///     tx.start_send(Message::from_payload(vec![job]))?;
    /// }
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(tx.poll_flush(&mut cx), Poll::Ready(Ok(())))); // one sendmsg
    /// # Ok(()) }
    /// ```
    pub fn start_send(&mut self, message: Message) -> Result<(), Error> {
        match self
            .shared
            .lock()
            .driver
            .push_send_message_over_mark(message)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `Sink::poll_flush`: everything queued on the connection taken by the
    /// kernel.
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
    /// use fdpass_core::{Config, Passer};
    ///
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut tx = Handle::new(a, TryAlways).messages();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(tx.poll_flush(&mut cx), Poll::Ready(Ok(())))); // nothing queued
    /// # Ok(()) }
    /// ```
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut locked = self.shared.lock();
        let Locked { reactor, driver } = &mut *locked;
        driver.poll_flush(cx, reactor, &mut self.sink)
    }

    /// `Sink::poll_close`: flush, then close the connection (for every
    /// handle, as the descriptor sink's close does).
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
    /// let (mut tx, mut rx) = (a.messages(), b.messages());
    /// tx.start_send(Message::from_payload("bye"))?;
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(tx.poll_close(&mut cx), Poll::Ready(Ok(()))));
    /// assert!(matches!(rx.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
    /// assert!(matches!(rx.poll_next(&mut cx), Poll::Ready(None)));
    /// # Ok(()) }
    /// ```
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) | Poll::Ready(Err(Error::Closed)) => {
                self.shared.lock().driver.close();
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
