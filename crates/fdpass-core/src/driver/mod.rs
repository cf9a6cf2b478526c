//! The reactor-independent half of an async adapter.
//!
//! `fdpass-tokio` and `fdpass-smol` share everything here: which I/O to attempt
//! when, waking every waiting task, handing received descriptors to receivers
//! in order whatever futures get dropped, reporting sends, closes and
//! failures ([`Driver`]); the lock around driver and reactor, the handles
//! users clone across tasks, `Stream`/`Sink` polling ([`Handle`]); and the
//! futures of `send`, `recv` and `flush` ([`SendFd`], [`RecvFd`], [`Flush`]).
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

use crate::{Error, Event, Passer, PushError, RecvToken, SendToken, Stats, Want};

mod futures;
mod handle;

pub use futures::{Closed, Flush, RecvFd, RecvMany, SendFd, Shutdown};
pub use handle::Handle;

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

/// The state of one `recv()` future: its place in the line of receive
/// requests and its waker.
///
/// Requests are served in the order they were made: the oldest request gets
/// the oldest descriptor. [`Driver::request_recv`] makes one at once (what
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
    /// Its place in [`Driver::line`]; `None` before it joined and once served.
    ticket: Option<u64>,
}

/// One receive request in line.
#[derive(Debug, Clone, Copy)]
struct Place {
    ticket: u64,
    width: Width,
}

/// How many descriptors, in arrival order, a request in line owns.
#[derive(Debug, Clone, Copy)]
enum Width {
    /// `recv`: the next one.
    One,
    /// `recv_many`: its first one and what else is here when that one is,
    /// up to `limit`. Fixed (`taken`) as soon as its first one is here, so
    /// the requests behind it know where theirs start and wait for nothing
    /// but their own.
    Batch { limit: usize, taken: Option<usize> },
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
    /// Descriptors received and not yet claimed, oldest first. The i-th
    /// request of `line` owns the i-th, so when a request leaves the line
    /// (served or dropped) the descriptors move up with the requests behind
    /// it and none is lost.
    received: VecDeque<OwnedFd>,
    /// Receive requests not yet served, in the order they were made.
    line: VecDeque<Place>,
    next_ticket: u64,
    /// The passer's receive requests outstanding, oldest first: together with
    /// `received`, as many as `line` needs.
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
        self.received.drain(..).for_each(crate::disposal::dispose);
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
            received: VecDeque::new(),
            line: VecDeque::new(),
            next_ticket: 0,
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
        stats.held_descriptors += self.received.len();
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
        if let Some(pushed) = self.try_push_pending(pending) {
            self.forget(waiter);
            return Poll::Ready(pushed);
        }
        self.register(waiter, cx);
        self.drive(reactor, waiter.key);
        match self.try_push_pending(pending) {
            Some(pushed) => {
                self.forget(waiter);
                Poll::Ready(pushed)
            }
            None => Poll::Pending,
        }
    }

    /// Pushes `pending` if there is room (or the passer is unusable, which
    /// ends the wait); `None` while it must wait.
    fn try_push_pending(
        &mut self,
        pending: &mut Option<OwnedFd>,
    ) -> Option<Result<SendToken, Error>> {
        let fd = pending.take()?;
        match self.push_send(fd) {
            Ok(token) => Some(Ok(token)),
            Err(PushError::Full(fd)) => {
                *pending = Some(fd);
                None
            }
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
        let room = |driver: &Self| match driver.passer.send_usable() {
            Err(e) => Some(Err(e)),
            Ok(()) => driver.passer.has_room_for(1).then_some(Ok(())),
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
        self.enlist(request, Width::One);
        self.poll_claim(cx, reactor, request).map(|claimed| {
            claimed.map(|run| run.and_then(|(start, _)| self.received.remove(start)))
        })
    }

    /// Waits until `request`'s descriptors are here; returns where they are
    /// in `received` (start and count), out of line, or `None` at the end of
    /// the stream.
    fn poll_claim<R: Reactor>(
        &mut self,
        cx: &mut Context<'_>,
        reactor: &mut R,
        request: &mut RecvRequest,
    ) -> Poll<Result<Option<(usize, usize)>, Error>> {
        // A descriptor is waiting (one message brings many): hand it out
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
        self.enlist(&mut request, Width::One);
        request
    }

    /// [`request_recv`](Self::request_recv) for a `recv_many` of up to
    /// `limit` (at least 1): it takes its batch before any request made later.
    pub(crate) fn request_recv_many(&mut self, limit: usize) -> RecvRequest {
        let mut request = RecvRequest::default();
        self.enlist(
            &mut request,
            Width::Batch {
                limit: limit.max(1),
                taken: None,
            },
        );
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
    /// let batch = (0..5).map(|_| rustix::pipe::pipe().map(|(read_end, _)| read_end));
    /// a.push_send_many(batch.collect::<Result<Vec<_>, _>>()?)?;
    /// a.drive_now(&mut TryAlways); // one message of five
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
        self.enlist(request, Width::Batch { limit, taken: None });
        match self.poll_claim(cx, reactor, request) {
            Poll::Ready(Ok(Some((start, count)))) => {
                buf.extend(self.received.drain(start..start + count));
                Poll::Ready(Ok(count))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(Ok(0)),
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

    /// Lets go of what arrived and no receiver took, and wakes every task.
    fn let_go_of_received(&mut self) {
        // The peer chose these files; their close may block (see `disposal`).
        self.received.drain(..).for_each(crate::disposal::dispose);
        self.asked.clear();
        self.fan_out.wake_by_ref();
    }

    /// Gives `request` a place at the back of the line, if it has none.
    fn enlist(&mut self, request: &mut RecvRequest, width: Width) {
        if request.ticket.is_none() {
            request.ticket = Some(self.next_ticket);
            self.line.push_back(Place {
                ticket: self.next_ticket,
                width,
            });
            // 2^64 requests: centuries at a billion a second.
            self.next_ticket = self.next_ticket.wrapping_add(1);
        }
    }

    /// Moves what the passer read ahead (newer than anything in `received`)
    /// to `received`, without I/O.
    fn pull_read_ahead(&mut self) {
        while let Some((_token, fd)) = self.passer.try_recv() {
            self.received.push_back(fd);
        }
    }

    /// Where the descriptors of the request with `ticket` are in `received`
    /// (start, count); `None` while they are not all here, or it is not in
    /// line. Fixes the batches that became known on the way.
    fn locate(&mut self, ticket: u64) -> Option<(usize, usize)> {
        let here = self.received.len();
        let mut start = 0;
        for place in self.line.iter_mut() {
            let count = match &mut place.width {
                Width::One => 1,
                Width::Batch {
                    taken: Some(count), ..
                } => *count,
                Width::Batch { limit, taken } => {
                    if start >= here {
                        // Its first descriptor is not here: neither are any
                        // of those behind it.
                        return None;
                    }
                    *taken.insert((*limit).min(here - start))
                }
            };
            if place.ticket == ticket {
                return (start + count <= here).then_some((start, count));
            }
            start += count;
        }
        None
    }

    /// How many descriptors the line needs (a batch not yet here counts one).
    fn demand(&self) -> usize {
        self.line
            .iter()
            .map(|place| match place.width {
                Width::One | Width::Batch { taken: None, .. } => 1,
                Width::Batch {
                    taken: Some(count), ..
                } => count,
            })
            .sum()
    }

    fn index_of(&self, request: &RecvRequest) -> Option<usize> {
        let ticket = request.ticket?;
        self.line
            .binary_search_by_key(&ticket, |place| place.ticket)
            .ok()
    }

    /// Takes `request` out of line with its descriptors' whereabouts
    /// (start, count in `received`), if they are all here.
    fn claim(&mut self, request: &mut RecvRequest) -> Option<(usize, usize)> {
        self.pull_read_ahead();
        let run = self.locate(request.ticket?)?;
        let at = self.index_of(request)?;
        let batch = matches!(
            self.line.remove(at),
            Some(Place {
                width: Width::Batch { .. },
                ..
            })
        );
        request.ticket = None;
        self.forget(&mut request.waiter);
        if batch {
            // Those behind it may have waited for its batch to be known.
            self.wakers.wake_except(None);
        }
        Some(run)
    }

    /// Asks the passer for as many descriptors as the line still lacks.
    fn ask_enough(&mut self) {
        self.pull_read_ahead();
        while self.asked.len() + self.received.len() < self.demand() {
            match self.passer.push_recv() {
                Ok(token) => self.asked.push_back(token),
                // End of stream or failure: the caller reports it.
                Err(_) => break,
            }
        }
        // A request made while the passer held descriptors read ahead was
        // fulfilled at once, as an event.
        if self.collect_events() {
            self.wakers.wake_except(None);
        }
    }

    /// Takes `request` out of line (served, failed or dropped). A descriptor
    /// it owned goes to the request behind it; requests the passer no longer
    /// needs to make are withdrawn.
    fn finish(&mut self, request: &mut RecvRequest) {
        self.forget(&mut request.waiter);
        let Some(at) = self.index_of(request) else {
            request.ticket = None;
            return;
        };
        // Did descriptors arrive for it? They now belong to those behind.
        let owned = request
            .ticket
            .and_then(|ticket| self.locate(ticket))
            .is_some();
        request.ticket = None;
        let batch = matches!(
            self.line.remove(at),
            Some(Place {
                width: Width::Batch { .. },
                ..
            })
        );
        if owned || batch {
            self.wakers.wake_except(None);
        }
        while self.asked.len() + self.received.len() > self.demand() {
            let Some(token) = self.asked.pop_back() else {
                break;
            };
            // False only if the passer already fulfilled it: its event
            // brings the descriptor to `received`, for the next request.
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
        loop {
            let now = Instant::now();
            self.passer.handle_timeout(now);
            let interest = self.passer.interest();
            let mut progressed = false;
            for (direction, want) in [
                (Direction::Write, interest.write),
                (Direction::Read, interest.read),
            ] {
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
                let polled = match want {
                    Want::Now => reactor.poll_try(&mut cx, direction, &mut attempt),
                    _ => reactor.poll_ready(&mut cx, direction, &mut attempt),
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

    /// Moves the passer's events into the shared state; true if any arrived.
    fn collect_events(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.passer.poll_event() {
            any = true;
            match event {
                Event::Sent(token) => self.sent_through = Some(token),
                Event::Received(token, fd) => {
                    if let Some(at) = self.asked.iter().position(|t| *t == token) {
                        self.asked.remove(at);
                    }
                    self.received.push_back(fd);
                }
                // The passer dropped its outstanding requests.
                Event::Closed | Event::Failed(_) => self.asked.clear(),
                // Waiting senders learn it from `send_usable`.
                Event::SendFailed(_) => {}
                Event::ReceivedMessage(token, message) => {
                    if let Some(at) = self.asked.iter().position(|t| *t == token) {
                        self.asked.remove(at);
                    }
                    message.fds.into_iter().for_each(crate::disposal::dispose);
                }
                Event::RecvRefused(token, _) => {
                    if let Some(at) = self.asked.iter().position(|t| *t == token) {
                        self.asked.remove(at);
                    }
                }
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
}
