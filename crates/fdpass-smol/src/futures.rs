//! The futures returned by [`Passer`](crate::Passer)'s async methods.
//!
//! They are fdpass-core's driver futures, bound to async-io's reactor.

use crate::reactor::SmolReactor;

/// Future of [`Passer::send`](crate::Passer::send): resolves once the kernel
/// took the descriptor. The descriptor was queued when `send` was called;
/// dropping the future never un-sends it.
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
pub type SendFd<'a> = fdpass_core::driver::SendFd<'a, SmolReactor>;

/// Future of [`Passer::recv`](crate::Passer::recv): the next descriptor, or
/// `None` at the peer's orderly close. Cancel safe.
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
pub type RecvFd<'a> = fdpass_core::driver::RecvFd<'a, SmolReactor>;

/// Future of [`Passer::recv_many`](crate::Passer::recv_many): the number of
/// descriptors it moved into the caller's vector. Dropping it loses nothing.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, b) = fdpass_smol::Passer::pair()?;
/// let (read_end, _write_end) = std::io::pipe()?;
/// a.send(read_end.into()).await?;
/// let mut buf = Vec::new();
/// let receiving: fdpass_smol::RecvMany<'_> = b.recv_many(&mut buf, 16);
/// assert_eq!(receiving.await?, 1);
/// # Ok(()) })
/// # }
/// ```
pub type RecvMany<'a> = fdpass_core::driver::RecvMany<'a, SmolReactor>;

/// Future of [`Passer::flush`](crate::Passer::flush): resolves once
/// everything queued was sent. Cancel safe.
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
pub type Flush<'a> = fdpass_core::driver::Flush<'a, SmolReactor>;

/// Future of [`Passer::closed`](crate::Passer::closed): resolves once the
/// connection ended (`Ok(())` at the peer's orderly hang-up). Cancel safe.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, b) = fdpass_smol::Passer::pair()?;
/// drop(b);
/// let closed: fdpass_smol::Closed<'_> = a.closed();
/// closed.await?; // the peer hung up
/// # Ok(()) })
/// # }
/// ```
pub type Closed<'a> = fdpass_core::driver::Closed<'a, SmolReactor>;

/// Resolves once a graceful [`Passer::shutdown`](crate::Passer::shutdown)
/// ended: `Ok(())` when everything queued was sent.
/// Dropping it does not stop the shutdown; it goes on, up to its deadline,
/// while any operation of the passer is polled.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, _b) = fdpass_smol::Passer::pair()?;
/// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
/// let ending: fdpass_smol::Shutdown<'_> = a.shutdown(deadline);
/// ending.await?; // nothing was queued
/// # Ok(()) })
/// # }
/// ```
pub type Shutdown<'a> = fdpass_core::driver::Shutdown<'a, SmolReactor>;

/// Future of [`Passer::send_message`](crate::Passer::send_message):
/// resolves once the kernel took the message. The message was queued when
/// `send_message` was called (or, at a high-water mark, once it fits);
/// dropping the future never un-sends a queued message.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, _b) = fdpass_smol::Passer::pair()?;
/// let sending: fdpass_smol::SendMessage<'_> = a.send_message(fdpass_smol::Message::from_payload("hi"));
/// sending.await?;
/// # Ok(()) })
/// # }
/// ```
pub type SendMessage<'a> = fdpass_core::driver::SendMessage<'a, SmolReactor>;

/// Future of [`Passer::recv_message`](crate::Passer::recv_message): the
/// next message, or `None` at the peer's orderly close. Cancel safe.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (a, b) = fdpass_smol::Passer::pair()?;
/// let receiving: fdpass_smol::RecvMessage<'_> = b.recv_message();
/// drop(a);
/// assert!(receiving.await?.is_none());
/// # Ok(()) })
/// # }
/// ```
pub type RecvMessage<'a> = fdpass_core::driver::RecvMessage<'a, SmolReactor>;
