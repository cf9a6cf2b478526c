//! The application's side of a passer: the calls a fuzz input makes, and the
//! checks on what the passer answers, which hold whatever the peer or the
//! kernel did.
//!
//! Events are drained after every call, so the model below always knows
//! which receive requests are outstanding:
//! - `Received`, `ReceivedMessage` and `RecvRefused` serve the oldest
//!   outstanding request (FIFO), each only a request of its kind (a message
//!   for a message request; a descriptor, or a refusal naming a message that
//!   is not descriptors only, for a descriptor request); `try_recv` and
//!   `try_recv_message` only when none is outstanding; receive tokens only
//!   grow; a received message is within the passer's own limits;
//! - `Sent` tokens grow and never name a push not made yet, and the send
//!   queue holds exactly the descriptors of the pushes not reported sent
//!   (a classic passer may have sent part of the front message's);
//! - `cancel_recv` succeeds exactly for an outstanding request;
//! - at most one `Closed` and one `Failed`, and nothing after `Failed`: the
//!   passer stays failed, hands back exactly the pushes the kernel never
//!   took (`take_unsent_messages`), then holds nothing, wants nothing and
//!   sets no deadline;
//! - no handler leaves work it could do now (`Want::Now`), and
//!   `handle_timeout(now)` leaves no deadline at or before `now`: a driver
//!   following the passer never spins.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_core::sys::Sys;
use fdpass_core::{Error, Event, Message, Passer, RecvToken, SendToken, Want};
use libfuzzer_sys::arbitrary::{self, Arbitrary};

/// One call of the application. `K` chooses a descriptor to send; each
/// target has its own kinds.
#[derive(Arbitrary, Debug)]
pub enum Call<K> {
    /// `push_recv`, 1 to 8 times.
    PushRecv(u8),
    TryRecv,
    /// `push_recv_message`, 1 to 8 times.
    PushRecvMessage(u8),
    TryRecvMessage,
    /// `push_send_message` of this many payload bytes (each the low byte of
    /// its index) and these descriptors.
    PushSendMessage {
        payload_len: u16,
        fds: Vec<K>,
    },
    /// `cancel_recv` of the n-th request ever made (modulo their number),
    /// which may be fulfilled or cancelled already.
    CancelRecv(u8),
    /// One `push_send` per descriptor, or one `push_send_many` for them all.
    PushSend {
        fds: Vec<K>,
        many: bool,
    },
    Readable,
    Writable,
    /// The clock moves on this many milliseconds; then `handle_timeout`.
    Advance(u16),
    /// The clock moves to the next deadline, if any; then `handle_timeout`.
    ToDeadline,
    Close,
}

/// Where the descriptors to send come from, and where received ones go.
pub trait Descriptors<K> {
    /// A new descriptor of kind `kind`, or `None` if none can be made now
    /// (a full table, a peer socket already closed).
    fn make(&mut self, kind: K) -> Option<OwnedFd>;
    /// A descriptor the passer delivered: check it, then close it.
    fn received(&mut self, fd: OwnedFd);
}

/// The application's model of one passer; see the module docs.
#[derive(Debug)]
pub struct App {
    now: Instant,
    /// Every receive request made, for cancelling.
    asked: Vec<RecvToken>,
    /// Outstanding requests, oldest first, and whether each asked for a
    /// message (else a descriptor).
    waiting: VecDeque<(RecvToken, bool)>,
    last_recv_token: Option<RecvToken>,
    /// Pushes accepted, ever.
    pushed_sends: u64,
    /// Descriptors of each push not reported sent yet, oldest first.
    unsent_fds: VecDeque<usize>,
    last_sent: Option<SendToken>,
    peer_closed: bool,
    failed: bool,
    /// `Event::SendFailed` was seen: sending ended, receiving goes on.
    send_failed: bool,
    /// Unsent descriptors `take_unsent` handed back, for the caller to
    /// account for and close.
    handed_back: Vec<OwnedFd>,
    /// The payloads of the messages received, in order (empty ones left
    /// out), for a target that knows what was sent.
    payloads: Vec<Vec<u8>>,
    closed: bool,
}

impl Default for App {
    fn default() -> Self {
        App {
            now: Instant::now(),
            asked: Vec::new(),
            waiting: VecDeque::new(),
            last_recv_token: None,
            pushed_sends: 0,
            unsent_fds: VecDeque::new(),
            last_sent: None,
            peer_closed: false,
            failed: false,
            send_failed: false,
            handed_back: Vec::new(),
            payloads: Vec::new(),
            closed: false,
        }
    }
}

impl App {
    /// The synthetic clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Whether a `Failed` event was seen.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The unsent descriptors `take_unsent` handed back since the last call:
    /// the application's now, open, to close.
    pub fn take_handed_back(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.handed_back)
    }

    /// The non-empty payloads of the messages received so far, in order.
    pub fn payloads(&self) -> &[Vec<u8>] {
        &self.payloads
    }

    /// Makes one call, then drains and checks the events and the state.
    pub fn call<S: Sys, K>(
        &mut self,
        passer: &mut Passer<S>,
        call: Call<K>,
        fds: &mut impl Descriptors<K>,
    ) {
        match call {
            Call::PushRecv(n) | Call::PushRecvMessage(n) => {
                let message = matches!(call, Call::PushRecvMessage(_));
                for _ in 0..=n % 8 {
                    let pushed = if message {
                        passer.push_recv_message()
                    } else {
                        passer.push_recv()
                    };
                    if let Ok(token) = pushed {
                        self.new_recv_token(token);
                        self.asked.push(token);
                        self.waiting.push_back((token, message));
                    }
                }
            }
            Call::TryRecv => {
                if let Some((token, fd)) = passer.try_recv() {
                    assert!(
                        self.waiting.is_empty(),
                        "try_recv served {token:?} before the outstanding {:?}",
                        self.waiting
                    );
                    self.new_recv_token(token);
                    fds.received(fd);
                }
            }
            Call::TryRecvMessage => {
                if let Some((token, message)) = passer.try_recv_message() {
                    assert!(
                        self.waiting.is_empty(),
                        "try_recv_message served {token:?} before the outstanding {:?}",
                        self.waiting
                    );
                    self.new_recv_token(token);
                    self.received_message(passer, message, fds);
                }
            }
            Call::PushSendMessage {
                payload_len,
                fds: kinds,
            } => {
                let made: Vec<OwnedFd> = kinds.into_iter().filter_map(|k| fds.make(k)).collect();
                let count = made.len();
                let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
                match passer.push_send_message(Message::new(payload, made)) {
                    Ok(_) => {
                        self.pushed_sends += 1;
                        self.unsent_fds.push_back(count);
                    }
                    Err(refused) => self.handed_back.extend(refused.into_inner().fds),
                }
            }
            Call::CancelRecv(n) => {
                if !self.asked.is_empty() {
                    let token = self.asked[usize::from(n) % self.asked.len()];
                    let outstanding = self.waiting.iter().position(|(t, _)| *t == token);
                    let cancelled = passer.cancel_recv(token);
                    assert_eq!(
                        cancelled,
                        outstanding.is_some(),
                        "cancel_recv({token:?}) with {:?} outstanding",
                        self.waiting
                    );
                    if let Some(i) = outstanding {
                        self.waiting.remove(i);
                    }
                }
            }
            Call::PushSend { fds: kinds, many } => {
                // Every descriptor goes to the passer, which closes it on
                // failure.
                let made: Vec<OwnedFd> = kinds.into_iter().filter_map(|k| fds.make(k)).collect();
                if many {
                    let count = made.len();
                    match passer.push_send_many(made) {
                        Ok(_) => {
                            self.pushed_sends += count as u64;
                            self.unsent_fds.extend(std::iter::repeat_n(1, count));
                        }
                        // Refused: handed back whole, the application's.
                        Err(refused) => self.handed_back.extend(refused.into_inner()),
                    }
                } else {
                    for fd in made {
                        match passer.push_send(fd) {
                            Ok(_) => {
                                self.pushed_sends += 1;
                                self.unsent_fds.push_back(1);
                            }
                            Err(refused) => self.handed_back.push(refused.into_inner()),
                        }
                    }
                }
            }
            Call::Readable => {
                passer.handle_readable(self.now);
                assert_ne!(
                    passer.interest().read,
                    Want::Now,
                    "readable left work undone"
                );
            }
            Call::Writable => {
                passer.handle_writable(self.now);
                assert_ne!(
                    passer.interest().write,
                    Want::Now,
                    "writable left work undone"
                );
            }
            Call::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.timeout(passer);
            }
            Call::ToDeadline => {
                if let Some(at) = passer.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.timeout(passer);
            }
            Call::Close => {
                // Outstanding requests end with the passer, without an event.
                passer.close();
                self.closed = true;
                self.waiting.clear();
            }
        }
        self.drain(passer, fds);
        self.check(passer);
    }

    fn timeout<S: Sys>(&mut self, passer: &mut Passer<S>) {
        passer.handle_timeout(self.now);
        if let Some(at) = passer.poll_timeout() {
            assert!(at > self.now, "a deadline already due after handle_timeout");
        }
    }

    fn new_recv_token(&mut self, token: RecvToken) {
        assert!(
            self.last_recv_token < Some(token),
            "receive token {token:?} after {:?}",
            self.last_recv_token
        );
        self.last_recv_token = Some(token);
    }

    /// Takes every event and checks it against the model.
    pub fn drain<S: Sys, K>(&mut self, passer: &mut Passer<S>, fds: &mut impl Descriptors<K>) {
        while let Some(event) = passer.poll_event() {
            assert!(!self.failed, "{event:?} after Failed");
            match event {
                Event::Received(token, fd) => {
                    let oldest = self.waiting.pop_front();
                    assert_eq!(
                        oldest,
                        Some((token, false)),
                        "Received({token:?}) is not the oldest request, or not a descriptor request"
                    );
                    fds.received(fd);
                }
                Event::ReceivedMessage(token, message) => {
                    let oldest = self.waiting.pop_front();
                    assert_eq!(
                        oldest,
                        Some((token, true)),
                        "ReceivedMessage({token:?}) is not the oldest request, or not a message request"
                    );
                    self.received_message(passer, message, fds);
                }
                Event::RecvRefused(token, error) => {
                    let oldest = self.waiting.pop_front();
                    assert_eq!(
                        oldest,
                        Some((token, false)),
                        "RecvRefused({token:?}) is not the oldest request, or not a descriptor request"
                    );
                    match error {
                        Error::UnexpectedMessage {
                            payload_len,
                            descriptors,
                        } => assert!(
                            payload_len > 0 || descriptors == 0,
                            "a message of descriptors only refused a descriptor request"
                        ),
                        other => panic!("a descriptor request refused with {other:?}"),
                    }
                }
                Event::Sent(token) => {
                    assert!(self.last_sent < Some(token), "Sent({token:?}) again");
                    assert!(token.0 < self.pushed_sends, "Sent({token:?}) never pushed");
                    let before = self.last_sent.map_or(0, |t| t.0 + 1);
                    for _ in before..=token.0 {
                        self.unsent_fds.pop_front();
                    }
                    self.last_sent = Some(token);
                }
                Event::Closed => {
                    assert!(!self.peer_closed, "Closed twice");
                    self.peer_closed = true;
                    self.waiting.clear();
                }
                Event::Failed(_) => {
                    self.failed = true;
                    self.waiting.clear();
                    // What the kernel never took is kept for the
                    // application: exactly the pushes not reported sent.
                    self.take_unsent(passer, "unsent handed back");
                }
                Event::SendFailed(_) => {
                    assert!(!self.send_failed, "SendFailed twice");
                    assert!(!self.failed, "SendFailed after Failed");
                    self.send_failed = true;
                    // As for a failure: exactly the pushes not reported
                    // sent come back, and receiving goes on.
                    self.take_unsent(passer, "unsent handed back after sending failed");
                    // Handed back: a later failure owes none of them.
                    self.pushed_sends = self.last_sent.map_or(0, |t| t.0 + 1);
                }
                other => panic!("an event this harness does not know: {other:?}"),
            }
        }
    }

    fn check<S: Sys>(&self, passer: &Passer<S>) {
        assert_eq!(
            passer.outstanding_recvs(),
            self.waiting.len(),
            "outstanding requests"
        );
        if self.failed || self.closed {
            let usable = passer.usable();
            assert!(usable.is_err(), "usable after failing or closing");
            if self.failed {
                assert!(
                    !matches!(usable, Err(Error::Closed)),
                    "a failed passer reports a local close"
                );
            }
            assert_eq!(passer.held_descriptors(), 0, "holds descriptors when done");
            assert!(!passer.interest().read.is_wanted(), "reads when done");
            assert!(!passer.interest().write.is_wanted(), "writes when done");
            assert_eq!(passer.poll_timeout(), None, "a deadline when done");
        } else {
            let sent = self.last_sent.map_or(0, |t| t.0 + 1);
            assert_eq!(
                self.unsent_fds.len() as u64,
                self.pushed_sends - sent,
                "the model's unsent pushes"
            );
            let native = passer.config().wire.is_native();
            self.check_queued(passer.queued_sends(), native, "queued sends");
        }
    }

    /// The send queue holds the descriptors of the pushes not reported
    /// sent: all of them, except that a classic passer may have sent some
    /// of the front message's (it sends a message as one-descriptor
    /// messages, and reports it sent with its last), and that a native
    /// passer's front pushes may be in flight: their `sendmsg` was partly
    /// written, the kernel has their descriptors, and they are reported
    /// sent once the owed bytes are written. Returns how many front pushes
    /// are in flight.
    fn check_queued(&self, queued: usize, native: bool, what: &str) -> usize {
        if native {
            let in_flight = (0..=self.unsent_fds.len())
                .find(|&k| self.unsent_fds.iter().skip(k).sum::<usize>() == queued);
            return in_flight.unwrap_or_else(|| {
                panic!(
                    "{what}: {queued} queued is no suffix of the pushes not reported sent {:?}",
                    self.unsent_fds
                )
            });
        }
        let all: usize = self.unsent_fds.iter().sum();
        let front = self.unsent_fds.front().copied().unwrap_or(0);
        if front <= 1 {
            assert_eq!(queued, all, "{what}");
        } else {
            assert!(
                queued <= all && queued > all - front,
                "{what}: {queued} queued, pushes not reported sent hold {all}"
            );
        }
        0
    }

    /// `take_unsent_messages` after a failure: exactly the pushes not
    /// reported sent, in order, each whole (but the classic front's part).
    fn take_unsent<S: Sys>(&mut self, passer: &mut Passer<S>, what: &str) {
        let queued = passer.queued_sends();
        let native = passer.config().wire.is_native();
        self.check_queued(queued, native, what);
        let unsent = passer.take_unsent_messages();
        if native {
            // Pushes in flight when sending ended are the kernel's: neither
            // acknowledged nor handed back (`Event::Sent`'s docs). They are
            // at the front, and what comes back is the rest, whole.
            assert!(
                unsent.len() <= self.unsent_fds.len(),
                "{what}: {} messages back, {} not reported sent",
                unsent.len(),
                self.unsent_fds.len()
            );
            let in_flight = self.unsent_fds.len() - unsent.len();
            self.unsent_fds.drain(..in_flight);
        }
        assert_eq!(unsent.len(), self.unsent_fds.len(), "{what}: messages");
        let fds: usize = unsent.iter().map(|m| m.fds.len()).sum();
        assert_eq!(fds, queued, "{what}: descriptors");
        for (i, (message, expected)) in unsent.iter().zip(&self.unsent_fds).enumerate() {
            if i > 0 {
                assert_eq!(
                    message.fds.len(),
                    *expected,
                    "{what}: message {i} not whole"
                );
            }
        }
        self.unsent_fds.clear();
        for message in unsent {
            self.handed_back.extend(message.fds);
        }
        assert!(
            passer.take_unsent_messages().is_empty(),
            "{what}: taken twice"
        );
    }

    /// A message the passer delivered: within its own limits, whole.
    fn received_message<S: Sys, K>(
        &mut self,
        passer: &Passer<S>,
        message: Message,
        fds: &mut impl Descriptors<K>,
    ) {
        let config = passer.config();
        assert!(
            message.fds.len() <= config.max_fds_per_message,
            "a message of {} descriptors, over the limit of {}",
            message.fds.len(),
            config.max_fds_per_message
        );
        assert!(
            message.payload.len() <= config.max_payload_len,
            "a payload of {} bytes, over the limit of {}",
            message.payload.len(),
            config.max_payload_len
        );
        if !config.wire.is_native() {
            assert!(
                message.payload.is_empty() && message.fds.len() == 1,
                "a classic message is one descriptor"
            );
        }
        if !message.payload.is_empty() {
            self.payloads.push(message.payload);
        }
        for fd in message.fds {
            fds.received(fd);
        }
    }
}
