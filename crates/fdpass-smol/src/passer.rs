//! The smol passer: a handle on one connection, cloneable across tasks.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use async_io::Async;
use fdpass_core::child::Handoff;
use fdpass_core::driver::Handle;
use fdpass_core::socket::PeerCredentials;
use fdpass_core::{Config, Error, Message, PeerLimits, PushError, Stats};

use crate::reactor::SmolReactor;
use crate::{
    Closed, Flush, Messages, RecvFd, RecvMany, RecvMessage, SendFd, SendMessage, Shutdown,
};

/// Passes file descriptors over one connected Unix-domain socket, driven by
/// async-io's reactor (the one smol and async-std use).
///
/// Every method takes `&self`, and the passer is [`Clone`]: clones share the
/// connection and its queues, so one task can send while another receives
/// (give each a clone) without splitting. The connection closes when the last
/// clone is dropped or [`close`](Self::close) is called.
///
/// Also a [`Stream`](futures_core::Stream) of received descriptors and a
/// [`Sink`](futures_sink::Sink) of descriptors to send.
/// [`messages`](Self::messages) gives a `Stream` and a `Sink` of whole
/// messages (payload bytes and descriptors).
///
/// Needs no runtime context: it can be created anywhere and awaited on any
/// executor (smol's, async-std's, `futures::executor`, a plain `block_on`);
/// async-io drives the socket from whichever thread is blocked in
/// `block_on`, or from its own thread otherwise.
///
/// ```
/// use std::io::{Read, Write};
/// use fdpass_smol::Passer;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// let (left, right) = Passer::pair()?;
/// let (read_end, write_end) = std::io::pipe()?;
/// let mut write_end = write_end;
/// write_end.write_all(b"hi")?;
/// drop(write_end);
///
/// left.send(read_end.into()).await?;
/// let fd = right.recv().await?.expect("the peer is still open");
/// let mut text = String::new();
/// std::fs::File::from(fd).read_to_string(&mut text)?;
/// assert_eq!(text, "hi");
/// # Ok(()) })
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Passer {
    pub(crate) handle: Handle<SmolReactor>,
    /// A shared owner of the socket, so that [`AsFd`] can lend it without
    /// taking the lock (the core passer and the registration own the others).
    socket: Arc<fdpass_core::SharedSocket>,
}

impl Passer {
    /// Wraps a connected `AF_UNIX` socket (`SOCK_STREAM` or `SOCK_SEQPACKET`)
    /// with the default [`Config`].
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().map_err(fdpass_smol::Error::from)?;
    /// let passer = fdpass_smol::Passer::new(a.into())?;
    /// # drop(passer); Ok(()) }
    /// ```
    pub fn new(socket: OwnedFd) -> Result<Passer, Error> {
        Passer::with_config(socket, Config::default())
    }

    /// Wraps a connected socket with the given settings.
    ///
    /// ```
    /// use fdpass_smol::{Config, Passer};
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().map_err(fdpass_smol::Error::from)?;
    /// let passer = Passer::with_config(a.into(), Config::default().with_max_fds_per_message(1))?;
    /// assert_eq!(passer.config().max_fds_per_message, 1);
    /// # Ok(()) }
    /// ```
    pub fn with_config(socket: OwnedFd, config: Config) -> Result<Passer, Error> {
        let core = fdpass_core::Passer::new(socket, config)?;
        let socket = core.shared_socket();
        let reactor = SmolReactor::new(&core)?;
        Ok(Passer {
            handle: Handle::new(core, reactor),
            socket,
        })
    }

    /// Two passers joined by a new socketpair.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (_left, _right) = fdpass_smol::Passer::pair()?;
    /// # Ok(()) }
    /// ```
    pub fn pair() -> Result<(Passer, Passer), Error> {
        Passer::pair_with_config(Config::default())
    }

    /// Two passers joined by a new socketpair, both with `config`.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(253);
    /// let (_left, _right) = fdpass_smol::Passer::pair_with_config(config)?;
    /// # Ok(()) }
    /// ```
    pub fn pair_with_config(config: Config) -> Result<(Passer, Passer), Error> {
        let (a, b) = fdpass_core::socket::pair()?;
        Ok((
            Passer::with_config(a, config)?,
            Passer::with_config(b, config)?,
        ))
    }

    /// Wraps a connected std `UnixStream`.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().map_err(fdpass_smol::Error::from)?;
    /// let _passer = fdpass_smol::Passer::from_std(a)?;
    /// # Ok(()) }
    /// ```
    pub fn from_std(stream: UnixStream) -> Result<Passer, Error> {
        Passer::from_std_with_config(stream, Config::default())
    }

    /// [`from_std`](Self::from_std) with settings.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().map_err(fdpass_smol::Error::from)?;
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let passer = fdpass_smol::Passer::from_std_with_config(a, config)?;
    /// assert_eq!(passer.config().max_fds_per_message, config.max_fds_per_message);
    /// # Ok(()) }
    /// ```
    pub fn from_std_with_config(stream: UnixStream, config: Config) -> Result<Passer, Error> {
        Passer::with_config(stream.into(), config)
    }

    /// Wraps a connected `Async<UnixStream>` (what async-io's
    /// `Async::<UnixStream>::connect` and `pair` return); it leaves its own
    /// registration first.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = async_io::Async::<std::os::unix::net::UnixStream>::pair().map_err(fdpass_smol::Error::from)?;
    /// let _passer = fdpass_smol::Passer::from_async(a)?;
    /// # Ok(()) }
    /// ```
    pub fn from_async(stream: Async<UnixStream>) -> Result<Passer, Error> {
        Passer::from_async_with_config(stream, Config::default())
    }

    /// [`from_async`](Self::from_async) with settings.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = async_io::Async::<std::os::unix::net::UnixStream>::pair().map_err(fdpass_smol::Error::from)?;
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let passer = fdpass_smol::Passer::from_async_with_config(a, config)?;
    /// assert_eq!(passer.config().max_fds_per_message, config.max_fds_per_message);
    /// # Ok(()) }
    /// ```
    pub fn from_async_with_config(
        stream: Async<UnixStream>,
        config: Config,
    ) -> Result<Passer, Error> {
        Passer::from_std_with_config(stream.into_inner()?, config)
    }

    /// Connects to a listener at `path` (see [`Listener`](crate::Listener)).
    /// Completes at once: a listener whose backlog is full is an error of
    /// kind [`std::io::ErrorKind::WouldBlock`] (try again later), as with
    /// fdpass-tokio and fdpass-mio.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-connect-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let listener = fdpass_smol::Listener::bind(dir.join("sock"))?;
    /// let (client, server) = futures_util::try_join!(fdpass_smol::Passer::connect(dir.join("sock")), listener.accept())?;
    /// # drop((client, server)); std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> Result<Passer, Error> {
        Passer::connect_with_config(path, Config::default()).await
    }

    /// [`connect`](Self::connect) with settings, for example the classic
    /// wire or another batch size (both ends must agree; see [`Config`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("fdpass-smol-doc-connect-with-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let listener = fdpass_smol::Listener::bind_with_config(dir.join("sock"), config)?;
    /// let (client, server) = futures_util::try_join!(
    ///     fdpass_smol::Passer::connect_with_config(dir.join("sock"), config),
    ///     listener.accept(),
    /// )?;
    /// assert_eq!(client.config().max_fds_per_message, config.max_fds_per_message);
    /// assert_eq!(server.config().max_fds_per_message, config.max_fds_per_message);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub async fn connect_with_config(
        path: impl AsRef<Path>,
        config: Config,
    ) -> Result<Passer, Error> {
        // Validate before connecting, so a bad config does not cost the
        // listener a connection.
        config.validate()?;
        // Not async-io's connect: it takes a full backlog (`EAGAIN`) for a
        // connect in progress, waits for writability and then reports
        // `ENOTCONN`, as if nothing listened there. A Unix connect never
        // waits (see the core's `connect`), so it needs no reactor.
        let path = path.as_ref();
        let socket = fdpass_core::socket::connect(path)
            .map_err(|e| fdpass_core::socket::connect_error(path, e))?;
        Passer::with_config(socket, config)
    }

    /// Spawns `command` with the other end of a new connection, inherited at
    /// the descriptor number named by the environment variable
    /// [`fdpass_core::child::ENV_VAR`]. The child picks it up with
    /// [`Passer::from_inherited`]. Our copy of the child's end is closed once
    /// the spawn returned.
    ///
    /// Takes a `std::process::Command` and returns std's `Child`: its `wait`
    /// blocks, so wait for it on a blocking thread.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// // A worker would call `Passer::from_inherited`; `true` just exits.
    /// let mut command = std::process::Command::new("true");
    /// let (passer, mut child) = fdpass_smol::Passer::spawn_child(&mut command)?;
    /// assert!(passer.recv().await?.is_none()); // the child's end closed
    /// assert!(child.wait()?.success());
    /// # Ok(()) })
    /// # }
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
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// let mut command = std::process::Command::new("true");
    /// let (passer, mut child) = fdpass_smol::Passer::spawn_child_with_config(&mut command, config)?;
    /// assert_eq!(passer.config().max_fds_per_message, 1);
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
    /// A worker that also runs on its own (as this example does):
    ///
    /// ```
    /// use fdpass_smol::{Error, InheritError, Passer};
    ///
    /// # fn main() -> Result<(), Error> {
    /// # smol::block_on(async {
    /// match Passer::from_inherited() {
    ///     Ok(parent) => {
    ///         while let Some(fd) = parent.recv().await? {
    ///             drop(fd); // serve it
    ///         }
    ///     }
    ///     Err(Error::Inherit(InheritError::NotHandedOff)) => {
    ///         // Not started with `spawn_child`.
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn from_inherited() -> Result<Passer, Error> {
        Passer::from_inherited_with_config(Config::default())
    }

    /// [`from_inherited`](Self::from_inherited) with settings.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let config = fdpass_smol::Config::default().with_max_fds_per_message(1);
    /// if let Ok(parent) = fdpass_smol::Passer::from_inherited_with_config(config) {
    ///     assert_eq!(parent.config().max_fds_per_message, 1);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_inherited_with_config(config: Config) -> Result<Passer, Error> {
        // A bad config must not cost the inherited connection.
        config.validate()?;
        Passer::with_config(fdpass_core::child::adopt_inherited()?, config)
    }

    /// The settings this passer was created with, with
    /// [`Reservation::Auto`](crate::Reservation::Auto) resolved.
    ///
    /// ```
    /// use fdpass_smol::{Config, Reservation};
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = fdpass_smol::Passer::pair()?;
    /// let resolved = Config::default().with_reservation(Reservation::lossless_here());
    /// assert_eq!(a.config(), resolved);
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> Config {
        self.handle.config()
    }

    /// A snapshot of this connection's gauges and counters for a metrics
    /// exporter: queued sends, waiting receive calls, descriptors held,
    /// full-table and send back-pressure episodes (whether one is in
    /// progress, since when, how many, how long in all), messages and
    /// descriptors sent and received, protocol errors, peer closes and
    /// failures. See [`Stats`] for each field's kind and unit. Every clone
    /// of this passer reads the same connection's figures.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// smol::block_on(async {
    ///     let (a, b) = fdpass_smol::Passer::pair()?;
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     a.send(read_end.into()).await?;
    ///     let _fd = b.recv().await?;
    ///     assert_eq!(a.stats().descriptors_sent, 1);
    ///     assert_eq!(b.stats().descriptors_received, 1);
    ///     assert!(!b.stats().is_stalled());
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Who is at the other end, as the kernel recorded it when the peer
    /// connected (see [`fdpass_core::socket::peer_credentials`]): what a
    /// server checks about an accepted client.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = fdpass_smol::Passer::pair()?;
    /// if let Some(pid) = a.peer_credentials()?.pid { // not given on macOS and FreeBSD
    ///     assert_eq!(pid as u32, std::process::id());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn peer_credentials(&self) -> Result<PeerCredentials, Error> {
        Ok(fdpass_core::socket::peer_credentials(self)?)
    }

    /// Sends `fd`; resolves once the kernel has taken it (not necessarily once
    /// the peer received it). Our copy is closed then; send a
    /// `try_clone()` to keep one.
    ///
    /// The descriptor is queued when `send` is called, before the first poll,
    /// so descriptors go out in the order of the `send` calls, unless the
    /// send queue is at its high-water mark
    /// ([`Config::max_queued_sends`](crate::Config::max_queued_sends), unset
    /// by default): then the future waits, driving the passer, until the
    /// queue has room, and queues it then (back-pressure).
    ///
    /// # Cancel safety
    /// Dropping the future never un-sends and never loses a queued
    /// descriptor: it stays queued and is sent in order; only the
    /// notification is lost. (Use [`flush`](Self::flush) to wait for it
    /// anyway.) Dropped while it still waits for room, the future lets go
    /// of the descriptor, which was never queued.
    ///
    /// # Errors
    /// The passer's failure (then everything queued and not sent is kept
    /// for [`take_unsent`](Self::take_unsent)), or [`Error::Closed`] after
    /// [`close`](Self::close) or [`shutdown`](Self::shutdown).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, _b) = fdpass_smol::Passer::pair()?;
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// a.send(read_end.into()).await?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn send(&self, fd: OwnedFd) -> SendFd<'_> {
        self.handle.send(fd)
    }

    /// Queues `fd` and returns at once: AnyEvent::FDpasser's fire-and-forget
    /// `push_send_fh`. It is written right away if the socket takes it;
    /// whatever stays queued goes out the next time any operation of this
    /// passer is polled (await [`flush`](Self::flush) to wait for it). A
    /// failure shows up on the next call.
    ///
    /// # Errors
    /// Nothing is queued and `fd` comes back, still open, in the error:
    /// [`PushError::Full`] while the send queue holds
    /// [`Config::max_queued_sends`](crate::Config::max_queued_sends)
    /// descriptors (the high-water mark; unset by default): push again
    /// after [`flush`](Self::flush), or use [`send`](Self::send), which
    /// waits for room; [`PushError::Unusable`] with the failure, or [`Error::Closed`] after
    /// [`close`](Self::close) or [`shutdown`](Self::shutdown). `?` into an
    /// [`Error`] lets go of `fd`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     a.push_send(read_end.into())?;
    /// }
    /// for _ in 0..3 {
    ///     assert!(b.recv().await?.is_some());
    /// }
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn push_send(&self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>> {
        self.handle.push_send(fd)
    }

    /// Queues every descriptor of `fds`, in order, and returns at once, like
    /// [`push_send`](Self::push_send) for each; then writes what the socket
    /// takes. A sender with many descriptors at hand should use this: every
    /// message is filled up to
    /// [`max_fds_per_message`](crate::Config::max_fds_per_message), where one
    /// `push_send` at a time writes each descriptor on its own while the
    /// socket has room, and the receiver pays for every message. Await
    /// [`flush`](Self::flush) to wait until the kernel has taken them all.
    ///
    /// `fds` is consumed while the passer is locked: an iterator that itself
    /// uses this passer would deadlock (collect such descriptors first).
    ///
    /// # Errors
    /// As [`push_send`](Self::push_send), for the whole batch: none is
    /// queued and every descriptor of `fds` comes back, in order. A batch
    /// is [`PushError::Full`] unless all of it fits under the mark or the
    /// queue is empty.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// let mut batch = Vec::new();
    /// for _ in 0..200 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     batch.push(read_end.into());
    /// }
    /// a.push_send_many(batch)?;
    /// a.flush().await?; // two messages: 128 and 72
    /// for _ in 0..200 {
    ///     assert!(b.recv().await?.is_some());
    /// }
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn push_send_many<I>(&self, fds: I) -> Result<(), PushError<Vec<OwnedFd>>>
    where
        I: IntoIterator<Item = OwnedFd>,
    {
        self.handle.push_send_many(fds)
    }

    /// The next descriptor, in the order the peer sent them; `Ok(None)` once
    /// the peer closed the connection in an orderly way and every descriptor
    /// it sent was handed out. Received descriptors are close-on-exec.
    ///
    /// The passer takes messages from the socket only while a `recv` is
    /// pending (with none, it only peeks for the peer's hang-up, installing
    /// nothing), so a peer cannot make us hold descriptors nobody asked for
    /// (beyond one message's worth).
    ///
    /// Requests are served in the order `recv` and `recv_many` were called,
    /// whichever future is polled first: `join!(p.recv(), p.recv())` gets
    /// the first descriptor in the first future.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If the future is dropped before it
    /// completes, no descriptor is lost: one that already arrived for it goes
    /// to the next `recv`, in order.
    ///
    /// # Errors
    /// The passer's failure, for example a
    /// [`ProtocolError`](crate::ProtocolError) from a broken peer.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// drop(a);
    /// assert!(b.recv().await?.is_none()); // orderly close, not an error
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn recv(&self) -> RecvFd<'_> {
        self.handle.recv()
    }

    /// Waits for the next descriptor, then moves it and up to `limit - 1`
    /// more that already arrived (with the same or earlier messages, so
    /// without further I/O) into `buf`, in order; resolves to how many it
    /// moved. `Ok(0)` means the peer closed the connection in an orderly way
    /// and every descriptor it sent was handed out, or `limit` was 0, as with
    /// tokio's `mpsc::Receiver::recv_many`.
    ///
    /// A receiver that handles descriptors in bulk (a supervisor taking over
    /// every listening socket of its predecessor) pays for one lock and one
    /// poll per call instead of per descriptor. `buf` is appended to, never
    /// cleared; reuse it across calls to avoid allocating.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If the future is dropped before it
    /// completes, no descriptor is lost and `buf` is unchanged: a descriptor
    /// that already arrived for it goes to the next receiver, in order.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// let mut batch = Vec::new();
    /// for _ in 0..100 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     batch.push(read_end.into());
    /// }
    /// a.push_send_many(batch)?;
    /// a.close(); // after the two messages, an orderly end
    /// let mut buf = Vec::with_capacity(100);
    /// while b.recv_many(&mut buf, 100).await? > 0 {}
    /// assert_eq!(buf.len(), 100);
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn recv_many<'a>(&'a self, buf: &'a mut Vec<OwnedFd>, limit: usize) -> RecvMany<'a> {
        self.handle.recv_many(buf, limit)
    }

    /// Sends a message: payload bytes and descriptors that the peer
    /// receives together, whole, in order with every other send (with
    /// [`recv_message`](Self::recv_message)). Resolves once the kernel took
    /// it. On the native wire (the default) either part may be empty; on
    /// the classic wire a message is descriptors only.
    ///
    /// The message is queued when `send_message` is called, unless the send
    /// queue is at a high-water mark
    /// ([`Config::max_queued_sends`](crate::Config::max_queued_sends) in
    /// descriptors, [`Config::max_queued_bytes`](crate::Config::max_queued_bytes)
    /// in payload bytes; both unset by default): then the future waits,
    /// driving the passer, until the message fits, and queues it then.
    ///
    /// # Cancel safety
    /// As [`send`](Self::send): dropping the future never un-sends a queued
    /// message; dropped while it still waits for room, the future lets go
    /// of the message, which was never queued.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] for a message the peer can never take
    /// (more descriptors or payload bytes than its hello announced, or
    /// payload on the classic wire): the message is let go of
    /// ([`push_send_message`](Self::push_send_message) hands it back
    /// instead). Otherwise as [`send`](Self::send).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use fdpass_smol::{Message, Passer};
    ///
    /// let (parent, worker) = Passer::pair()?;
    /// let (conn, _client) = std::os::unix::net::UnixStream::pair()?;
    /// parent.send_message(Message::new(b"203.0.113.7:41512".to_vec(), vec![conn.into()])).await?;
    /// let message = worker.recv_message().await?.expect("the parent is still open");
    /// assert_eq!(message.payload, b"203.0.113.7:41512");
    /// assert_eq!(message.fds.len(), 1);
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn send_message(&self, message: Message) -> SendMessage<'_> {
        self.handle.send_message(message)
    }

    /// Queues a message and returns at once, like
    /// [`push_send`](Self::push_send) for a descriptor; it is written right
    /// away if the socket takes it.
    ///
    /// # Errors
    /// Nothing is queued and the message comes back, its descriptors still
    /// open: [`PushError::Full`] at a high-water mark (descriptors or
    /// payload bytes); [`PushError::Refused`] with
    /// [`Error::MessageTooLarge`] for a message the peer can never take;
    /// [`PushError::Unusable`] with the failure, or [`Error::Closed`] after
    /// [`close`](Self::close) or [`shutdown`](Self::shutdown).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use fdpass_smol::Message;
    ///
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// a.push_send_message(Message::from_payload("status?"))?;
    /// assert_eq!(b.recv_message().await?.unwrap().payload, b"status?");
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn push_send_message(&self, message: Message) -> Result<(), PushError<Message>> {
        self.handle.push_send_message(message)
    }

    /// The next message, whole: its payload and its descriptors
    /// (close-on-exec); `Ok(None)` once the peer closed the connection in an
    /// orderly way and everything it sent was handed out. On the classic
    /// wire each descriptor is a message of its own, without payload.
    ///
    /// Served in one line with [`recv`](Self::recv) and
    /// [`recv_many`](Self::recv_many), in the order they were called,
    /// whichever future is polled first. A descriptor request takes the
    /// descriptors of messages without payload, one at a time, so a
    /// `recv_message` called after `recv` got some of a message's
    /// descriptors gets the rest. A `recv` whose turn comes at a message
    /// with payload bytes (or an empty one) fails with
    /// [`Error::UnexpectedMessage`] and takes nothing: the message waits,
    /// whole, for the next `recv_message`.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If the future is dropped before it
    /// completes, nothing is lost: a message that already arrived for it
    /// goes to the next request in line, in order.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use fdpass_smol::{Error, Message};
    ///
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// a.send_message(Message::from_payload("not a descriptor")).await?;
    /// // A descriptor receive meets the payload: refused, nothing taken.
    /// assert!(matches!(b.recv().await, Err(Error::UnexpectedMessage { payload_len: 16, .. })));
    /// let message = b.recv_message().await?.unwrap();
    /// assert_eq!(message.payload, b"not a descriptor");
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn recv_message(&self) -> RecvMessage<'_> {
        self.handle.recv_message()
    }

    /// What the peer announced in its hello on the native wire: the wire
    /// version spoken and the most descriptors and payload bytes it takes
    /// per message. `None` until the hello arrived (each end sends its own
    /// at once; it is read the next time this passer is polled, whether or
    /// not a receive is pending), and on the classic wire.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use fdpass_smol::Message;
    ///
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// a.send_message(Message::from_payload("hi")).await?;
    /// b.recv_message().await?;
    /// let peer = b.peer_limits().expect("the hello came first");
    /// assert_eq!((peer.version, peer.max_fds_per_message, peer.max_payload_len), (1, 128, 65536));
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn peer_limits(&self) -> Option<PeerLimits> {
        self.handle.peer_limits()
    }

    /// [`take_unsent`](Self::take_unsent), each push whole: the messages
    /// the kernel never took, with their payload and descriptors (a
    /// descriptor pushed alone comes back as a message of one), in push
    /// order and still open, once sending failed. A prefork parent
    /// re-routes each connection with its client's address.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use fdpass_smol::Message;
    ///
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// drop(b); // the worker is gone
    /// let (conn, _client) = std::os::unix::net::UnixStream::pair()?;
    /// let sent = a.send_message(Message::new(b"client 1".to_vec(), vec![conn.into()])).await;
    /// assert!(sent.is_err());
    /// let unsent = a.take_unsent_messages();
    /// assert_eq!((unsent[0].payload.as_slice(), unsent[0].fds.len()), (&b"client 1"[..], 1));
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn take_unsent_messages(&self) -> Vec<Message> {
        self.handle.take_unsent_messages()
    }

    /// A [`Stream`](futures_core::Stream) of received messages and a
    /// [`Sink`](futures_sink::Sink) of messages to send, on this connection
    /// (see [`Messages`]). Its receives wait in the same line as every
    /// other receive of the connection.
    ///
    /// ```
    /// use futures_util::{SinkExt, StreamExt};
    /// use fdpass_smol::Message;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// let mut outgoing = a.messages();
    /// outgoing.send(Message::from_payload("job 1")).await?;
    /// let received = b.messages().next().await.expect("a message")?;
    /// assert_eq!(received.payload, b"job 1");
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn messages(&self) -> Messages {
        Messages {
            inner: self.handle.messages(),
        }
    }

    /// Resolves once every descriptor queued so far has been taken by the
    /// kernel.
    ///
    /// # Cancel safety
    /// This method is cancel safe: dropping it changes nothing queued.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, _b) = fdpass_smol::Passer::pair()?;
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// a.push_send(read_end.into())?;
    /// a.flush().await?;
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn flush(&self) -> Flush<'_> {
        self.handle.flush()
    }

    /// Resolves once the connection ended: `Ok(())` when the peer hung up in
    /// an orderly way, the failure's error if the passer failed (`EPIPE`,
    /// `ECONNRESET`, a protocol error), [`Error::Closed`] after [`close`](Self::close).
    /// A passer that only sends learns this way that its peer is gone, without
    /// a receive outstanding. A peer that only shut down its writing half
    /// reads the same (`Ok(())`: it will send nothing more), and still
    /// receives what we send. Bytes the peer sent that nobody asked for hide a
    /// hang-up behind them until they are received; and a peer that passed its
    /// own socket to us keeps it alive in our queue, so its exit cannot be seen
    /// (see the reliability notes).
    ///
    /// # Cancel safety
    /// This method is cancel safe.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// drop(b);
    /// a.closed().await?; // no receive was outstanding
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn closed(&self) -> Closed<'_> {
        self.handle.closed()
    }

    /// Closes the connection now, for every clone, abortively: queued
    /// descriptors and received ones nobody claimed are let go of (never
    /// sent), the peer sees end-of-stream, pending operations complete with
    /// [`Error::Closed`]. Descriptors the kernel already took still reach the
    /// peer. To send what is queued first, use [`shutdown`](Self::shutdown);
    /// [`close_abortive`](Self::close_abortive) is this under a name that
    /// says so.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// a.close();
    /// assert!(b.recv().await?.is_none());
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn close(&self) {
        self.handle.close();
    }

    /// The abortive close: the same as [`close`](Self::close), named for
    /// what it does to queued descriptors (they are dropped, not sent).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// a.close_abortive();
    /// assert!(b.recv().await?.is_none()); // the peer sees the end at once
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn close_abortive(&self) {
        self.handle.close_abortive();
    }

    /// Shuts the connection down gracefully, for every clone: everything
    /// queued is still sent, in order, then the socket is shut down, so the
    /// peer receives all of it and then end of stream (what
    /// `AsyncWriteExt::shutdown` does for bytes). Receiving ends at once
    /// (received descriptors nobody claimed are let go of); new sends get
    /// [`Error::Closed`]. The shutdown starts when this is called and
    /// advances while the returned future (or any operation of this passer)
    /// is polled.
    ///
    /// `deadline` bounds it. Resolves with `Ok(())` once everything was
    /// sent; with [`Error::ShutdownTimedOut`] if descriptors were still
    /// queued at `deadline` (the socket is shut down anyway); with the
    /// failure if the peer died meanwhile (`EPIPE`). After an error,
    /// [`take_unsent`](Self::take_unsent) hands back what was not sent.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use std::time::{Duration, Instant};
    ///
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// for _ in 0..3 {
    ///     let (read_end, _write_end) = std::io::pipe()?;
    ///     a.push_send(read_end.into())?;
    /// }
    /// a.shutdown(Instant::now() + Duration::from_secs(5)).await?;
    /// for _ in 0..3 {
    ///     assert!(b.recv().await?.is_some()); // every queued one arrives
    /// }
    /// assert!(b.recv().await?.is_none()); // then the end of the stream
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn shutdown(&self, deadline: std::time::Instant) -> Shutdown<'_> {
        self.handle.shutdown(deadline)
    }

    /// Hands back, in push order and still open, the queued descriptors
    /// the kernel never took, once the passer failed (the peer died, a
    /// protocol error, a shutdown past its deadline): a prefork parent
    /// re-routes connections queued for a dead worker. The failure keeps
    /// them open until they are taken or the passer (every clone) is
    /// dropped. Empty while the passer is usable, and after an abortive
    /// close.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// let (a, b) = fdpass_smol::Passer::pair()?;
    /// drop(b); // the worker died
    /// let (read_end, _write_end) = std::io::pipe()?;
    /// let failure = a.send(read_end.into()).await;
    /// assert!(failure.is_err()); // EPIPE
    /// let unsent = a.take_unsent();
    /// assert_eq!(unsent.len(), 1); // still open: give it to another worker
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn take_unsent(&self) -> Vec<OwnedFd> {
        self.handle.take_unsent()
    }
}

impl AsFd for Passer {
    /// The connection's socket, for example to read the peer's credentials
    /// or socket options. Do not read from or write to it: that would
    /// desynchronise the stream. It stays open while any clone lives.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = fdpass_smol::Passer::pair()?;
    /// let peer = fdpass_core::socket::peer_credentials(a.as_fd())?;
    /// assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
    /// # Ok(()) }
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Passer {
    /// The connection's socket's number (see [`AsFd`]).
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// # fn main() -> Result<(), fdpass_smol::Error> {
    /// let (a, _b) = fdpass_smol::Passer::pair()?;
    /// assert!(a.as_raw_fd() >= 0);
    /// # Ok(()) }
    /// ```
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
