//! Property tests: two passers joined by the simulated kernel, driven through
//! random interleavings of pushes, cancellations, readiness, timeouts with
//! moving time, table limits and injected faults.
//!
//! After every step: descriptors arrive exactly once and in order (read from
//! their names), requests are fulfilled oldest first, everything a passer
//! holds is open in its table and nothing else is, a passer with work never
//! sits idle without a deadline, and a failed or closed passer holds nothing.
//! At the end every descriptor was closed exactly once and none is left open.
// Linux and Android only: its simulated kernel hands out memfds and identifies them by name in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod support;

use std::collections::VecDeque;
use std::os::fd::AsFd;

use fdpass_core::{Error, RecvToken, Reservation, SendToken, Want};
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

#[derive(Debug, Clone)]
enum Op {
    /// Push this many new descriptors (as many as the table lets the
    /// application open).
    Send(Side, usize),
    /// Push this many new descriptors in one `push_send_many`.
    SendMany(Side, usize),
    Recv(Side, usize),
    /// Take a descriptor read ahead with `try_recv`; first make the passer
    /// read (leaving its events undrained) if the flag says so.
    TryRecv(Side, bool),
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
    /// holds besides those queued for sending (`None`: no limit). On a
    /// sentinel side the limit never drops below what is open: its
    /// reservation is promised only for tables that others fill up to the
    /// limit, not past it.
    Room(Side, Option<i8>),
    Fault(Side, Fault),
    Close(Side),
}

#[derive(Debug, Clone)]
struct Setup {
    max_fds: usize,
    reservations: [Reservation; 2],
    /// Bytes the stream to each side holds.
    capacity: [usize; 2],
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn setup() -> impl Strategy<Value = Setup> {
    let max_fds = prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        Just(7),
        Just(64),
        Just(253),
        1usize..=253,
    ];
    let reservation = || prop_oneof![Just(Reservation::Peek), Just(Reservation::Sentinel)];
    let capacity = || prop_oneof![Just(1usize), Just(2), Just(5), Just(64), Just(1 << 20)];
    (
        max_fds,
        [reservation(), reservation()],
        [capacity(), capacity()],
    )
        .prop_map(|(max_fds, reservations, capacity)| Setup {
            max_fds,
            reservations,
            capacity,
        })
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
        (1usize..=4).prop_map(Fault::Partial),
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

/// Room left in a table: mostly nearly full, sometimes with space for part
/// of a large message.
fn room() -> impl Strategy<Value = i8> {
    prop_oneof![4 => -2i8..3, 2 => 3i8..8, 1 => 8i8..=100]
}

fn op(fatal: bool) -> BoxedStrategy<Op> {
    let sizes = prop_oneof![6 => 1usize..=4, 1 => 1usize..=300];
    let fault = if fatal {
        prop_oneof![3 => transient_fault(), 1 => fatal_fault()].boxed()
    } else {
        transient_fault().boxed()
    };
    let common = prop_oneof![
        3 => (side(), sizes).prop_map(|(s, n)| Op::Send(s, n)),
        1 => (side(), 0usize..=200).prop_map(|(s, n)| Op::SendMany(s, n)),
        3 => (side(), 1usize..=6).prop_map(|(s, n)| Op::Recv(s, n)),
        2 => (side(), any::<bool>()).prop_map(|(s, r)| Op::TryRecv(s, r)),
        1 => (side(), any::<Index>()).prop_map(|(s, i)| Op::Cancel(s, i)),
        3 => side().prop_map(Op::Readable),
        3 => side().prop_map(Op::Writable),
        2 => side().prop_map(Op::Timeout),
        2 => (0u64..12).prop_map(Op::Advance),
        3 => Just(Op::Turn),
        4 => (side(), prop::option::weighted(0.8, room())).prop_map(|(s, r)| Op::Room(s, r)),
        3 => (side(), fault).prop_map(|(s, f)| Op::Fault(s, f)),
    ];
    if fatal {
        prop_oneof![30 => common, 1 => side().prop_map(Op::Close)].boxed()
    } else {
        common.boxed()
    }
}

struct Harness {
    fake: Fake,
    clock: Clock,
    setup: Setup,
    ends: [FakePasser; 2],
    seen: [Seen; 2],
    /// Every sequence number pushed by each side, accepted or refused.
    pushed: [Vec<u64>; 2],
    /// Those the passer accepted, in order: what the peer must receive.
    accepted: [Vec<u64>; 2],
    /// Those the passer handed back (refused, or unsent at a failure),
    /// which the application closed.
    handed_back: [Vec<u64>; 2],
    /// Requests outstanding, oldest first.
    outstanding: [VecDeque<RecvToken>; 2],
    /// Entries of `seen[i].received` and `seen[i].sent` already checked.
    checked_received: [usize; 2],
    checked_sent: [usize; 2],
    closed_locally: [bool; 2],
    fatal: bool,
}

impl Harness {
    fn new(setup: Setup, fatal: bool) -> Harness {
        let fake = Fake::new(if fatal { "fatal" } else { "delivery" });
        let end = |side: Side| {
            let cfg = config(setup.reservations[side.index()], setup.max_fds);
            fake.passer(side, cfg).expect("passer")
        };
        let ends = [end(Side::A), end(Side::B)];
        for side in Side::BOTH {
            fake.set_capacity(side, setup.capacity[side.index()]);
        }
        Harness {
            fake,
            clock: Clock::new(),
            setup,
            ends,
            seen: Default::default(),
            pushed: Default::default(),
            accepted: Default::default(),
            handed_back: Default::default(),
            outstanding: Default::default(),
            checked_received: [0; 2],
            checked_sent: [0; 2],
            closed_locally: [false; 2],
            fatal,
        }
    }

    fn failed(&self, side: Side) -> bool {
        !self.seen[side.index()].failed.is_empty()
    }

    /// Pushes are refused after a failure and after sending alone failed.
    fn sending_ended(&self, side: Side) -> bool {
        self.failed(side) || !self.seen[side.index()].send_failed.is_empty()
    }

    fn apply(&mut self, op: &Op) {
        let now = self.clock.now();
        match *op {
            Op::Send(side, n) => {
                for _ in 0..n {
                    // The sentinel promise needs a table that nothing fills
                    // past its limit; a peek side's table may overflow.
                    let fd = match self.setup.reservations[side.index()] {
                        Reservation::Sentinel => self.fake.try_numbered(side),
                        _ => Some(self.fake.numbered(side)),
                    };
                    let Some(fd) = fd else { break };
                    let seq = self.fake.seq(fd.as_fd());
                    self.pushed[side.index()].push(seq);
                    let end = &mut self.ends[side.index()];
                    match end.push_send(fd) {
                        Ok(token) => {
                            let accepted = &mut self.accepted[side.index()];
                            assert_eq!(
                                token,
                                SendToken(accepted.len() as u64),
                                "tokens count pushes"
                            );
                            accepted.push(seq);
                        }
                        Err(e) => {
                            assert!(
                                self.sending_ended(side) || self.closed_locally[side.index()],
                                "{side:?} refused a push while open: {e:?}"
                            );
                            // Handed back, open: the application closes it.
                            let back = self.fake.app_close(side, e.into_inner());
                            assert_eq!(back, Label::Seq(seq), "another descriptor came back");
                            self.handed_back[side.index()].push(seq);
                        }
                    }
                }
            }
            Op::SendMany(side, n) => {
                let i = side.index();
                let mut batch = Vec::new();
                for _ in 0..n {
                    let fd = match self.setup.reservations[i] {
                        Reservation::Sentinel => self.fake.try_numbered(side),
                        _ => Some(self.fake.numbered(side)),
                    };
                    let Some(fd) = fd else { break };
                    batch.push(fd);
                }
                let seqs: Vec<u64> = batch.iter().map(|fd| self.fake.seq(fd.as_fd())).collect();
                self.pushed[i].extend(&seqs);
                match self.ends[i].push_send_many(batch) {
                    Ok(last) => {
                        let accepted = &mut self.accepted[i];
                        accepted.extend(&seqs);
                        let expected =
                            (!seqs.is_empty()).then(|| SendToken(accepted.len() as u64 - 1));
                        assert_eq!(last, expected, "the last token of the batch");
                    }
                    Err(e) => {
                        assert!(
                            self.sending_ended(side) || self.closed_locally[i],
                            "{side:?} refused a batch while open: {e:?}"
                        );
                        // Handed back whole, in order: the application
                        // closes it.
                        let back: Vec<Label> = e
                            .into_inner()
                            .into_iter()
                            .map(|fd| self.fake.app_close(side, fd))
                            .collect();
                        let expected: Vec<Label> = seqs.iter().copied().map(Label::Seq).collect();
                        assert_eq!(back, expected, "a refused batch comes back whole");
                        self.handed_back[i].extend(seqs);
                    }
                }
            }
            Op::TryRecv(side, readable_first) => {
                let i = side.index();
                if readable_first {
                    self.ends[i].handle_readable(now);
                }
                if let Some((token, fd)) = self.ends[i].try_recv() {
                    // Undrained events would hold earlier descriptors, for
                    // requests still outstanding here: taking a later one
                    // first breaks the order.
                    assert!(
                        self.outstanding[i].is_empty(),
                        "{side:?}: try_recv ahead of requests or events"
                    );
                    self.outstanding[i].push_back(token);
                    match self.fake.app_close(side, fd) {
                        Label::Seq(seq) => self.seen[i].received.push((token, seq)),
                        other => panic!("{side:?} received {other:?}, which nobody sent"),
                    }
                }
            }
            Op::Recv(side, n) => {
                for _ in 0..n {
                    match self.ends[side.index()].push_recv() {
                        Ok(token) => self.outstanding[side.index()].push_back(token),
                        Err(Error::PeerClosed) => {
                            assert!(
                                self.seen[side.index()].closed > 0,
                                "PeerClosed before Closed"
                            );
                        }
                        Err(e) => assert!(
                            self.failed(side) || self.closed_locally[side.index()],
                            "{side:?} refused a request while open: {e:?}"
                        ),
                    }
                    // A request may be fulfilled at once from what was read ahead.
                    self.collect(side);
                }
            }
            Op::Cancel(side, pick) => {
                let outstanding = &mut self.outstanding[side.index()];
                let end = &mut self.ends[side.index()];
                if outstanding.is_empty() {
                    assert!(!end.cancel_recv(RecvToken(u64::MAX)));
                } else {
                    let token = outstanding
                        .remove(pick.index(outstanding.len()))
                        .expect("picked");
                    assert!(end.cancel_recv(token), "{token:?} was outstanding");
                    assert!(!end.cancel_recv(token), "{token:?} withdrawn twice");
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
                    let end = &mut self.ends[side.index()];
                    turn(&self.fake, side, end, now, &mut self.seen[side.index()]);
                }
            }
            Op::Room(side, room) => {
                let open = self.fake.table_len(side);
                // Room is counted past the descriptors queued for sending,
                // which leave the table as they go out.
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
                // Closing withdraws every request.
                self.outstanding[side.index()].clear();
            }
        }
        for side in Side::BOTH {
            self.collect(side);
        }
        self.check();
    }

    fn collect(&mut self, side: Side) {
        let i = side.index();
        collect(&self.fake, side, &mut self.ends[i], &mut self.seen[i]);
    }

    /// The invariants that hold after every step.
    fn check(&mut self) {
        for side in Side::BOTH {
            let i = side.index();
            let peer = side.peer().index();
            let seen = &self.seen[i];

            // Requests are fulfilled oldest first, each once.
            for &(token, _) in &seen.received[self.checked_received[i]..] {
                assert_eq!(
                    self.outstanding[i].pop_front(),
                    Some(token),
                    "{side:?}: fulfilled out of order"
                );
            }
            self.checked_received[i] = seen.received.len();

            // Guarantee 1: exactly once, in order.
            let got = seen.seqs();
            assert!(
                got.len() <= self.accepted[peer].len() && got == self.accepted[peer][..got.len()],
                "{side:?} received {got:?}, but {:?} was sent",
                self.accepted[peer]
            );

            // Acknowledgements grow and cover only what was pushed.
            let mut last = self.checked_sent[i].checked_sub(1).map(|j| seen.sent[j]);
            for &token in &seen.sent[self.checked_sent[i]..] {
                if let Some(last) = last {
                    assert!(token > last, "{side:?}: Sent went backwards");
                }
                assert!(
                    token.0 < self.accepted[i].len() as u64,
                    "{side:?}: Sent ahead of pushes"
                );
                last = Some(token);
            }
            self.checked_sent[i] = seen.sent.len();

            if !self.fatal {
                assert!(seen.failed.is_empty(), "{side:?} failed: {:?}", seen.failed);
                assert!(seen.send_failed.is_empty(), "{side:?}: sending failed");
                assert_eq!(seen.closed, 0, "{side:?}: end of stream");
            }
            assert!(seen.failed.len() <= 1, "{side:?}: failure reported twice");
            assert!(
                seen.send_failed.len() <= 1,
                "{side:?}: sending's failure reported twice"
            );
            if !seen.send_failed.is_empty() && seen.failed.is_empty() && !self.closed_locally[i] {
                // Sending alone failed: the unsent come back, in push order,
                // and receiving goes on (checked below like an open passer).
                let queued = self.ends[i].queued_sends();
                let unsent = self.ends[i].take_unsent();
                assert_eq!(unsent.len(), queued, "{side:?}: unsent handed back");
                let labels: Vec<Label> = unsent
                    .into_iter()
                    .map(|fd| self.fake.app_close(side, fd))
                    .collect();
                assert!(
                    labels.windows(2).all(|w| w[0] < w[1]),
                    "{side:?}: unsent out of order: {labels:?}"
                );
                self.handed_back[i].extend(labels.iter().filter_map(Label::seq));
                assert!(self.ends[i].usable().is_ok(), "{side:?}: still receiving");
                assert!(self.ends[i].send_usable().is_err());
                assert_eq!(self.ends[i].interest().write, Want::Idle);
            }
            let seen = &self.seen[i];
            let end = &self.ends[i];
            assert!(seen.closed <= 1, "{side:?}: end of stream reported twice");
            if seen.closed > 0 || !seen.failed.is_empty() {
                // No request survives the end of the stream or a failure.
                self.outstanding[i].clear();
            }
            assert_eq!(
                end.outstanding_recvs(),
                self.outstanding[i].len(),
                "{side:?}: outstanding requests"
            );

            if !seen.failed.is_empty() || self.closed_locally[i] {
                // A failure keeps the sends the kernel never took for the
                // application, in push order; it closes them here.
                let queued = self.ends[i].queued_sends();
                let unsent = self.ends[i].take_unsent();
                assert_eq!(unsent.len(), queued, "{side:?}: unsent handed back");
                let labels: Vec<Label> = unsent
                    .into_iter()
                    .map(|fd| self.fake.app_close(side, fd))
                    .collect();
                assert!(
                    labels.windows(2).all(|w| w[0] < w[1]),
                    "{side:?}: unsent out of order: {labels:?}"
                );
                self.handed_back[i].extend(labels.iter().filter_map(Label::seq));
                let end = &self.ends[i];
                // Guarantee 4 on failure and close: nothing else is held.
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

            // Everything the passer holds is open in its table, and nothing
            // else is: no descriptor leaked, none lost track of.
            assert_eq!(
                end.held_descriptors(),
                self.fake.table_len(side),
                "{side:?}: holds {} but its table has {:?}",
                end.held_descriptors(),
                self.fake.table(side)
            );

            // A passer with work either acts, waits for readiness, or has a
            // deadline; never idles with nothing to wake it.
            let interest = end.interest();
            if end.queued_sends() > 0 && interest.write == Want::Idle {
                assert!(end.poll_timeout().is_some(), "{side:?}: sends stuck");
            }
            if end.outstanding_recvs() > 0 && !end.is_peer_closed() && interest.read == Want::Idle {
                assert!(end.poll_timeout().is_some(), "{side:?}: receiving stuck");
            }
        }
    }

    /// Lifts every fault and limit, asks for everything still owed, and runs
    /// the event loop until nothing moves.
    fn settle(&mut self) {
        self.fake.clear_script();
        for side in Side::BOTH {
            self.fake.set_limit(side, None);
        }
        for side in Side::BOTH {
            let i = side.index();
            let owed = self.accepted[side.peer().index()]
                .len()
                .saturating_sub(self.seen[i].received.len() + self.outstanding[i].len());
            self.apply(&Op::Recv(side, owed));
        }
        let [a, b] = &mut self.ends;
        pump(&self.fake, a, b, &mut self.clock, &mut self.seen);
        self.check();
    }

    /// Drops both passers and checks that each pushed descriptor was closed
    /// exactly once: by its side, or by the application it was handed back
    /// to; and that nothing is left open.
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

/// Cases per property; `PROPTEST_CASES` overrides.
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

    /// Guarantees 1, 3 and 4 under transient trouble: back-pressure, full
    /// tables, interrupted and spurious calls, partial writes. Once the
    /// trouble is lifted, everything sent arrives, in order, exactly once.
    #[test]
    fn transient_faults_never_lose_or_leak(
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
            prop_assert_eq!(&h.seen[i].seqs(), &h.accepted[peer], "{:?} is missing descriptors", side);
            let acked = h.seen[i].sent.last().map_or(0, |t| t.0 + 1);
            prop_assert_eq!(acked, h.accepted[i].len() as u64, "{:?}: not all acknowledged", side);
            prop_assert_eq!(h.ends[i].queued_sends(), 0);
        }
        h.finish();
    }

    /// Fatal faults and local closes: after `Event::Failed` (or `close`) a
    /// passer holds nothing, later pushes are refused and their descriptors
    /// closed, what did arrive is in order, and nothing leaks.
    #[test]
    fn fatal_faults_close_everything(
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
