//! The futures returned by [`Passer`](crate::Passer)'s async methods.
//!
//! They are fdpass-core's driver futures, bound to tokio's reactor.

use crate::reactor::TokioReactor;

/// Future of [`Passer::send`](crate::Passer::send): resolves once the kernel
/// took the descriptor. The descriptor was queued when `send` was called;
/// dropping the future never un-sends it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, _b) = fdpass_tokio::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// let sending: fdpass_tokio::SendFd<'_> = a.send(read_end.into());
/// sending.await?;
/// # Ok(()) }
/// ```
pub type SendFd<'a> = fdpass_core::driver::SendFd<'a, TokioReactor>;

/// Future of [`Passer::recv`](crate::Passer::recv): the next descriptor, or
/// `None` at the peer's orderly close. Cancel safe.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = fdpass_tokio::Passer::pair()?;
/// let receiving: fdpass_tokio::RecvFd<'_> = b.recv();
/// drop(a);
/// assert!(receiving.await?.is_none());
/// # Ok(()) }
/// ```
pub type RecvFd<'a> = fdpass_core::driver::RecvFd<'a, TokioReactor>;

/// Future of [`Passer::recv_many`](crate::Passer::recv_many): the number of
/// descriptors it moved into the caller's vector. Dropping it loses nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = fdpass_tokio::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.send(read_end.into()).await?;
/// let mut buf = Vec::new();
/// let receiving: fdpass_tokio::RecvMany<'_> = b.recv_many(&mut buf, 16);
/// assert_eq!(receiving.await?, 1);
/// # Ok(()) }
/// ```
pub type RecvMany<'a> = fdpass_core::driver::RecvMany<'a, TokioReactor>;

/// Future of [`Passer::flush`](crate::Passer::flush): resolves once
/// everything queued was sent. Cancel safe.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, _b) = fdpass_tokio::Passer::pair()?;
/// let flushing: fdpass_tokio::Flush<'_> = a.flush();
/// flushing.await?; // nothing was queued
/// # Ok(()) }
/// ```
pub type Flush<'a> = fdpass_core::driver::Flush<'a, TokioReactor>;

/// Future of [`Passer::closed`](crate::Passer::closed): resolves once the
/// connection ended (`Ok(())` at the peer's orderly hang-up). Cancel safe.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = fdpass_tokio::Passer::pair()?;
/// drop(b);
/// let closed: fdpass_tokio::Closed<'_> = a.closed();
/// closed.await?; // the peer hung up
/// # Ok(()) }
/// ```
pub type Closed<'a> = fdpass_core::driver::Closed<'a, TokioReactor>;

/// Resolves once a graceful [`Passer::shutdown`](crate::Passer::shutdown)
/// ended: `Ok(())` when everything queued was sent.
/// Dropping it does not stop the shutdown; it goes on, up to its deadline,
/// while any operation of the passer is polled.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, _b) = fdpass_tokio::Passer::pair()?;
/// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
/// let ending: fdpass_tokio::Shutdown<'_> = a.shutdown(deadline);
/// ending.await?; // nothing was queued
/// # Ok(()) }
/// ```
pub type Shutdown<'a> = fdpass_core::driver::Shutdown<'a, TokioReactor>;

/// Future of [`Passer::send_message`](crate::Passer::send_message):
/// resolves once the kernel took the message. The message was queued when
/// `send_message` was called (or, at a high-water mark, once it fits);
/// dropping the future never un-sends a queued message.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, _b) = fdpass_tokio::Passer::pair()?;
/// let sending: fdpass_tokio::SendMessage<'_> = a.send_message(fdpass_tokio::Message::from_payload("hi"));
/// sending.await?;
/// # Ok(()) }
/// ```
pub type SendMessage<'a> = fdpass_core::driver::SendMessage<'a, TokioReactor>;

/// Future of [`Passer::recv_message`](crate::Passer::recv_message): the
/// next message, or `None` at the peer's orderly close. Cancel safe.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = fdpass_tokio::Passer::pair()?;
/// let receiving: fdpass_tokio::RecvMessage<'_> = b.recv_message();
/// drop(a);
/// assert!(receiving.await?.is_none());
/// # Ok(()) }
/// ```
pub type RecvMessage<'a> = fdpass_core::driver::RecvMessage<'a, TokioReactor>;
