//! Settings fixed when a passer is created.

use std::time::Duration;

use crate::Error;

/// The kernel's limit on descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
///
/// ```
/// use fdpass_core::{Config, SCM_MAX_FD};
///
/// assert!(Config::default().with_max_fds_per_message(SCM_MAX_FD).validate().is_ok());
/// assert!(Config::default().with_max_fds_per_message(SCM_MAX_FD + 1).validate().is_err());
/// ```
pub const SCM_MAX_FD: usize = 253;

/// The most payload bytes a [`Config::max_payload_len`] may be set to: 16 MiB.
/// Larger payloads belong on a stream of their own, not in one buffered
/// message.
pub const MAX_PAYLOAD_LIMIT: usize = 16 << 20;

/// The least payload bytes every native receiver accepts in one message
/// (`docs/wire.md`): 4096. Until the peer's hello has arrived a sender sends
/// no message larger than this, and no send with more than one descriptor.
pub const MIN_PAYLOAD_LIMIT: usize = 4096;

/// Which bytes a passer puts on the socket. `docs/wire.md` specifies both.
///
/// ```
/// use fdpass_core::{Config, Wire};
///
/// // Between two fdpass passers: the native wire, the default.
/// assert_eq!(Config::default().wire, Wire::Native);
/// // Facing AnyEvent::FDpasser or Python's send_fds/recv_fds: the classic
/// // wire, one descriptor per message unless raised on purpose.
/// let config = Config::default().with_wire(Wire::CLASSIC);
/// assert_eq!(config.wire, Wire::Classic { batch: 1 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Wire {
    /// fdpass's own framed, versioned wire: messages of payload bytes and
    /// descriptors (either may be empty), each end announcing its limits in
    /// a hello it sends first, without waiting for the other's. A message's
    /// descriptors always arrive with that message. The default.
    #[default]
    Native,
    /// AnyEvent::FDpasser's wire, which Python's
    /// `socket.send_fds(sock, [b"\0"], [fd])` also speaks: each descriptor
    /// travels with one byte; no header, no payload, no handshake. `batch`
    /// is the most descriptors sent in one `sendmsg`: [`Wire::CLASSIC`] (1)
    /// is what every classic receiver accepts; raise it only when the
    /// receiver reads at least that many per message (another fdpass passer
    /// whose [`Config::max_fds_per_message`] is at least `batch`, or
    /// `recv_fds` with `maxfds` at least `batch`). AnyEvent::FDpasser reads
    /// one at a time and fails on more.
    Classic {
        /// Descriptors per `sendmsg`, 1 to [`SCM_MAX_FD`] (also capped by
        /// [`Config::max_fds_per_message`]).
        batch: usize,
    },
}

impl Wire {
    /// The classic wire with one descriptor per message: byte for byte what
    /// AnyEvent::FDpasser and Python's `send_fds`/`recv_fds` speak.
    pub const CLASSIC: Wire = Wire::Classic { batch: 1 };

    /// Whether this is the native wire.
    ///
    /// ```
    /// assert!(fdpass_core::Wire::Native.is_native());
    /// assert!(!fdpass_core::Wire::CLASSIC.is_native());
    /// ```
    pub fn is_native(self) -> bool {
        matches!(self, Wire::Native)
    }
}

/// How a passer makes sure a received descriptor always has a free slot in the
/// descriptor table, so that a full table delays delivery instead of losing
/// descriptors. `docs/design.md` compares the two strategies.
///
/// The default, [`Reservation::Auto`], picks at construction whichever is
/// lossless on the running system; asking for [`Reservation::Peek`] where it
/// is not is [`Error::InvalidConfig`] when the passer is built, never a silent
/// loss.
///
/// ```
/// use fdpass_core::{Config, Passer, Reservation};
///
/// # fn main() -> Result<(), fdpass_core::Error> {
/// assert_eq!(Reservation::default(), Reservation::Auto);
/// let (a, _b) = Passer::pair(Config::default())?;
/// // Resolved when the passer was built.
/// assert_eq!(a.config().reservation, Reservation::lossless_here());
/// // The portable strategy, available everywhere.
/// let config = Config::default().with_reservation(Reservation::Sentinel);
/// let (a, _b) = Passer::pair(config)?;
/// assert_eq!(a.config().reservation, Reservation::Sentinel);
/// assert!(a.held_descriptors() >= config.max_fds_per_message); // the reserved slots
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reservation {
    /// Whichever strategy is lossless where the passer runs, chosen when it
    /// is built: [`Peek`](Self::Peek) where the system-call seam's
    /// [`peek_is_lossless`](crate::sys::Sys::peek_is_lossless) says so (on
    /// Linux and Android, after asking the running kernel once per process,
    /// since a Linux binary may run on an emulation such as WSL 1 or gVisor),
    /// [`Sentinel`](Self::Sentinel) everywhere else. A built passer's
    /// [`config`](crate::Passer::config) reports the strategy chosen.
    #[default]
    Auto,
    /// Look at each message with `MSG_PEEK` first: the kernel installs copies of
    /// its descriptors but keeps the message queued. If the table had no room
    /// (`MSG_CTRUNC`), the copies that did arrive are closed and the message is
    /// read again later; otherwise it is consumed by a second `recvmsg` that
    /// takes no descriptors. Costs no reserved slots and stays lossless while
    /// other threads open descriptors. Needs Linux's `MSG_PEEK` semantics
    /// (net/core/scm.c keeps a peeked message's descriptors queued); building
    /// a passer with it anywhere else is [`Error::InvalidConfig`].
    Peek,
    /// The close-dup slot reservation of AnyEvent::FDpasser: keep
    /// `max_fds_per_message` duplicated descriptors that occupy table slots,
    /// close them just before `recvmsg` and duplicate them again right after.
    /// Works on every Unix. Known hole: a descriptor opened by another thread
    /// (or a signal handler) between the close and the `recvmsg` can take a
    /// reserved slot.
    Sentinel,
}

impl Reservation {
    /// What [`Reservation::Auto`] resolves to for the real system calls
    /// ([`SystemCalls::default`](crate::sys::SystemCalls)) in this process:
    /// [`Peek`](Self::Peek) or [`Sentinel`](Self::Sentinel).
    ///
    /// ```
    /// use fdpass_core::Reservation;
    ///
    /// if cfg!(target_os = "macos") {
    ///     assert_eq!(Reservation::lossless_here(), Reservation::Sentinel);
    /// }
    /// assert_ne!(Reservation::lossless_here(), Reservation::Auto);
    /// ```
    pub fn lossless_here() -> Reservation {
        Reservation::Auto
            .resolve(&mut crate::sys::SystemCalls::default())
            .unwrap_or(Reservation::Sentinel)
    }

    /// The strategy a passer on `sys` uses for this request: `Auto` becomes
    /// `Peek` or `Sentinel`; `Peek` where the seam cannot honour it is an error.
    pub(crate) fn resolve(self, sys: &mut impl crate::sys::Sys) -> Result<Reservation, Error> {
        match self {
            Reservation::Auto if sys.peek_is_lossless() => Ok(Reservation::Peek),
            Reservation::Auto => Ok(Reservation::Sentinel),
            Reservation::Peek if !sys.peek_is_lossless() => Err(Error::InvalidConfig(
                "the peek reservation is not lossless on this system (its kernel does not keep a peeked message's descriptors queued); use Reservation::Auto or Reservation::Sentinel",
            )),
            other => Ok(other),
        }
    }
}

/// How long to wait before retrying after the kernel said "not now" (a full
/// descriptor table on receive; `ETOOMANYREFS`, `ENOBUFS` or `ENOMEM` on send).
///
/// The first retry comes after `initial`, each further one after twice the
/// previous delay, never more than `max`; a success resets the delay.
///
/// ```
/// use std::time::Duration;
/// use fdpass_core::RetryPolicy;
///
/// let policy = RetryPolicy { initial: Duration::from_millis(1), max: Duration::from_millis(50) };
/// assert!(policy.initial <= policy.max);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial: Duration,
    /// The longest delay between two retries.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 2 ms first, doubling up to 100 ms: faster to notice a freed slot than
    /// AnyEvent::FDpasser's fixed 50 ms then 500 ms, and still cheap (each
    /// retry is one `recvmsg` or a few `dup`s).
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(2),
            max: Duration::from_millis(100),
        }
    }
}

/// Settings of a [`Passer`](crate::Passer).
///
/// On the native wire (the default) each end announces its
/// `max_fds_per_message` and `max_payload_len` to the other, which never
/// sends more. On the classic wire there is no announcement: the receiver's
/// `max_fds_per_message` must be at least the sender's batch (see
/// [`Wire::Classic`]).
///
/// ```
/// use fdpass_core::{Config, Reservation, Wire};
///
/// let config = Config::default()
///     .with_max_fds_per_message(16)
///     .with_max_payload_len(1 << 20)
///     .with_reservation(Reservation::Sentinel);
/// assert_eq!(config.max_fds_per_message, 16);
/// assert!(config.validate().is_ok());
/// // AnyEvent::FDpasser's exact wire.
/// let classic = Config::default().with_wire(Wire::CLASSIC);
/// assert!(classic.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Which wire this passer speaks; default [`Wire::Native`].
    pub wire: Wire,
    /// The most descriptors accepted in one message (on the native wire, in
    /// one `sendmsg`: announced to the peer), and the most sent in one
    /// `sendmsg`. 1 to [`SCM_MAX_FD`]; default 128 (`docs/design.md` says
    /// why, `docs/performance.md` the measurements behind it).
    pub max_fds_per_message: usize,
    /// The most payload bytes accepted in one message on the native wire
    /// (announced to the peer, which never sends more); a longer one from
    /// the peer is [`ProtocolError::PayloadTooLong`](crate::ProtocolError::PayloadTooLong).
    /// [`MIN_PAYLOAD_LIMIT`] (4096) to [`MAX_PAYLOAD_LIMIT`] (16 MiB);
    /// default 64 KiB: room for a request, an address, a path or a small
    /// document, while the most a peer can make the passer hold beyond the
    /// outstanding requests (one message) stays small. The classic wire has
    /// no payload.
    pub max_payload_len: usize,
    /// How room for incoming descriptors is guaranteed; default
    /// [`Reservation::Auto`].
    pub reservation: Reservation,
    /// Backoff for retries after a full table or send back-pressure.
    pub retry: RetryPolicy,
    /// Put the socket into non-blocking mode at construction. Turn off only
    /// when the socket is known to be non-blocking already (saves a syscall).
    pub set_nonblocking: bool,
    /// The send queue's high-water mark, in descriptors: with `Some(n)` a
    /// passer holds at most `n` descriptors queued and not yet taken by the
    /// kernel. Non-blocking pushes beyond it return
    /// [`PushError::Full`](crate::PushError::Full) with the descriptor(s)
    /// handed back; the adapters' `send(fd).await` and `Sink::poll_ready`
    /// wait for room. `None` (the default): unbounded, as before the mark
    /// existed. Unbounded is the default because every queued descriptor is
    /// already bounded by the process's descriptor table (`RLIMIT_NOFILE`),
    /// and a bound no caller asked for would turn pushes that used to
    /// succeed into errors; set one where a slow peer must slow the sender
    /// down instead of filling the table.
    pub max_queued_sends: Option<usize>,
    /// The send queue's high-water mark in payload bytes, checked with
    /// [`max_queued_sends`](Self::max_queued_sends) and reported the same way
    /// ([`PushError::Full`](crate::PushError::Full)). `None` (the default):
    /// unbounded.
    pub max_queued_bytes: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            wire: Wire::Native,
            max_fds_per_message: 128,
            max_payload_len: 64 << 10,
            reservation: Reservation::default(),
            retry: RetryPolicy::default(),
            set_nonblocking: true,
            max_queued_sends: None,
            max_queued_bytes: None,
        }
    }
}

impl Config {
    /// Sets [`Config::wire`].
    ///
    /// ```
    /// use fdpass_core::{Config, Wire};
    /// let config = Config::default().with_wire(Wire::Classic { batch: 64 });
    /// assert_eq!(config.wire, Wire::Classic { batch: 64 });
    /// ```
    pub fn with_wire(mut self, wire: Wire) -> Self {
        self.wire = wire;
        self
    }

    /// Sets [`Config::max_payload_len`].
    ///
    /// ```
    /// let config = fdpass_core::Config::default().with_max_payload_len(1 << 20);
    /// assert_eq!(config.max_payload_len, 1 << 20);
    /// ```
    pub fn with_max_payload_len(mut self, bytes: usize) -> Self {
        self.max_payload_len = bytes;
        self
    }

    /// Sets [`Config::max_queued_bytes`] (`None`: unbounded).
    ///
    /// ```
    /// let config = fdpass_core::Config::default().with_max_queued_bytes(Some(1 << 20));
    /// assert_eq!(config.max_queued_bytes, Some(1 << 20));
    /// ```
    pub fn with_max_queued_bytes(mut self, limit: Option<usize>) -> Self {
        self.max_queued_bytes = limit;
        self
    }

    /// Descriptors this passer puts in one `sendmsg` at most (before the
    /// peer's own limit, on the native wire).
    pub(crate) fn send_batch(&self) -> usize {
        match self.wire {
            Wire::Native => self.max_fds_per_message,
            Wire::Classic { batch } => batch.min(self.max_fds_per_message),
        }
    }

    /// Sets [`Config::max_fds_per_message`].
    ///
    /// ```
    /// let config = fdpass_core::Config::default().with_max_fds_per_message(253);
    /// assert_eq!(config.max_fds_per_message, 253);
    /// ```
    pub fn with_max_fds_per_message(mut self, n: usize) -> Self {
        self.max_fds_per_message = n;
        self
    }

    /// Sets [`Config::reservation`].
    ///
    /// ```
    /// use fdpass_core::{Config, Reservation};
    /// let config = Config::default().with_reservation(Reservation::Peek);
    /// assert_eq!(config.reservation, Reservation::Peek);
    /// ```
    pub fn with_reservation(mut self, reservation: Reservation) -> Self {
        self.reservation = reservation;
        self
    }

    /// Sets [`Config::retry`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use fdpass_core::{Config, RetryPolicy};
    /// let retry = RetryPolicy { initial: Duration::from_millis(5), max: Duration::from_millis(500) };
    /// assert_eq!(Config::default().with_retry(retry).retry, retry);
    /// ```
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`Config::set_nonblocking`].
    ///
    /// ```
    /// let config = fdpass_core::Config::default().with_set_nonblocking(false);
    /// assert!(!config.set_nonblocking);
    /// ```
    pub fn with_set_nonblocking(mut self, set: bool) -> Self {
        self.set_nonblocking = set;
        self
    }

    /// Sets [`Config::max_queued_sends`] (`None`: unbounded).
    ///
    /// ```
    /// let config = fdpass_core::Config::default().with_max_queued_sends(Some(1024));
    /// assert_eq!(config.max_queued_sends, Some(1024));
    /// ```
    pub fn with_max_queued_sends(mut self, limit: Option<usize>) -> Self {
        self.max_queued_sends = limit;
        self
    }

    /// Checks every setting; [`Passer::new`](crate::Passer::new) calls this.
    /// Whether the running kernel honours [`Reservation::Peek`] is checked
    /// when the passer is built (it depends on the system-call seam).
    ///
    /// ```
    /// use fdpass_core::Config;
    /// assert!(Config::default().validate().is_ok());
    /// assert!(Config::default().with_max_fds_per_message(0).validate().is_err());
    /// assert!(Config::default().with_max_fds_per_message(254).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=SCM_MAX_FD).contains(&self.max_fds_per_message) {
            return Err(Error::InvalidConfig(
                "max_fds_per_message must be between 1 and 253 (SCM_MAX_FD)",
            ));
        }
        if let Wire::Classic { batch } = self.wire {
            if !(1..=SCM_MAX_FD).contains(&batch) {
                return Err(Error::InvalidConfig(
                    "Wire::Classic's batch must be between 1 and 253 (SCM_MAX_FD)",
                ));
            }
        }
        if !(MIN_PAYLOAD_LIMIT..=MAX_PAYLOAD_LIMIT).contains(&self.max_payload_len) {
            return Err(Error::InvalidConfig(
                "max_payload_len must be between 4096 (MIN_PAYLOAD_LIMIT) and 16 MiB (MAX_PAYLOAD_LIMIT)",
            ));
        }
        if self.max_queued_bytes == Some(0) {
            return Err(Error::InvalidConfig(
                "max_queued_bytes must be at least 1 (None for an unbounded queue)",
            ));
        }
        if self.max_queued_sends == Some(0) {
            return Err(Error::InvalidConfig(
                "max_queued_sends must be at least 1 (None for an unbounded queue)",
            ));
        }
        if self.retry.initial.is_zero() || self.retry.initial > self.retry.max {
            return Err(Error::InvalidConfig(
                "retry.initial must be non-zero and at most retry.max",
            ));
        }
        if self.reservation == Reservation::Peek
            && !cfg!(any(target_os = "linux", target_os = "android"))
        {
            return Err(Error::InvalidConfig(
                "the peek reservation needs Linux's MSG_PEEK descriptor semantics; use Reservation::Auto or Reservation::Sentinel here",
            ));
        }
        Ok(())
    }
}
