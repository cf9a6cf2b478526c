//! [`Passer`] as a `Stream` of received descriptors and a `Sink` of ones to send.

use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use fdpass_core::Error;
use futures_core::Stream;
use futures_sink::Sink;

use crate::Passer;

/// Yields received descriptors in order and ends at the peer's orderly close.
/// An error is yielded once; the stream ends after it. A message with
/// payload bytes is such an error ([`Error::UnexpectedMessage`]); it stays,
/// whole, for `recv_message` or [`Passer::messages`]. Each clone of a passer
/// is its own stream over the shared connection. Dropping the passer between
/// polls loses nothing: a descriptor that arrived goes to the next receiver.
///
/// ```
/// use futures_util::StreamExt;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, mut b) = fdpass_smol::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.send(read_end.into()).await?;
/// drop(a);
/// let received: Vec<_> = (&mut b).collect().await;
/// assert_eq!(received.len(), 1);
/// # Ok(()) })
/// # }
/// ```
impl Stream for Passer {
    type Item = Result<OwnedFd, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().handle.poll_next(cx)
    }
}

/// Queues descriptors to send. `poll_ready` is always ready (the queue is
/// unbounded, like `push_send`); `start_send` only queues, so a `send_all`
/// fills whole messages; `poll_flush` writes and waits until the kernel took
/// everything; `poll_close` flushes, then closes the connection.
///
/// ```
/// use futures_util::SinkExt;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (mut a, b) = fdpass_smol::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.send_all(&mut futures_util::stream::iter([Ok(read_end.into())])).await?;
/// SinkExt::close(&mut a).await?; // flushes, then closes
/// assert!(b.recv().await?.is_some());
/// assert!(b.recv().await?.is_none());
/// # Ok(()) })
/// # }
/// ```
impl Sink<OwnedFd> for Passer {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().handle.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, fd: OwnedFd) -> Result<(), Error> {
        self.handle.start_send(fd)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().handle.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().handle.poll_close(cx)
    }
}
