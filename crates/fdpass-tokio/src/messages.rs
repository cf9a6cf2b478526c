//! [`Messages`]: a passer's messages as a `Stream` and a `Sink`.

use std::pin::Pin;
use std::task::{Context, Poll};

use fdpass_core::{Error, Message};
use futures_core::Stream;
use futures_sink::Sink;

use crate::reactor::TokioReactor;

/// A [`Stream`] of the messages a passer receives and a [`Sink`] of
/// messages to send, from [`Passer::messages`](crate::Passer::messages).
///
/// The stream yields messages whole, in order, and ends at the peer's
/// orderly close (or after this side closed); an error is yielded once,
/// then it ends. Its receives wait in the same line as every `recv`,
/// `recv_many` and `recv_message` of the connection, served in the order
/// made. Dropping it between polls loses nothing: a message that arrived
/// goes to the next request in line.
///
/// The sink shares the connection's send queue, in push order with every
/// other send. `poll_ready` waits while the queue is at a high-water mark
/// ([`Config::max_queued_sends`](crate::Config::max_queued_sends),
/// [`Config::max_queued_bytes`](crate::Config::max_queued_bytes); never, by
/// default); `start_send` only queues (past the marks by at most the one
/// message whose size `poll_ready` could not know), so a `send_all` fills
/// each `sendmsg`; `poll_flush` waits until the kernel took everything;
/// `poll_close` flushes, then closes the connection. A message the peer can
/// never take fails `start_send` with [`Error::MessageTooLarge`] and is let
/// go of (`push_send_message` hands it back instead).
///
/// Each `Messages` (and each clone) has its own stream and sink state.
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use fdpass_tokio::{Message, Passer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair()?;
/// let mut outgoing = a.messages();
/// let mut jobs = futures_util::stream::iter((0..3u8).map(|job| Ok(Message::from_payload(vec![job]))));
/// outgoing.send_all(&mut jobs).await?;
/// outgoing.close().await?; // flushed, then closed
/// let received: Vec<_> = b.messages().collect().await;
/// let payloads: Vec<Vec<u8>> = received.into_iter().map(|m| m.map(|m| m.payload)).collect::<Result<_, _>>()?;
/// assert_eq!(payloads, [[0], [1], [2]]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Messages {
    pub(crate) inner: fdpass_core::driver::Messages<TokioReactor>,
}

impl Stream for Messages {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_next(cx)
    }
}

impl Sink<Message> for Messages {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().inner.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().inner.start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().inner.poll_close(cx)
    }
}
