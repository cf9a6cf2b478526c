//! The mio passer: the core state machine as a mio event source.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use fdpass_core::child::Handoff;
use fdpass_core::socket::PeerCredentials;
use fdpass_core::{
    Config, Error, Event, Message, PeerLimits, PushError, RecvToken, SendToken, Stats, Want,
};
use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// Passes file descriptors over one connected Unix-domain socket, driven by
/// your mio loop.
///
/// Register it in your [`Poll`](mio::Poll) under a [`Token`] of your choice
/// (it always registers for both directions, see the crate docs), pass it the
/// events with that token ([`handle_event`](Self::handle_event)), call
/// [`handle_timeout`](Self::handle_timeout) after each poll, and drain
/// [`poll_event`](Self::poll_event) after every call, pushes included: a push
/// may complete at once.
///
/// Sending and receiving are independent. Descriptors arrive in the order
/// they were pushed, each exactly once, close-on-exec. Messages
/// ([`push_send_message`](Self::push_send_message),
/// [`push_recv_message`](Self::push_recv_message)) carry payload bytes with
/// their descriptors, in the same order as everything else.
///
/// ```
/// use std::time::Instant;
/// use mio::{Events, Interest, Poll, Token};
/// use fdpass_mio::{Event, Passer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut left, mut right) = Passer::pair()?;
/// let mut poll = Poll::new()?;
/// poll.registry().register(&mut right, Token(1), Interest::READABLE | Interest::WRITABLE)?;
///
/// let asked = right.push_recv()?; // nothing there yet: waits for an edge
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// left.push_send(read_end)?; // written at once
///
/// let mut events = Events::with_capacity(8);
/// loop {
///     if let Some(Event::Received(token, _fd)) = right.poll_event() {
///         assert_eq!(token, asked);
///         break;
///     }
///     poll.poll(&mut events, right.poll_duration(Instant::now()))?;
///     for event in events.iter() {
///         right.handle_event(event);
///     }
///     right.handle_timeout(Instant::now());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Passer {
    core: fdpass_core::Passer,
    /// mio reported the peer's writing half closed. Sticky, as the edge
    /// comes once: until the end is read, the passer looks for it after
    /// every input, since it may sit behind data read since.
    read_closed: bool,
}

impl Passer {
    /// Wraps a connected `AF_UNIX` socket (`SOCK_STREAM` or `SOCK_SEQPACKET`)
    /// with the default [`Config`]. The socket is made non-blocking.
    ///
    /// # Errors
    /// As [`fdpass_core::Passer::new`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let passer = fdpass_mio::Passer::new(a.into())?;
    /// # drop(passer); Ok(()) }
    /// ```
    pub fn new(socket: OwnedFd) -> Result<Passer, Error> {
        Passer::with_config(socket, Config::default())
    }

    /// Wraps a connected socket with the given settings.
    ///
    /// # Errors
    /// As [`fdpass_core::Passer::new`].
    ///
    /// ```
    /// use fdpass_mio::{Config, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let passer = Passer::with_config(a.into(), Config::default().with_max_fds_per_message(1))?;
    /// assert_eq!(passer.config().max_fds_per_message, 1);
    /// # Ok(()) }
    /// ```
    pub fn with_config(socket: OwnedFd, config: Config) -> Result<Passer, Error> {
        Ok(Passer::from_core(fdpass_core::Passer::new(socket, config)?))
    }

    /// Drives a core passer from mio. Work already queued in it is done
    /// now, as far as the socket allows; drain [`poll_event`](Self::poll_event)
    /// afterwards.
    ///
    /// ```
    /// use fdpass_core::Config;
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut core, _peer) = fdpass_core::Passer::pair(Config::default())?;
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// core.push_send(read_end)?;
    /// let mut passer = Passer::from_core(core);
    /// assert!(matches!(passer.poll_event(), Some(Event::Sent(_))));
    /// # Ok(()) }
    /// ```
    pub fn from_core(mut core: fdpass_core::Passer) -> Passer {
        // Readiness events with no request outstanding tell of a hang-up.
        core.watch_hangup(true);
        let mut passer = Passer {
            core,
            read_closed: false,
        };
        passer.run_ready(Instant::now());
        passer
    }

    /// Two passers joined by a new socketpair.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (_left, _right) = fdpass_mio::Passer::pair()?;
    /// # Ok(()) }
    /// ```
    pub fn pair() -> Result<(Passer, Passer), Error> {
        Passer::pair_with_config(Config::default())
    }

    /// Two passers joined by a new socketpair, both with `config`.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(253);
    /// let (left, _right) = fdpass_mio::Passer::pair_with_config(config)?;
    /// assert_eq!(left.config().max_fds_per_message, 253);
    /// # Ok(()) }
    /// ```
    pub fn pair_with_config(config: Config) -> Result<(Passer, Passer), Error> {
        let (a, b) = fdpass_core::Passer::pair(config)?;
        let mut a = Passer::from_core(a);
        let b = Passer::from_core(b);
        // On the native wire `a` wrote its hello and found nothing to read,
        // then `b` wrote its own. No edge tells `a` of it before `a` is
        // registered, and a passer used without a poll (or pushing a message
        // only the hello allows) would wait for it: read it now.
        let now = Instant::now();
        a.core.handle_readable(now);
        a.run_ready(now);
        Ok((a, b))
    }

    /// Wraps a connected std `UnixStream`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let _passer = fdpass_mio::Passer::from_std(a)?;
    /// # Ok(()) }
    /// ```
    pub fn from_std(stream: UnixStream) -> Result<Passer, Error> {
        Passer::from_std_with_config(stream, Config::default())
    }

    /// [`from_std`](Self::from_std) with settings.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let passer = fdpass_mio::Passer::from_std_with_config(a, config)?;
    /// assert_eq!(passer.config().max_fds_per_message, config.max_fds_per_message);
    /// # Ok(()) }
    /// ```
    pub fn from_std_with_config(stream: UnixStream, config: Config) -> Result<Passer, Error> {
        Passer::with_config(stream.into(), config)
    }

    /// Wraps a connected mio `UnixStream`. Deregister the stream first if it
    /// was registered: its registration would otherwise live on under its old
    /// token.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = mio::net::UnixStream::pair()?;
    /// let _passer = fdpass_mio::Passer::from_mio(a)?;
    /// # Ok(()) }
    /// ```
    pub fn from_mio(stream: mio::net::UnixStream) -> Result<Passer, Error> {
        Passer::from_mio_with_config(stream, Config::default())
    }

    /// [`from_mio`](Self::from_mio) with settings.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = mio::net::UnixStream::pair()?;
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let passer = fdpass_mio::Passer::from_mio_with_config(a, config)?;
    /// assert_eq!(passer.config().max_fds_per_message, config.max_fds_per_message);
    /// # Ok(()) }
    /// ```
    pub fn from_mio_with_config(
        stream: mio::net::UnixStream,
        config: Config,
    ) -> Result<Passer, Error> {
        Passer::with_config(stream.into(), config)
    }

    /// Connects to a [`Listener`](crate::Listener) (or any `AF_UNIX` stream
    /// listener) at `path`. Never blocks: connecting to a Unix socket
    /// completes at once, and a listener whose backlog is full is an error of
    /// kind [`std::io::ErrorKind::WouldBlock`] (try again later), as with
    /// fdpass-tokio and fdpass-smol.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-connect-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_mio::Listener::bind(dir.join("sock"))?;
    /// let client = fdpass_mio::Passer::connect(dir.join("sock"))?;
    /// assert!(listener.accept()?.is_some());
    /// # drop(client); std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn connect(path: impl AsRef<Path>) -> Result<Passer, Error> {
        Passer::connect_with_config(path, Config::default())
    }

    /// [`connect`](Self::connect) with settings, for example the classic
    /// wire or another batch size (both ends must agree; see [`Config`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("fdpass-mio-doc-connect-with-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let listener = fdpass_mio::Listener::bind_with_config(dir.join("sock"), config)?;
    /// let client = fdpass_mio::Passer::connect_with_config(dir.join("sock"), config)?;
    /// let server = listener.accept()?.expect("the connection waits");
    /// assert_eq!(client.config().max_fds_per_message, config.max_fds_per_message);
    /// assert_eq!(server.config().max_fds_per_message, config.max_fds_per_message);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn connect_with_config(path: impl AsRef<Path>, config: Config) -> Result<Passer, Error> {
        // Validate before connecting, so a bad config does not cost the
        // listener a connection.
        config.validate()?;
        let path = path.as_ref();
        let socket = fdpass_core::socket::connect(path)
            .map_err(|e| fdpass_core::socket::connect_error(path, e))?;
        Passer::with_config(socket, config)
    }

    /// Spawns `command` with the other end of a new connection, inherited at
    /// the descriptor number named by the environment variable
    /// [`fdpass_core::child::ENV_VAR`]. The child picks it up with
    /// [`Passer::from_inherited`] (or any adapter's `from_inherited`). Our
    /// copy of the child's end is closed once the spawn returned.
    ///
    /// Takes a `std::process::Command` and returns std's `Child`: mio has no
    /// process type. Its `wait` blocks; use `try_wait` from the loop, or wait
    /// on another thread.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A worker would call `Passer::from_inherited`; `true` just exits.
    /// let mut command = std::process::Command::new("true");
    /// let (passer, mut child) = fdpass_mio::Passer::spawn_child(&mut command)?;
    /// assert!(child.wait()?.success());
    /// # drop(passer); Ok(()) }
    /// ```
    pub fn spawn_child(
        command: &mut std::process::Command,
    ) -> Result<(Passer, std::process::Child), Error> {
        Passer::spawn_child_with_config(command, Config::default())
    }

    /// [`spawn_child`](Self::spawn_child) with settings for our end.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// let mut command = std::process::Command::new("true");
    /// let (passer, mut child) = fdpass_mio::Passer::spawn_child_with_config(&mut command, config)?;
    /// assert_eq!(passer.config().max_fds_per_message, config.max_fds_per_message);
    /// assert!(child.wait()?.success());
    /// # Ok(()) }
    /// ```
    pub fn spawn_child_with_config(
        command: &mut std::process::Command,
        config: Config,
    ) -> Result<(Passer, std::process::Child), Error> {
        // A bad config must not cost a child process.
        config.validate()?;
        let handoff = Handoff::new()?;
        handoff.configure(command);
        let child = command.spawn()?;
        Ok((Passer::with_config(handoff.finish(), config)?, child))
    }

    /// In a child started with [`spawn_child`](Self::spawn_child): the passer
    /// on the inherited connection. Callable once per process, and only in
    /// the process the hand-off was made for (see
    /// [`adopt_inherited`](fdpass_core::child::adopt_inherited)).
    ///
    /// # Errors
    /// [`Error::Inherit`]; [`InheritError::NotHandedOff`](crate::InheritError::NotHandedOff)
    /// when this process was not started by a hand-off.
    ///
    /// ```
    /// use fdpass_mio::{Error, InheritError, Passer};
    ///
    /// # fn main() -> Result<(), Error> {
    /// match Passer::from_inherited() {
    ///     Ok(parent) => drop(parent), // register it and serve
    ///     // Not started with `spawn_child`, as this example is not.
    ///     Err(Error::Inherit(InheritError::NotHandedOff)) => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_inherited() -> Result<Passer, Error> {
        Passer::from_inherited_with_config(Config::default())
    }

    /// [`from_inherited`](Self::from_inherited) with settings.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let config = fdpass_mio::Config::default().with_max_fds_per_message(1);
    /// if let Ok(parent) = fdpass_mio::Passer::from_inherited_with_config(config) {
    ///     assert_eq!(parent.config().max_fds_per_message, config.max_fds_per_message);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_inherited_with_config(config: Config) -> Result<Passer, Error> {
        // A bad config must not cost the inherited connection.
        config.validate()?;
        Passer::with_config(fdpass_core::child::adopt_inherited()?, config)
    }

    /// Who is at the other end, as the kernel recorded it when the peer
    /// connected (see [`fdpass_core::socket::peer_credentials`]): what a
    /// server checks about an accepted client.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// if let Some(pid) = a.peer_credentials()?.pid { // not given on macOS and FreeBSD
    ///     assert_eq!(pid as u32, std::process::id());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn peer_credentials(&self) -> Result<PeerCredentials, Error> {
        Ok(fdpass_core::socket::peer_credentials(self)?)
    }

    /// The settings this passer was created with, with
    /// [`Reservation::Auto`](crate::Reservation::Auto) resolved.
    ///
    /// ```
    /// use fdpass_mio::{Config, Reservation};
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// let resolved = Config::default().with_reservation(Reservation::lossless_here());
    /// assert_eq!(*a.config(), resolved);
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> &Config {
        self.core.config()
    }

    /// What the peer announced in its hello (native wire), once it arrived:
    /// the wire version spoken and the most descriptors and payload bytes it
    /// accepts per message. `None` before, and always on the classic wire.
    /// The passer reads the hello by itself, with or without a receive
    /// request, as soon as an event (or the registration) says the socket
    /// is readable; [`pair`](Self::pair) reads both at once.
    ///
    /// ```
    /// use fdpass_mio::{Config, Passer};
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = Passer::pair_with_config(Config::default().with_max_fds_per_message(16))?;
    /// let limits = a.peer_limits().expect("the pair's hellos were read");
    /// assert_eq!((limits.version, limits.max_fds_per_message), (1, 16));
    /// # Ok(()) }
    /// ```
    pub fn peer_limits(&self) -> Option<PeerLimits> {
        self.core.peer_limits()
    }

    /// A snapshot of this passer's gauges and counters for a metrics
    /// exporter (see [`Stats`] for each field's kind and unit): queued
    /// sends, outstanding receives, descriptors held, full-table and send
    /// back-pressure episodes (whether one is in progress, since when, how
    /// many, how long in all, measured with the `now` your loop passes to
    /// [`handle_timeout`](Self::handle_timeout) and the reads it drives),
    /// messages and descriptors sent and received, protocol errors, peer
    /// closes and failures.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (mut a, _b) = fdpass_mio::Passer::pair()?;
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?; // written at once: the socket has room
    /// let stats = a.stats();
    /// assert_eq!((stats.messages_sent, stats.descriptors_sent), (1, 1));
    /// assert_eq!(stats.queued_sends, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The core state machine, for its read-only accessors
    /// ([`queued_sends`](fdpass_core::Passer::queued_sends),
    /// [`outstanding_recvs`](fdpass_core::Passer::outstanding_recvs),
    /// [`usable`](fdpass_core::Passer::usable),
    /// [`interest`](fdpass_core::Passer::interest), ...).
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// assert_eq!(a.core().queued_sends(), 0);
    /// assert!(a.core().usable().is_ok());
    /// # Ok(()) }
    /// ```
    pub fn core(&self) -> &fdpass_core::Passer {
        &self.core
    }

    // ---- inputs ----

    /// Queues `fd` to be sent and writes it right away if the socket takes it;
    /// otherwise it goes out on a later writable event, in order.
    /// [`Event::Sent`] with this token, or a later one (one event may
    /// acknowledge several pushes), reports that the kernel took it; our copy
    /// is closed then. Send a `try_clone` to keep your own copy.
    ///
    /// # Errors
    /// Nothing is queued and `fd` comes back, still open, in the error:
    /// [`PushError::Full`] while [`queued_sends`](fdpass_core::Passer::queued_sends)
    /// is at [`Config::max_queued_sends`](crate::Config::max_queued_sends)
    /// (the high-water mark; unset by default): push it again after an
    /// [`Event::Sent`]; [`PushError::Unusable`] with the failure's error, or
    /// [`Error::Closed`] after [`close`](Self::close) or
    /// [`shutdown`](Self::shutdown). `?` into an [`Error`] lets go of `fd`.
    ///
    /// ```
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, _b) = Passer::pair()?;
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// let token = a.push_send(read_end)?;
    /// // An empty socket buffer took it at once.
    /// assert!(matches!(a.poll_event(), Some(Event::Sent(t)) if t == token));
    /// # Ok(()) }
    /// ```
    pub fn push_send(&mut self, fd: OwnedFd) -> Result<SendToken, PushError<OwnedFd>> {
        let token = self.core.push_send(fd)?;
        self.run_ready(Instant::now());
        Ok(token)
    }

    /// Queues every descriptor of `fds`, in order, then writes what the socket
    /// takes; returns the last one's token (`None` if `fds` was empty).
    /// [`Event::Sent`] with that token, or a later one, reports that the
    /// kernel took them all.
    ///
    /// Use it when many descriptors are at hand: every message is filled up
    /// to [`max_fds_per_message`](crate::Config::max_fds_per_message), where
    /// one [`push_send`](Self::push_send) at a time writes each descriptor on
    /// its own while the socket has room, and the receiver pays for every
    /// message.
    ///
    /// # Errors
    /// As [`push_send`](Self::push_send), for the whole batch: none is
    /// queued and every descriptor of `fds` comes back, in order. A batch
    /// is [`PushError::Full`] unless all of it fits under the mark or the
    /// queue is empty.
    ///
    /// ```
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, _b) = Passer::pair()?;
    /// let mut batch = Vec::new();
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = rustix::pipe::pipe()?;
    ///     batch.push(read_end);
    /// }
    /// let last = a.push_send_many(batch)?.expect("three were pushed");
    /// // An empty socket buffer took all three, in one message.
    /// assert!(matches!(a.poll_event(), Some(Event::Sent(t)) if t == last));
    /// # Ok(()) }
    /// ```
    pub fn push_send_many<I>(
        &mut self,
        fds: I,
    ) -> Result<Option<SendToken>, PushError<Vec<OwnedFd>>>
    where
        I: IntoIterator<Item = OwnedFd>,
    {
        let last = self.core.push_send_many(fds)?;
        self.run_ready(Instant::now());
        Ok(last)
    }

    /// Queues a message, payload bytes and descriptors that the peer
    /// receives together and whole, and writes it right away if the socket
    /// takes it; otherwise it goes out on a later writable event, in order
    /// with every other push. [`Event::Sent`] with this token, or a later
    /// one, reports that the kernel took it; our copies of its descriptors
    /// are closed then.
    ///
    /// On the native wire (the default) a message may carry any payload up
    /// to the peer's [`max_payload_len`](crate::Config::max_payload_len) and
    /// up to its [`max_fds_per_message`](crate::Config::max_fds_per_message)
    /// descriptors, which the peer announces in its hello
    /// ([`peer_limits`](Self::peer_limits)). Until the hello has arrived only
    /// a message every native receiver takes (at most 1 descriptor and 4096
    /// payload bytes) is written; a larger one waits for it, and the passer
    /// reads the hello by itself on the next readable event: nothing needs
    /// to be asked for. On the classic wire a message is descriptors only,
    /// sent one per `sendmsg` (`docs/wire.md`).
    ///
    /// # Errors
    /// Nothing is queued and the message comes back, its descriptors still
    /// open: [`PushError::Full`] at [`Config::max_queued_sends`](crate::Config::max_queued_sends)
    /// or [`Config::max_queued_bytes`](crate::Config::max_queued_bytes);
    /// [`PushError::Unusable`] once sending has ended;
    /// [`PushError::Refused`] with [`Error::MessageTooLarge`] for a message
    /// the peer can never take (more than its hello announced, or any
    /// payload on the classic wire). See
    /// [`fdpass_core::Passer::push_send_message`].
    ///
    /// ```
    /// use fdpass_mio::{Event, Message, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, _b) = Passer::pair()?;
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// let token = a.push_send_message(Message::new(b"request 7".to_vec(), vec![read_end]))?;
    /// // An empty socket buffer took it at once.
    /// assert!(matches!(a.poll_event(), Some(Event::Sent(t)) if t == token));
    /// # Ok(()) }
    /// ```
    pub fn push_send_message(&mut self, message: Message) -> Result<SendToken, PushError<Message>> {
        let token = self.core.push_send_message(message)?;
        self.run_ready(Instant::now());
        Ok(token)
    }

    /// Asks for the next descriptor and reads right away if the socket may
    /// hold it; otherwise it comes on a later readable event.
    /// [`Event::Received`] with this token brings it. The passer reads only
    /// while requests are outstanding, so a peer cannot make it hold
    /// descriptors nobody asked for (beyond one message).
    ///
    /// # Errors
    /// After a failure, the failure's error; after [`close`](Self::close),
    /// [`Error::Closed`]; after [`Event::Closed`], once every descriptor read
    /// ahead was handed out, [`Error::PeerClosed`].
    ///
    /// ```
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, mut b) = Passer::pair()?;
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?;
    /// let token = b.push_recv()?;
    /// // The descriptor was already in the socket.
    /// assert!(matches!(b.poll_event(), Some(Event::Received(t, _fd)) if t == token));
    /// # Ok(()) }
    /// ```
    pub fn push_recv(&mut self) -> Result<RecvToken, Error> {
        let token = self.core.push_recv()?;
        self.run_ready(Instant::now());
        Ok(token)
    }

    /// Withdraws a receive request that has not been fulfilled yet. Returns
    /// false if it was already fulfilled (its [`Event::Received`] is queued or
    /// was drained) or never existed. Later descriptors go to the remaining
    /// requests, in order.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (_a, mut b) = fdpass_mio::Passer::pair()?;
    /// let token = b.push_recv()?;
    /// assert!(b.cancel_recv(token));
    /// assert_eq!(b.core().outstanding_recvs(), 0);
    /// # Ok(()) }
    /// ```
    pub fn cancel_recv(&mut self, token: RecvToken) -> bool {
        self.core.cancel_recv(token)
    }

    /// The next descriptor, if it already arrived with an earlier message:
    /// a request made and fulfilled at once, without an
    /// [`Event::Received`] (see [`fdpass_core::Passer::try_recv`]). `None`
    /// when none waits, or while undrained events could hold earlier ones:
    /// drain [`poll_event`](Self::poll_event) first.
    ///
    /// A receiver that takes descriptors in bulk asks with
    /// [`push_recv`](Self::push_recv), and after each `Received` event takes
    /// the rest of that message this way.
    ///
    /// ```
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, mut b) = Passer::pair()?;
    /// let mut batch = Vec::new();
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = rustix::pipe::pipe()?;
    ///     batch.push(read_end);
    /// }
    /// a.push_send_many(batch)?; // one message of three
    /// b.push_recv()?;
    /// assert!(matches!(b.poll_event(), Some(Event::Received(..))));
    /// assert!(b.try_recv().is_some());
    /// assert!(b.try_recv().is_some());
    /// assert!(b.try_recv().is_none());
    /// # Ok(()) }
    /// ```
    pub fn try_recv(&mut self) -> Option<(RecvToken, OwnedFd)> {
        self.core.try_recv()
    }

    /// Asks for the next message and reads right away if the socket may
    /// hold it; otherwise it comes on a later readable event.
    /// [`Event::ReceivedMessage`] with this token brings it, whole: its
    /// payload and its descriptors (close-on-exec). Requests made with
    /// [`push_recv`](Self::push_recv) and with this method are served in the
    /// order they were made. On the classic wire every descriptor is a
    /// message of its own, without payload.
    ///
    /// A descriptor request ([`push_recv`](Self::push_recv)) that meets a
    /// message with payload bytes (or an empty one) is refused with
    /// [`Event::RecvRefused`] ([`Error::UnexpectedMessage`]); the message
    /// then waits, whole, for a message request.
    ///
    /// # Errors
    /// As [`push_recv`](Self::push_recv).
    ///
    /// ```
    /// use fdpass_mio::{Event, Message, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, mut b) = Passer::pair()?;
    /// a.push_send_message(Message::from_payload(b"no descriptor needed".to_vec()))?;
    /// let token = b.push_recv_message()?;
    /// // The message was already in the socket.
    /// match b.poll_event() {
    ///     Some(Event::ReceivedMessage(t, message)) => {
    ///         assert_eq!(t, token);
    ///         assert_eq!(message.payload, b"no descriptor needed");
    ///         assert!(message.fds.is_empty());
    ///     }
    ///     other => panic!("expected the message, got {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn push_recv_message(&mut self) -> Result<RecvToken, Error> {
        let token = self.core.push_recv_message()?;
        self.run_ready(Instant::now());
        Ok(token)
    }

    /// The next message, if it was already read: a message request made and
    /// fulfilled at once, without an [`Event::ReceivedMessage`]. `None`,
    /// asking for nothing, when none waits or while undrained events could
    /// hold earlier ones: drain [`poll_event`](Self::poll_event) first, and
    /// use [`push_recv_message`](Self::push_recv_message) when it says `None`.
    ///
    /// ```
    /// use fdpass_mio::{Event, Message, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, mut b) = Passer::pair()?;
    /// for word in [&b"one"[..], b"two"] {
    ///     a.push_send_message(Message::from_payload(word.to_vec()))?;
    /// }
    /// assert!(b.try_recv_message().is_none()); // nothing read yet
    /// b.push_recv_message()?; // one read brings both
    /// assert!(matches!(b.poll_event(), Some(Event::ReceivedMessage(_, m)) if m.payload == b"one"));
    /// let (_token, second) = b.try_recv_message().expect("read with the first");
    /// assert_eq!(second.payload, b"two");
    /// # Ok(()) }
    /// ```
    pub fn try_recv_message(&mut self) -> Option<(RecvToken, Message)> {
        self.core.try_recv_message()
    }

    /// Handles one event of your poll that carries this passer's token: does
    /// the I/O it allows, until the socket would block or nothing is left to
    /// do. Pass every such event: mio is edge-triggered, so a direction
    /// waiting for readiness gets no second event. Spurious or repeated
    /// events are harmless.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mio::{Events, Interest, Poll, Token};
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, mut b) = Passer::pair()?;
    /// let mut poll = Poll::new()?;
    /// poll.registry().register(&mut b, Token(0), Interest::READABLE | Interest::WRITABLE)?;
    /// b.push_recv()?;
    /// a.close(); // the peer sees end-of-stream
    ///
    /// let mut events = Events::with_capacity(8);
    /// while b.core().usable().is_ok() && !b.core().is_peer_closed() {
    ///     poll.poll(&mut events, Some(Duration::from_secs(10)))?;
    ///     for event in events.iter() {
    ///         b.handle_event(event);
    ///     }
    /// }
    /// assert!(matches!(b.poll_event(), Some(Event::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn handle_event(&mut self, event: &mio::event::Event) {
        let now = Instant::now();
        // Errors and hang-ups count for both directions: the next attempt in
        // either reports them as a failure or an orderly close.
        self.read_closed |= event.is_read_closed();
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.core.handle_readable(now);
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.core.handle_writable(now);
        }
        self.run_ready(now);
    }

    /// Time has advanced to `now`: runs the retries that are due, and the I/O
    /// they allow. Cheap when nothing is due; call it after every poll.
    ///
    /// ```
    /// use std::time::Instant;
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (mut a, _b) = fdpass_mio::Passer::pair()?;
    /// a.handle_timeout(Instant::now());
    /// assert!(a.poll_event().is_none());
    /// # Ok(()) }
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.run_ready(now);
    }

    /// Closes the passer from this side, abortively: queued descriptors and
    /// descriptors read ahead are let go of (never sent; see
    /// [`shutdown`](Self::shutdown) to send them first), and the peer sees
    /// end-of-stream. Descriptors the
    /// kernel already took still reach the peer. The socket itself stays open
    /// (so the registration stays valid) until the passer is dropped;
    /// deregister it before that. Later pushes return [`Error::Closed`].
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (mut a, _b) = fdpass_mio::Passer::pair()?;
    /// a.close();
    /// assert!(matches!(a.push_recv(), Err(fdpass_mio::Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn close(&mut self) {
        self.core.close();
    }

    /// The abortive close: the same as [`close`](Self::close), named for
    /// what it does to queued descriptors.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, _b) = fdpass_mio::Passer::pair()?;
    /// a.close_abortive();
    /// assert!(a.push_recv().is_err());
    /// # Ok(()) }
    /// ```
    pub fn close_abortive(&mut self) {
        self.core.close();
    }

    /// Starts a graceful shutdown: everything queued is still sent, in
    /// order, then the socket is shut down, so the peer receives all of it
    /// and then end of stream. Receiving ends at once; new pushes return
    /// [`Error::Closed`]. Writes what the socket takes right away; keep the
    /// passer registered and feed it events ([`handle_event`](Self::handle_event))
    /// and timeouts ([`poll_timeout`](Self::poll_timeout) includes
    /// `deadline`) as usual, and check [`shutdown_outcome`](Self::shutdown_outcome)
    /// after each: `Some(Ok(()))` once everything was sent. At `deadline`
    /// with descriptors still queued, the socket is shut down anyway, the
    /// passer fails with [`Error::ShutdownTimedOut`] ([`Event::Failed`]),
    /// and [`take_unsent`](Self::take_unsent) hands back what was not sent.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, _b) = fdpass_mio::Passer::pair()?;
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?;
    /// a.shutdown(Instant::now() + Duration::from_secs(5));
    /// // An empty socket buffer took it at once.
    /// assert!(matches!(a.shutdown_outcome(), Some(Ok(()))));
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&mut self, deadline: Instant) {
        self.core.shutdown(deadline);
        self.run_ready(Instant::now());
    }

    /// How a graceful [`shutdown`](Self::shutdown) ended: `None` while it
    /// still sends (or none was started); `Some(Ok(()))` once everything
    /// queued was sent; `Some(Err(_))` with what ended it otherwise (see
    /// [`fdpass_core::Passer::shutdown_outcome`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// assert!(a.shutdown_outcome().is_none());
    /// # Ok(()) }
    /// ```
    pub fn shutdown_outcome(&self) -> Option<Result<(), Error>> {
        self.core.shutdown_outcome()
    }

    /// Hands back, in push order and still open, the queued descriptors the
    /// kernel never took, once the passer failed ([`Event::Failed`]: the
    /// peer died, a protocol error, a shutdown past its deadline): a prefork
    /// parent re-routes connections queued for a dead worker. The failure
    /// keeps them open until they are taken or the passer is dropped. Empty
    /// while the passer is usable, and after an abortive close.
    ///
    /// ```
    /// use fdpass_mio::{Event, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = Passer::pair()?;
    /// drop(b); // the worker died
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send(read_end)?; // EPIPE at once: sending ends
    /// assert!(matches!(a.poll_event(), Some(Event::SendFailed(_))));
    /// assert_eq!(a.take_unsent().len(), 1); // still open: re-route it
    /// # Ok(()) }
    /// ```
    pub fn take_unsent(&mut self) -> Vec<OwnedFd> {
        self.core.take_unsent()
    }

    /// [`take_unsent`](Self::take_unsent), keeping each push whole: every
    /// message with its payload and descriptors (a descriptor pushed alone
    /// comes back as a message of one descriptor), in push order, still
    /// open. A prefork parent re-routes each connection with its client's
    /// address. Empty while the passer can still send, as `take_unsent`.
    ///
    /// ```
    /// use fdpass_mio::{Event, Message, Passer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = Passer::pair()?;
    /// drop(b); // the worker died
    /// let (read_end, _write_end) = rustix::pipe::pipe()?;
    /// a.push_send_message(Message::new(b"client 1".to_vec(), vec![read_end]))?; // EPIPE at once
    /// assert!(matches!(a.poll_event(), Some(Event::SendFailed(_))));
    /// let unsent = a.take_unsent_messages();
    /// assert_eq!((unsent[0].payload.as_slice(), unsent[0].fds.len()), (&b"client 1"[..], 1));
    /// # Ok(()) }
    /// ```
    pub fn take_unsent_messages(&mut self) -> Vec<Message> {
        self.core.take_unsent_messages()
    }

    // ---- outputs ----

    /// The next event, oldest first. Drain until `None` after every call that
    /// takes `&mut self`, pushes included.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (mut a, _b) = fdpass_mio::Passer::pair()?;
    /// assert!(a.poll_event().is_none());
    /// # Ok(()) }
    /// ```
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next, if a
    /// retry is pending. `None` means the passer needs no timer: it waits
    /// only for events of your poll.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// assert_eq!(a.poll_timeout(), None);
    /// # Ok(()) }
    /// ```
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The timeout to give [`Poll::poll`](mio::Poll::poll) for this passer's
    /// sake: the time from `now` to [`poll_timeout`](Self::poll_timeout)
    /// (zero if it has passed), or `None` (wait for events only). With several
    /// passers, pass the smallest.
    ///
    /// ```
    /// use std::time::Instant;
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// assert_eq!(a.poll_duration(Instant::now()), None);
    /// # Ok(()) }
    /// ```
    pub fn poll_duration(&self, now: Instant) -> Option<Duration> {
        self.poll_timeout()
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// Does the I/O the core wants done without waiting for readiness.
    ///
    /// The core says [`Want::Now`] when work is waiting and the socket has not
    /// said "would block" since the last readiness: new work after an edge
    /// that found nothing to do, or a retry that came due. No edge will come
    /// for that, so it must happen here. Each `handle_*` runs until the socket
    /// would block or the direction wants nothing more, so afterwards neither
    /// direction says `Now` (the two directions do not affect each other).
    fn run_ready(&mut self, now: Instant) {
        let interest = self.core.interest();
        if interest.write == Want::Now {
            self.core.handle_writable(now);
        }
        if interest.read == Want::Now {
            self.core.handle_readable(now);
        }
        // The hang-up edge came already; the watch (no request outstanding)
        // would otherwise wait for another that never comes.
        if self.read_closed
            && self.core.outstanding_recvs() == 0
            && self.core.interest().read.is_wanted()
        {
            self.core.handle_readable(now);
        }
    }
}

/// The passer registers for [`Interest::READABLE`] | [`Interest::WRITABLE`],
/// whatever `interests` says: it needs both to never miss an edge, and it
/// ignores the edges it does not need (see the crate docs).
///
/// ```
/// use mio::{Interest, Poll, Token};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut a, _b) = fdpass_mio::Passer::pair()?;
/// let poll = Poll::new()?;
/// poll.registry().register(&mut a, Token(3), Interest::READABLE | Interest::WRITABLE)?;
/// poll.registry().reregister(&mut a, Token(4), Interest::READABLE)?;
/// poll.registry().deregister(&mut a)?;
/// # Ok(()) }
/// ```
impl Source for Passer {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        _interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.core.as_raw_fd()).register(registry, token, BOTH)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        _interests: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.core.as_raw_fd()).reregister(registry, token, BOTH)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.core.as_raw_fd()).deregister(registry)
    }
}

const BOTH: Interest = Interest::READABLE.add(Interest::WRITABLE);

impl AsFd for Passer {
    /// The socket. Do not read from or write to it: that would desynchronise
    /// the stream.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// let _socket = a.as_fd();
    /// # Ok(()) }
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.core.as_fd()
    }
}

impl AsRawFd for Passer {
    /// The socket's number. Do not read from or write to it.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// # fn main() -> Result<(), fdpass_mio::Error> {
    /// let (a, _b) = fdpass_mio::Passer::pair()?;
    /// assert!(a.as_raw_fd() >= 0);
    /// # Ok(()) }
    /// ```
    fn as_raw_fd(&self) -> RawFd {
        self.core.as_raw_fd()
    }
}
