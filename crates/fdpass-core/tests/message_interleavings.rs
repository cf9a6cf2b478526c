//! Property tests for messages: two passers joined by the simulated kernel,
//! on the native wire (and on the classic wire, whose messages are single
//! descriptors), driven through random interleavings of message pushes of
//! random sizes (payload 0 to the peer's limit, 0 to its limit of
//! descriptors, empty messages too), descriptor and message requests, reads,
//! writes, timeouts with moving time, stream buffers of any size (so that
//! partial writes split frames anywhere, inside a header too), table limits
//! and injected faults, with both reservation strategies, as a stream or as
//! records (`SOCK_SEQPACKET`).
//!
//! After every step: every message arrives once, whole (its payload byte for
//! byte and its descriptors, read from their names), in order; requests of
//! both kinds are served in the order they were made, a descriptor request
//! taking a descriptor of a message of descriptors only and being refused by
//! any other; a passer holds no more than one read beyond what was asked
//! for, bytes included; everything it holds is open in its table and nothing
//! else is. At the end every descriptor was closed exactly once and none is
//! left open.
// Linux and Android only: its simulated kernel hands out memfds and identifies them by name in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod support;

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use fdpass_core::frame::{HEADER_LEN, HELLO_LEN};
use fdpass_core::{
    Config, Error, Event, Message, PushError, RecvToken, Reservation, SendToken, Want, Wire,
    MIN_PAYLOAD_LIMIT,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rustix::io::Errno;
use support::*;

#[derive(Debug, Clone, Copy)]
enum Fault {
    Send(Errno),
    /// The next `sendmsg` is a partial write of this many bytes.
    Partial(usize),
    Recv(Errno),
    Discard(Errno),
    Dup(Errno),
}

/// How many payload bytes a pushed message has, relative to the peer's
/// limit.
#[derive(Debug, Clone, Copy)]
enum Size {
    Bytes(usize),
    /// Exactly the peer's limit.
    Max,
    /// The peer's limit less this.
    BelowMax(usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// Push a message: a payload of this size and this many new descriptors
    /// (as many as the table lets the application open, at most the peer's
    /// limit).
    Message(Side, Size, usize),
    /// Push this many new descriptors, one `push_send` each.
    Send(Side, usize),
    /// Push this many new descriptors in one `push_send_many`.
    SendMany(Side, usize),
    /// This many descriptor requests.
    Recv(Side, usize),
    /// This many message requests.
    RecvMessage(Side, usize),
    /// `try_recv` (or `try_recv_message`); first make the passer read
    /// (leaving its events undrained) if the flag says so.
    TryRecv(Side, bool),
    TryRecvMessage(Side, bool),
    /// Withdraw one of the outstanding requests.
    Cancel(Side, Index),
    Readable(Side),
    Writable(Side),
    Timeout(Side),
    /// Fake time moves on by this many milliseconds.
    Advance(u64),
    /// One event-loop turn for both sides.
    Turn,
    /// The table of a side gets room for this many more descriptors than it
    /// holds besides those queued for sending (`None`: no limit); never
    /// below what is open on a sentinel side (see `interleavings.rs`).
    Room(Side, Option<i8>),
    Fault(Side, Fault),
    Close(Side),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireKind {
    Native,
    /// The classic wire with this batch (capped by the receiver's limit, so
    /// that a classic receiver accepts it).
    Classic(usize),
}

#[derive(Debug, Clone)]
struct Setup {
    wire: WireKind,
    max_fds: [usize; 2],
    max_payload: [usize; 2],
    reservations: [Reservation; 2],
    /// Bytes the stream to each side holds.
    capacity: [usize; 2],
    seqpacket: bool,
}

impl Setup {
    fn config(&self, side: Side) -> Config {
        let i = side.index();
        let wire = match self.wire {
            WireKind::Native => Wire::Native,
            WireKind::Classic(batch) => Wire::Classic {
                batch: batch.min(self.max_fds[side.peer().index()]).max(1),
            },
        };
        config(self.reservations[i], self.max_fds[i])
            .with_wire(wire)
            .with_max_payload_len(self.max_payload[i])
    }

    fn native(&self) -> bool {
        self.wire == WireKind::Native
    }
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn setup() -> impl Strategy<Value = Setup> {
    let max_fds = || {
        prop_oneof![
            Just(1usize),
            Just(2),
            Just(3),
            Just(7),
            Just(253),
            1usize..=253
        ]
    };
    let max_payload = || {
        prop_oneof![
            4 => Just(MIN_PAYLOAD_LIMIT),
            1 => MIN_PAYLOAD_LIMIT..=3 * MIN_PAYLOAD_LIMIT,
        ]
    };
    let reservation = || prop_oneof![Just(Reservation::Peek), Just(Reservation::Sentinel)];
    // Small buffers cut frames anywhere: inside the hello, inside a header,
    // inside a payload.
    let capacity = || {
        prop_oneof![
            Just(1usize),
            Just(3),
            Just(8),
            Just(9),
            Just(30),
            Just(4200),
            Just(1 << 20),
            1usize..=64,
        ]
    };
    let wire = prop_oneof![
        3 => Just(WireKind::Native),
        1 => (1usize..=8).prop_map(WireKind::Classic),
    ];
    (
        wire,
        [max_fds(), max_fds()],
        [max_payload(), max_payload()],
        [reservation(), reservation()],
        [capacity(), capacity()],
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(wire, max_fds, max_payload, reservations, capacity, seqpacket)| {
                // A record is taken whole: the stream must hold the largest
                // send (one frame of the largest payload, or the classic
                // wire's batch).
                let capacity = if seqpacket {
                    let largest = HEADER_LEN + max_payload[0].max(max_payload[1]);
                    capacity.map(|c| c.max(largest))
                } else {
                    capacity
                };
                Setup {
                    wire,
                    max_fds,
                    max_payload,
                    reservations,
                    capacity,
                    seqpacket,
                }
            },
        )
}

fn transient_fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        prop::sample::select(vec![
            Errno::AGAIN,
            Errno::INTR,
            Errno::TOOMANYREFS,
            Errno::NOBUFS,
            Errno::NOMEM,
        ])
        .prop_map(Fault::Send),
        (1usize..=12).prop_map(Fault::Partial),
        prop::sample::select(vec![Errno::AGAIN, Errno::INTR]).prop_map(Fault::Recv),
        Just(Fault::Discard(Errno::INTR)),
        prop::sample::select(vec![Errno::INTR, Errno::MFILE, Errno::NFILE]).prop_map(Fault::Dup),
    ]
}

fn fatal_fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        prop::sample::select(vec![Errno::PIPE, Errno::CONNRESET]).prop_map(Fault::Send),
        prop::sample::select(vec![Errno::CONNRESET, Errno::BADF]).prop_map(Fault::Recv),
        Just(Fault::Discard(Errno::CONNRESET)),
        Just(Fault::Dup(Errno::BADF)),
    ]
}

fn room() -> impl Strategy<Value = i8> {
    prop_oneof![4 => -2i8..3, 2 => 3i8..8, 1 => 8i8..=100]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        3 => Just(Size::Bytes(0)),
        4 => (1usize..=40).prop_map(Size::Bytes),
        1 => (41usize..=MIN_PAYLOAD_LIMIT).prop_map(Size::Bytes),
        1 => Just(Size::Max),
        1 => (1usize..=9).prop_map(Size::BelowMax),
    ]
}

fn op(fatal: bool) -> BoxedStrategy<Op> {
    let fds = prop_oneof![3 => 0usize..=3, 1 => 0usize..=253];
    let fault = if fatal {
        prop_oneof![3 => transient_fault(), 1 => fatal_fault()].boxed()
    } else {
        transient_fault().boxed()
    };
    let common = prop_oneof![
        6 => (side(), size(), fds).prop_map(|(s, p, n)| Op::Message(s, p, n)),
        2 => (side(), 1usize..=4).prop_map(|(s, n)| Op::Send(s, n)),
        1 => (side(), 0usize..=20).prop_map(|(s, n)| Op::SendMany(s, n)),
        2 => (side(), 1usize..=4).prop_map(|(s, n)| Op::Recv(s, n)),
        3 => (side(), 1usize..=4).prop_map(|(s, n)| Op::RecvMessage(s, n)),
        1 => (side(), any::<bool>()).prop_map(|(s, r)| Op::TryRecv(s, r)),
        1 => (side(), any::<bool>()).prop_map(|(s, r)| Op::TryRecvMessage(s, r)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Cancel(s, i)),
        3 => side().prop_map(Op::Readable),
        3 => side().prop_map(Op::Writable),
        2 => side().prop_map(Op::Timeout),
        2 => (0u64..12).prop_map(Op::Advance),
        4 => Just(Op::Turn),
        3 => (side(), prop::option::weighted(0.8, room())).prop_map(|(s, r)| Op::Room(s, r)),
        3 => (side(), fault).prop_map(|(s, f)| Op::Fault(s, f)),
    ];
    if fatal {
        prop_oneof![30 => common, 1 => side().prop_map(Op::Close)].boxed()
    } else {
        common.boxed()
    }
}

/// One message as the receiver must see it: its payload and the sequence
/// numbers of its descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    payload: Vec<u8>,
    fds: Vec<u64>,
}

/// The payload of the `n`-th message pushed: `len` bytes that differ from
/// every other message's.
fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What one side's application sees.
#[derive(Debug, Default)]
struct Receiver {
    /// Requests outstanding, oldest first, and whether each asked for a
    /// message.
    outstanding: VecDeque<(RecvToken, bool)>,
    /// Messages of the peer's `expected` delivered whole so far.
    delivered: usize,
    /// Descriptors of the next message taken by descriptor requests.
    taken: usize,
    /// Frame bytes of the messages delivered (for the bound on what is held).
    delivered_bytes: usize,
    sent: Vec<SendToken>,
    closed: usize,
    failed: Vec<Error>,
    send_failed: Vec<Error>,
}

struct Harness {
    fake: Fake,
    clock: Clock,
    setup: Setup,
    ends: [FakePasser; 2],
    app: [Receiver; 2],
    /// Every sequence number pushed by each side, accepted or refused.
    pushed: [Vec<u64>; 2],
    /// Pushes accepted by each side.
    pushes: [u64; 2],
    /// Pushes handed back by `take_unsent_messages`, up to this count.
    taken_back: [u64; 2],
    /// The messages each side's peer must receive, in order.
    expected: [Vec<Unit>; 2],
    /// Descriptors handed back to (and closed by) each side's application.
    handed_back: [Vec<u64>; 2],
    closed_locally: [bool; 2],
    messages: u64,
    fatal: bool,
}

impl Harness {
    fn new(setup: Setup, fatal: bool) -> Harness {
        let fake = Fake::new(if fatal {
            "message-fatal"
        } else {
            "message-delivery"
        });
        fake.set_seqpacket(setup.seqpacket);
        let ends = [Side::A, Side::B].map(|side| fake.passer(side, setup.config(side)).unwrap());
        for side in Side::BOTH {
            fake.set_capacity(side, setup.capacity[side.index()]);
        }
        Harness {
            fake,
            clock: Clock::new(),
            setup,
            ends,
            app: Default::default(),
            pushed: Default::default(),
            pushes: [0; 2],
            taken_back: [0; 2],
            expected: Default::default(),
            handed_back: Default::default(),
            closed_locally: [false; 2],
            messages: 0,
            fatal,
        }
    }

    fn failed(&self, side: Side) -> bool {
        !self.app[side.index()].failed.is_empty()
    }

    fn sending_ended(&self, side: Side) -> bool {
        self.failed(side) || !self.app[side.index()].send_failed.is_empty()
    }

    /// A new numbered descriptor for `side` to send, unless its table is
    /// limited and full (a sentinel side: its reservation is promised only
    /// for a table nothing fills past the limit).
    fn new_fd(&self, side: Side) -> Option<OwnedFd> {
        match self.setup.reservations[side.index()] {
            Reservation::Sentinel => self.fake.try_numbered(side),
            _ => Some(self.fake.numbered(side)),
        }
    }

    /// The peer's limits as this side will learn them.
    fn peer_limits(&self, side: Side) -> (usize, usize) {
        let peer = side.peer().index();
        (self.setup.max_fds[peer], self.setup.max_payload[peer])
    }

    /// Records an accepted push of `fds` with `payload`.
    fn accepted(&mut self, side: Side, token: SendToken, payload: Vec<u8>, fds: Vec<u64>) {
        let i = side.index();
        assert_eq!(token, SendToken(self.pushes[i]), "tokens count pushes");
        self.pushes[i] += 1;
        if self.setup.native() {
            self.expected[i].push(Unit { payload, fds });
        } else {
            // The classic wire: each descriptor is a message of its own.
            assert!(payload.is_empty());
            for fd in fds {
                self.expected[i].push(Unit {
                    payload: Vec::new(),
                    fds: vec![fd],
                });
            }
        }
    }

    /// The application closes what a refused push handed back.
    fn refused(&mut self, side: Side, error: &str, fds: Vec<OwnedFd>, seqs: &[u64]) {
        assert!(
            self.sending_ended(side) || self.closed_locally[side.index()],
            "{side:?} refused a push while open: {error}"
        );
        let back: Vec<Label> = fds
            .into_iter()
            .map(|fd| self.fake.app_close(side, fd))
            .collect();
        let expected: Vec<Label> = seqs.iter().copied().map(Label::Seq).collect();
        assert_eq!(back, expected, "a refused push comes back whole, in order");
        self.handed_back[side.index()].extend(seqs);
    }

    fn apply(&mut self, op: &Op) {
        let now = self.clock.now();
        match *op {
            Op::Message(side, size, n) => {
                let i = side.index();
                let (max_fds, max_payload) = self.peer_limits(side);
                let len = if self.setup.native() {
                    match size {
                        Size::Bytes(n) => n.min(max_payload),
                        Size::Max => max_payload,
                        Size::BelowMax(k) => max_payload - k,
                    }
                } else {
                    0
                };
                // A stream of a few bytes splits frames anywhere already;
                // kilobytes through it would only cost time.
                let len = if self.setup.capacity[side.peer().index()] < 64 {
                    len.min(64)
                } else {
                    len
                };
                // A classic message has at least one descriptor.
                let n = if self.setup.native() { n } else { n.max(1) };
                let fds: Vec<OwnedFd> = (0..n.min(max_fds))
                    .map_while(|_| self.new_fd(side))
                    .collect();
                if !self.setup.native() && fds.is_empty() {
                    return self.check();
                }
                let seqs: Vec<u64> = fds.iter().map(|fd| self.fake.seq(fd.as_fd())).collect();
                self.pushed[i].extend(&seqs);
                let body = payload(self.messages, len);
                self.messages += 1;
                let pushed = self.ends[i].push_send_message(Message::new(body.clone(), fds));
                match pushed {
                    Ok(token) => self.accepted(side, token, body, seqs),
                    Err(e) => {
                        let text = format!("{e:?}");
                        assert!(!matches!(e, PushError::Refused(..)), "{text}");
                        self.refused(side, &text, e.into_inner().fds, &seqs);
                    }
                }
            }
            Op::Send(side, n) => {
                for _ in 0..n {
                    let Some(fd) = self.new_fd(side) else { break };
                    let seq = self.fake.seq(fd.as_fd());
                    self.pushed[side.index()].push(seq);
                    match self.ends[side.index()].push_send(fd) {
                        Ok(token) => self.accepted(side, token, Vec::new(), vec![seq]),
                        Err(e) => {
                            let text = format!("{e:?}");
                            self.refused(side, &text, vec![e.into_inner()], &[seq]);
                        }
                    }
                }
            }
            Op::SendMany(side, n) => {
                let i = side.index();
                let batch: Vec<OwnedFd> = (0..n).map_while(|_| self.new_fd(side)).collect();
                let seqs: Vec<u64> = batch.iter().map(|fd| self.fake.seq(fd.as_fd())).collect();
                self.pushed[i].extend(&seqs);
                match self.ends[i].push_send_many(batch) {
                    Ok(last) => {
                        for &seq in &seqs {
                            let token = SendToken(self.pushes[i]);
                            self.accepted(side, token, Vec::new(), vec![seq]);
                        }
                        let expected = (!seqs.is_empty()).then(|| SendToken(self.pushes[i] - 1));
                        assert_eq!(last, expected, "the last token of the batch");
                    }
                    Err(e) => {
                        let text = format!("{e:?}");
                        self.refused(side, &text, e.into_inner(), &seqs);
                    }
                }
            }
            Op::Recv(side, n) | Op::RecvMessage(side, n) => {
                let message = matches!(op, Op::RecvMessage(..));
                let i = side.index();
                for _ in 0..n {
                    let pushed = if message {
                        self.ends[i].push_recv_message()
                    } else {
                        self.ends[i].push_recv()
                    };
                    match pushed {
                        Ok(token) => self.app[i].outstanding.push_back((token, message)),
                        Err(Error::PeerClosed) => {
                            assert!(self.app[i].closed > 0, "PeerClosed before Closed")
                        }
                        Err(e) => assert!(
                            self.failed(side) || self.closed_locally[i],
                            "{side:?} refused a request while open: {e:?}"
                        ),
                    }
                    // A request may be served at once from what was read ahead.
                    self.collect(side);
                }
            }
            Op::TryRecv(side, readable_first) | Op::TryRecvMessage(side, readable_first) => {
                let message = matches!(op, Op::TryRecvMessage(..));
                let i = side.index();
                if readable_first {
                    self.ends[i].handle_readable(now);
                }
                let taken = if message {
                    self.ends[i]
                        .try_recv_message()
                        .map(|(t, m)| Event::ReceivedMessage(t, m))
                } else {
                    self.ends[i]
                        .try_recv()
                        .map(|(t, fd)| Event::Received(t, fd))
                };
                if let Some(event) = taken {
                    // Undrained events would hold earlier messages, for
                    // requests still outstanding here.
                    assert!(
                        self.app[i].outstanding.is_empty(),
                        "{side:?}: try_recv ahead of requests or events"
                    );
                    let token = match &event {
                        Event::ReceivedMessage(t, _) | Event::Received(t, _) => *t,
                        _ => unreachable!(),
                    };
                    self.app[i].outstanding.push_back((token, message));
                    self.on_event(side, event);
                }
            }
            Op::Cancel(side, pick) => {
                let i = side.index();
                let outstanding = &mut self.app[i].outstanding;
                if outstanding.is_empty() {
                    assert!(!self.ends[i].cancel_recv(RecvToken(u64::MAX)));
                } else {
                    let (token, _) = outstanding
                        .remove(pick.index(outstanding.len()))
                        .expect("picked");
                    assert!(self.ends[i].cancel_recv(token), "{token:?} was outstanding");
                    assert!(
                        !self.ends[i].cancel_recv(token),
                        "{token:?} withdrawn twice"
                    );
                }
            }
            Op::Readable(side) => self.ends[side.index()].handle_readable(now),
            Op::Writable(side) => self.ends[side.index()].handle_writable(now),
            Op::Timeout(side) => self.ends[side.index()].handle_timeout(now),
            Op::Advance(by) => {
                self.clock.advance(ms(by));
            }
            Op::Turn => {
                for side in Side::BOTH {
                    self.turn(side, now);
                }
            }
            Op::Room(side, room) => {
                let open = self.fake.table_len(side);
                let settled = open - self.ends[side.index()].queued_sends();
                let limit = room.map(|r| {
                    let limit = (settled as i64 + i64::from(r)).max(0) as usize;
                    match self.setup.reservations[side.index()] {
                        Reservation::Sentinel => limit.max(open),
                        _ => limit,
                    }
                });
                self.fake.set_limit(side, limit);
            }
            Op::Fault(side, fault) => match fault {
                Fault::Send(errno) => self.fake.on_send(side, SendStep::Fail(errno)),
                Fault::Partial(k) => self.fake.on_send(side, SendStep::Take(k)),
                Fault::Recv(errno) => self.fake.on_recv(side, RecvStep::Fail(errno)),
                Fault::Discard(errno) => self.fake.on_discard(side, RecvStep::Fail(errno)),
                Fault::Dup(errno) => self.fake.on_dup(side, errno),
            },
            Op::Close(side) => {
                self.ends[side.index()].close();
                if !self.failed(side) {
                    self.closed_locally[side.index()] = true;
                }
                self.app[side.index()].outstanding.clear();
            }
        }
        for side in Side::BOTH {
            self.collect(side);
        }
        self.check();
    }

    /// One turn of an event loop for one side (as `support::turn`).
    fn turn(&mut self, side: Side, now: Instant) {
        let end = &mut self.ends[side.index()];
        end.handle_timeout(now);
        let interest = end.interest();
        if interest.write == Want::Now
            || (interest.write == Want::WhenReady && self.fake.writable(side))
        {
            end.handle_writable(now);
        }
        let interest = end.interest();
        if interest.read == Want::Now
            || (interest.read == Want::WhenReady && self.fake.readable(side))
        {
            end.handle_readable(now);
        }
        self.collect(side);
    }

    fn collect(&mut self, side: Side) {
        while let Some(event) = self.ends[side.index()].poll_event() {
            self.on_event(side, event);
        }
    }

    /// Checks one event against the model: which request it serves and
    /// what it brings.
    fn on_event(&mut self, side: Side, event: Event) {
        let i = side.index();
        let peer = side.peer().index();
        let head = |h: &Harness| -> Unit {
            let app = &h.app[i];
            let unit = h.expected[peer].get(app.delivered).unwrap_or_else(|| {
                panic!(
                    "{side:?} got a message beyond the {} sent",
                    h.expected[peer].len()
                )
            });
            Unit {
                payload: unit.payload.clone(),
                fds: unit.fds[app.taken..].to_vec(),
            }
        };
        let serve = |h: &mut Harness, token: RecvToken, message: bool| {
            let oldest = h.app[i].outstanding.pop_front();
            assert_eq!(
                oldest,
                Some((token, message)),
                "{side:?}: served out of order, or a request of the other kind"
            );
        };
        match event {
            Event::Sent(token) => {
                let app = &mut self.app[i];
                if let Some(last) = app.sent.last() {
                    assert!(token > *last, "{side:?}: Sent went backwards");
                }
                assert!(token.0 < self.pushes[i], "{side:?}: Sent ahead of pushes");
                app.sent.push(token);
            }
            Event::Received(token, fd) => {
                serve(self, token, false);
                let unit = head(self);
                assert!(
                    unit.payload.is_empty() && !unit.fds.is_empty(),
                    "{side:?}: a descriptor request took from {unit:?}"
                );
                let label = self.fake.app_close(side, fd);
                assert_eq!(label, Label::Seq(unit.fds[0]), "{side:?}: wrong descriptor");
                let app = &mut self.app[i];
                app.taken += 1;
                if unit.fds.len() == 1 {
                    app.delivered += 1;
                    app.taken = 0;
                    app.delivered_bytes += HEADER_LEN;
                }
            }
            Event::ReceivedMessage(token, message) => {
                serve(self, token, true);
                let unit = head(self);
                let fds: Vec<Label> = message
                    .fds
                    .into_iter()
                    .map(|fd| self.fake.app_close(side, fd))
                    .collect();
                let expected: Vec<Label> = unit.fds.iter().copied().map(Label::Seq).collect();
                assert_eq!(fds, expected, "{side:?}: a message's descriptors");
                assert!(
                    message.payload == unit.payload,
                    "{side:?}: a payload of {} bytes where {} were sent, or other bytes",
                    message.payload.len(),
                    unit.payload.len()
                );
                let app = &mut self.app[i];
                app.delivered += 1;
                app.taken = 0;
                app.delivered_bytes += HEADER_LEN + unit.payload.len();
            }
            Event::RecvRefused(token, error) => {
                serve(self, token, false);
                let unit = head(self);
                assert!(
                    !unit.payload.is_empty() || unit.fds.is_empty(),
                    "{side:?}: {unit:?} refused a descriptor request"
                );
                match error {
                    Error::UnexpectedMessage {
                        payload_len,
                        descriptors,
                    } => assert_eq!(
                        (payload_len, descriptors),
                        (unit.payload.len(), unit.fds.len()),
                        "{side:?}: the refusal names the message"
                    ),
                    other => panic!("{side:?}: refused with {other:?}"),
                }
            }
            Event::Closed => self.app[i].closed += 1,
            Event::Failed(error) => self.app[i].failed.push(error),
            Event::SendFailed(error) => self.app[i].send_failed.push(error),
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Takes back what a failed (or sending-failed, or closed) passer did not
    /// send: whole messages, in push order; the application closes them.
    fn take_unsent(&mut self, side: Side) {
        let i = side.index();
        let queued = self.ends[i].queued_sends();
        let unsent = self.ends[i].take_unsent_messages();
        let fds: usize = unsent.iter().map(|m| m.fds.len()).sum();
        assert_eq!(fds, queued, "{side:?}: unsent handed back");
        let labels: Vec<Label> = unsent
            .into_iter()
            .flat_map(|m| m.fds)
            .map(|fd| self.fake.app_close(side, fd))
            .collect();
        assert!(
            labels.windows(2).all(|w| w[0] < w[1]),
            "{side:?}: unsent out of order: {labels:?}"
        );
        self.handed_back[i].extend(labels.iter().filter_map(Label::seq));
        self.taken_back[i] = self.pushes[i];
    }

    /// Pushes neither acknowledged nor handed back.
    fn unsent_pushes(&self, side: Side) -> u64 {
        let i = side.index();
        let acked = self.app[i].sent.last().map_or(0, |t| t.0 + 1);
        self.pushes[i] - acked.max(self.taken_back[i])
    }

    /// Descriptors of the peer's that `side` holds (received, not handed
    /// out): the numbered ones in its table but its own queued sends.
    fn held_received(&self, side: Side) -> usize {
        self.fake.numbered_open(side) - self.ends[side.index()].queued_sends()
    }

    /// The invariants that hold after every step.
    fn check(&mut self) {
        for side in Side::BOTH {
            let i = side.index();
            let app = &self.app[i];
            if !self.fatal {
                assert!(app.failed.is_empty(), "{side:?} failed: {:?}", app.failed);
                assert!(app.send_failed.is_empty(), "{side:?}: sending failed");
                assert_eq!(app.closed, 0, "{side:?}: end of stream");
            }
            assert!(app.failed.len() <= 1, "{side:?}: failure reported twice");
            assert!(app.send_failed.len() <= 1, "{side:?}: SendFailed twice");
            assert!(app.closed <= 1, "{side:?}: end of stream reported twice");
            let send_failed_only = !app.send_failed.is_empty() && app.failed.is_empty();
            if send_failed_only && !self.closed_locally[i] {
                self.take_unsent(side);
                assert!(self.ends[i].usable().is_ok(), "{side:?}: still receiving");
                assert_eq!(self.ends[i].interest().write, Want::Idle);
            }
            let app = &mut self.app[i];
            if app.closed > 0 || !app.failed.is_empty() {
                app.outstanding.clear();
            }
            assert_eq!(
                self.ends[i].outstanding_recvs(),
                app.outstanding.len(),
                "{side:?}: outstanding requests"
            );

            if self.failed(side) || self.closed_locally[i] {
                self.take_unsent(side);
                let end = &self.ends[i];
                assert!(end.usable().is_err());
                assert_eq!(
                    end.held_descriptors(),
                    0,
                    "{side:?} holds descriptors after the end"
                );
                assert_eq!(
                    self.fake.table(side),
                    Vec::<Label>::new(),
                    "{side:?}: table after the end"
                );
                assert_eq!(end.poll_timeout(), None);
                assert_eq!(end.interest().read, Want::Idle);
                assert_eq!(end.interest().write, Want::Idle);
                continue;
            }

            let end = &self.ends[i];
            assert_eq!(
                end.held_descriptors(),
                self.fake.table_len(side),
                "{side:?}: holds {} but its table has {:?}",
                end.held_descriptors(),
                self.fake.table(side)
            );

            // The read bound: what is held beyond the requests is at most
            // one read: the descriptors one read installs plus those of a
            // send whose frames were still incomplete, and one largest frame
            // of bytes (the hello aside, once read).
            let max_fds = self.setup.max_fds[i];
            let held = self.held_received(side);
            assert!(
                held <= 2 * max_fds,
                "{side:?} holds {held} received descriptors with a limit of {max_fds}"
            );
            if self.setup.native() {
                let hello = if end.peer_limits().is_some() {
                    HELLO_LEN
                } else {
                    0
                };
                let held_bytes =
                    self.fake.consumed_bytes(side) - hello - self.app[i].delivered_bytes;
                let bound = HEADER_LEN + self.setup.max_payload[i];
                assert!(
                    held_bytes <= bound,
                    "{side:?} holds {held_bytes} bytes read beyond what was handed out, more than one frame ({bound})"
                );
            }

            // A push that waits for the peer's hello waits on reading it;
            // any other waits on writing or a deadline.
            let interest = end.interest();
            if self.unsent_pushes(side) > 0 && interest.write == Want::Idle {
                let reads_hello = end.peer_limits().is_none() && interest.read != Want::Idle;
                assert!(
                    end.poll_timeout().is_some() || reads_hello,
                    "{side:?}: {} push(es) stuck, nothing to wake them (peer closed: {}, its hello read: {})",
                    self.unsent_pushes(side),
                    end.is_peer_closed(),
                    end.peer_limits().is_some()
                );
            }
            if end.outstanding_recvs() > 0 && !end.is_peer_closed() && interest.read == Want::Idle {
                assert!(end.poll_timeout().is_some(), "{side:?}: receiving stuck");
            }
        }
    }

    /// Runs the event loop until nothing moves (as `support::pump`).
    fn pump(&mut self) {
        for _ in 0..1_000_000 {
            let before = self.fake.call_count();
            let now = self.clock.now();
            for side in Side::BOTH {
                self.turn(side, now);
            }
            self.check();
            if self.fake.call_count() != before {
                continue;
            }
            for side in Side::BOTH {
                let interest = self.ends[side.index()].interest();
                assert!(
                    interest.read != Want::Now && interest.write != Want::Now,
                    "{side:?} wants to act now ({interest:?}) but its handlers made no call"
                );
            }
            let next = self.ends.iter().filter_map(|e| e.poll_timeout()).min();
            let Some(at) = next else { return };
            self.clock.set(at.max(self.clock.now()));
        }
        let calls = self.fake.calls();
        panic!(
            "the passers never settled; the last calls: {:#?}\nA: {:#?}\nB: {:#?}",
            &calls[calls.len().saturating_sub(16)..],
            self.ends[0],
            self.ends[1]
        );
    }

    /// Lifts every fault and limit, asks for every message still owed (with
    /// message requests: descriptor requests still outstanding may be
    /// refused), and runs the event loop until nothing moves.
    fn settle(&mut self) {
        self.fake.clear_script();
        for side in Side::BOTH {
            self.fake.set_limit(side, None);
        }
        for side in Side::BOTH {
            let i = side.index();
            let asked = self.app[i].outstanding.iter().filter(|(_, m)| *m).count();
            let owed = self.expected[side.peer().index()]
                .len()
                .saturating_sub(self.app[i].delivered + asked);
            self.apply(&Op::RecvMessage(side, owed));
        }
        self.pump();
        self.check();
    }

    /// Drops both passers and checks that each pushed descriptor was closed
    /// exactly once, and that nothing is left open.
    fn finish(self) {
        let Harness {
            fake,
            ends,
            pushed,
            handed_back,
            ..
        } = self;
        drop(ends);
        for side in Side::BOTH {
            let closed = fake.closed_by(side);
            let back = &handed_back[side.index()];
            for seq in &pushed[side.index()] {
                let times = closed.iter().filter(|l| **l == Label::Seq(*seq)).count()
                    + back.iter().filter(|b| *b == seq).count();
                assert_eq!(times, 1, "{side:?} closed {seq} {times} times");
            }
        }
        fake.finish();
    }
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(96))]

    /// Guarantees 1, 3 and 4 for messages under transient trouble: once it
    /// is lifted, every message sent arrives once, whole, in order, and is
    /// acknowledged; nothing leaks.
    #[test]
    fn every_message_arrives_once_whole_and_in_order(
        setup in setup(),
        ops in prop::collection::vec(op(false), 1..60),
    ) {
        let mut h = Harness::new(setup, false);
        for op in &ops {
            h.apply(op);
        }
        h.settle();
        for side in Side::BOTH {
            let i = side.index();
            let peer = side.peer().index();
            prop_assert_eq!(h.app[i].delivered, h.expected[peer].len(), "{:?} is missing messages", side);
            let acked = h.app[i].sent.last().map_or(0, |t| t.0 + 1);
            prop_assert_eq!(acked, h.pushes[i], "{:?}: not all acknowledged", side);
            prop_assert_eq!(h.ends[i].queued_sends(), 0);
        }
        h.finish();
    }

    /// Fatal faults and local closes: what did arrive is whole and in order,
    /// a failed passer holds nothing and hands back its unsent messages
    /// whole, and nothing leaks.
    #[test]
    fn a_failure_hands_back_whole_messages_and_leaks_nothing(
        setup in setup(),
        ops in prop::collection::vec(op(true), 1..60),
    ) {
        let mut h = Harness::new(setup, true);
        for op in &ops {
            h.apply(op);
        }
        h.settle();
        h.finish();
    }
}

/// The smallest case the properties found for a peek cut short: a message
/// of the largest payload and no descriptor, then a message of one
/// descriptor. The first read ends inside the first message's bytes; Linux's
/// peek then returns the second message's descriptor too (see the fake's
/// `sim_recv`), which the read that consumes the peeked bytes does not take.
/// The second message must still get its descriptor exactly once, and the
/// receiver must not fail.
#[test]
fn a_peek_cut_short_inside_a_payload_never_takes_a_later_messages_descriptors() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let setup = Setup {
            wire: WireKind::Native,
            max_fds: [1, 1],
            max_payload: [MIN_PAYLOAD_LIMIT, MIN_PAYLOAD_LIMIT],
            reservations: [reservation, reservation],
            capacity: [1, 4200],
            seqpacket: false,
        };
        let mut h = Harness::new(setup, false);
        h.apply(&Op::Message(Side::A, Size::Max, 0));
        h.apply(&Op::Message(Side::A, Size::Bytes(0), 1));
        h.settle();
        assert_eq!(h.app[1].delivered, 2, "{reservation:?}");
        h.finish();
    }
}

/// Found by the `control_data` fuzz target (decoded input: sentinel, a
/// limit of 156, no request, one read answered with 0 bytes and
/// `MSG_TRUNC`): the read of the peer's hello, made with no request
/// outstanding, must judge truncation before taking 0 bytes for the end of
/// the stream, as every other read does. A truncated read is never the
/// peer's orderly close.
#[test]
fn a_truncated_read_of_the_hello_is_never_an_orderly_close() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let fake = Fake::new("truncated-hello");
        let mut b = fake
            .passer(Side::B, native_config(reservation, 156))
            .unwrap();
        fake.on_recv(
            Side::B,
            RecvStep::Answer(Msg {
                bytes: 0,
                truncated_data: true,
                ..Msg::default()
            }),
        );
        b.handle_readable(Instant::now());
        let events: Vec<Event> = std::iter::from_fn(|| b.poll_event()).collect();
        assert!(
            !events.iter().any(|e| matches!(e, Event::Closed)),
            "{reservation:?}: a truncated read was taken for the end of the stream: {events:?}"
        );
        assert!(
            matches!(
                events.as_slice(),
                [Event::Failed(Error::Protocol(
                    fdpass_core::ProtocolError::MessageTooLong { .. }
                ))]
            ),
            "{reservation:?}: {events:?}"
        );
        drop(b);
        fake.finish();
    }
}
