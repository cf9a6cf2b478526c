//! What a passer counts, for a metrics exporter: a plain snapshot.

use std::time::{Duration, Instant};

/// A snapshot of one passer's gauges and counters, from
/// [`Passer::stats`](crate::Passer::stats) (and `stats()` on every adapter's
/// passer).
///
/// **Gauges** say how things stand at the moment of the snapshot and go up
/// and down. **Counters** only ever grow over the passer's life (they start
/// at zero and stop growing when it closes or fails), so an exporter reports
/// them as monotonic counters, or sums them over connections. Taking a
/// snapshot costs no system call and allocates nothing; there is no global
/// registry: the application reads the passers it has and exports what it
/// likes.
///
/// Times are the `now` values the driver passed in (the core never reads
/// the clock): an episode that started at `handle_readable(t0)` and ended at
/// `handle_readable(t1)` counts `t1 - t0`.
///
/// A *full-table episode* begins when a receive finds no room in the
/// descriptor table for what waits (`EMFILE`, or a lowered `RLIMIT_NOFILE`)
/// and the passer starts backing off, and ends with the next successful
/// receive, however many retries that takes (with
/// [`Reservation::Sentinel`](crate::Reservation::Sentinel), as soon as a
/// retry makes the reservation whole again, even if no message waits yet). While one lasts, descriptors
/// wait in the socket: nothing is lost, but delivery stalls, which
/// [`full_table_since`](Self::full_table_since) makes visible. A *send
/// back-pressure episode* is the same on the sending side, from the first
/// `sendmsg` the kernel refused for lack of resources (`ETOOMANYREFS`: too
/// many descriptors in flight for this user; `ENOBUFS`/`ENOMEM`: kernel
/// memory) to the next accepted one.
///
/// ```
/// use std::time::Instant;
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (mut a, mut b) = Passer::pair(Config::default())?;
/// let now = Instant::now();
/// b.handle_writable(now); // b's hello: a may now send b's limits' worth at once
/// a.handle_readable(now);
/// for _ in 0..3 {
///     let (read_end, _write_end) = rustix::pipe::pipe()?;
///     a.push_send(read_end)?;
/// }
/// assert_eq!(a.stats().queued_sends, 3);
/// a.handle_writable(now); // three messages of one descriptor, one sendmsg
/// b.push_recv()?;
/// b.handle_readable(now);
///
/// let sent = a.stats();
/// assert_eq!((sent.messages_sent, sent.descriptors_sent, sent.queued_sends), (3, 3, 0));
/// let received = b.stats();
/// assert_eq!((received.messages_received, received.descriptors_received), (3, 3));
/// // One descriptor went to the request, two wait read ahead (plus the
/// // reserved slots, with the sentinel strategy).
/// assert!(received.held_descriptors >= 2);
/// assert!(!received.is_stalled());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    // ---- gauges ----
    /// Gauge, descriptors: queued for sending and not yet taken by the
    /// kernel.
    pub queued_sends: usize,
    /// Gauge, requests: receive requests waiting for a descriptor.
    pub outstanding_recvs: usize,
    /// Gauge, descriptors: held by the passer besides its socket (queued
    /// sends, descriptors received and not yet handed out, reserved slots).
    pub held_descriptors: usize,
    /// Gauge: when the full-table episode in progress started (the `now` of
    /// its first backoff), or `None` when receiving is not stalled on a full
    /// descriptor table. See [`is_stalled`](Self::is_stalled).
    pub full_table_since: Option<Instant>,
    /// Gauge: when the send back-pressure episode in progress started, or
    /// `None` when the kernel takes what is sent.
    pub send_backpressure_since: Option<Instant>,

    // ---- counters ----
    /// Counter, messages taken by the kernel: on the native wire, every
    /// push (a descriptor pushed alone is a message of one), however many
    /// went in one `sendmsg`; on the classic wire, every `sendmsg` of
    /// descriptors (the wire has no other unit).
    pub messages_sent: u64,
    /// Counter, descriptors: taken by the kernel (and closed on our side).
    pub descriptors_sent: u64,
    /// Counter, messages received whole: on the native wire, every message
    /// frame; on the classic wire, every descriptor (each is a message of its
    /// own there).
    pub messages_received: u64,
    /// Counter, descriptors: received whole, whether handed out yet or not.
    pub descriptors_received: u64,
    /// Counter, episodes: full-table episodes started, the one in progress
    /// included.
    pub full_table_episodes: u64,
    /// Counter, time: spent in full-table episodes, the one in progress
    /// included up to the latest `now` the passer was given.
    pub full_table_wait: Duration,
    /// Counter, episodes: send back-pressure episodes started, the one in
    /// progress included.
    pub send_backpressure_episodes: u64,
    /// Counter, time: spent in send back-pressure episodes, as
    /// [`full_table_wait`](Self::full_table_wait).
    pub send_backpressure_wait: Duration,
    /// Counter, errors: the peer broke the protocol
    /// ([`Error::Protocol`](crate::Error::Protocol)). A protocol error fails
    /// the passer, so it is also counted in [`failures`](Self::failures).
    pub protocol_errors: u64,
    /// Counter, closes: the peer's orderly close was seen (end of stream).
    pub peer_closes: u64,
    /// Counter, failures: the passer failed
    /// ([`Event::Failed`](crate::Event::Failed)), for whatever reason. Our
    /// own close is not a failure.
    pub failures: u64,
}

impl Stats {
    /// Whether receiving is stalled on a full descriptor table right now:
    /// descriptors wait in the socket until room is made.
    ///
    /// ```
    /// # fn main() -> Result<(), fdpass_core::Error> {
    /// let (a, _b) = fdpass_core::Passer::pair(fdpass_core::Config::default())?;
    /// assert!(!a.stats().is_stalled());
    /// # Ok(()) }
    /// ```
    pub fn is_stalled(&self) -> bool {
        self.full_table_since.is_some()
    }
}

/// The counters a passer keeps itself; the retry episodes are kept by the
/// retry timers (`retry.rs`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_sent: u64,
    pub(crate) descriptors_sent: u64,
    pub(crate) messages_received: u64,
    pub(crate) descriptors_received: u64,
    pub(crate) protocol_errors: u64,
    pub(crate) peer_closes: u64,
    pub(crate) failures: u64,
}
