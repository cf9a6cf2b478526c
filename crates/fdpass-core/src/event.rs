//! What a passer tells its driver: events, tokens and wanted readiness.

use std::os::fd::OwnedFd;

use crate::Message;

use crate::Error;

/// Names one descriptor pushed with [`Passer::push_send`](crate::Passer::push_send).
///
/// Tokens count up from zero in push order, so they compare in send order.
///
/// ```
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
/// let (r, _w) = rustix::pipe::pipe().unwrap();
/// let first = a.push_send(r)?;
/// let (r, _w) = rustix::pipe::pipe().unwrap();
/// assert!(a.push_send(r)? > first);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendToken(pub u64);

/// Names one request made with [`Passer::push_recv`](crate::Passer::push_recv).
///
/// Requests are fulfilled in the order they were made, with descriptors in the
/// order the peer sent them.
///
/// ```
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
/// let first = b.push_recv()?;
/// assert!(b.push_recv()? > first);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecvToken(pub u64);

/// Something that happened, drained with [`Passer::poll_event`](crate::Passer::poll_event).
///
/// ```
/// use fdpass_core::Event;
///
/// fn describe(event: &Event) -> &'static str {
///     match event {
///         Event::Sent(_) => "the kernel took our descriptors",
///         Event::Received(..) => "a descriptor arrived",
///         Event::Closed => "the peer closed in an orderly way",
///         Event::SendFailed(_) => "the peer reads no more",
///         Event::Failed(_) => "the passer failed",
///         _ => "something newer",
///     }
/// }
/// assert_eq!(describe(&Event::Closed), "the peer closed in an orderly way");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Every push (descriptor or message) up to and including this token is
    /// in the kernel's hands and our copies of its descriptors are closed.
    /// One event covers a whole `sendmsg`, so it may acknowledge several
    /// pushes at once.
    Sent(SendToken),
    /// A descriptor arrived for the oldest outstanding receive request. It is
    /// close-on-exec.
    Received(RecvToken, OwnedFd),
    /// A message arrived for the oldest outstanding receive request, made
    /// with [`Passer::push_recv_message`](crate::Passer::push_recv_message):
    /// whole, its descriptors close-on-exec. (Or what remains of it, if
    /// descriptor requests took some of its descriptors first.)
    ReceivedMessage(RecvToken, Message),
    /// The oldest outstanding receive request, a descriptor request, met a
    /// message that is not descriptors only
    /// ([`Error::UnexpectedMessage`](crate::Error::UnexpectedMessage)). The
    /// request is over; the message waits, whole, for a message request. The
    /// passer stays usable.
    RecvRefused(RecvToken, Error),
    /// The peer closed the connection in an orderly way (end of stream):
    /// nothing more will arrive. Reported only once every descriptor read
    /// ahead was handed out; outstanding receive requests will not be
    /// fulfilled. Sending may go on if the peer only shut down its writing
    /// half; otherwise the next send fails with `EPIPE`. With
    /// [`Passer::watch_hangup`](crate::Passer::watch_hangup) it comes without
    /// a request outstanding too.
    Closed,
    /// Sending failed for good while receiving goes on: the peer reads no
    /// more (`EPIPE`: it closed, or shut down its reading half; `send(2)`).
    /// Whatever the peer sent before still arrives, then [`Event::Closed`]
    /// if it closed. Later pushes return this error and hand their
    /// descriptors back; those queued and never sent wait for
    /// [`Passer::take_unsent`](crate::Passer::take_unsent). Reported once;
    /// not reported by a passer that never had anything of the
    /// application's to send (only its own native hello was on its way when
    /// the peer went): its next push returns the error.
    SendFailed(Error),
    /// The passer failed and is unusable. Every descriptor it held has been
    /// let go of, except the queued sends the kernel never took: those stay
    /// open for [`Passer::take_unsent`](crate::Passer::take_unsent) (or are
    /// let go of when the passer is dropped). Reported once; later pushes
    /// return the same error.
    Failed(Error),
}

/// Whether and how the passer wants to do I/O in one direction.
///
/// ```
/// use fdpass_core::{Config, Passer, Want};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut a, _b) = Passer::pair(Config::default())?;
/// assert_eq!(a.interest().write, Want::Now); // its hello, first of all
/// a.handle_writable(std::time::Instant::now());
/// assert_eq!(a.interest().write, Want::Idle); // nothing queued
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// a.push_send(read_end)?;
/// assert_eq!(a.interest().write, Want::Now); // try at once, no need to wait
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Nothing to do in this direction (nothing queued, no request, or a retry
    /// deadline pending: see [`Passer::poll_timeout`](crate::Passer::poll_timeout)).
    Idle,
    /// Work is waiting and the socket is not known to be blocked: call the
    /// matching `handle_*` now, without waiting for readiness.
    Now,
    /// Work is waiting but the socket said "would block": wait for readiness,
    /// then call the matching `handle_*`.
    WhenReady,
}

impl Want {
    /// Whether the driver should do anything at all in this direction.
    ///
    /// ```
    /// use fdpass_core::Want;
    /// assert!(!Want::Idle.is_wanted());
    /// assert!(Want::Now.is_wanted() && Want::WhenReady.is_wanted());
    /// ```
    pub fn is_wanted(self) -> bool {
        self != Want::Idle
    }
}

/// What the passer wants from its driver, in both directions. See
/// [`Passer::interest`](crate::Passer::interest).
///
/// ```
/// use fdpass_core::{Interest, Want};
/// let interest = Interest { read: Want::WhenReady, write: Want::Idle };
/// assert!(interest.read.is_wanted() && !interest.write.is_wanted());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Receiving.
    pub read: Want,
    /// Sending.
    pub write: Want,
}
