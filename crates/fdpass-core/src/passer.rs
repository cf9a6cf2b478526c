//! The state machine: one connected socket, an output and an input queue.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use rustix::io::Errno;

use crate::config::MIN_PAYLOAD_LIMIT;
use crate::frame::{self, Hello};
use crate::inbound::{Inbound, PeerLimits};
use crate::recv_queue::{RecvQueue, Served, Want as RecvWant};
use crate::reservation::{Room, Slots, REFUSAL_MARGIN};
use crate::retry::Retry;
use crate::send_queue::{Batch, BatchLimits, SendQueue};
use crate::shared_socket::SharedSocket;
use crate::stats::Counters;
use crate::sys::{Received, RecvMode, Sys, SystemCalls};
use crate::{
    diagnostics, Config, Error, Event, Interest, Message, ProtocolError, PushError, RecvToken,
    Reservation, SendToken, Stats, Want, Wire, SCM_MAX_FD,
};

/// Whether the passer can still be used.
#[derive(Debug)]
enum State {
    Open,
    /// A graceful shutdown: what is queued is still sent, nothing new is
    /// accepted, and at `deadline` whatever is left is given up.
    Draining {
        deadline: Instant,
    },
    /// Failed; the error is returned by every later push.
    Failed(Error),
    /// Closed by this side, abortively.
    Closed,
    /// Shut down gracefully: everything queued was sent, then the socket was
    /// shut down.
    ShutDown,
}

/// A descriptor passer: the sans-IO state machine over one connected
/// `AF_UNIX` socket (`SOCK_STREAM` or `SOCK_SEQPACKET`).
///
/// It never blocks, never polls and never reads the clock. Inputs are pushes
/// ([`push_send`](Self::push_send), [`push_recv`](Self::push_recv)) and what the
/// driver observed ([`handle_readable`](Self::handle_readable),
/// [`handle_writable`](Self::handle_writable),
/// [`handle_timeout`](Self::handle_timeout)); outputs are what it wants
/// ([`interest`](Self::interest), [`poll_timeout`](Self::poll_timeout)) and
/// what happened ([`poll_event`](Self::poll_event)). The crate docs show the
/// whole driving loop.
///
/// The type parameter is the system-call seam; applications use the default.
///
/// Dropping a passer ends the connection: every descriptor it holds is let
/// go of, and its socket, once its last [`shared_socket`](Self::shared_socket)
/// handle is gone too, is shut down at once and drained and closed soon on a
/// background thread, so that the peer reads an orderly end of stream. Those
/// descriptors and the socket are closed asynchronously (see
/// [`disposal`](crate::disposal)): a leak check waits for
/// [`disposal::flush`](crate::disposal::flush).
///
/// ```
/// use std::time::Instant;
/// use fdpass_core::{Config, Event, Passer};
///
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (mut left, mut right) = Passer::pair(Config::default())?;
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// let sent = left.push_send(read_end)?;
/// let asked = right.push_recv()?;
///
/// let now = Instant::now();
/// left.handle_writable(now);
/// right.handle_readable(now);
///
/// assert!(matches!(left.poll_event(), Some(Event::Sent(t)) if t == sent));
/// assert!(matches!(right.poll_event(), Some(Event::Received(t, _fd)) if t == asked));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Passer<S: Sys = SystemCalls> {
    sys: S,
    /// Shared only with reactor registrations (see [`Passer::shared_socket`]),
    /// so that they can own what they watch.
    socket: Arc<SharedSocket>,
    config: Config,
    state: State,
    send: SendQueue,
    recv: RecvQueue,
    /// The native wire's incoming frames; `None` on the classic wire.
    inbound: Option<Inbound>,
    slots: Slots,
    events: VecDeque<Event>,
    /// The peer's orderly close was seen.
    peer_closed: bool,
    /// Sending failed for good (`EPIPE`: the peer reads no more) while
    /// receiving goes on: what the peer sent before it closed still arrives.
    send_failure: Option<Error>,
    /// [`Event::Closed`] was queued (it waits until nothing read ahead is
    /// left, so it always means "nothing more will come").
    closed_reported: bool,
    /// Watch for the peer's hang-up while no receive is outstanding (see
    /// [`Passer::watch_hangup`]).
    hangup_watch: bool,
    /// Bytes wait in the socket while nobody asked for them: watching for
    /// the peer's hang-up is suspended until a request reads them, so a
    /// level-triggered loop is not woken by them forever.
    unasked_data: bool,
    /// The last hang-up peek ended in `EAGAIN` (kept apart from
    /// `read_blocked`, so a new request still reads at once).
    hangup_blocked: bool,
    /// The last receive attempt ended in `EAGAIN`.
    read_blocked: bool,
    /// The last send attempt ended in `EAGAIN`.
    write_blocked: bool,
    /// The token to report once the owed bytes of a partly written
    /// `sendmsg` are written.
    sent_once_owed_paid: Option<SendToken>,
    send_retry: Retry,
    recv_retry: Retry,
    /// What [`Passer::stats`] reports besides the queues and the retries.
    counters: Counters,
    /// The socket keeps message boundaries (`SOCK_SEQPACKET`).
    seqpacket: bool,
    /// Reused receive buffers: payload bytes and installed descriptors.
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Passer<SystemCalls> {
    /// Wraps a connected `AF_UNIX` socket (`SOCK_STREAM` or `SOCK_SEQPACKET`).
    ///
    /// Resolves [`Reservation::Auto`] to the strategy that is lossless here,
    /// puts the socket into non-blocking mode unless
    /// [`Config::set_nonblocking`] is off, sets `SO_NOSIGPIPE` on macOS, and,
    /// for [`Reservation::Sentinel`], takes the reserved slots now.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad [`Config`], or for
    /// [`Reservation::Peek`] where the running kernel cannot honour it;
    /// [`Error::Io`] if the
    /// socket cannot be made non-blocking or (sentinel) the table has no room
    /// for the reservation (`EMFILE`).
    ///
    /// ```
    /// use fdpass_core::{Config, Passer};
    /// use std::os::unix::net::UnixStream;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = UnixStream::pair()?;
    /// let passer = Passer::new(a.into(), Config::default())?;
    /// # drop(passer); Ok(()) }
    /// ```
    pub fn new(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Passer::with_sys(SystemCalls::default(), socket, config)
    }

    /// Two passers joined by a new `SOCK_STREAM` socketpair, both close-on-exec.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_left, _right) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// # Ok(()) }
    /// ```
    pub fn pair(config: Config) -> Result<(Self, Self), Error> {
        let (a, b) = crate::socket::pair()?;
        Ok((Passer::new(a, config)?, Passer::new(b, config)?))
    }
}

impl<S: Sys> Passer<S> {
    /// Like [`Passer::new`], with another system-call seam (fault injection).
    ///
    /// ```
    /// use fdpass_core::sys::SystemCalls;
    /// use fdpass_core::{Config, Passer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (socket, _peer) = fdpass_core::socket::pair()?;
    /// let passer = Passer::with_sys(SystemCalls::default(), socket, Config::default())?;
    /// assert!(passer.usable().is_ok());
    /// # Ok(()) }
    /// ```
    #[doc(hidden)]
    pub fn with_sys(mut sys: S, socket: OwnedFd, mut config: Config) -> Result<Self, Error> {
        // From here on, even a failed construction releases the socket in
        // order and off this thread: it may already hold the peer's messages.
        let socket = SharedSocket::new(socket);
        config.validate()?;
        config.reservation = config.reservation.resolve(&mut sys)?;
        if config.set_nonblocking {
            sys.set_nonblocking(socket.as_fd())?;
        }
        match sys.set_oob_inline(socket.as_fd()) {
            // Where the option does not exist, neither does out-of-band data.
            Ok(()) | Err(Errno::NOPROTOOPT | Errno::OPNOTSUPP | Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
        sys.suppress_sigpipe(socket.as_fd())?;
        let seqpacket = sys.keeps_boundaries(socket.as_fd());
        let slots = match config.reservation {
            Reservation::Peek => Slots::peek(),
            // `Auto` was resolved above.
            Reservation::Sentinel | Reservation::Auto => {
                Slots::sentinel(&mut sys, config.max_fds_per_message)?
            }
        };
        let mut send = SendQueue::default();
        let (inbound, read_buffer) = match config.wire {
            Wire::Native => {
                // Our hello goes first, without waiting for the peer's. With
                // the peek reservation nothing is held for arrivals, so the
                // batch announced is at most half the room RLIMIT_NOFILE
                // leaves: a peer batching up to a limit the table could
                // never hold at once would stall for good. (The sentinel
                // frees its own slots, as many as the limit.)
                let mut announced = config.max_fds_per_message;
                if config.reservation == Reservation::Peek {
                    if let Some(limit) = sys.nofile_limit() {
                        let half = crate::reservation::room_under(limit) / 2;
                        announced = announced.min(half.max(1));
                    }
                }
                let hello = Hello::announcing(announced, config.max_payload_len);
                send.owe(&hello.encode());
                (
                    Some(Inbound::new(
                        config.max_fds_per_message,
                        config.max_payload_len,
                    )),
                    frame::HEADER_LEN + config.max_payload_len,
                )
            }
            Wire::Classic { .. } => (None, config.max_fds_per_message),
        };
        Ok(Passer {
            sys,
            socket: Arc::new(socket),
            config,
            state: State::Open,
            send,
            recv: RecvQueue::default(),
            inbound,
            slots,
            events: VecDeque::new(),
            peer_closed: false,
            send_failure: None,
            closed_reported: false,
            hangup_watch: false,
            unasked_data: false,
            hangup_blocked: false,
            read_blocked: false,
            write_blocked: false,
            sent_once_owed_paid: None,
            send_retry: Retry::new(config.retry),
            recv_retry: Retry::new(config.retry),
            counters: Counters::default(),
            seqpacket,
            bytes: vec![0; read_buffer],
            fds: Vec::with_capacity(config.max_fds_per_message),
        })
    }

    /// The system-call seam this passer was built with (fault injection and
    /// counting in tests).
    #[doc(hidden)]
    pub fn sys(&self) -> &S {
        &self.sys
    }

    /// The settings this passer was created with.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default().with_max_fds_per_message(1))?;
    /// assert_eq!(a.config().max_fds_per_message, 1);
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---- inputs ----

    /// Queues `fd` to be sent; returns at once. [`Event::Sent`] with this
    /// token (or a later one) reports that the kernel took it, after which
    /// our copy is closed. Send a `try_clone` to keep your own copy.
    ///
    /// # Errors
    /// Nothing is queued and `fd` comes back, still open, in the error:
    /// [`PushError::Full`] while [`queued_sends`](Self::queued_sends) is at
    /// [`Config::max_queued_sends`]; [`PushError::Unusable`] with the
    /// failure's error after a failure, or [`Error::Closed`] after
    /// [`close`](Self::close) or [`shutdown`](Self::shutdown). `?` into an
    /// [`Error`] lets go of `fd`.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// let token = a.push_send(r)?;
    /// assert_eq!(token.0, 0);
    /// # Ok(()) }
    /// ```
    pub fn push_send(&mut self, fd: OwnedFd) -> Result<SendToken, PushError<OwnedFd>> {
        if !self.has_room_for(1) {
            return Err(PushError::Full(fd));
        }
        self.push_send_over_mark(fd)
    }

    /// [`push_send`](Self::push_send) without the high-water mark: for a
    /// `Sink` whose `poll_ready` saw room that another handle took since.
    pub(crate) fn push_send_over_mark(
        &mut self,
        fd: OwnedFd,
    ) -> Result<SendToken, PushError<OwnedFd>> {
        if let Err(e) = self.send_usable() {
            return Err(PushError::Unusable(e, fd));
        }
        Ok(self.send.push(fd))
    }

    /// Whether `n` more descriptors may be queued under
    /// [`Config::max_queued_sends`]. An empty queue takes any batch, so
    /// that a batch larger than the mark is not refused forever.
    ///
    /// ```
    /// use fdpass_core::{Config, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = Passer::pair(Config::default().with_max_queued_sends(Some(2)))?;
    /// assert!(a.has_room_for(2) && a.has_room_for(5)); // empty: any batch
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// assert!(a.has_room_for(1) && !a.has_room_for(2));
    /// # Ok(()) }
    /// ```
    pub fn has_room_for(&self, n: usize) -> bool {
        self.has_room_for_message(n, 0)
    }

    /// Whether a message of `fds` descriptors and `payload_len` payload
    /// bytes may be queued under [`Config::max_queued_sends`] and
    /// [`Config::max_queued_bytes`]. An empty queue takes any message.
    ///
    /// ```
    /// use fdpass_core::{Config, Message, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = Passer::pair(Config::default().with_max_queued_bytes(Some(10)))?;
    /// a.push_send_message(Message::from_payload(vec![0; 8]))?;
    /// assert!(a.has_room_for_message(0, 2) && !a.has_room_for_message(0, 3));
    /// # Ok(()) }
    /// ```
    pub fn has_room_for_message(&self, fds: usize, payload_len: usize) -> bool {
        if self.send.len() == 0 && self.send.payload_bytes() == 0 {
            return true;
        }
        let fds_fit = self
            .config
            .max_queued_sends
            .is_none_or(|max| self.send.len().saturating_add(fds) <= max);
        let bytes_fit = self
            .config
            .max_queued_bytes
            .is_none_or(|max| self.send.payload_bytes().saturating_add(payload_len) <= max);
        fds_fit && bytes_fit
    }

    /// Queues a message: payload bytes and descriptors that the peer
    /// receives together, whole, in push order with every other push;
    /// returns at once. [`Event::Sent`] with this token (or a later one)
    /// reports that the kernel took it, after which our copies of its
    /// descriptors are closed.
    ///
    /// On the native wire the message goes in one frame, with other queued
    /// pushes in the same `sendmsg` when they fit the peer's limits. Until
    /// the peer's hello has arrived only a message a minimal receiver takes
    /// (at most 1 descriptor and 4096 payload bytes) is sent; a larger one
    /// waits in the queue for the hello, which the peer sends at once. On
    /// the classic wire a message is only descriptors (at least one), sent as
    /// that many one-descriptor messages.
    ///
    /// # Errors
    /// Nothing is queued and the message comes back, its descriptors still
    /// open: [`PushError::Full`] at the high-water marks
    /// ([`Config::max_queued_sends`], [`Config::max_queued_bytes`]);
    /// [`PushError::Unusable`] once sending has ended;
    /// [`PushError::Refused`] with [`Error::MessageTooLarge`] for a message
    /// the peer can never take: more descriptors or payload bytes than its
    /// hello announced (or than the wire allows: 253 descriptors, 16 MiB,
    /// before the hello), or any payload on the classic wire. A message
    /// queued before the hello that turns out too large for it ends sending
    /// with that error ([`Event::SendFailed`]); it and everything queued
    /// after it come back through
    /// [`take_unsent_messages`](Self::take_unsent_messages).
    ///
    /// ```
    /// use std::time::Instant;
    /// use fdpass_core::{Config, Event, Message, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, mut b) = Passer::pair(Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send_message(Message::new(b"client 203.0.113.7".to_vec(), vec![r]))?;
    /// let now = Instant::now();
    /// b.push_recv_message()?;
    /// a.handle_writable(now); // hello, then the message
    /// b.handle_readable(now);
    /// let Some(Event::ReceivedMessage(_, message)) = b.poll_event() else { panic!() };
    /// assert_eq!((message.payload.as_slice(), message.fds.len()), (&b"client 203.0.113.7"[..], 1));
    /// # Ok(()) }
    /// ```
    pub fn push_send_message(&mut self, message: Message) -> Result<SendToken, PushError<Message>> {
        if let Err(e) = self.send_usable() {
            return Err(PushError::Unusable(e, message));
        }
        let (fds, payload_len) = (message.fds.len(), message.payload.len());
        // Refused only against what the peer announced; a peer gone before
        // its hello ends sending through the queue (`on_front_too_large`).
        let (max_fds, max_payload) = match (self.config.wire, self.peer_limits()) {
            (Wire::Classic { .. }, _) => (SCM_MAX_FD, 0),
            (Wire::Native, Some(peer)) => (peer.max_fds_per_message, peer.max_payload_len),
            (Wire::Native, None) => (SCM_MAX_FD, crate::config::MAX_PAYLOAD_LIMIT),
        };
        let classic_empty = !self.config.wire.is_native() && fds == 0;
        if fds > max_fds || payload_len > max_payload || classic_empty {
            let error = Error::MessageTooLarge {
                descriptors: fds,
                payload_len,
                max_fds,
                max_payload,
            };
            return Err(PushError::Refused(error, message));
        }
        if !self.has_room_for_message(fds, payload_len) {
            return Err(PushError::Full(message));
        }
        Ok(self.send.push_message(message))
    }

    /// [`push_send_message`](Self::push_send_message) without the
    /// high-water marks: for a `Sink` whose `poll_ready` saw room that
    /// another handle took since, or that this message needs more of.
    pub(crate) fn push_send_message_over_mark(
        &mut self,
        message: Message,
    ) -> Result<SendToken, PushError<Message>> {
        match self.push_send_message(message) {
            Err(PushError::Full(message)) => Ok(self.send.push_message(message)),
            other => other,
        }
    }

    /// Queues every descriptor of `fds`, in order; returns at once with the
    /// last one's token (`None` if `fds` was empty). [`Event::Sent`] with that
    /// token or a later one reports that the kernel took them all.
    ///
    /// The same as calling [`push_send`](Self::push_send) for each (each
    /// descriptor is a message of its own), but a driver that writes only
    /// after the whole batch is queued fills every `sendmsg` up to the
    /// batch limit (the peer's announced limit on the native wire, the
    /// classic wire's `batch`), which a sender with a deep queue wants: the
    /// receiver's cost is mostly per `sendmsg`. To have the descriptors
    /// arrive together as one message, push a [`Message`] instead.
    ///
    /// # Errors
    /// As [`push_send`](Self::push_send), for the whole batch: none is
    /// queued and the error hands back every descriptor of `fds`, in order.
    /// The batch is [`PushError::Full`] unless all of it fits under
    /// [`Config::max_queued_sends`] or the queue is empty (an empty queue
    /// takes a batch of any size).
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let mut fds = Vec::new();
    /// for _ in 0..3 {
    ///     let (r, _w) = rustix::pipe::pipe()?;
    ///     fds.push(r);
    /// }
    /// let last = a.push_send_many(fds)?;
    /// assert_eq!(last, Some(fdpass_core::SendToken(2)));
    /// assert_eq!(a.queued_sends(), 3);
    /// # Ok(()) }
    /// ```
    pub fn push_send_many<I>(
        &mut self,
        fds: I,
    ) -> Result<Option<SendToken>, PushError<Vec<OwnedFd>>>
    where
        I: IntoIterator<Item = OwnedFd>,
    {
        let fds: Vec<OwnedFd> = fds.into_iter().collect();
        if let Err(e) = self.send_usable() {
            return Err(PushError::Unusable(e, fds));
        }
        if !self.has_room_for(fds.len()) {
            return Err(PushError::Full(fds));
        }
        // Pushing cannot fail once the passer is usable: no I/O happens here.
        Ok(fds.into_iter().map(|fd| self.send.push(fd)).last())
    }

    /// Asks for the next descriptor; returns at once. [`Event::Received`] with
    /// this token brings it. The passer takes messages from the socket only
    /// while requests are outstanding (with none, and
    /// [`watch_hangup`](Self::watch_hangup) on, it only peeks for the end).
    ///
    /// # Errors
    /// After a failure, the failure's error; after [`close`](Self::close),
    /// [`Error::Closed`]; after the peer's orderly close, once every
    /// descriptor read ahead was handed out, [`Error::PeerClosed`].
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let token = b.push_recv()?;
    /// assert_eq!(token.0, 0);
    /// assert!(b.interest().read.is_wanted());
    /// # Ok(()) }
    /// ```
    pub fn push_recv(&mut self) -> Result<RecvToken, Error> {
        self.push_request(RecvWant::Descriptor)
    }

    /// Asks for the next message; returns at once.
    /// [`Event::ReceivedMessage`] with this token brings it, whole: its
    /// payload and its descriptors (close-on-exec). Requests of both kinds
    /// are served in the order they were made. On the classic wire every
    /// descriptor is a message of its own, without payload.
    ///
    /// A descriptor request ([`push_recv`](Self::push_recv)) takes the
    /// descriptors of messages that are descriptors only, one at a time; a
    /// message with payload bytes (or an empty one) refuses it
    /// ([`Event::RecvRefused`] with [`Error::UnexpectedMessage`]) and waits,
    /// whole, for a message request. A message request made after
    /// descriptor requests took some of a message's descriptors gets the
    /// rest.
    ///
    /// # Errors
    /// As [`push_recv`](Self::push_recv).
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let token = b.push_recv_message()?;
    /// assert_eq!(b.outstanding_recvs(), 1);
    /// # let _ = token; Ok(()) }
    /// ```
    pub fn push_recv_message(&mut self) -> Result<RecvToken, Error> {
        self.push_request(RecvWant::Message)
    }

    fn push_request(&mut self, want: RecvWant) -> Result<RecvToken, Error> {
        self.usable()?;
        if self.peer_closed && self.recv.read_ahead_messages() == 0 {
            return Err(Error::PeerClosed);
        }
        let events = &mut self.events;
        let token = self
            .recv
            .push_request(want, &mut |served| events.push_back(served_event(served)));
        self.report_end_when_drained();
        // A request reads whatever waits, so watching may go on after it.
        self.unasked_data = false;
        Ok(token)
    }

    /// The next message, if one was already read: a message request made
    /// and fulfilled at once, without an event. `None`, asking for nothing,
    /// when none waits or while undrained events could hold earlier ones.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(b.try_recv_message().is_none());
    /// # Ok(()) }
    /// ```
    pub fn try_recv_message(&mut self) -> Option<(RecvToken, Message)> {
        if !self.events.is_empty() {
            return None;
        }
        let taken = self.recv.take_message();
        if taken.is_some() {
            self.report_end_when_drained();
        }
        taken
    }

    /// [`try_recv_message`](Self::try_recv_message) for the async driver,
    /// which keeps received descriptors in one queue of its own: the next
    /// message's descriptors are appended to `fds` without building a
    /// [`Message`] (no allocation per message); returns its payload and how
    /// many descriptors it has.
    pub(crate) fn try_recv_message_into(
        &mut self,
        fds: &mut VecDeque<OwnedFd>,
    ) -> Option<(Vec<u8>, usize)> {
        if !self.events.is_empty() {
            return None;
        }
        let taken = self.recv.take_message_into(fds);
        if taken.is_some() {
            self.report_end_when_drained();
        }
        taken
    }

    /// What the peer announced in its hello (native wire), once it arrived:
    /// the version spoken and the most descriptors and payload bytes it
    /// accepts per message. `None` before, and on the classic wire.
    pub fn peer_limits(&self) -> Option<PeerLimits> {
        self.inbound.as_ref().and_then(Inbound::peer)
    }

    /// Native wire: what may be sent to the peer, once that is settled: its
    /// hello's limits, or, if it closed its end before sending one, for
    /// good the least every native receiver takes (one descriptor, 4096
    /// bytes). `None` while the hello is awaited.
    fn send_limits(&self) -> Option<PeerLimits> {
        self.peer_limits().or_else(|| {
            (self.peer_closed && self.hello_awaited()).then_some(PeerLimits {
                version: frame::VERSIONS.0,
                max_fds_per_message: 1,
                max_payload_len: MIN_PAYLOAD_LIMIT,
            })
        })
    }

    /// The next descriptor, if it was already read (one message brings
    /// many): a receive request made and fulfilled at once, without a
    /// [`Event::Received`]. Returns `None`, and asks for nothing, when no
    /// descriptor waits or while undrained events could hold earlier ones;
    /// use [`push_recv`](Self::push_recv) then.
    ///
    /// A receiver that takes one descriptor at a time saves the event's round
    /// trip this way; the descriptor comes in the same order either way.
    ///
    /// ```
    /// use fdpass_core::{Config, Event, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, mut b) = Passer::pair(Config::default())?;
    /// b.handle_writable(std::time::Instant::now()); // b's hello: a may batch
    /// a.handle_readable(std::time::Instant::now());
    /// for _ in 0..2 {
    ///     let (r, _w) = rustix::pipe::pipe()?;
    ///     a.push_send(r)?;
    /// }
    /// a.handle_writable(std::time::Instant::now()); // one sendmsg of two
    /// assert!(b.try_recv().is_none()); // nothing read yet
    /// b.push_recv()?;
    /// b.handle_readable(std::time::Instant::now());
    /// assert!(matches!(b.poll_event(), Some(Event::Received(..))));
    /// // The second descriptor came with the first and waits in the passer.
    /// let (_token, _fd) = b.try_recv().expect("read ahead");
    /// # Ok(()) }
    /// ```
    pub fn try_recv(&mut self) -> Option<(RecvToken, OwnedFd)> {
        // Events are in order and may hold descriptors that came before any
        // read ahead: those go first.
        if !self.events.is_empty() {
            return None;
        }
        let taken = self.recv.take_descriptor();
        if taken.is_some() {
            self.report_end_when_drained();
        }
        taken
    }

    /// Withdraws a receive request that has not been fulfilled yet, so the
    /// passer stops reading for it. Returns false if the request was already
    /// fulfilled (its [`Event::Received`] is queued or was drained) or never
    /// existed. Later descriptors go to the remaining requests, in order.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let token = b.push_recv()?;
    /// assert!(b.cancel_recv(token));
    /// assert_eq!(b.outstanding_recvs(), 0);
    /// # Ok(()) }
    /// ```
    pub fn cancel_recv(&mut self, token: RecvToken) -> bool {
        self.recv.cancel(token)
    }

    /// The socket may be readable: receive until the requests are fulfilled,
    /// the socket would block, or a retry deadline is set.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// b.push_recv()?;
    /// b.handle_readable(std::time::Instant::now());
    /// assert_eq!(b.interest().read, fdpass_core::Want::WhenReady); // nothing sent yet
    /// # Ok(()) }
    /// ```
    pub fn handle_readable(&mut self, now: Instant) {
        let asked = self.read_wanted();
        self.read_blocked = false;
        self.hangup_blocked = false;
        while self.read_wanted() && !self.read_blocked {
            self.receive_one(now);
        }
        if self.hangup_watched() && !self.read_blocked {
            if asked {
                // Requests were just served: a receiver usually asks again
                // at once, so the watch waits for the next readiness rather
                // than spend a system call now on every message.
                self.hangup_blocked = true;
            } else {
                self.look_for_hangup();
            }
        }
    }

    /// The socket may be writable: send until the queue is empty, the socket
    /// would block, or back-pressure set a retry deadline.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// a.handle_writable(std::time::Instant::now());
    /// assert!(matches!(a.poll_event(), Some(fdpass_core::Event::Sent(_))));
    /// # Ok(()) }
    /// ```
    pub fn handle_writable(&mut self, now: Instant) {
        self.write_blocked = false;
        while self.write_wanted() && !self.write_blocked {
            self.send_one(now);
        }
        self.finish_draining();
    }

    /// Time has advanced to `now`: run the retries that are due. Cheap to call
    /// at any time. Afterwards [`interest`](Self::interest) may say
    /// [`Want::Now`].
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// a.handle_timeout(std::time::Instant::now());
    /// assert_eq!(a.poll_timeout(), None);
    /// # Ok(()) }
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Open => {}
            State::Draining { deadline } if now >= deadline => {
                return self.give_up_draining();
            }
            State::Draining { .. } => {
                if self.send_retry.take_due(now) {
                    self.write_blocked = false;
                }
                return;
            }
            _ => return,
        }
        if self.send_retry.take_due(now) {
            self.write_blocked = false;
        }
        if self.recv_retry.take_due(now) {
            self.read_blocked = false;
            match self.slots.refill(&mut self.sys) {
                // The sentinel reservation is whole again: the next message
                // has room, so the stall is over even if none waits yet.
                Ok(Room::Available) if self.config.reservation == Reservation::Sentinel => {
                    if let Some(waited) = self.recv_retry.end_episode(now) {
                        diagnostics::full_table_ended(self.socket.as_raw_fd(), waited);
                    }
                }
                Ok(Room::Available) => {}
                Ok(Room::Full) => self.wait_for_room(now),
                Ok(Room::NeverFits { room }) => self.fail(Error::MessageNeverFits {
                    descriptors: self.config.max_fds_per_message,
                    room,
                }),
                Err(e) => self.fail(e.into()),
            }
        }
    }

    /// Closes the passer from this side, abortively: every queued descriptor
    /// and every descriptor read ahead is let go of (the peer never gets the
    /// queued ones; [`shutdown`](Self::shutdown) sends them first), and the socket is shut down so the
    /// peer sees end-of-stream. Descriptors already taken by the kernel still
    /// reach the peer. The socket descriptor itself stays open (so a reactor
    /// registration stays valid) until the passer and every
    /// [`shared_socket`](Self::shared_socket) handle are dropped. Later pushes
    /// return [`Error::Closed`]. On a passer that already failed it lets
    /// go of the unsent descriptors kept for [`take_unsent`](Self::take_unsent).
    ///
    /// Never blocks: the descriptors let go of may be the last references to
    /// files whose release waits (a peer's socket with `SO_LINGER`), so they
    /// are closed soon by a background thread, not here (see
    /// [`disposal`](crate::disposal); a leak check waits for
    /// [`disposal::flush`](crate::disposal::flush)). The same holds when the
    /// passer fails, and when it is dropped: then the socket is released
    /// too, in order, so that the peer reads an orderly end of stream even if
    /// it left messages unread (Linux would otherwise report `ECONNRESET` to
    /// it).
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// a.close();
    /// assert!(matches!(a.push_recv(), Err(fdpass_core::Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn close(&mut self) {
        match self.state {
            State::Open | State::Draining { .. } => {
                self.release_all();
                let _ = self.sys.shutdown(self.socket.as_fd());
                self.state = State::Closed;
            }
            // Failed: the unsent sends were kept for `take_unsent`; closing
            // says they are not wanted. The failure stays what is reported.
            State::Failed(_) => {
                for fd in self.send.drain_all() {
                    self.sys.dispose(fd);
                }
            }
            State::Closed | State::ShutDown => {}
        }
    }

    /// The same as [`close`](Self::close), under a name that says what it
    /// does to queued descriptors: they are dropped, not sent.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// a.close_abortive();
    /// assert_eq!(a.queued_sends(), 0); // let go of, never sent
    /// # Ok(()) }
    /// ```
    pub fn close_abortive(&mut self) {
        self.close();
    }

    /// Starts a graceful shutdown: receiving ends at once (as with
    /// [`close`](Self::close): outstanding requests are dropped and what was
    /// read ahead is let go of), new pushes return [`Error::Closed`], and
    /// every descriptor already queued is still sent, in order. Once the
    /// kernel took the last one the socket is shut down (`SHUT_RDWR`), so
    /// the peer reads all of them, then end of stream;
    /// [`shutdown_outcome`](Self::shutdown_outcome) is then `Some(Ok(()))`.
    ///
    /// `deadline` bounds it: drive the passer as usual
    /// ([`interest`](Self::interest), [`poll_timeout`](Self::poll_timeout),
    /// which includes `deadline`). If descriptors are still queued when
    /// [`handle_timeout`](Self::handle_timeout) sees `deadline` pass, the
    /// socket is shut down anyway and the passer fails with
    /// [`Error::ShutdownTimedOut`]; the unsent descriptors stay open for
    /// [`take_unsent`](Self::take_unsent). A failure while draining (the
    /// peer died: `EPIPE`) keeps them the same way.
    ///
    /// Does nothing unless the passer is open. Never blocks.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fdpass_core::{Config, Event, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, mut b) = Passer::pair(Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// let now = Instant::now();
    /// a.shutdown(now + Duration::from_secs(5));
    /// assert!(a.shutdown_outcome().is_none()); // still queued
    /// a.handle_writable(now);
    /// assert!(matches!(a.shutdown_outcome(), Some(Ok(()))));
    /// // The peer gets the descriptor, then the end of the stream.
    /// b.push_recv()?;
    /// b.handle_readable(now);
    /// assert!(matches!(b.poll_event(), Some(Event::Received(..))));
    /// b.push_recv()?;
    /// b.handle_readable(now);
    /// assert!(matches!(b.poll_event(), Some(Event::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&mut self, deadline: Instant) {
        if !matches!(self.state, State::Open) {
            return;
        }
        // The peer chose what was read ahead: disposal, never inline.
        for fd in self.recv.drain_all() {
            self.sys.dispose(fd);
        }
        self.slots.close_all(&mut self.sys);
        self.recv_retry.reset();
        // Our hello, not yet started and with nothing behind it, would tell
        // a peer that gets nothing more what it may send: not worth a wait.
        if self.send.front_size().is_none() && self.counters.messages_sent == 0 {
            self.send.forget_unstarted();
        }
        self.state = State::Draining { deadline };
        self.finish_draining();
    }

    /// How a graceful [`shutdown`](Self::shutdown) ended: `None` while it
    /// is still sending (or none was started and the passer is open);
    /// `Some(Ok(()))` once everything queued was taken by the kernel and the
    /// socket shut down; `Some(Err(_))` when it did not get there:
    /// [`Error::ShutdownTimedOut`], the failure that ended it, or
    /// [`Error::Closed`] after an abortive [`close`](Self::close).
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(a.shutdown_outcome().is_none());
    /// a.shutdown(std::time::Instant::now()); // nothing queued: done at once
    /// assert!(matches!(a.shutdown_outcome(), Some(Ok(()))));
    /// # Ok(()) }
    /// ```
    pub fn shutdown_outcome(&self) -> Option<Result<(), Error>> {
        match &self.state {
            State::Open | State::Draining { .. } => None,
            State::ShutDown => Some(Ok(())),
            State::Closed => Some(Err(Error::Closed)),
            State::Failed(e) => Some(Err(e.clone())),
        }
    }

    /// Whether a graceful [`shutdown`](Self::shutdown) is still sending.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// a.shutdown(std::time::Instant::now() + std::time::Duration::from_secs(1));
    /// assert!(a.is_shutting_down());
    /// # Ok(()) }
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        matches!(self.state, State::Draining { .. })
    }

    /// Hands back, in push order and still open, every queued descriptor
    /// the kernel never took, once the passer can no longer send them:
    /// sending failed ([`Event::SendFailed`]: the peer reads no more,
    /// `EPIPE`) or the passer failed (`ECONNRESET`; a protocol error; a
    /// [`shutdown`](Self::shutdown) past its deadline). A prefork parent
    /// re-routes them to another worker. Until they are taken (or the
    /// passer is dropped, which lets go of them) the passer keeps them;
    /// the failure does not close them. Descriptors reported by
    /// [`Event::Sent`] reached the kernel and are never among them.
    ///
    /// Empty while the passer can still send or is shutting down (what is
    /// queued is still on its way), after an abortive [`close`](Self::close) (it let go
    /// of them) and once taken.
    ///
    /// ```
    /// use std::time::Instant;
    /// use fdpass_core::{Config, Event, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, b) = Passer::pair(Config::default())?;
    /// drop(b); // the worker is gone
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// a.handle_writable(Instant::now()); // EPIPE: sending ends
    /// assert!(matches!(a.poll_event(), Some(Event::SendFailed(_))));
    /// let unsent = a.take_unsent();
    /// assert_eq!(unsent.len(), 1); // still open: give it to another worker
    /// # Ok(()) }
    /// ```
    pub fn take_unsent(&mut self) -> Vec<OwnedFd> {
        if self.unsent_available() {
            self.send.drain_all().collect()
        } else {
            Vec::new()
        }
    }

    /// [`take_unsent`](Self::take_unsent), keeping each push whole: every
    /// message with its payload and descriptors (a descriptor pushed alone
    /// comes back as a message of one descriptor), in push order. A prefork
    /// parent re-routes each connection with its client's address.
    ///
    /// ```
    /// use std::time::Instant;
    /// use fdpass_core::{Config, Event, Message, Passer};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, b) = Passer::pair(Config::default())?;
    /// drop(b);
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send_message(Message::new(b"client 1".to_vec(), vec![r]))?;
    /// a.handle_writable(Instant::now()); // EPIPE
    /// let unsent = a.take_unsent_messages();
    /// assert_eq!((unsent[0].payload.as_slice(), unsent[0].fds.len()), (&b"client 1"[..], 1));
    /// # Ok(()) }
    /// ```
    pub fn take_unsent_messages(&mut self) -> Vec<Message> {
        if self.unsent_available() {
            self.send.drain_messages()
        } else {
            Vec::new()
        }
    }

    fn unsent_available(&self) -> bool {
        matches!(self.state, State::Failed(_)) || self.send_failure.is_some()
    }

    /// Also watch the socket while no receive is outstanding, to learn of
    /// the peer's hang-up without a request: [`interest`](Self::interest)
    /// then wants reading, and [`handle_readable`](Self::handle_readable)
    /// peeks at one byte with no room for descriptors (nothing is consumed
    /// or installed). End of stream queues [`Event::Closed`]; an error such
    /// as `ECONNRESET` fails the passer; bytes nobody asked for suspend the
    /// watch until the next [`push_recv`](Self::push_recv), so a
    /// level-triggered loop does not wake for them forever (and a hang-up
    /// behind them is learned when they are read). Off by default, where
    /// the passer touches the socket's input only for requests; every
    /// adapter turns it on.
    ///
    /// ```
    /// use fdpass_core::{Config, Event, Passer, Want};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, b) = Passer::pair(Config::default())?;
    /// a.watch_hangup(true);
    /// assert_eq!(a.interest().read, Want::Now); // no request, still watching
    /// drop(b);
    /// a.handle_readable(std::time::Instant::now());
    /// assert!(matches!(a.poll_event(), Some(Event::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn watch_hangup(&mut self, on: bool) {
        self.hangup_watch = on;
    }

    /// Fails the passer from outside, for a driver that can no longer serve
    /// it (for example its reactor refused to watch the socket). Everything
    /// held is closed and [`Event::Failed`] reports `error`, as for any failure.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// a.abort(std::io::Error::other("reactor gone").into());
    /// assert!(matches!(a.poll_event(), Some(fdpass_core::Event::Failed(_))));
    /// assert!(a.push_recv().is_err());
    /// # Ok(()) }
    /// ```
    pub fn abort(&mut self, error: Error) {
        self.fail(error);
    }

    // ---- outputs ----

    /// The next event, oldest first. Drain until `None` after every input.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(a.poll_event().is_none());
    /// # Ok(()) }
    /// ```
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What the passer wants to do in each direction; see [`Want`].
    ///
    /// ```
    /// use fdpass_core::{Interest, Want};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// // Each end's hello: its own to write, the peer's to read.
    /// assert_eq!(a.interest(), Interest { read: Want::Now, write: Want::Now });
    /// let now = std::time::Instant::now();
    /// a.handle_writable(now);
    /// b.handle_writable(now);
    /// a.handle_readable(now);
    /// assert_eq!(a.interest(), Interest { read: Want::Idle, write: Want::Idle });
    /// # Ok(()) }
    /// ```
    pub fn interest(&self) -> Interest {
        let want = |wanted: bool, blocked: bool| match (wanted, blocked) {
            (false, _) => Want::Idle,
            (true, false) => Want::Now,
            (true, true) => Want::WhenReady,
        };
        // With no request to read for, the passer may still watch for the
        // peer's hang-up: a peek at once, then on readiness.
        let read = match want(self.read_wanted(), self.read_blocked) {
            Want::Idle => want(
                self.hangup_watched(),
                self.hangup_blocked || self.read_blocked,
            ),
            wanted => wanted,
        };
        Interest {
            read,
            write: want(self.write_wanted(), self.write_blocked),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next,
    /// if a retry or a [`shutdown`](Self::shutdown)'s deadline is pending.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(a.poll_timeout().is_none());
    /// # Ok(()) }
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        let draining = match self.state {
            State::Draining { deadline } => Some(deadline),
            _ => None,
        };
        [
            self.send_retry.deadline(),
            self.recv_retry.deadline(),
            draining,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Descriptors queued and not yet taken by the kernel.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// assert_eq!(a.queued_sends(), 1);
    /// # Ok(()) }
    /// ```
    pub fn queued_sends(&self) -> usize {
        self.send.len()
    }

    /// Receive requests not fulfilled yet.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (_a, mut b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// b.push_recv()?;
    /// assert_eq!(b.outstanding_recvs(), 1);
    /// # Ok(()) }
    /// ```
    pub fn outstanding_recvs(&self) -> usize {
        self.recv.outstanding()
    }

    /// How many descriptors the passer itself holds besides the socket: queued
    /// sends, descriptors read ahead and reserved slots. Useful for leak and
    /// footprint checks.
    ///
    /// ```
    /// use fdpass_core::{Config, Passer, Reservation};
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = Passer::pair(Config::default().with_reservation(Reservation::Peek))?;
    /// assert_eq!(a.held_descriptors(), 0);
    /// # Ok(()) }
    /// ```
    pub fn held_descriptors(&self) -> usize {
        self.send.len()
            + self.recv.read_ahead_fds()
            + self.inbound.as_ref().map_or(0, Inbound::held_fds)
            + self.slots.held()
    }

    /// A snapshot of this passer's gauges and counters, for a metrics
    /// exporter: queues, held descriptors, full-table and send back-pressure
    /// episodes (in progress since when, how many, how long in all),
    /// messages and descriptors sent and received, protocol errors, peer
    /// closes and failures. See [`Stats`] for each field's kind and unit.
    /// Costs no system call.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// a.handle_writable(std::time::Instant::now());
    /// let stats = a.stats();
    /// assert_eq!((stats.messages_sent, stats.descriptors_sent), (1, 1));
    /// assert_eq!(stats.full_table_episodes, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        let counters = &self.counters;
        Stats {
            queued_sends: self.queued_sends(),
            outstanding_recvs: self.outstanding_recvs(),
            held_descriptors: self.held_descriptors(),
            full_table_since: self.recv_retry.episode_started(),
            send_backpressure_since: self.send_retry.episode_started(),
            messages_sent: counters.messages_sent,
            descriptors_sent: counters.descriptors_sent,
            messages_received: counters.messages_received,
            descriptors_received: counters.descriptors_received,
            full_table_episodes: self.recv_retry.episodes(),
            full_table_wait: self.recv_retry.waited(),
            send_backpressure_episodes: self.send_retry.episodes(),
            send_backpressure_wait: self.send_retry.waited(),
            protocol_errors: counters.protocol_errors,
            peer_closes: counters.peer_closes,
            failures: counters.failures,
        }
    }

    /// Whether the peer's orderly close has been seen.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(!a.is_peer_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// `Ok` while the passer can be used; otherwise why not.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (mut a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(a.usable().is_ok());
    /// a.close();
    /// assert!(a.usable().is_err());
    /// # Ok(()) }
    /// ```
    pub fn usable(&self) -> Result<(), Error> {
        match &self.state {
            State::Open => Ok(()),
            State::Failed(e) => Err(e.clone()),
            State::Closed | State::Draining { .. } | State::ShutDown => Err(Error::Closed),
        }
    }

    /// `Ok` while descriptors can still be sent: [`usable`](Self::usable),
    /// and sending has not failed on its own ([`Event::SendFailed`]: the
    /// peer reads no more, while what it sent before may still be arriving).
    ///
    /// ```
    /// use std::time::Instant;
    /// use fdpass_core::{Config, Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = Passer::pair(Config::default())?;
    /// drop(b);
    /// let (r, _w) = rustix::pipe::pipe()?;
    /// a.push_send(r)?;
    /// a.handle_writable(Instant::now());
    /// assert!(matches!(a.poll_event(), Some(Event::SendFailed(_))));
    /// assert!(a.send_usable().is_err());
    /// assert!(a.usable().is_ok()); // receiving goes on until the peer's close is read
    /// assert_eq!(a.take_unsent().len(), 1); // the descriptor comes back
    /// # Ok(()) }
    /// ```
    pub fn send_usable(&self) -> Result<(), Error> {
        self.usable()?;
        match &self.send_failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    // ---- receiving ----

    fn read_wanted(&self) -> bool {
        let for_requests = matches!(self.state, State::Open) && self.recv.outstanding() > 0;
        // A graceful shutdown still reads the hello: what is queued may
        // wait for the peer's limits.
        let for_hello =
            matches!(self.state, State::Open | State::Draining { .. }) && self.hello_awaited();
        (for_requests || for_hello)
            && !self.peer_closed
            && !self.recv_retry.is_waiting()
            && self.slots.is_ready()
    }

    /// Native wire: the peer's hello has not arrived. It is read as soon as
    /// it can be, with or without requests: it says what may be sent.
    fn hello_awaited(&self) -> bool {
        self.inbound.as_ref().is_some_and(|i| i.peer().is_none())
    }

    /// One `recvmsg` attempt (two with the peek strategy).
    fn receive_one(&mut self, now: Instant) {
        // With no request outstanding only the native hello is wanted: on a
        // stream, no more bytes than it has are read, so that a conforming
        // peer's next frames and their descriptors stay in the socket.
        let hello_only = self.recv.outstanding() == 0;
        let max = self.config.max_fds_per_message;
        let read_len = match &self.inbound {
            Some(inbound) if hello_only && !self.seqpacket => inbound.read_len(true),
            Some(inbound) => inbound.read_len(false),
            None => max,
        };
        let mode = match self.config.reservation {
            // The hello alone is consumed at once, never peeked: a peek that
            // ends where the hello's buffer ends takes copies of the next
            // buffer's descriptors (see `Ok(false)` after `discard` below),
            // and the hello carries none.
            Reservation::Peek if hello_only => RecvMode::Take,
            Reservation::Peek => RecvMode::Peek,
            // `Auto` was resolved at construction.
            Reservation::Sentinel | Reservation::Auto => RecvMode::Take,
        };
        // Sentinel on the native wire: at the start of a `sendmsg` the
        // look below sees its first frame header, which says how many
        // descriptors the read brings (`batch_fds`): only that many slots
        // need freeing, and a frame without any is read alone, so that the
        // read cannot reach the next `sendmsg`'s descriptors.
        let mut exact: Option<(usize, usize)> = None;
        if mode == RecvMode::Take {
            // Freeing and re-taking every slot costs two system calls per
            // slot. A look first (no control buffer: nothing installed,
            // nothing consumed) spares them when nothing waits, as at the end
            // of every burst and before every message of a round trip.
            let look = if self.inbound.is_some() {
                (frame::HELLO_LEN + frame::HEADER_LEN).min(read_len)
            } else {
                1
            };
            match self
                .sys
                .peek_bytes(self.socket.as_fd(), &mut self.bytes[..look])
            {
                None => {}
                Some(Ok(seen)) => {
                    exact = self
                        .inbound
                        .as_ref()
                        .filter(|_| !hello_only)
                        .and_then(|inbound| inbound.next_send(&self.bytes[..seen]))
                        .filter(|&(fds, _)| fds <= max);
                }
                Some(Err(Errno::AGAIN)) => {
                    self.read_blocked = true;
                    return;
                }
                Some(Err(Errno::INTR)) => return,
                Some(Err(e)) => return self.on_read_error(e),
            }
            // Slots at or above a lowered RLIMIT_NOFILE keep no room: the
            // kernel would truncate the message and drop its descriptors.
            match self.slots.fit_under_limit(&mut self.sys) {
                Ok(Room::Available) => {}
                Ok(Room::Full) => return self.wait_for_room(now),
                Ok(Room::NeverFits { room }) => {
                    return self.fail(Error::MessageNeverFits {
                        descriptors: max,
                        room,
                    })
                }
                Err(e) => return self.fail(e.into()),
            }
        }
        let (read_len, room) = match exact {
            // A stream read could run on into the next `sendmsg` and its
            // descriptors; a sequenced-packet read never leaves its record.
            Some((0, len)) if !self.seqpacket => (len.min(read_len), 0),
            Some((fds, _)) => (read_len, fds),
            None => (read_len, max),
        };
        self.slots.release_some(&mut self.sys, room);
        // Control space for as many descriptors as one `sendmsg` can carry,
        // whatever is expected: a descriptor that found no control space
        // would be dropped by the kernel inside this call, on this thread,
        // and a peer chooses what its last close costs (a socket lingering
        // on unsent data). What arrives beyond the limit or the reservation
        // is refused below and let go of through `disposal`.
        let result = self.sys.recvmsg(
            self.socket.as_fd(),
            &mut self.bytes[..read_len],
            SCM_MAX_FD,
            mode,
            &mut self.fds,
        );
        if mode == RecvMode::Take {
            // Re-take the sentinel slots whatever the outcome, so that a read
            // that found nothing leaves the reservation whole.
            match self.slots.refill(&mut self.sys) {
                Ok(Room::Available) => {}
                Ok(Room::Full | Room::NeverFits { .. }) => self.wait_for_room(now),
                Err(e) => return self.fail_with_fds(e.into()),
            }
        }
        let got = match result {
            Ok(got) => got,
            Err(Errno::AGAIN) => {
                self.read_blocked = true;
                return;
            }
            Err(Errno::INTR) => return,
            Err(e) => return self.on_read_error(e),
        };
        // Control data and truncation first: 0 bytes with either is a
        // message (a zero-length record, with SO_PASSCRED, carries the
        // sender's credentials), while the end of the stream carries nothing.
        if got.foreign_control {
            return self.fail_with_fds(ProtocolError::ForeignControlMessage.into());
        }
        if got.truncated_data {
            return self.fail_with_fds(ProtocolError::MessageTooLong { limit: read_len }.into());
        }
        if got.bytes == 0 && self.fds.is_empty() && !got.truncated_control {
            if let Some(Err(e)) = self.inbound.as_ref().map(Inbound::at_end) {
                return self.fail_with_fds(e.into());
            }
            return self.on_peer_closed();
        }
        if hello_only && !self.seqpacket && (!self.fds.is_empty() || got.truncated_control) {
            // Descriptors with the bytes of the hello alone: its `sendmsg`
            // carried them (a classic peer's first message, if it began with
            // a zero byte). Copies of a peek go to disposal like the rest.
            let error = if self.bytes[0] == frame::KIND_HELLO {
                ProtocolError::BadHello
            } else {
                ProtocolError::ClassicPeer
            };
            return self.fail_with_fds(error.into());
        }
        if self.fds.len() > max {
            // Control space is rounded up for alignment, so the kernel can
            // install a few descriptors beyond the limit without setting
            // MSG_CTRUNC: the limit is enforced on what arrived.
            return self.fail_with_fds(ProtocolError::TooManyDescriptors { limit: max }.into());
        }
        if exact.is_some() && (got.truncated_control || self.fds.len() > room) {
            // More descriptors came than the frame header announced: the
            // kernel dropped what found no freed slot.
            let count = (self.fds.len() + 1).saturating_sub(room).max(1);
            return self.fail_with_fds(ProtocolError::DescriptorsWithoutFrame { count }.into());
        }
        if got.truncated_control {
            return self.on_truncated(got, now);
        }
        if mode == RecvMode::Peek {
            // Our copies are installed; now consume exactly the peeked bytes
            // without a control buffer, so the kernel drops its references.
            match self.discard(got.bytes) {
                Ok(true) => {}
                // The bytes consumed carried no descriptor, so those the
                // peek brought belong to a buffer further on: a peek whose
                // bytes end exactly where a buffer without descriptors ends
                // moves on to the next buffer with no byte left to copy and
                // still takes copies of its descriptors (the `MSG_PEEK`
                // branch of `unix_stream_read_generic` in
                // net/unix/af_unix.c jumps back without checking the size
                // left; the consuming read stops). They are still queued
                // there and will be peeked again with their bytes: these
                // copies are not the last references, closed at once.
                Ok(false) => {
                    for fd in self.fds.drain(..) {
                        self.sys.close(fd);
                    }
                }
                Err(e) => return self.fail_with_fds(e),
            }
        }
        if self.inbound.is_none() && !self.recv.account(got.bytes, self.fds.len()) {
            let descriptors = self.fds.len();
            // The start of a native hello, as much of it as this read holds
            // (a receiver of one descriptor per message reads one byte).
            let hello = frame::HELLO_HEADER;
            let seen = got.bytes.min(hello.len());
            let native_hello = self.counters.descriptors_received == 0
                && seen > 0
                && self.bytes[..seen] == hello[..seen];
            let error = if native_hello {
                ProtocolError::NativePeer
            } else {
                ProtocolError::BytesWithoutDescriptors {
                    bytes: got.bytes,
                    descriptors,
                }
            };
            return self.fail_with_fds(error.into());
        }
        self.slots.note_success();
        // A success ends the backoff, unless the refill above just started
        // one: then the reservation is short and only that retry takes the
        // slots back (clearing it would leave the passer waiting forever).
        if self.slots.is_ready() {
            if let Some(waited) = self.recv_retry.succeeded(now) {
                diagnostics::full_table_ended(self.socket.as_raw_fd(), waited);
            }
        }
        self.counters.descriptors_received += self.fds.len() as u64;
        self.deliver_received(got.bytes);
    }

    /// A read failed. `ECONNRESET` on the native wire before the application
    /// sent anything is the peer's close: Linux reports a reset to the
    /// survivor of a socket closed with unread data (`unix_release_sock` in
    /// net/unix/af_unix.c), and the only data it can have left unread is our
    /// hello. Everything it sent was read before the error (the kernel
    /// returns queued data first). Anything else fails the passer.
    fn on_read_error(&mut self, error: Errno) {
        let only_our_hello_unread = error == Errno::CONNRESET
            && self.inbound.is_some()
            && self.counters.messages_sent == 0
            && self.send.front_size().is_none();
        if !only_our_hello_unread {
            return self.fail_with_fds(error.into());
        }
        if let Some(Err(e)) = self.inbound.as_ref().map(Inbound::at_end) {
            return self.fail_with_fds(e.into());
        }
        self.let_go_of_installed();
        self.on_peer_closed();
    }

    /// `MSG_CTRUNC`: too many descriptors, a full table, or a refusal.
    fn on_truncated(&mut self, got: Received, now: Instant) {
        let max = self.config.max_fds_per_message;
        let arrived = self.fds.len();
        // A truncated peek leaves the message queued in our socket, so its
        // copies are not the last references: they are closed at once, to
        // give their slots back before the probe below. A truncated
        // consuming read took the message: what it installed may be the
        // last reference to a file the peer chose.
        let peeked = self.config.reservation == Reservation::Peek;
        for fd in self.fds.drain(..) {
            if peeked {
                self.sys.close(fd);
            } else {
                self.sys.dispose(fd);
            }
        }
        if arrived >= max {
            return self.fail(ProtocolError::TooManyDescriptors { limit: max }.into());
        }
        if self.config.reservation == Reservation::Sentinel {
            // The slots were free, yet the kernel dropped descriptors: they are
            // gone, and the stream is out of step.
            return self.fail(ProtocolError::DescriptorsRefused.into());
        }
        // Peek: the message is still queued. How many descriptors does it
        // bring? The native frame header says, when the stream is at the
        // start of a `sendmsg`; on the classic wire, as many as its bytes
        // promise, less those owed by an earlier read. At least one more
        // than arrived: after a partial write on the sender's side a
        // message has more descriptors than bytes, and room for only those
        // that did arrive is the full table, not a refusal.
        let announced = match &self.inbound {
            Some(inbound) => inbound
                .next_send(&self.bytes[..got.bytes])
                .map(|(fds, _)| fds),
            None => Some(got.bytes.saturating_sub(self.recv.owed_bytes())),
        };
        let expected = announced.unwrap_or(max).clamp(arrived + 1, max);
        // Known to need more than the table can ever hold at the current
        // limit: waiting for room would be forever.
        if let (Some(needed), Some(limit)) = (announced, self.sys.nofile_limit()) {
            let room = crate::reservation::room_under(limit);
            if needed.max(arrived + 1) > room {
                return self.fail(Error::MessageNeverFits {
                    descriptors: needed.max(arrived + 1),
                    room,
                });
            }
        }
        // Is there room for its descriptors, with a margin against other
        // threads taking slots before the retry?
        match self.slots.probe(
            &mut self.sys,
            self.socket.as_fd(),
            expected + REFUSAL_MARGIN,
        ) {
            Ok(Room::Full | Room::NeverFits { .. }) => self.wait_for_room(now),
            // Ample room now: the table was full a moment ago, or the kernel
            // refuses these descriptors. The probe slots stay held and are
            // freed right before the retry; a refusal repeats whatever room
            // there is.
            Ok(Room::Available) => {
                if self.slots.note_refusal() {
                    self.fail(ProtocolError::DescriptorsRefused.into());
                }
            }
            Err(e) => self.fail(e.into()),
        }
    }

    /// No room in the descriptor table: back off, and note when that starts
    /// a full-table episode.
    fn wait_for_room(&mut self, now: Instant) {
        if self.recv_retry.back_off(now) {
            diagnostics::full_table_started(self.socket.as_raw_fd());
        }
    }

    /// Consumes `n` peeked bytes with no control buffer.
    /// Returns whether they carried descriptors (the kernel dropped its
    /// references for want of a control buffer: `MSG_CTRUNC`).
    fn discard(&mut self, n: usize) -> Result<bool, Error> {
        let mut scratch = Vec::new();
        loop {
            match self.sys.recvmsg(
                self.socket.as_fd(),
                &mut self.bytes[..n],
                0,
                RecvMode::Discard,
                &mut scratch,
            ) {
                Ok(got) if got.bytes == n && scratch.is_empty() => return Ok(got.truncated_control),
                Ok(got) => {
                    for fd in scratch.drain(..) {
                        self.sys.dispose(fd);
                    }
                    return Err(Error::from(std::io::Error::other(format!(
                        "consuming a peeked message returned {} of {n} byte(s): something else reads from this passer's socket; give the passer sole use of it",
                        got.bytes
                    ))));
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Hands what one read brought (its first `bytes` bytes in the read
    /// buffer, its descriptors in `fds`) to the requests, in order: on the
    /// native wire through the frame decoder, whole messages only; on the
    /// classic wire each descriptor is a message of its own.
    fn deliver_received(&mut self, bytes: usize) {
        let events = &mut self.events;
        let mut served = |served| events.push_back(served_event(served));
        let before = self.recv.arrivals();
        match &mut self.inbound {
            Some(inbound) => {
                let fed = inbound.feed(
                    &self.bytes[..bytes],
                    &mut self.fds,
                    &mut self.recv,
                    &mut served,
                );
                if let Err(e) = fed {
                    let unclaimed: Vec<OwnedFd> = inbound.take_unclaimed().collect();
                    self.fds.extend(unclaimed);
                    self.counters.messages_received += self.recv.arrivals() - before;
                    return self.fail_with_fds(e.into());
                }
            }
            None => {
                for fd in self.fds.drain(..) {
                    self.recv.arrive(Vec::new(), Some(fd), &mut served);
                }
            }
        }
        self.counters.messages_received += self.recv.arrivals() - before;
    }

    fn on_peer_closed(&mut self) {
        if !self.peer_closed {
            self.counters.peer_closes += 1;
            diagnostics::peer_closed(self.socket.as_raw_fd());
        }
        self.peer_closed = true;
        self.recv.drop_requests();
        self.report_end_when_drained();
    }

    /// Queues [`Event::Closed`] once the peer's close was seen and nothing
    /// read ahead is left to hand out: before that, the stream has not ended
    /// for the application.
    fn report_end_when_drained(&mut self) {
        if self.peer_closed && !self.closed_reported && self.recv.read_ahead_messages() == 0 {
            self.closed_reported = true;
            self.events.push_back(Event::Closed);
        }
    }

    // ---- hang-up ----

    /// Whether readability should be checked for the peer's hang-up: open,
    /// no request to read for, no end seen, and no unasked bytes waiting.
    fn hangup_watched(&self) -> bool {
        self.hangup_watch
            && matches!(self.state, State::Open)
            && !self.peer_closed
            && self.recv.outstanding() == 0
            && !self.unasked_data
    }

    /// Readable with no request: peeks one byte with no control buffer, so
    /// nothing is consumed and no descriptor is installed (the kernel drops
    /// the references a peek without room takes: `scm_recv` in Linux's
    /// net/core/scm.c; `MSG_CTRUNC` is set). End of stream is the peer's
    /// orderly close; bytes mean data nobody asked for yet.
    fn look_for_hangup(&mut self) {
        let mut peeked = Vec::new();
        let result = loop {
            match self.sys.recvmsg(
                self.socket.as_fd(),
                &mut self.bytes[..1],
                0,
                RecvMode::Peek,
                &mut peeked,
            ) {
                Err(Errno::INTR) => continue,
                other => break other,
            }
        };
        // A seam that installs anyway: ours to close.
        for fd in peeked.drain(..) {
            self.sys.close(fd);
        }
        match result {
            Ok(got) if got.bytes == 0 && !got.truncated_control => {
                // The end, behind nothing unread: unless it cut a frame
                // short or left descriptors no frame claimed.
                if let Some(Err(e)) = self.inbound.as_ref().map(Inbound::at_end) {
                    return self.fail(e.into());
                }
                self.on_peer_closed()
            }
            Ok(_) => self.unasked_data = true,
            Err(Errno::AGAIN) => self.hangup_blocked = true,
            // ECONNRESET and the like: the peer failed, not closed (unless
            // all it left unread was our hello: see `on_read_error`).
            Err(e) => self.on_read_error(e),
        }
    }

    // ---- sending ----

    fn write_wanted(&self) -> bool {
        matches!(self.state, State::Open | State::Draining { .. })
            && self.send_failure.is_none()
            && (self.send.owes() || self.front_sendable())
            && !self.send_retry.is_waiting()
    }

    /// Whether the next push can be attempted now: on the native wire,
    /// before the peer's hello, only what a minimal receiver takes.
    fn front_sendable(&self) -> bool {
        let Some((fds, payload_len)) = self.send.front_size() else {
            return false;
        };
        // Settled limits: sending tries, and fails with the reason if the
        // push exceeds them.
        self.send_limits().is_some()
            || !self.hello_awaited()
            || (fds <= 1 && payload_len <= MIN_PAYLOAD_LIMIT)
    }

    // ---- graceful shutdown ----

    /// Draining and nothing left to write: shut the socket down.
    fn finish_draining(&mut self) {
        if matches!(self.state, State::Draining { .. }) && !self.send.has_work() {
            let _ = self.sys.shutdown(self.socket.as_fd());
            self.send_retry.reset();
            self.state = State::ShutDown;
        }
    }

    /// The deadline passed with work left: end the stream and fail, keeping
    /// the unsent descriptors for `take_unsent`.
    fn give_up_draining(&mut self) {
        let unsent = self.send.len();
        let _ = self.sys.shutdown(self.socket.as_fd());
        self.fail(Error::ShutdownTimedOut { unsent });
    }

    /// One `sendmsg` attempt: owed bytes first, else the next batch.
    fn send_one(&mut self, now: Instant) {
        if self.send.owes() {
            match self.sys.sendmsg(self.socket.as_fd(), self.send.owed(), &[]) {
                Ok(0) => self.write_blocked = true,
                Ok(written) => {
                    self.send.pay_owed(written);
                    // The last bytes of a partly written `sendmsg` went:
                    // its pushes are now wholly in the kernel's hands.
                    if !self.send.owes() {
                        if let Some(token) = self.sent_once_owed_paid.take() {
                            self.events.push_back(Event::Sent(token));
                        }
                    }
                }
                Err(e) => self.on_send_error(e, now),
            }
            return;
        }
        let (pushes, fds) = match self.config.wire {
            Wire::Classic { .. } => (0, self.send.next_classic_batch(self.config.send_batch())),
            Wire::Native => match self.send.next_native_batch(self.native_send_limits()) {
                Batch::Ready { pushes, fds } => (pushes, fds),
                Batch::Empty => return,
                Batch::TooLarge => return self.on_front_too_large(),
            },
        };
        let (bytes, descriptors) = self.send.batch(fds);
        let result = self.sys.sendmsg(self.socket.as_fd(), bytes, descriptors);
        if !matches!(result, Ok(1..)) {
            self.send.abandon_batch();
        }
        match result {
            Ok(0) => self.write_blocked = true,
            Ok(written) => {
                // The kernel attaches the descriptors to the first bytes it
                // takes, so any non-zero write means all of them went; the
                // bytes it did not take are owed before anything else.
                let (sent, token, messages) = match self.config.wire {
                    Wire::Native => {
                        let (sent, token) = self.send.mark_sent_pushes(pushes, fds, written);
                        (sent, Some(token), pushes)
                    }
                    Wire::Classic { .. } => {
                        let (sent, token) = self.send.mark_sent_classic(fds, written);
                        (sent, token, 1)
                    }
                };
                for fd in sent {
                    self.sys.close(fd);
                }
                self.counters.messages_sent += messages as u64;
                self.counters.descriptors_sent += fds as u64;
                if let Some(waited) = self.send_retry.succeeded(now) {
                    diagnostics::send_backpressure_ended(self.socket.as_raw_fd(), waited);
                }
                match token {
                    // Native wire, part of the bytes still owed: until they
                    // are written the peer cannot read the last frame whole
                    // (a drop now would cut it), so it is not sent yet. The
                    // classic wire's owed bytes are padding the receiver
                    // does without: its descriptors are what was sent.
                    Some(token) if self.send.owes() && self.inbound.is_some() => {
                        self.sent_once_owed_paid = Some(token)
                    }
                    Some(token) => self.events.push_back(Event::Sent(token)),
                    None => {}
                }
            }
            Err(e) => self.on_send_error(e, now),
        }
    }

    /// Native wire: what one `sendmsg` may carry. Before the peer's hello,
    /// what every native receiver takes (one descriptor, 4096 payload
    /// bytes); after it, the peer's limits, with batches of descriptors no
    /// larger than ours either (a single message the peer takes still goes,
    /// alone).
    fn native_send_limits(&self) -> BatchLimits {
        match self.send_limits() {
            None => BatchLimits {
                fds: 1,
                payload: MIN_PAYLOAD_LIMIT,
            },
            Some(peer) => {
                let front = self.send.front_size().map_or(0, |(fds, _)| fds);
                let batch = peer
                    .max_fds_per_message
                    .min(self.config.max_fds_per_message);
                BatchLimits {
                    fds: batch.max(front.min(peer.max_fds_per_message)),
                    payload: peer.max_payload_len,
                }
            }
        }
    }

    /// Native wire: the next push does not fit one `sendmsg`. Before the
    /// peer's hello it waits for it ([`write_wanted`](Self::write_wanted)
    /// says so); after, it never will: sending ends with the reason, and the
    /// unsent pushes wait for `take_unsent_messages`.
    fn on_front_too_large(&mut self) {
        let (Some(peer), Some((descriptors, payload_len))) =
            (self.send_limits(), self.send.front_size())
        else {
            return;
        };
        self.on_send_failed(Error::MessageTooLarge {
            descriptors,
            payload_len,
            max_fds: peer.max_fds_per_message,
            max_payload: peer.max_payload_len,
        });
    }

    fn on_send_error(&mut self, error: Errno, now: Instant) {
        match error {
            Errno::AGAIN => self.write_blocked = true,
            Errno::INTR => {}
            // Back-pressure: the per-user in-flight limit or kernel memory.
            e @ (Errno::TOOMANYREFS | Errno::NOBUFS | Errno::NOMEM) => {
                if self.send_retry.back_off(now) {
                    diagnostics::send_backpressure_started(self.socket.as_raw_fd(), e);
                }
            }
            // The peer reads no more (it closed, or shut down its reading
            // half), but what it sent before is still ours to receive: only
            // sending ends. During a graceful shutdown nothing is received,
            // so there it is the passer's failure.
            Errno::PIPE if matches!(self.state, State::Open) => {
                self.on_send_failed(Errno::PIPE.into())
            }
            e => self.fail(e.into()),
        }
    }

    /// Sending failed for good while receiving goes on. The queued sends
    /// stay for [`take_unsent`](Self::take_unsent).
    fn on_send_failed(&mut self, error: Error) {
        if self.send_failure.is_some() {
            return;
        }
        // Only our own hello was on its way (the peer went away before it)
        // and the application never pushed anything: the hello is dropped
        // and nothing is reported; the application's first push meets the
        // same error when it is sent, and is reported then, as usual.
        if self.send.front_size().is_none() && self.counters.messages_sent == 0 {
            self.send.forget_owed_bytes();
            return;
        }
        diagnostics::send_failed(self.socket.as_raw_fd(), &error);
        self.send.forget_owed_bytes();
        self.send_retry.reset();
        self.send_failure = Some(error.clone());
        self.events.push_back(Event::SendFailed(error));
    }

    // ---- failure ----

    /// Fails after letting go of what the current read installed.
    fn fail_with_fds(&mut self, error: Error) {
        self.let_go_of_installed();
        self.fail(error);
    }

    /// Lets go of what the current read installed without delivering it:
    /// each may be the last reference to a file the peer chose (a peeked
    /// copy too, once the message it came from was consumed), so all go to
    /// disposal.
    fn let_go_of_installed(&mut self) {
        if !self.fds.is_empty() {
            diagnostics::disposed_installed(self.socket.as_raw_fd(), self.fds.len());
        }
        for fd in self.fds.drain(..) {
            self.sys.dispose(fd);
        }
    }

    /// Fails: lets go of everything but the queued sends, which stay for
    /// [`take_unsent`](Self::take_unsent) (or go to disposal on drop).
    fn fail(&mut self, error: Error) {
        if matches!(self.state, State::Open | State::Draining { .. }) {
            self.counters.failures += 1;
            if matches!(error, Error::Protocol(_)) {
                self.counters.protocol_errors += 1;
            }
            diagnostics::failed(self.socket.as_raw_fd(), &error);
            self.release_received();
            self.send.forget_owed_bytes();
            self.state = State::Failed(error.clone());
            self.events.push_back(Event::Failed(error));
        }
    }

    /// Lets go of every descriptor the passer holds except the socket. Queued
    /// sends, descriptors read ahead and anything a read just installed may
    /// be the last reference to someone else's file: they go to disposal.
    /// The reservation is the passer's own (a pipe, or copies of its socket)
    /// and is closed at once.
    fn release_all(&mut self) {
        for fd in self.send.drain_all() {
            self.sys.dispose(fd);
        }
        self.release_received();
    }

    /// [`release_all`](Self::release_all) but the send queue.
    fn release_received(&mut self) {
        for fd in self.recv.drain_all() {
            self.sys.dispose(fd);
        }
        if let Some(inbound) = &mut self.inbound {
            for fd in inbound.take_unclaimed() {
                self.sys.dispose(fd);
            }
        }
        self.let_go_of_installed();
        self.slots.close_all(&mut self.sys);
        // Undelivered events may hold received descriptors; they are dropped
        // (closed) with the passer unless the driver drains them first.
        self.send_retry.reset();
        self.recv_retry.reset();
    }
}

/// The event that reports how a request was served.
fn served_event(served: Served) -> Event {
    match served {
        Served::Descriptor(token, fd) => Event::Received(token, fd),
        Served::Message(token, message) => Event::ReceivedMessage(token, message),
        Served::Refused(token, error) => Event::RecvRefused(token, error),
    }
}

impl<S: Sys> Drop for Passer<S> {
    fn drop(&mut self) {
        self.release_all();
        for event in self.events.drain(..) {
            match event {
                Event::Received(_, fd) => self.sys.dispose(fd),
                Event::ReceivedMessage(_, message) => {
                    message.fds.into_iter().for_each(|fd| self.sys.dispose(fd))
                }
                _ => {}
            }
        }
        // The socket itself is released when its last owner drops it (see
        // `SharedSocket`): shut down, drained and closed off this thread.
    }
}

impl<S: Sys> Passer<S> {
    /// A shared owner of the socket, for a reactor that must own what it
    /// watches (async-io's `Async<T>` owns its `T`). The descriptor stays open
    /// until the passer and every such handle are dropped, so a registration
    /// holding one never outlives the socket it names, whatever the drop
    /// order, and no descriptor is duplicated. Like [`as_fd`](AsFd::as_fd) it
    /// is for registering only: reading from or writing to it would
    /// desynchronise the stream.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// let handle = a.shared_socket();
    /// assert_eq!(handle.as_raw_fd(), a.as_raw_fd());
    /// # Ok(()) }
    /// ```
    pub fn shared_socket(&self) -> Arc<SharedSocket> {
        Arc::clone(&self.socket)
    }
}

impl<S: Sys> AsFd for Passer<S> {
    /// The socket, for registering with a reactor. Do not read from or write
    /// to it directly: that would desynchronise the stream.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<S: Sys> AsRawFd for Passer<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
