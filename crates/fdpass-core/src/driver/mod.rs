//! The reactor-independent half of an async adapter.
//!
//! `fdpass-tokio` and `fdpass-smol` share everything here: which I/O to attempt
//! when, waking every waiting task, handing received descriptors and
//! messages to receivers in order whatever futures get dropped, reporting
//! sends, closes and failures ([`Driver`]); the lock around driver and
//! reactor, the handles users clone across tasks, `Stream`/`Sink` polling
//! ([`Handle`], and [`Messages`] for whole messages); and the futures of
//! `send`, `recv`, `send_message`, `recv_message` and `flush` ([`SendFd`],
//! [`RecvFd`], [`SendMessage`], [`RecvMessage`], [`Flush`]).
//!
//! Receiving: the driver hands out what the passer delivers itself, from
//! one line of requests of every kind, served in the order made (see
//! `line.rs`): `recv` takes one descriptor of a message
//! without payload, `recv_many` takes descriptors across such messages,
//! `recv_message` the next message (or what descriptor requests left of
//! it). A descriptor request whose turn comes at a message with payload
//! bytes, or an empty message, ends with [`Error::UnexpectedMessage`] and
//! takes nothing; the message waits for the next message request.
//! An adapter supplies only a [`Reactor`] (its runtime's readiness and timer)
//! and documented wrappers.
//!
//! The driving rule: a task that waits on the passer first registers its waker
//! (so no wake-up can slip between the check and the wait), then drives, then
//! checks its own condition. Readiness and timer wake-ups go to one fan-out
//! waker that wakes every registered task; whichever runs first drives for all.
//!
//! ```
//! # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
//! # use fdpass_core::driver::{Direction, Reactor};
//! # struct TryAlways;
//! # impl Reactor for TryAlways {
//! #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
//! #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
//! # }
//! use std::future::Future;
//! use std::pin::pin;
//! use std::task::Waker;
//! use fdpass_core::driver::Handle;
//! use fdpass_core::{Config, Passer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An adapter's passer is a `Handle` on its reactor (here a stand-in).
//! let (a, b) = Passer::pair(Config::default())?;
//! let (a, b) = (Handle::new(a, TryAlways), Handle::new(b, TryAlways));
//! let mut cx = Context::from_waker(Waker::noop());
//! let (read_end, _write_end) = std::io::pipe()?;
//! assert!(pin!(a.send(read_end.into())).poll(&mut cx).is_ready());
//! assert!(matches!(pin!(b.recv()).poll(&mut cx), Poll::Ready(Ok(Some(_)))));
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use slab::Slab;

use crate::{
    Error, Event, Message, Passer, PeerLimits, PushError, RecvToken, SendToken, Stats, Want,
};

mod futures;
mod handle;
mod line;
mod messages;

use line::{Kind, RecvLine, Share};

pub use futures::{Closed, Flush, RecvFd, RecvMany, RecvMessage, SendFd, SendMessage, Shutdown};
pub use handle::Handle;
pub use messages::Messages;

/// One direction of the socket.
///
/// ```
/// use fdpass_core::driver::Direction;
/// use fdpass_core::{Interest, Want};
///
/// fn want(interest: Interest, direction: Direction) -> Want {
///     match direction {
///         Direction::Read => interest.read,
///         Direction::Write => interest.write,
///     }
/// }
/// let interest = Interest { read: Want::Idle, write: Want::Now };
/// assert_eq!(want(interest, Direction::Write), Want::Now);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Receiving.
    Read,
    /// Sending.
    Write,
}

/// An async runtime's view of the passer's socket and of time.
///
/// ```
/// use std::io;
/// use std::task::{Context, Poll};
/// use std::time::Instant;
/// use fdpass_core::driver::{Direction, Reactor};
///
/// /// A reactor that lets the passer try whenever asked and reports readiness
/// /// only when the try made progress, with the wall clock for deadlines.
/// /// Enough for tests of the bookkeeping; it never wakes anyone.
/// struct TryAlways;
///
/// impl Reactor for TryAlways {
///     fn poll_ready(&mut self, _cx: &mut Context<'_>, _d: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> {
///         let would_block = attempt();
///         if would_block { Poll::Pending } else { Poll::Ready(Ok(())) }
///     }
///     fn poll_deadline(&mut self, _cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
///         if Instant::now() >= deadline { Poll::Ready(()) } else { Poll::Pending }
///     }
/// }
/// ```
pub trait Reactor {
    /// Waits until the socket is ready in `direction`. When it is, calls
    /// `attempt`, which does the I/O and returns `true` if the socket said
    /// "would block"; the reactor must then forget that readiness (tokio:
    /// `clear_ready`) so the next call waits for a new event.
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
    ///
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut tried = false;
    /// // The attempt made progress (it did not block), so the reactor reports ready.
    /// let ready = TryAlways.poll_ready(&mut cx, Direction::Read, &mut || {
    ///     tried = true;
    ///     false
    /// });
    /// assert!(tried && ready.is_ready());
    /// ```
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        attempt: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>>;

    /// Completes once `deadline` has passed; a later call with another
    /// deadline re-arms the timer.
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
    /// use std::time::Duration;
    ///
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(TryAlways.poll_deadline(&mut cx, Instant::now()).is_ready());
    /// let later = Instant::now() + Duration::from_secs(60);
    /// assert!(TryAlways.poll_deadline(&mut cx, later).is_pending());
    /// ```
    fn poll_deadline(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()>;

    /// The passer wants to try `direction` at once, without having seen the
    /// socket block since it last did I/O there (a new request, or a retry
    /// that fell due). `attempt` is as for [`poll_ready`](Self::poll_ready).
    ///
    /// The default calls `attempt` and reports ready. A reactor that caches
    /// readiness (set by every event, forgotten only when an attempt made
    /// under it said "would block", as tokio's is) should make the attempt
    /// under its readiness guard whenever it holds readiness: an attempt that
    /// blocks then also clears what the reactor still held from the last
    /// event, and the wait that follows does not try once more in vain (one
    /// failing system call saved per wait). When it holds none it must still
    /// attempt, as the default does: a new socket's first event may not have
    /// reached it yet, and a fire-and-forget send must not wait for one.
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
    ///
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut tried = false;
    /// // The default tries at once, whatever the attempt reports.
    /// let ready = TryAlways.poll_try(&mut cx, Direction::Write, &mut || {
    ///     tried = true;
    ///     true
    /// });
    /// assert!(tried && ready.is_ready());
    /// ```
    fn poll_try(
        &mut self,
        cx: &mut Context<'_>,
        direction: Direction,
        attempt: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        let _ = cx;
        let _ = direction;
        attempt();
        Poll::Ready(Ok(()))
    }
}

/// The wakers of every task waiting on one passer.
#[derive(Debug, Default)]
struct WakerSet {
    wakers: Mutex<Slab<Waker>>,
}

impl WakerSet {
    fn wake_except(&self, skip: Option<usize>) {
        let wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        for (key, waker) in wakers.iter() {
            if Some(key) != skip {
                waker.wake_by_ref();
            }
        }
    }
}

impl Wake for WakerSet {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_except(None);
    }
}

/// A task's place in the passer's waker set. Keep one per future and pass it
/// to [`Driver::forget`] when the future is dropped.
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
/// use fdpass_core::driver::{Driver, Waiter};
/// use fdpass_core::{Config, Passer};
///
/// /// A flush future's state: its waiter, forgotten when it is dropped.
/// struct Flushing<'a> {
///     driver: &'a mut Driver,
///     waiter: Waiter,
/// }
///
/// impl Drop for Flushing<'_> {
///     fn drop(&mut self) {
///         self.driver.forget(&mut self.waiter);
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (passer, _peer) = Passer::pair(Config::default())?;
/// let mut driver = Driver::new(passer);
/// let mut flushing = Flushing { driver: &mut driver, waiter: Waiter::default() };
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(flushing.driver.poll_flush(&mut cx, &mut TryAlways, &mut flushing.waiter).is_ready());
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Waiter {
    key: Option<usize>,
}

impl Waiter {
    /// Whether its waker is in the set ([`Driver::forget`] has work to do).
    pub(crate) fn is_registered(&self) -> bool {
        self.key.is_some()
    }
}

/// The state of one `recv()`, `recv_many()` or `recv_message()` future: its
/// place in the line of receive requests and its waker.
///
/// Requests of every kind are served in the order they were made: the
/// oldest request gets the oldest descriptor or message. [`Driver::request_recv`] makes one at once (what
/// `recv()` does when called, so `join!(p.recv(), p.recv())` gets the
/// descriptors in call order whichever future is polled first); a default
/// one joins the line when first polled.
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
/// use fdpass_core::driver::{Driver, RecvRequest};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
/// let mut cx = Context::from_waker(Waker::noop());
/// let mut request = RecvRequest::default();
/// assert!(b.poll_recv(&mut cx, &mut TryAlways, &mut request).is_pending()); // nothing sent yet
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// a.push_send(read_end)?;
/// a.drive_now(&mut TryAlways);
/// // The same request, polled again, gets the descriptor.
/// assert!(matches!(b.poll_recv(&mut cx, &mut TryAlways, &mut request), Poll::Ready(Ok(Some(_)))));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct RecvRequest {
    waiter: Waiter,
    /// Its place in the driver's line; `None` before it joined and once
    /// served.
    ticket: Option<u64>,
}

impl RecvRequest {
    /// Whether it holds a place in line or a waker ([`Driver::cancel_recv`]
    /// has work to do).
    pub(crate) fn is_pending(&self) -> bool {
        self.ticket.is_some() || self.waiter.is_registered()
    }
}

/// A [`Passer`] plus the bookkeeping async adapters share. See the module docs.
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
/// use fdpass_core::driver::{Driver, RecvRequest, Waiter};
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = Passer::pair(Config::default())?;
/// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
/// let mut cx = Context::from_waker(Waker::noop());
///
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// let token = a.push_send(read_end)?;
/// assert!(a.poll_sent(&mut cx, &mut TryAlways, token, &mut Waiter::default()).is_ready());
///
/// let mut request = RecvRequest::default();
/// let Poll::Ready(Ok(Some(_fd))) = b.poll_recv(&mut cx, &mut TryAlways, &mut request) else {
///     panic!("the descriptor was already in the socket");
/// };
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Driver {
    passer: Passer,
    wakers: Arc<WakerSet>,
    fan_out: Waker,
    /// Receive requests not yet served, in the order they were made, and
    /// the messages received and not yet claimed. Which request owns what is
    /// worked out from the front each time, so when a request leaves the
    /// line (served or dropped) what it would have got moves up to the
    /// requests behind it and nothing is lost (see `line.rs`).
    line: RecvLine,
    /// The passer's receive requests outstanding, oldest first: one for
    /// each request in `line` that has nothing here yet.
    asked: VecDeque<RecvToken>,
    /// Every token up to and including this one has been sent.
    sent_through: Option<SendToken>,
    /// The last token pushed (flush waits for it).
    last_pushed: Option<SendToken>,
}

impl Drop for Driver {
    /// Descriptors received and never claimed go to disposal, as the
    /// passer's own do: their close may block (see [`crate::disposal`]).
    fn drop(&mut self) {
        self.line.drain_arrived().for_each(crate::disposal::dispose);
    }
}

impl Driver {
    /// Wraps a passer.
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (passer, _peer) = Passer::pair(Config::default())?;
    /// let driver = Driver::new(passer);
    /// assert_eq!(driver.passer().queued_sends(), 0);
    /// # Ok(()) }
    /// ```
    pub fn new(mut passer: Passer) -> Self {
        // A task waiting only on sends learns of the peer's hang-up too.
        passer.watch_hangup(true);
        let wakers = Arc::new(WakerSet::default());
        let fan_out = Waker::from(wakers.clone());
        Driver {
            passer,
            wakers,
            fan_out,
            line: RecvLine::default(),
            asked: VecDeque::new(),
            sent_through: None,
            last_pushed: None,
        }
    }

    /// The passer, for reading its settings and state.
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (passer, _peer) = Passer::pair(Config::default().with_max_fds_per_message(1))?;
    /// let driver = Driver::new(passer);
    /// assert_eq!(driver.passer().config().max_fds_per_message, 1);
    /// assert!(driver.passer().usable().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn passer(&self) -> &Passer {
        &self.passer
    }

    /// The passer's [`Stats`], as the application sees them through this
    /// driver: [`outstanding_recvs`](Stats::outstanding_recvs) counts the
    /// receive calls waiting in line (a `recv_many` is one), and
    /// [`held_descriptors`](Stats::held_descriptors) includes descriptors
    /// received for them and not yet claimed.
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (passer, _peer) = Passer::pair(Config::default())?;
    /// let mut driver = Driver::new(passer);
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// driver.push_send(read_end)?;
    /// assert_eq!(driver.stats().queued_sends, 1); // not written yet
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = self.passer.stats();
        stats.outstanding_recvs = self.line.len();
        stats.held_descriptors += self.line.held_descriptors();
        stats
    }

    /// Queues `fd` for sending (see [`Passer::push_send`]). Nothing is written
    /// until the driver is next driven.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// let token = a.push_send(read_end)?;
    /// assert_eq!(a.passer().queued_sends(), 1); // not written yet
    /// assert!(a.poll_sent(&mut cx, &mut TryAlways, token, &mut Waiter::default()).is_ready());
    /// assert_eq!(a.passer().queued_sends(), 0);
    /// # Ok(()) }
    /// ```
    pub fn push_send(&mut self, fd: OwnedFd) -> Result<SendToken, PushError<OwnedFd>> {
        let token = self.passer.push_send(fd)?;
        self.last_pushed = Some(token);
        Ok(token)
    }

    /// Queues `fd` even past the high-water mark: for a `Sink` whose
    /// `poll_ready` saw room that another handle took since (the `Sink`
    /// contract gives `start_send` no way to hand `fd` back).
    pub(crate) fn push_send_over_mark(
        &mut self,
        fd: OwnedFd,
    ) -> Result<SendToken, PushError<OwnedFd>> {
        let token = self.passer.push_send_over_mark(fd)?;
        self.last_pushed = Some(token);
        Ok(token)
    }

    /// Queues `fd` once the send queue has room under
    /// [`Config::max_queued_sends`](crate::Config::max_queued_sends),
    /// driving meanwhile; `fd` is taken out of `pending` when it is queued.
    /// Ready with its token, or with the error that makes the passer
    /// unusable (then `fd` is let go of).
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default().with_max_queued_sends(Some(1)))?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// let mut pending = Some(read_end.into());
    /// let pushed = a.poll_push(&mut cx, &mut TryAlways, &mut pending, &mut Waiter::default());
    /// assert!(matches!(pushed, Poll::Ready(Ok(_))) && pending.is_none());
    /// # Ok(()) }
    /// ```
    pub fn poll_push<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        pending: &mut Option<OwnedFd>,
        waiter: &mut Waiter,
    ) -> Poll<Result<SendToken, Error>> {
        self.poll_push_with(cx, reactor, pending, waiter, Self::push_send)
    }

    /// [`poll_push`](Self::poll_push) for a message: queues it once the
    /// send queue has room for it under
    /// [`Config::max_queued_sends`](crate::Config::max_queued_sends) and
    /// [`Config::max_queued_bytes`](crate::Config::max_queued_bytes),
    /// driving meanwhile. Ready with its token, or with the error that ends
    /// the wait: the passer is unusable, or the message can never be sent
    /// ([`Error::MessageTooLarge`]); the message is then let go of.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default().with_max_queued_bytes(Some(16)))?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut pending = Some(Message::from_payload("status?"));
    /// let pushed = a.poll_push_message(&mut cx, &mut TryAlways, &mut pending, &mut Waiter::default());
    /// assert!(matches!(pushed, Poll::Ready(Ok(_))) && pending.is_none());
    /// # Ok(()) }
    /// ```
    pub fn poll_push_message<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        pending: &mut Option<Message>,
        waiter: &mut Waiter,
    ) -> Poll<Result<SendToken, Error>> {
        self.poll_push_with(cx, reactor, pending, waiter, Self::push_send_message)
    }

    fn poll_push_with<R: Reactor, T>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        pending: &mut Option<T>,
        waiter: &mut Waiter,
        push: fn(&mut Self, T) -> Result<SendToken, PushError<T>>,
    ) -> Poll<Result<SendToken, Error>>
    where
        Error: From<PushError<T>>,
    {
        if let Some(pushed) = self.try_push_pending(pending, push) {
            self.forget(waiter);
            return Poll::Ready(pushed);
        }
        self.register(waiter, cx);
        self.drive(reactor, waiter.key);
        match self.try_push_pending(pending, push) {
            Some(pushed) => {
                self.forget(waiter);
                Poll::Ready(pushed)
            }
            None => Poll::Pending,
        }
    }

    /// Pushes `pending` if there is room (or it can never be pushed, which
    /// ends the wait); `None` while it must wait.
    fn try_push_pending<T>(
        &mut self,
        pending: &mut Option<T>,
        push: fn(&mut Self, T) -> Result<SendToken, PushError<T>>,
    ) -> Option<Result<SendToken, Error>>
    where
        Error: From<PushError<T>>,
    {
        let item = pending.take()?;
        match push(self, item) {
            Ok(token) => Some(Ok(token)),
            Err(PushError::Full(item)) => {
                *pending = Some(item);
                None
            }
            // What comes back with the error is let go of by `PushError`'s
            // conversion (the passer's disposal for descriptors).
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Ready once the send queue has room for one more descriptor (what
    /// `Sink::poll_ready` waits for), or with the error that makes the
    /// passer unusable.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default().with_max_queued_sends(Some(1)))?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(a.poll_room(&mut cx, &mut TryAlways, &mut Waiter::default()).is_ready());
    /// # Ok(()) }
    /// ```
    pub fn poll_room<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        waiter: &mut Waiter,
    ) -> Poll<Result<(), Error>> {
        self.poll_room_with(cx, reactor, waiter, |passer| passer.has_room_for(1))
    }

    fn poll_room_with<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        waiter: &mut Waiter,
        has_room: fn(&Passer) -> bool,
    ) -> Poll<Result<(), Error>> {
        let room = |driver: &Self| match driver.passer.send_usable() {
            Err(e) => Some(Err(e)),
            Ok(()) => has_room(&driver.passer).then_some(Ok(())),
        };
        if let Some(answer) = room(self) {
            self.forget(waiter);
            return Poll::Ready(answer);
        }
        self.register(waiter, cx);
        self.drive(reactor, waiter.key);
        match room(self) {
            Some(answer) => {
                self.forget(waiter);
                Poll::Ready(answer)
            }
            None => Poll::Pending,
        }
    }

    /// Queues every descriptor of `fds` (see [`Passer::push_send_many`]).
    /// Nothing is written until the driver is next driven, so the batch goes
    /// out in full messages.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let batch = (0..3).map(|_| rustix::pipe::pipe().map(|(read_end, _)| read_end));
    /// a.push_send_many(batch.collect::<Result<Vec<_>, _>>()?)?;
    /// assert_eq!(a.passer().queued_sends(), 3); // not written yet
    /// assert!(a.poll_flush(&mut cx, &mut TryAlways, &mut Waiter::default()).is_ready());
    /// # Ok(()) }
    /// ```
    pub fn push_send_many<I>(
        &mut self,
        fds: I,
    ) -> Result<Option<SendToken>, PushError<Vec<OwnedFd>>>
    where
        I: IntoIterator<Item = OwnedFd>,
    {
        let last = self.passer.push_send_many(fds)?;
        if last.is_some() {
            self.last_pushed = last;
        }
        Ok(last)
    }

    /// Queues `message` for sending (see [`Passer::push_send_message`]).
    /// Nothing is written until the driver is next driven.
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// a.push_send_message(Message::from_payload("hello"))?;
    /// assert_eq!(a.passer().stats().queued_sends, 0); // no descriptor queued
    /// # Ok(()) }
    /// ```
    pub fn push_send_message(&mut self, message: Message) -> Result<SendToken, PushError<Message>> {
        let token = self.passer.push_send_message(message)?;
        self.last_pushed = Some(token);
        Ok(token)
    }

    /// Queues `message` even past the high-water marks: for a `Sink` whose
    /// `poll_ready` saw room that another handle took since, or that a
    /// larger message than expected needs.
    pub(crate) fn push_send_message_over_mark(
        &mut self,
        message: Message,
    ) -> Result<SendToken, PushError<Message>> {
        let token = self.passer.push_send_message_over_mark(message)?;
        self.last_pushed = Some(token);
        Ok(token)
    }

    /// Ready once the send queue is below both high-water marks
    /// ([`Config::max_queued_sends`](crate::Config::max_queued_sends),
    /// [`Config::max_queued_bytes`](crate::Config::max_queued_bytes)), what
    /// a `Sink` of messages waits for, or with the error that makes sending
    /// impossible.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default().with_max_queued_bytes(Some(64)))?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(a.poll_room_for_message(&mut cx, &mut TryAlways, &mut Waiter::default()).is_ready());
    /// # Ok(()) }
    /// ```
    pub fn poll_room_for_message<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        waiter: &mut Waiter,
    ) -> Poll<Result<(), Error>> {
        self.poll_room_with(cx, reactor, waiter, |passer| {
            passer.has_room_for_message(1, 1)
        })
    }

    /// What the peer announced in its hello (see [`Passer::peer_limits`]).
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let a = Driver::new(a);
    /// assert!(a.peer_limits().is_none()); // nothing read yet
    /// # Ok(()) }
    /// ```
    pub fn peer_limits(&self) -> Option<PeerLimits> {
        self.passer.peer_limits()
    }

    /// Drives the passer once without a waiting task: used right after a
    /// fire-and-forget push so the descriptor goes out at once when it can.
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
    /// use fdpass_core::driver::{Driver, RecvRequest};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?;
    /// let mut request = RecvRequest::default();
    /// assert!(b.poll_recv(&mut cx, &mut TryAlways, &mut request).is_pending()); // only queued
    /// a.drive_now(&mut TryAlways);
    /// assert!(matches!(b.poll_recv(&mut cx, &mut TryAlways, &mut request), Poll::Ready(Ok(Some(_)))));
    /// # Ok(()) }
    /// ```
    pub fn drive_now<R: Reactor>(&mut self, reactor: &mut R) {
        self.drive(reactor, None);
    }

    /// Ready once the kernel has taken the descriptor of `token`.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// let token = a.push_send(read_end)?;
    /// let mut waiter = Waiter::default();
    /// let sent = a.poll_sent(&mut cx, &mut TryAlways, token, &mut waiter);
    /// assert!(matches!(sent, Poll::Ready(Ok(()))));
    /// # Ok(()) }
    /// ```
    pub fn poll_sent<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        token: SendToken,
        waiter: &mut Waiter,
    ) -> Poll<Result<(), Error>> {
        // Already sent (another task drove): done, without touching wakers.
        if self.sent_through >= Some(token) {
            self.forget(waiter);
            return Poll::Ready(Ok(()));
        }
        self.register(waiter, cx);
        self.drive(reactor, waiter.key);
        if self.sent_through >= Some(token) {
            self.forget(waiter);
            return Poll::Ready(Ok(()));
        }
        if self.passer.is_shutting_down() {
            // Still queued, and a graceful shutdown sends it.
            return Poll::Pending;
        }
        self.settle(waiter, self.passer.send_usable())
    }

    /// Ready once every descriptor pushed so far has been taken by the kernel.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut waiter = Waiter::default();
    /// // Nothing pushed yet: flushed already.
    /// assert!(matches!(a.poll_flush(&mut cx, &mut TryAlways, &mut waiter), Poll::Ready(Ok(()))));
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = rustix::pipe::pipe()?;
    ///     a.push_send(read_end)?;
    /// }
    /// assert!(matches!(a.poll_flush(&mut cx, &mut TryAlways, &mut waiter), Poll::Ready(Ok(()))));
    /// assert_eq!(a.passer().queued_sends(), 0);
    /// # Ok(()) }
    /// ```
    pub fn poll_flush<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        waiter: &mut Waiter,
    ) -> Poll<Result<(), Error>> {
        match self.last_pushed {
            Some(token) => self.poll_sent(cx, reactor, token, waiter),
            None => Poll::Ready(self.passer.send_usable()),
        }
    }

    /// Ready once the connection ended: `Ok(())` when the peer hung up in an
    /// orderly way, the failure's error when the passer failed (`EPIPE`,
    /// `ECONNRESET`, a protocol error), [`Error::Closed`] after our own
    /// close. Learned without a receive outstanding where the OS tells (see
    /// [`Passer::watch_hangup`]); bytes waiting that nobody asked for hide a
    /// hang-up behind them until they are received. A peer that only shut
    /// down its writing half reads as an orderly hang-up too (it will send
    /// nothing more; sending to it still works).
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut waiter = Waiter::default();
    /// assert!(a.poll_closed(&mut cx, &mut TryAlways, &mut waiter).is_pending());
    /// drop(b); // the peer hangs up; `a` has no receive outstanding
    /// assert!(matches!(a.poll_closed(&mut cx, &mut TryAlways, &mut waiter), Poll::Ready(Ok(()))));
    /// # Ok(()) }
    /// ```
    pub fn poll_closed<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        waiter: &mut Waiter,
    ) -> Poll<Result<(), Error>> {
        self.register(waiter, cx);
        self.drive(reactor, waiter.key);
        if let Err(e) = self.passer.usable() {
            self.forget(waiter);
            return Poll::Ready(Err(e));
        }
        if self.passer.is_peer_closed() {
            self.forget(waiter);
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }

    /// The next descriptor, or `None` once the peer closed in an orderly way
    /// and nothing received is left.
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
    /// use fdpass_core::driver::{Driver, RecvRequest};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?;
    /// a.drive_now(&mut TryAlways);
    /// drop(a); // the peer closes right after sending
    /// let mut request = RecvRequest::default();
    /// assert!(matches!(b.poll_recv(&mut cx, &mut TryAlways, &mut request), Poll::Ready(Ok(Some(_)))));
    /// assert!(matches!(b.poll_recv(&mut cx, &mut TryAlways, &mut request), Poll::Ready(Ok(None))));
    /// # Ok(()) }
    /// ```
    pub fn poll_recv<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        request: &mut RecvRequest,
    ) -> Poll<Result<Option<OwnedFd>, Error>> {
        self.enlist(request, Kind::One);
        match self.poll_claim(cx, reactor, request) {
            Poll::Ready(Ok(Some(Share::Fds { at, skip, .. }))) => {
                Poll::Ready(Ok(self.line.take_one(at, skip)))
            }
            Poll::Ready(Ok(share)) => Poll::Ready(self.unexpected(share).map(|()| None)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next message, whole, or `None` once the peer closed in an
    /// orderly way and nothing received is left. Served in line with
    /// descriptor requests, in the order made; after descriptor requests
    /// took some of a message's descriptors, the rest. On the classic wire
    /// each descriptor is a message of its own.
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
    /// use fdpass_core::driver::{Driver, RecvRequest};
    /// use fdpass_core::{Config, Message, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send_message(Message::new(b"log".to_vec(), vec![read_end]))?;
    /// a.drive_now(&mut TryAlways);
    /// let mut request = RecvRequest::default();
    /// let Poll::Ready(Ok(Some(message))) = b.poll_recv_message(&mut cx, &mut TryAlways, &mut request) else {
    ///     panic!("the message was already in the socket");
    /// };
    /// assert_eq!((message.payload.as_slice(), message.fds.len()), (&b"log"[..], 1));
    /// # Ok(()) }
    /// ```
    pub fn poll_recv_message<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        request: &mut RecvRequest,
    ) -> Poll<Result<Option<Message>, Error>> {
        self.enlist(request, Kind::Message);
        match self.poll_claim(cx, reactor, request) {
            Poll::Ready(Ok(Some(Share::Message { at, skip }))) => {
                Poll::Ready(Ok(self.line.take_message(at, skip)))
            }
            Poll::Ready(Ok(share)) => Poll::Ready(self.unexpected(share).map(|()| None)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `Ok(())` for the end of the stream (`None`); the refusal of a
    /// descriptor request that met a message with payload; a share of
    /// another kind cannot be claimed by the request that asked, and is
    /// reported as a closed passer rather than a panic.
    fn unexpected(&self, share: Option<Share>) -> Result<(), Error> {
        match share {
            None => Ok(()),
            Some(Share::Refused { at }) => Err(self.line.refusal(at)),
            Some(_) => Err(Error::Closed),
        }
    }

    /// Waits until `request`'s share is here; returns where it is (see
    /// `line.rs`), with `request` out of line, or `None` at the end of the
    /// stream.
    fn poll_claim<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        request: &mut RecvRequest,
    ) -> Poll<Result<Option<Share>, Error>> {
        // A descriptor is waiting (one read brings many): hand it out
        // without asking the passer, an event or a waker, the common case
        // under load.
        if let Some(claimed) = self.claim(request) {
            return Poll::Ready(Ok(Some(claimed)));
        }
        self.register(&mut request.waiter, cx);
        self.ask_enough();
        self.drive(reactor, request.waiter.key);
        if let Some(claimed) = self.claim(request) {
            return Poll::Ready(Ok(Some(claimed)));
        }
        // Nothing is here for this request, and none will come if the
        // passer is unusable or the peer closed.
        if let Err(e) = self.passer.usable() {
            self.finish(request);
            return Poll::Ready(Err(e));
        }
        if self.passer.is_peer_closed() {
            self.finish(request);
            return Poll::Ready(Ok(None));
        }
        Poll::Pending
    }

    /// Puts a receive request in line now: it will be served before every
    /// request made later, whichever is polled first. `recv()` futures take
    /// theirs when created; a default [`RecvRequest`] joins when first polled.
    ///
    /// ```
    /// # use std::io; use std::task::{Context, Poll}; use std::time::Instant;
    /// # use fdpass_core::driver::{Direction, Reactor};
    /// # struct TryAlways;
    /// # impl Reactor for TryAlways {
    /// #     fn poll_ready(&mut self, _: &mut Context<'_>, _: Direction, attempt: &mut dyn FnMut() -> bool) -> Poll<io::Result<()>> { if attempt() { Poll::Pending } else { Poll::Ready(Ok(())) } }
    /// #     fn poll_deadline(&mut self, _: &mut Context<'_>, at: Instant) -> Poll<()> { if Instant::now() >= at { Poll::Ready(()) } else { Poll::Pending } }
    /// # }
    /// use std::io::Write;
    /// use std::task::Waker;
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut first = b.request_recv();
    /// let mut second = b.request_recv();
    /// for byte in [1u8, 2] {
    ///     let (read_end, mut write_end) = std::io::pipe()?;
    ///     write_end.write_all(&[byte])?;
    ///     a.push_send(read_end.into())?;
    /// }
    /// a.drive_now(&mut TryAlways);
    /// // Polled in reverse order, served in the order asked.
    /// let Poll::Ready(Ok(Some(two))) = b.poll_recv(&mut cx, &mut TryAlways, &mut second) else { panic!() };
    /// let Poll::Ready(Ok(Some(one))) = b.poll_recv(&mut cx, &mut TryAlways, &mut first) else { panic!() };
    /// let read = |fd| { let mut byte = [0u8]; io::Read::read_exact(&mut std::fs::File::from(fd), &mut byte).map(|_| byte[0]) };
    /// assert_eq!((read(one)?, read(two)?), (1, 2));
    /// # Ok(()) }
    /// ```
    pub fn request_recv(&mut self) -> RecvRequest {
        let mut request = RecvRequest::default();
        self.enlist(&mut request, Kind::One);
        request
    }

    /// [`request_recv`](Self::request_recv) for a `recv_many` of up to
    /// `limit` (at least 1): it takes its batch before any request made later.
    pub(crate) fn request_recv_many(&mut self, limit: usize) -> RecvRequest {
        let mut request = RecvRequest::default();
        self.enlist(
            &mut request,
            Kind::Batch {
                limit: limit.max(1),
                taken: None,
            },
        );
        request
    }

    /// [`request_recv`](Self::request_recv) for a `recv_message`: it takes
    /// its message before any request made later.
    pub(crate) fn request_recv_message(&mut self) -> RecvRequest {
        let mut request = RecvRequest::default();
        self.enlist(&mut request, Kind::Message);
        request
    }

    /// Waits like [`poll_recv`](Self::poll_recv) for the next descriptor,
    /// then moves it and up to `limit - 1` more that are already here (read
    /// with earlier messages, so no further I/O) into `buf`, in order.
    /// Returns how many it moved: 0 only when `limit` is 0 or the peer closed
    /// in an orderly way and nothing received is left.
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
    /// use fdpass_core::driver::{Driver, RecvRequest};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// b.drive_now(&mut TryAlways); // b's hello: a may send more than one descriptor per sendmsg
    /// let batch = (0..5).map(|_| rustix::pipe::pipe().map(|(read_end, _)| read_end));
    /// a.push_send_many(batch.collect::<Result<Vec<_>, _>>()?)?;
    /// a.drive_now(&mut TryAlways); // one sendmsg of five
    /// let mut buf = Vec::new();
    /// let mut request = RecvRequest::default();
    /// let got = b.poll_recv_many(&mut cx, &mut TryAlways, &mut request, &mut buf, 3);
    /// assert!(matches!(got, Poll::Ready(Ok(3))));
    /// let got = b.poll_recv_many(&mut cx, &mut TryAlways, &mut request, &mut buf, 3);
    /// assert!(matches!(got, Poll::Ready(Ok(2))));
    /// assert_eq!(buf.len(), 5);
    /// # Ok(()) }
    /// ```
    pub fn poll_recv_many<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        request: &mut RecvRequest,
        buf: &mut Vec<OwnedFd>,
        limit: usize,
    ) -> Poll<Result<usize, Error>> {
        if limit == 0 {
            self.finish(request);
            return Poll::Ready(Ok(0));
        }
        self.enlist(request, Kind::Batch { limit, taken: None });
        match self.poll_claim(cx, reactor, request) {
            Poll::Ready(Ok(Some(Share::Fds { at, skip, count }))) => {
                let before = buf.len();
                self.line.take_fds(at, skip, count, buf);
                Poll::Ready(Ok(buf.len() - before))
            }
            Poll::Ready(Ok(share)) => Poll::Ready(self.unexpected(share).map(|()| 0)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A `recv()` future was dropped: withdraw its request if the passer has
    /// not fulfilled it; if it has, the descriptor waits for the next receiver.
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
    /// use fdpass_core::driver::{Driver, RecvRequest};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (_a, b) = Passer::pair(Config::default())?;
    /// let mut b = Driver::new(b);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut dropped = RecvRequest::default();
    /// assert!(b.poll_recv(&mut cx, &mut TryAlways, &mut dropped).is_pending());
    /// b.cancel_recv(&mut dropped); // its future was dropped
    /// assert_eq!(b.passer().outstanding_recvs(), 0);
    /// # Ok(()) }
    /// ```
    pub fn cancel_recv(&mut self, request: &mut RecvRequest) {
        self.finish(request);
    }

    /// Removes a waiting task's waker (its future completed or was dropped).
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// let token = a.push_send(read_end)?;
    /// let mut waiter = Waiter::default();
    /// let _ = a.poll_sent(&mut cx, &mut TryAlways, token, &mut waiter);
    /// // What a future's `Drop` does; harmless once it completed.
    /// a.forget(&mut waiter);
    /// # Ok(()) }
    /// ```
    pub fn forget(&mut self, waiter: &mut Waiter) {
        if let Some(key) = waiter.key.take() {
            self.wakers
                .wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_remove(key);
        }
    }

    /// Closes the passer (see [`Passer::close`]) and wakes every waiting task.
    /// Descriptors received and not yet claimed are let go of too (closed
    /// soon, off this thread: see [`crate::disposal`]).
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
    /// use fdpass_core::driver::{Driver, RecvRequest, Waiter};
    /// use fdpass_core::{Config, Error, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = Passer::pair(Config::default())?;
    /// let (mut a, mut b) = (Driver::new(a), Driver::new(b));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// a.close();
    /// let flushed = a.poll_flush(&mut cx, &mut TryAlways, &mut Waiter::default());
    /// assert!(matches!(flushed, Poll::Ready(Err(Error::Closed))));
    /// // The peer sees an orderly end of stream.
    /// let received = b.poll_recv(&mut cx, &mut TryAlways, &mut RecvRequest::default());
    /// assert!(matches!(received, Poll::Ready(Ok(None))));
    /// # Ok(()) }
    /// ```
    pub fn close(&mut self) {
        self.passer.close();
        self.let_go_of_received();
    }

    /// Starts a graceful shutdown (see [`Passer::shutdown`]): what is queued
    /// is still sent, by `deadline`; receiving ends now. Waiting receivers
    /// are woken and learn [`Error::Closed`].
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
    /// use std::time::Duration;
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?;
    /// a.shutdown(Instant::now() + Duration::from_secs(5));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let done = a.poll_shutdown(&mut cx, &mut TryAlways, &mut Waiter::default());
    /// assert!(matches!(done, Poll::Ready(Ok(()))));
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&mut self, deadline: Instant) {
        self.passer.shutdown(deadline);
        self.let_go_of_received();
    }

    /// Drives a graceful [`shutdown`](Self::shutdown) to its end: ready
    /// with [`Passer::shutdown_outcome`] once there is one (`Ok(())` when
    /// everything queued was sent). Before any shutdown or close it waits.
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
    /// use fdpass_core::driver::{Driver, Waiter};
    /// use fdpass_core::{Config, Error, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// a.close();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let done = a.poll_shutdown(&mut cx, &mut TryAlways, &mut Waiter::default());
    /// assert!(matches!(done, Poll::Ready(Err(Error::Closed)))); // closed abortively
    /// # Ok(()) }
    /// ```
    pub fn poll_shutdown<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        waiter: &mut Waiter,
    ) -> Poll<Result<(), Error>> {
        if let Some(outcome) = self.passer.shutdown_outcome() {
            self.forget(waiter);
            return Poll::Ready(outcome);
        }
        self.register(waiter, cx);
        self.drive(reactor, waiter.key);
        match self.passer.shutdown_outcome() {
            Some(outcome) => {
                self.forget(waiter);
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }

    /// The queued descriptors the kernel never took, once the passer
    /// failed (see [`Passer::take_unsent`]), in push order, still open.
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// assert!(a.take_unsent().is_empty()); // open: nothing to give back
    /// # Ok(()) }
    /// ```
    pub fn take_unsent(&mut self) -> Vec<OwnedFd> {
        self.passer.take_unsent()
    }

    /// [`take_unsent`](Self::take_unsent), each push whole: messages with
    /// their payload and descriptors, a descriptor pushed alone as a message
    /// of one (see [`Passer::take_unsent_messages`]).
    ///
    /// ```
    /// use fdpass_core::driver::Driver;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = Passer::pair(Config::default())?;
    /// let mut a = Driver::new(a);
    /// assert!(a.take_unsent_messages().is_empty()); // open: nothing to give back
    /// # Ok(()) }
    /// ```
    pub fn take_unsent_messages(&mut self) -> Vec<Message> {
        self.passer.take_unsent_messages()
    }

    /// Lets go of what arrived and no receiver took, and wakes every task.
    fn let_go_of_received(&mut self) {
        // The peer chose these files; their close may block (see `disposal`).
        self.line.drain_arrived().for_each(crate::disposal::dispose);
        self.asked.clear();
        self.fan_out.wake_by_ref();
    }

    /// Gives `request` a place at the back of the line, if it has none.
    fn enlist(&mut self, request: &mut RecvRequest, kind: Kind) {
        if request.ticket.is_none() {
            request.ticket = Some(self.line.enlist(kind));
        }
    }

    /// Moves the messages the passer read ahead (newer than anything in
    /// the line) to the line, without I/O.
    fn pull_read_ahead(&mut self) {
        self.line.pull_read_ahead(&mut self.passer);
    }

    /// Takes `request` out of line with its share, if it is all here.
    fn claim(&mut self, request: &mut RecvRequest) -> Option<Share> {
        self.pull_read_ahead();
        let ticket = request.ticket?;
        let share = self.line.locate(ticket)?;
        let kind = self.line.leave(ticket);
        request.ticket = None;
        self.forget(&mut request.waiter);
        if let Some(Kind::Batch { .. }) = kind {
            // Those behind it may have waited for its batch to be known.
            self.wakers.wake_except(None);
        }
        Some(share)
    }

    /// Asks the passer for one thing for each request in line that has
    /// nothing here yet. While only descriptor requests (`recv`,
    /// `recv_many`) are in line it asks for descriptors: served without an
    /// allocation, they are the common case, and a message with payload
    /// refuses them and comes here with the read-ahead, where the line
    /// refuses the request itself. Once a message request is in line it
    /// asks for whole messages, so that a message's descriptors are never
    /// split between requests other than as the line's rules say (a batch
    /// takes a varying number, so requests of both kinds cannot be matched
    /// one to one with the passer's).
    fn ask_enough(&mut self) {
        self.pull_read_ahead();
        let lacking = self.line.lacking();
        let messages = self.line.has_message_request();
        while self.asked.len() < lacking {
            let asked = if messages {
                self.passer.push_recv_message()
            } else {
                self.passer.push_recv()
            };
            match asked {
                Ok(token) => self.asked.push_back(token),
                // End of stream or failure: the caller reports it.
                Err(_) => break,
            }
        }
        // A request made while the passer held messages read ahead was
        // fulfilled at once, as an event.
        if self.collect_events() {
            self.wakers.wake_except(None);
        }
    }

    /// Takes `request` out of line (served, failed or dropped). What it
    /// would have got goes to the request behind it; requests the passer no
    /// longer needs to serve are withdrawn.
    fn finish(&mut self, request: &mut RecvRequest) {
        self.forget(&mut request.waiter);
        let Some(ticket) = request.ticket.take() else {
            return;
        };
        // Did something arrive for it? It now belongs to those behind.
        let owned = self.line.locate(ticket).is_some();
        let Some(kind) = self.line.leave(ticket) else {
            return;
        };
        if owned || matches!(kind, Kind::Batch { .. }) {
            self.wakers.wake_except(None);
        }
        let lacking = self.line.lacking();
        while self.asked.len() > lacking {
            let Some(token) = self.asked.pop_back() else {
                break;
            };
            // False only if the passer already fulfilled it: its event
            // brings the message to the line, for the next request.
            self.passer.cancel_recv(token);
        }
    }

    fn settle(
        &mut self,
        waiter: &mut Waiter,
        usable: Result<(), Error>,
    ) -> Poll<Result<(), Error>> {
        match usable {
            Ok(()) => Poll::Pending,
            Err(e) => {
                self.forget(waiter);
                Poll::Ready(Err(e))
            }
        }
    }

    fn register(&mut self, waiter: &mut Waiter, cx: &Context<'_>) {
        let mut wakers = self.wakers.wakers.lock().unwrap_or_else(|e| e.into_inner());
        match waiter.key.and_then(|key| wakers.get_mut(key)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => waiter.key = Some(wakers.insert(cx.waker().clone())),
        }
    }

    /// Does all the I/O the passer wants and the reactor allows, arms the
    /// reactor for the rest, and collects the events.
    ///
    /// Events wake every waiting task but `driving`, the one doing the work,
    /// which checks its own condition right after.
    fn drive<R: Reactor>(&mut self, reactor: &mut R, driving: Option<usize>) {
        let fan_out = self.fan_out.clone();
        let mut cx = Context::from_waker(&fan_out);
        // A receive was made in this call: the readiness it used may still be
        // reported (async-io re-arms level-triggered), and watching for the
        // peer's hang-up on it would cost a system call per message. The
        // watch resumes at the next call, which every waiting task makes when
        // the events of this one wake it.
        let mut received = false;
        // The peer's hello was looked for in this call (see below).
        let mut looked_for_hello = false;
        loop {
            let now = Instant::now();
            self.passer.handle_timeout(now);
            let interest = self.passer.interest();
            let mut progressed = false;
            let write = (Direction::Write, interest.write);
            let read = (Direction::Read, interest.read);
            // On the native wire the peer's hello says how much one send may
            // carry; until it arrived a send carries at most one descriptor.
            // Read first while it is awaited, so that a hello already
            // waiting in the socket lets this round's sends be full. The
            // reactor may not have reported it yet (a runtime learns of
            // readiness only between tasks), so with sends waiting, look
            // once per call even without readiness: one `recvmsg`, only
            // until the hello, which each end sends at once, arrived.
            let hello_awaited = self.hello_awaited();
            let look_for_hello = hello_awaited && interest.write.is_wanted() && !looked_for_hello;
            looked_for_hello |= look_for_hello;
            let order = if hello_awaited {
                [read, write]
            } else {
                [write, read]
            };
            for (direction, want) in order {
                if want == Want::Idle {
                    continue;
                }
                if direction == Direction::Read {
                    let watch_only = self.passer.outstanding_recvs() == 0;
                    if watch_only && received {
                        continue;
                    }
                    received |= !watch_only;
                }
                let passer = &mut self.passer;
                let mut attempt = || handle(passer, direction, now) == Want::WhenReady;
                let try_now = want == Want::Now || (direction == Direction::Read && look_for_hello);
                let polled = if try_now {
                    reactor.poll_try(&mut cx, direction, &mut attempt)
                } else {
                    reactor.poll_ready(&mut cx, direction, &mut attempt)
                };
                progressed |= match polled {
                    Poll::Ready(Ok(())) => true,
                    // A reactor that cannot watch the socket leaves the passer
                    // deaf: fail it, so every waiting task (woken below with
                    // the failure event) learns why.
                    Poll::Ready(Err(e)) => {
                        self.passer.abort(e.into());
                        true
                    }
                    Poll::Pending => false,
                };
            }
            if let Some(deadline) = self.passer.poll_timeout() {
                progressed |= reactor.poll_deadline(&mut cx, deadline).is_ready();
            }
            if self.collect_events() {
                self.wakers.wake_except(driving);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Native wire: the peer's hello has not arrived yet.
    fn hello_awaited(&self) -> bool {
        self.passer.config().wire.is_native() && self.passer.peer_limits().is_none()
    }

    /// The passer served its request `token`.
    fn answered(&mut self, token: RecvToken) {
        if let Some(at) = self.asked.iter().position(|t| *t == token) {
            self.asked.remove(at);
        }
    }

    /// Moves the passer's events into the shared state; true if any arrived.
    fn collect_events(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.passer.poll_event() {
            any = true;
            match event {
                Event::Sent(token) => self.sent_through = Some(token),
                Event::ReceivedMessage(token, message) => {
                    self.answered(token);
                    self.line.arrive(message);
                }
                Event::Received(token, fd) => {
                    self.answered(token);
                    self.line.arrive_fd(fd);
                }
                // The passer dropped its outstanding requests.
                Event::Closed | Event::Failed(_) => self.asked.clear(),
                // Waiting senders learn it from `send_usable`.
                Event::SendFailed(_) => {}
                // A descriptor request met a message with payload: the
                // message stays in the passer, read ahead, and comes here at
                // the next pull, where the line refuses the request itself.
                Event::RecvRefused(token, _) => self.answered(token),
            }
        }
        any
    }
}

/// Does the I/O `direction` wants and returns what it wants next.
fn handle(passer: &mut Passer, direction: Direction, now: Instant) -> Want {
    match direction {
        Direction::Read => {
            passer.handle_readable(now);
            passer.interest().read
        }
        Direction::Write => {
            passer.handle_writable(now);
            passer.interest().write
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    /// Lets the passer try whenever asked and reports readiness only when the
    /// try made progress (a reactor that kept saying "ready" to a blocked
    /// socket would break the `Reactor` contract and spin the driver); the
    /// wall clock decides deadlines.
    struct TryAlways;

    impl Reactor for TryAlways {
        fn poll_ready(
            &mut self,
            _cx: &mut Context<'_>,
            _direction: Direction,
            attempt: &mut dyn FnMut() -> bool,
        ) -> Poll<io::Result<()>> {
            if attempt() {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn poll_deadline(&mut self, _cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
            if Instant::now() >= deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn numbered(driver: &mut Driver, number: u8) {
        use std::io::Write;
        let (read_end, mut write_end) = std::io::pipe().unwrap();
        write_end.write_all(&[number]).unwrap();
        let token = driver.push_send(read_end.into()).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let sent = driver.poll_sent(&mut cx, &mut TryAlways, token, &mut Waiter::default());
        assert!(matches!(sent, Poll::Ready(Ok(()))));
    }

    fn number_of(received: Poll<Result<Option<OwnedFd>, Error>>) -> u8 {
        use std::io::Read;
        let Poll::Ready(Ok(Some(fd))) = received else {
            panic!("expected a descriptor, got {received:?}");
        };
        let mut byte = [0u8];
        std::fs::File::from(fd).read_exact(&mut byte).unwrap();
        byte[0]
    }

    #[test]
    fn sends_wait_for_room_under_the_high_water_mark() {
        use std::future::Future;
        use std::pin::pin;

        use crate::PushError;

        let (a, b) = crate::socket::pair().unwrap();
        // The smallest send buffer: the kernel soon stops taking messages.
        rustix::net::sockopt::set_socket_send_buffer_size(&a, 1).unwrap();
        let config = Config::default()
            .with_max_fds_per_message(1)
            .with_max_queued_sends(Some(2));
        let mut a = Handle::new(Passer::new(a, config).unwrap(), TryAlways);
        let mut b = Handle::new(Passer::new(b, config).unwrap(), TryAlways);
        let mut cx = Context::from_waker(Waker::noop());
        let pipe = || -> OwnedFd { std::io::pipe().unwrap().0.into() };
        let mut pushed = 0;
        loop {
            match a.push_send(pipe()) {
                Ok(()) => pushed += 1,
                Err(PushError::Full(_back)) => break,
                Err(e) => panic!("push failed: {e}"),
            }
            assert!(pushed < 500, "never full");
        }
        // Full: the sink is not ready, and a send future waits, holding its
        // descriptor.
        assert!(a.poll_ready(&mut cx).is_pending());
        let sender = a.clone(); // another handle on the same queue
        let mut waiting = pin!(sender.send(pipe()));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        // The peer reads; the sender, driven, gets room again.
        let mut received = 0;
        while a.poll_ready(&mut cx).is_pending() {
            assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
            received += 1;
            assert!(received <= pushed, "room never came");
        }
        assert!(matches!(
            waiting.as_mut().poll(&mut cx),
            Poll::Pending | Poll::Ready(Ok(()))
        ));
        // Everything arrives: what was pushed and the one that waited.
        while received < pushed + 1 {
            let _ = waiting.as_mut().poll(&mut cx);
            assert!(matches!(b.poll_next(&mut cx), Poll::Ready(Some(Ok(_)))));
            received += 1;
        }
        assert!(matches!(
            waiting.as_mut().poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }

    #[test]
    fn requests_are_served_in_the_order_they_were_made_not_polled() {
        let (a, b) = Passer::pair(Config::default()).unwrap();
        let (mut a, mut b) = (Driver::new(a), Driver::new(b));
        let mut cx = Context::from_waker(Waker::noop());

        let mut first = RecvRequest::default();
        assert!(b
            .poll_recv(&mut cx, &mut TryAlways, &mut first)
            .is_pending());
        numbered(&mut a, 1);
        // Made later: it waits for the next descriptor, the first is `first`'s.
        let mut second = RecvRequest::default();
        assert!(b
            .poll_recv(&mut cx, &mut TryAlways, &mut second)
            .is_pending());
        numbered(&mut a, 2);
        assert_eq!(
            number_of(b.poll_recv(&mut cx, &mut TryAlways, &mut second)),
            2
        );
        assert_eq!(
            number_of(b.poll_recv(&mut cx, &mut TryAlways, &mut first)),
            1
        );
        assert_eq!(b.passer().outstanding_recvs(), 0);
    }

    #[test]
    fn a_dropped_request_hands_its_descriptor_to_the_next_in_line() {
        let (a, b) = Passer::pair(Config::default()).unwrap();
        let (mut a, mut b) = (Driver::new(a), Driver::new(b));
        let mut cx = Context::from_waker(Waker::noop());
        let mut dropped = b.request_recv();
        let mut next = b.request_recv();
        let mut last = b.request_recv();
        assert!(b.poll_recv(&mut cx, &mut TryAlways, &mut last).is_pending());
        numbered(&mut a, 1);
        numbered(&mut a, 2);
        assert!(b.poll_recv(&mut cx, &mut TryAlways, &mut last).is_pending());
        b.cancel_recv(&mut dropped);
        assert_eq!(
            number_of(b.poll_recv(&mut cx, &mut TryAlways, &mut last)),
            2
        );
        assert_eq!(
            number_of(b.poll_recv(&mut cx, &mut TryAlways, &mut next)),
            1
        );
        // Every request is served or withdrawn: the passer reads for nobody.
        assert_eq!(b.passer().outstanding_recvs(), 0);
    }

    fn sent_message(driver: &mut Driver, message: Message) {
        let token = driver.push_send_message(message).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let sent = driver.poll_sent(&mut cx, &mut TryAlways, token, &mut Waiter::default());
        assert!(matches!(sent, Poll::Ready(Ok(()))));
    }

    fn numbered_fd(number: u8) -> OwnedFd {
        use std::io::Write;
        let (read_end, mut write_end) = std::io::pipe().unwrap();
        write_end.write_all(&[number]).unwrap();
        read_end.into()
    }

    fn numbers_of(received: Poll<Result<Option<Message>, Error>>) -> (Vec<u8>, Vec<u8>) {
        let Poll::Ready(Ok(Some(message))) = received else {
            panic!("expected a message, got {received:?}");
        };
        let fds = message
            .fds
            .into_iter()
            .map(|fd| number_of(Poll::Ready(Ok(Some(fd)))))
            .collect();
        (message.payload, fds)
    }

    #[test]
    fn requests_of_both_kinds_are_served_in_the_order_made_not_polled() {
        let (a, b) = Passer::pair(Config::default()).unwrap();
        let (mut a, mut b) = (Driver::new(a), Driver::new(b));
        let mut cx = Context::from_waker(Waker::noop());
        b.drive_now(&mut TryAlways); // b's hello: a may send more than one descriptor per sendmsg
        let mut one = b.request_recv();
        let mut message = b.request_recv_message();
        let mut rest = b.request_recv_message();
        numbered(&mut a, 1);
        sent_message(&mut a, Message::new(b"two".to_vec(), vec![numbered_fd(2)]));
        sent_message(
            &mut a,
            Message::from_fds(vec![numbered_fd(3), numbered_fd(4)]),
        );
        // Made last, served last: nothing is left for it.
        let mut three = b.request_recv();
        assert_eq!(
            numbers_of(b.poll_recv_message(&mut cx, &mut TryAlways, &mut rest)),
            (Vec::new(), vec![3, 4])
        );
        assert!(b
            .poll_recv(&mut cx, &mut TryAlways, &mut three)
            .is_pending());
        assert_eq!(
            numbers_of(b.poll_recv_message(&mut cx, &mut TryAlways, &mut message)),
            (b"two".to_vec(), vec![2])
        );
        assert_eq!(number_of(b.poll_recv(&mut cx, &mut TryAlways, &mut one)), 1);
        b.cancel_recv(&mut three);
        assert_eq!(b.passer().outstanding_recvs(), 0);
        assert_eq!(b.stats().held_descriptors, 0);
    }

    #[test]
    fn a_descriptor_request_is_refused_by_a_payload_and_a_batch_stops_before_one() {
        let (a, b) = Passer::pair(Config::default()).unwrap();
        let (mut a, mut b) = (Driver::new(a), Driver::new(b));
        let mut cx = Context::from_waker(Waker::noop());
        b.drive_now(&mut TryAlways); // b's hello: a may send all in one sendmsg
        a.push_send_many([numbered_fd(1), numbered_fd(2)]).unwrap();
        sent_message(
            &mut a,
            Message::new(b"bytes".to_vec(), vec![numbered_fd(3)]),
        );
        let mut buf = Vec::new();
        let mut batch = RecvRequest::default();
        let got = b.poll_recv_many(&mut cx, &mut TryAlways, &mut batch, &mut buf, 10);
        assert!(matches!(got, Poll::Ready(Ok(2))), "{got:?}");
        let refused = b.poll_recv(&mut cx, &mut TryAlways, &mut RecvRequest::default());
        assert!(
            matches!(
                refused,
                Poll::Ready(Err(Error::UnexpectedMessage {
                    payload_len: 5,
                    descriptors: 1
                }))
            ),
            "{refused:?}"
        );
        let mut batch = RecvRequest::default();
        let refused = b.poll_recv_many(&mut cx, &mut TryAlways, &mut batch, &mut buf, 10);
        assert!(matches!(
            refused,
            Poll::Ready(Err(Error::UnexpectedMessage { .. }))
        ));
        let mut request = RecvRequest::default();
        assert_eq!(
            numbers_of(b.poll_recv_message(&mut cx, &mut TryAlways, &mut request)),
            (b"bytes".to_vec(), vec![3])
        );
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn a_dropped_message_request_hands_its_message_to_the_next_in_line() {
        let (a, b) = Passer::pair(Config::default()).unwrap();
        let (mut a, mut b) = (Driver::new(a), Driver::new(b));
        let mut cx = Context::from_waker(Waker::noop());
        b.drive_now(&mut TryAlways); // b's hello
        let mut dropped = b.request_recv_message();
        let mut served = b.request_recv_message();
        sent_message(&mut a, Message::new(b"one".to_vec(), vec![numbered_fd(1)]));
        sent_message(&mut a, Message::from_payload("two"));
        assert_eq!(
            numbers_of(b.poll_recv_message(&mut cx, &mut TryAlways, &mut served)),
            (b"two".to_vec(), Vec::new())
        );
        // "one" arrived for `dropped`, which goes away unserved.
        assert_eq!(b.stats().held_descriptors, 1);
        b.cancel_recv(&mut dropped);
        // A descriptor request next meets its payload: refused, nothing taken.
        let refused = b.poll_recv(&mut cx, &mut TryAlways, &mut RecvRequest::default());
        assert!(matches!(
            refused,
            Poll::Ready(Err(Error::UnexpectedMessage { .. }))
        ));
        let mut next = RecvRequest::default();
        assert_eq!(
            numbers_of(b.poll_recv_message(&mut cx, &mut TryAlways, &mut next)),
            (b"one".to_vec(), vec![1])
        );
        assert_eq!(b.passer().outstanding_recvs(), 0);
    }
}
