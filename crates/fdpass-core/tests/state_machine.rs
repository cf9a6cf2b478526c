//! Fault injection: one test per promise of the passer, each driving it
//! through a fake `Sys` and ending with a leak check.
// Linux and Android only: its fake `Sys` hands out memfds and identifies them by name in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod support;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use fdpass_core::sys::RecvMode;
use fdpass_core::{
    Error, ProtocolError, PushError, RecvToken, Reservation, RetryPolicy, SendToken, Want,
};
use rustix::io::Errno;
use support::*;

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

fn pair(fake: &Fake, reservation: Reservation, max_fds: usize) -> (FakePasser, FakePasser) {
    let a = fake
        .passer(Side::A, config(reservation, max_fds))
        .expect("side A");
    let b = fake
        .passer(Side::B, config(reservation, max_fds))
        .expect("side B");
    (a, b)
}

/// Table slots a passer holds when idle: the sentinel's origin and slots.
fn reserved(reservation: Reservation, max_fds: usize) -> usize {
    match reservation {
        Reservation::Sentinel => max_fds + 1,
        _ => 0,
    }
}

/// Pushes `n` new numbered descriptors; returns their numbers.
fn push_sends(fake: &Fake, side: Side, passer: &mut FakePasser, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let fd = fake.numbered(side);
            let seq = fake.seq(fd.as_fd());
            passer.push_send(fd).expect("push_send");
            seq
        })
        .collect()
}

fn push_recvs(passer: &mut FakePasser, n: usize) -> Vec<RecvToken> {
    (0..n)
        .map(|_| passer.push_recv().expect("push_recv"))
        .collect()
}

fn events(fake: &Fake, side: Side, passer: &mut FakePasser) -> Seen {
    let mut seen = Seen::default();
    collect(fake, side, passer, &mut seen);
    seen
}

fn sendmsgs(fake: &Fake, side: Side) -> Vec<(usize, Vec<Label>, Result<usize, Errno>)> {
    fake.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Sendmsg {
                side: s,
                bytes,
                fds,
                result,
            } if s == side => Some((bytes, fds, result)),
            _ => None,
        })
        .collect()
}

fn count_kind(fake: &Fake, side: Side, kind: CallKind) -> usize {
    fake.count(|c| c.side() == side && c.kind() == kind)
}

/// `recvmsg` calls that may install descriptors (not the consuming read of
/// a peeked message).
fn reads(fake: &Fake, side: Side) -> usize {
    fake.count(|c| {
        c.side() == side && matches!(c.kind(), CallKind::Recvmsg(m) if m != RecvMode::Discard)
    })
}

fn seqs_closed_by(fake: &Fake, side: Side) -> Vec<u64> {
    let mut seqs: Vec<u64> = fake.closed_by(side).iter().filter_map(Label::seq).collect();
    seqs.sort_unstable();
    seqs
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[track_caller]
fn assert_failed_with(seen: &Seen, check: impl Fn(&Error) -> bool) {
    assert_eq!(seen.failed.len(), 1, "exactly one failure: {seen:?}");
    assert!(
        check(&seen.failed[0]),
        "unexpected failure: {:?}",
        seen.failed[0]
    );
}

/// Exactly one failure, of the whole passer or of sending alone
/// (`Event::SendFailed`, for `EPIPE` on a send), and it passes `check`.
#[track_caller]
fn assert_reported_with(seen: &Seen, check: impl Fn(&Error) -> bool) {
    let reported: Vec<&Error> = seen.failed.iter().chain(&seen.send_failed).collect();
    assert_eq!(reported.len(), 1, "exactly one failure: {seen:?}");
    assert!(check(reported[0]), "unexpected failure: {:?}", reported[0]);
}

/// After a failure or close: nothing held but the sends the kernel never
/// took, which `take_unsent` hands back in push order and still open (the
/// application closes them here; their numbers are returned); then nothing
/// held at all, nothing wanted, no deadline.
#[track_caller]
fn assert_released(fake: &Fake, side: Side, passer: &mut FakePasser) -> Vec<u64> {
    let queued = passer.queued_sends();
    assert_eq!(passer.held_descriptors(), queued);
    let unsent = passer.take_unsent();
    assert_eq!(unsent.len(), queued, "every unsent descriptor comes back");
    let seqs: Vec<u64> = unsent
        .into_iter()
        .map(|fd| match fake.app_close(side, fd) {
            Label::Seq(seq) => seq,
            other => panic!("handed back {other:?}, which was never pushed"),
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    assert_eq!(passer.held_descriptors(), 0);
    assert_released_holds_nothing(fake, side, passer);
    seqs
}

#[track_caller]
fn assert_released_holds_nothing(fake: &Fake, side: Side, passer: &FakePasser) {
    assert_eq!(passer.queued_sends(), 0);
    assert_eq!(fake.table(side), Vec::<Label>::new());
    assert_eq!(passer.interest().read, Want::Idle);
    assert_eq!(passer.interest().write, Want::Idle);
    assert_eq!(passer.poll_timeout(), None);
}

#[test]
fn eagain_waits_for_writable() {
    let fake = Fake::new("eagain_waits_for_writable");
    let clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Peek, 4);
    fake.on_send(Side::A, SendStep::Fail(Errno::AGAIN));
    let seqs = push_sends(&fake, Side::A, &mut a, 1);
    assert_eq!(a.interest().write, Want::Now);

    a.handle_writable(clock.now());
    assert_eq!(sendmsgs(&fake, Side::A).len(), 1, "EAGAIN ends the attempt");
    assert_eq!(a.interest().write, Want::WhenReady);
    assert_eq!(
        a.poll_timeout(),
        None,
        "EAGAIN waits for readiness, not time"
    );
    assert_eq!(a.queued_sends(), 1);
    assert!(a.poll_event().is_none());
    assert_eq!(
        fake.table(Side::A),
        vec![Label::Seq(seqs[0])],
        "our copy stays open until the kernel has taken it"
    );

    a.handle_writable(clock.now());
    let seen = events(&fake, Side::A, &mut a);
    assert_eq!(seen.sent, vec![SendToken(0)]);
    assert_eq!(a.interest().write, Want::Idle);
    assert_eq!(fake.table_len(Side::A), 0);

    push_recvs(&mut b, 1);
    b.handle_readable(clock.now());
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);
    drop((a, b));
    fake.finish();
}

#[test]
fn etoomanyrefs_backs_off_and_keeps_queue() {
    let fake = Fake::new("etoomanyrefs_backs_off_and_keeps_queue");
    let mut clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Peek, 2);
    let seqs = push_sends(&fake, Side::A, &mut a, 3);
    fake.on_send(Side::A, SendStep::Fail(Errno::TOOMANYREFS));

    let t0 = clock.now();
    a.handle_writable(t0);
    assert_eq!(sendmsgs(&fake, Side::A).len(), 1);
    assert_eq!(a.interest().write, Want::Idle, "waits for the deadline");
    assert_eq!(a.poll_timeout(), Some(t0 + RETRY.initial));
    assert_eq!(a.queued_sends(), 3);
    assert!(a.usable().is_ok());
    assert!(a.poll_event().is_none());
    assert_eq!(
        sorted(fake.table(Side::A).iter().filter_map(Label::seq).collect()),
        seqs
    );

    // Readiness and early timeouts do not cut the backoff short.
    let early = clock.advance(RETRY.initial / 2);
    a.handle_writable(early);
    a.handle_timeout(early);
    assert_eq!(sendmsgs(&fake, Side::A).len(), 1);
    assert_eq!(a.poll_timeout(), Some(t0 + RETRY.initial));

    let due = clock.set(t0 + RETRY.initial);
    a.handle_timeout(due);
    assert_eq!(a.interest().write, Want::Now);
    assert_eq!(a.poll_timeout(), None);
    a.handle_writable(due);
    assert_eq!(
        events(&fake, Side::A, &mut a).sent,
        vec![SendToken(1), SendToken(2)]
    );

    push_recvs(&mut b, 3);
    b.handle_readable(due);
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);
    drop((a, b));
    fake.finish();
}

#[test]
fn enobufs_is_backpressure_not_failure() {
    for errno in [Errno::NOBUFS, Errno::NOMEM] {
        let fake = Fake::new("enobufs_is_backpressure_not_failure");
        let mut clock = Clock::new();
        let (mut a, mut b) = pair(&fake, Reservation::Sentinel, 1);
        let seqs = push_sends(&fake, Side::A, &mut a, 2);
        fake.on_send(Side::A, SendStep::Fail(errno));
        fake.on_send(Side::A, SendStep::Fail(errno));

        let t0 = clock.now();
        a.handle_writable(t0);
        let seen = events(&fake, Side::A, &mut a);
        assert!(seen.failed.is_empty(), "{errno:?} failed the passer");
        assert!(a.usable().is_ok());
        assert_eq!(a.queued_sends(), 2);
        assert_eq!(a.poll_timeout(), Some(t0 + RETRY.initial));

        let mut seen = [Seen::default(), Seen::default()];
        push_recvs(&mut b, 2);
        pump(&fake, &mut a, &mut b, &mut clock, &mut seen);
        assert!(seen[0].failed.is_empty() && seen[1].failed.is_empty());
        assert_eq!(seen[1].seqs(), seqs);
        assert!(
            clock.now() >= t0 + RETRY.initial * 3,
            "two backoffs elapsed"
        );
        drop((a, b));
        fake.finish();
    }
}

#[test]
fn epipe_ends_sending_and_hands_back_every_unsent_descriptor() {
    for reservation in BOTH {
        // Scripted: the second message meets EPIPE.
        let fake = Fake::new("epipe_ends_sending_and_hands_back_every_unsent_descriptor");
        let clock = Clock::new();
        let (mut a, b) = pair(&fake, reservation, 2);
        let seqs = push_sends(&fake, Side::A, &mut a, 5);
        fake.on_send(Side::A, SendStep::Take(2));
        fake.on_send(Side::A, SendStep::Fail(Errno::PIPE));
        a.handle_writable(clock.now());
        let seen = events(&fake, Side::A, &mut a);
        assert_eq!(seen.sent, vec![SendToken(1)]);
        assert_send_failed_with_epipe(&seen, &a);
        assert_eq!(
            sendmsgs(&fake, Side::A).len(),
            2,
            "no send after the failure"
        );
        // The two the kernel took were closed by the passer; the three it
        // never took come back, in order: each accounted for exactly once.
        let unsent = take_unsent_in_order(&fake, Side::A, &mut a);
        assert_eq!(seqs_closed_by(&fake, Side::A), seqs[..2]);
        assert_eq!(unsent, seqs[2..]);
        drop((a, b));
        fake.finish();

        // Simulated: the peer is gone, so the kernel says EPIPE.
        let fake = Fake::new("epipe_ends_sending_and_hands_back_every_unsent_descriptor");
        let (mut a, b) = pair(&fake, reservation, 2);
        drop(b);
        let seqs = push_sends(&fake, Side::A, &mut a, 3);
        a.handle_writable(clock.now());
        let seen = events(&fake, Side::A, &mut a);
        assert!(seen.sent.is_empty());
        assert_send_failed_with_epipe(&seen, &a);
        let unsent = take_unsent_in_order(&fake, Side::A, &mut a);
        assert!(seqs_closed_by(&fake, Side::A).is_empty());
        assert_eq!(unsent, seqs);
        drop(a);
        fake.finish();
    }
}

/// `EPIPE` ended sending alone: receiving goes on, nothing more is sent.
#[track_caller]
fn assert_send_failed_with_epipe(seen: &Seen, passer: &FakePasser) {
    assert!(seen.failed.is_empty(), "the passer failed: {seen:?}");
    assert_eq!(seen.send_failed.len(), 1, "{seen:?}");
    assert_eq!(
        errno_of(&seen.send_failed[0]),
        Some(Errno::PIPE.raw_os_error())
    );
    assert!(passer.usable().is_ok(), "receiving goes on");
    assert!(passer.send_usable().is_err());
    assert_eq!(passer.interest().write, Want::Idle);
}

/// `take_unsent` after sending failed: every unsent descriptor, in push
/// order and still open (the application closes them here; their numbers
/// are returned), and no more queued.
#[track_caller]
fn take_unsent_in_order(fake: &Fake, side: Side, passer: &mut FakePasser) -> Vec<u64> {
    let queued = passer.queued_sends();
    let seqs: Vec<u64> = passer
        .take_unsent()
        .into_iter()
        .map(|fd| match fake.app_close(side, fd) {
            Label::Seq(seq) => seq,
            other => panic!("handed back {other:?}, which was never pushed"),
        })
        .collect();
    assert_eq!(seqs.len(), queued, "every unsent descriptor comes back");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    assert_eq!(passer.queued_sends(), 0);
    seqs
}

#[test]
fn partial_write_keeps_stream_in_step() {
    for reservation in BOTH {
        let fake = Fake::new("partial_write_keeps_stream_in_step");
        let mut clock = Clock::new();
        let (mut a, mut b) = pair(&fake, reservation, 3);
        let seqs = push_sends(&fake, Side::A, &mut a, 6);
        // The kernel takes the first message's descriptors with one byte,
        // then one more byte of the two owed.
        fake.on_send(Side::A, SendStep::Take(1));
        fake.on_send(Side::A, SendStep::Take(1));
        a.handle_writable(clock.now());
        let fds = |s: &[u64]| s.iter().map(|&n| Label::Seq(n)).collect::<Vec<_>>();
        assert_eq!(
            sendmsgs(&fake, Side::A),
            vec![
                (3, fds(&seqs[..3]), Ok(1)),
                (2, vec![], Ok(1)),
                (1, vec![], Ok(1)),
                (3, fds(&seqs[3..]), Ok(3)),
            ],
            "owed bytes go out alone, before the next message"
        );
        assert_eq!(
            events(&fake, Side::A, &mut a).sent,
            vec![SendToken(2), SendToken(5)]
        );

        push_recvs(&mut b, 6);
        b.handle_readable(clock.now());
        let seen = events(&fake, Side::B, &mut b);
        assert!(seen.failed.is_empty(), "{reservation:?}: {seen:?}");
        assert_eq!(seen.seqs(), seqs);
        // The second read joined the owed bytes with part of the second
        // message; the rest of its bytes are still queued and must read as
        // owed bytes, not as bytes without descriptors.
        assert_eq!(fake.queued_bytes(Side::B), 2);
        push_recvs(&mut b, 1);
        b.handle_readable(clock.now());
        let seen = events(&fake, Side::B, &mut b);
        assert!(seen.failed.is_empty(), "{reservation:?}: {seen:?}");
        assert!(seen.received.is_empty());
        assert_eq!(fake.queued_bytes(Side::B), 0);
        assert_eq!(b.interest().read, Want::WhenReady);
        drop((a, b));
        fake.finish();

        // Partial writes that come from a nearly full socket buffer.
        let fake = Fake::new("partial_write_keeps_stream_in_step");
        let (mut a, mut b) = pair(&fake, reservation, 3);
        fake.set_capacity(Side::B, 2);
        let seqs = push_sends(&fake, Side::A, &mut a, 10);
        push_recvs(&mut b, 10);
        let mut seen = [Seen::default(), Seen::default()];
        pump(&fake, &mut a, &mut b, &mut clock, &mut seen);
        assert!(seen[1].failed.is_empty(), "{reservation:?}: {:?}", seen[1]);
        assert_eq!(seen[1].seqs(), seqs);
        assert!(
            sendmsgs(&fake, Side::A)
                .iter()
                .any(|(bytes, fds, r)| fds.is_empty() && *bytes > 0 && r.is_ok()),
            "the buffer forced partial writes"
        );
        drop((a, b));
        fake.finish();
    }
}

#[test]
fn spurious_readiness_keeps_sentinel_reservation() {
    const MAX: usize = 4;
    let fake = Fake::new("spurious_readiness_keeps_sentinel_reservation");
    let mut clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Sentinel, MAX);
    let whole = |fake: &Fake, b: &FakePasser, when: &str| {
        assert_eq!(
            b.held_descriptors(),
            MAX + 1,
            "{when}: reservation not whole"
        );
        assert_eq!(fake.table_len(Side::B), MAX + 1, "{when}: table");
        let dups = fake.count(|c| {
            matches!(
                c,
                Call::Dup {
                    side: Side::B,
                    result: Ok(()),
                    ..
                }
            )
        });
        let closes = fake
            .closed_by(Side::B)
            .iter()
            .filter(|l| **l == Label::Named("pipe-read-b".into()))
            .count();
        assert_eq!(dups - closes, MAX, "{when}: every released slot re-taken");
    };
    whole(&fake, &b, "new");
    push_recvs(&mut b, 1);

    for round in 0..5 {
        b.handle_readable(clock.now());
        assert_eq!(b.interest().read, Want::WhenReady);
        whole(&fake, &b, &format!("empty socket, round {round}"));
    }
    fake.on_recv(Side::B, RecvStep::Fail(Errno::AGAIN));
    b.handle_readable(clock.now());
    whole(&fake, &b, "injected EAGAIN");
    fake.on_recv(Side::B, RecvStep::Fail(Errno::INTR));
    b.handle_readable(clock.now());
    whole(&fake, &b, "EINTR");
    fake.on_dup(Side::B, Errno::INTR);
    fake.on_dup(Side::B, Errno::INTR);
    b.handle_readable(clock.now());
    whole(&fake, &b, "EINTR while re-taking");
    assert_eq!(b.poll_timeout(), None);
    assert!(events(&fake, Side::B, &mut b).received.is_empty());

    let seqs = push_sends(&fake, Side::A, &mut a, 1);
    a.handle_writable(clock.advance(ms(1)));
    b.handle_readable(clock.now());
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);
    whole(&fake, &b, "after a delivery");
    drop((a, b));
    fake.finish();
}

/// Slots B's sentinel freed or took so far: every `dup` and every close of
/// a slot (a duplicate of its origin, the pipe's read end).
fn slot_churn(fake: &Fake) -> usize {
    let dups = count_kind(fake, Side::B, CallKind::Dup);
    let closes = fake
        .closed_by(Side::B)
        .iter()
        .filter(|l| **l == Label::Named("pipe-read-b".into()))
        .count();
    dups + closes
}

#[test]
fn sentinel_frees_no_slot_while_nothing_waits() {
    const MAX: usize = 128;
    let fake = Fake::new("sentinel_frees_no_slot_while_nothing_waits");
    let mut clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Sentinel, MAX);
    let idle = slot_churn(&fake);
    push_recvs(&mut b, 1);
    for _ in 0..5 {
        b.handle_readable(clock.now());
        assert_eq!(b.interest().read, Want::WhenReady);
    }
    assert_eq!(slot_churn(&fake), idle, "slots freed while nothing waits");
    assert_eq!(b.held_descriptors(), MAX + 1);

    // A message: the slots are freed and re-taken once, for its read.
    let seqs = push_sends(&fake, Side::A, &mut a, 1);
    a.handle_writable(clock.advance(ms(1)));
    b.handle_readable(clock.now());
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);
    assert_eq!(slot_churn(&fake), idle + 2 * MAX, "one release and re-take");
    assert_eq!(b.held_descriptors(), MAX + 1);
    drop((a, b));
    fake.finish();
}

#[test]
fn sentinel_survives_a_look_that_lies() {
    const MAX: usize = 3;
    let fake = Fake::new("sentinel_survives_a_look_that_lies");
    let mut clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Sentinel, MAX);
    let tokens = push_recvs(&mut b, 4);

    // Something waits, says the look; the read finds nothing.
    fake.on_peek_bytes(Side::B, Ok(2));
    b.handle_readable(clock.now());
    assert_eq!(b.interest().read, Want::WhenReady);
    assert_eq!(b.held_descriptors(), MAX + 1, "reservation whole");
    assert!(b.poll_event().is_none());

    // Nothing waits, says the look, while a message does: no read yet, and
    // the next readiness reads it.
    let seqs = push_sends(&fake, Side::A, &mut a, MAX);
    a.handle_writable(clock.advance(ms(1)));
    fake.on_peek_bytes(Side::B, Err(Errno::AGAIN));
    b.handle_readable(clock.now());
    assert_eq!(b.interest().read, Want::WhenReady);
    assert_eq!(fake.queued_bytes(Side::B), MAX, "nothing read");
    b.handle_readable(clock.now());
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);

    // One byte, says the look, of a message of three: all three arrive,
    // into a table with no room but the reservation.
    let seqs = push_sends(&fake, Side::A, &mut a, MAX);
    a.handle_writable(clock.advance(ms(1)));
    fake.set_limit(Side::B, Some(fake.table_len(Side::B)));
    fake.on_peek_bytes(Side::B, Ok(1));
    b.handle_readable(clock.now());
    let seen = events(&fake, Side::B, &mut b);
    assert_eq!(seen.seqs(), seqs[..1]);
    assert_eq!(
        b.try_recv()
            .map(|(_, fd)| fake.app_close(Side::B, fd).seq()),
        Some(Some(seqs[1]))
    );
    // The table had no room to re-take the slots: they come back at the
    // retry, once there is room.
    fake.set_limit(Side::B, None);
    let retry = b.poll_timeout().expect("a retry to re-take the slots");
    b.handle_timeout(clock.advance(retry - clock.now()));
    assert_eq!(
        b.held_descriptors(),
        MAX + 1 + 1,
        "the third waits, read ahead"
    );
    drop(tokens);

    // The look fails: that is the passer's failure, and it holds nothing.
    fake.on_peek_bytes(Side::B, Err(Errno::CONNRESET));
    push_recvs(&mut b, 2);
    b.handle_readable(clock.now());
    let seen = events(&fake, Side::B, &mut b);
    assert_eq!(seen.seqs(), seqs[2..]);
    assert_failed_with(&seen, |e| {
        errno_of(e) == Some(Errno::CONNRESET.raw_os_error())
    });
    assert_eq!(b.held_descriptors(), 0);
    drop((a, b));
    fake.finish();
}

#[test]
fn sentinel_partial_write_into_full_table_loses_nothing() {
    const MAX: usize = 5;
    let fake = Fake::new("sentinel_partial_write_into_full_table_loses_nothing");
    let mut clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Sentinel, MAX);
    // The kernel takes all five descriptors with one byte of five.
    fake.on_send(Side::A, SendStep::Take(1));
    let seqs = push_sends(&fake, Side::A, &mut a, MAX);
    a.handle_writable(clock.now());
    assert_eq!(a.queued_sends(), 0);
    fake.set_limit(Side::B, Some(fake.table_len(Side::B)));
    push_recvs(&mut b, MAX);
    b.handle_readable(clock.now());
    a.handle_writable(clock.advance(ms(1))); // the four owed bytes
    b.handle_readable(clock.now());
    let seen = events(&fake, Side::B, &mut b);
    assert!(seen.failed.is_empty(), "{seen:?}");
    assert_eq!(seen.seqs(), seqs);
    fake.set_limit(Side::B, None);
    let retry = b.poll_timeout().expect("a retry to re-take the slots");
    b.handle_timeout(clock.advance(retry - clock.now()));
    assert_eq!(b.held_descriptors(), MAX + 1);
    drop((a, b));
    fake.finish();
}

#[test]
fn full_table_delays_but_never_loses() {
    // Scripted: a peek installs 2 of 3 descriptors and the probe finds no slot.
    let fake = Fake::new("full_table_delays_but_never_loses");
    let mut clock = Clock::new();
    let mut b = fake
        .passer(Side::B, config(Reservation::Peek, 3))
        .expect("passer");
    let tokens = push_recvs(&mut b, 3);
    fake.on_recv(Side::B, RecvStep::truncated(3, &[70, 71]));
    fake.on_dup(Side::B, Errno::MFILE);
    let t0 = clock.now();
    b.handle_readable(t0);
    assert_eq!(reads(&fake, Side::B), 1);
    assert_eq!(
        count_kind(&fake, Side::B, CallKind::Recvmsg(RecvMode::Discard)),
        0,
        "nothing consumed"
    );
    assert_eq!(count_kind(&fake, Side::B, CallKind::Dup), 1);
    assert_eq!(
        sorted(seqs_closed_by(&fake, Side::B)),
        vec![70, 71],
        "copies closed"
    );
    assert!(b.poll_event().is_none());
    assert_eq!(b.poll_timeout(), Some(t0 + RETRY.initial));
    assert_eq!(b.interest().read, Want::Idle);
    assert_eq!(fake.table_len(Side::B), 0);
    assert!(b.usable().is_ok());

    let early = clock.advance(RETRY.initial / 2);
    b.handle_readable(early);
    b.handle_timeout(early);
    assert_eq!(reads(&fake, Side::B), 1, "no read before the deadline");

    let due = clock.set(t0 + RETRY.initial);
    b.handle_timeout(due);
    assert_eq!(b.interest().read, Want::Now);
    fake.on_recv(Side::B, RecvStep::message(&[70, 71, 72]));
    b.handle_readable(due);
    let seen = events(&fake, Side::B, &mut b);
    assert_eq!(
        seen.received,
        vec![(tokens[0], 70), (tokens[1], 71), (tokens[2], 72)]
    );
    assert_eq!(b.poll_timeout(), None);
    drop(b);
    fake.finish();

    // Simulated: the table has room for 2 of a message's 3 descriptors.
    let fake = Fake::new("full_table_delays_but_never_loses");
    let (mut a, mut b) = pair(&fake, Reservation::Peek, 3);
    fake.set_limit(Side::B, Some(2));
    let seqs = push_sends(&fake, Side::A, &mut a, 3);
    a.handle_writable(clock.now());
    push_recvs(&mut b, 3);
    let t0 = clock.now();
    b.handle_readable(t0);
    assert!(b.poll_event().is_none());
    assert_eq!(fake.queued_bytes(Side::B), 3, "the message stays queued");
    assert_eq!(fake.table_len(Side::B), 0);
    assert_eq!(b.poll_timeout(), Some(t0 + RETRY.initial));

    // Still full at the deadline: wait longer.
    let due = clock.set(t0 + RETRY.initial);
    b.handle_timeout(due);
    b.handle_readable(due);
    assert!(b.poll_event().is_none());
    assert_eq!(fake.queued_bytes(Side::B), 3);
    assert_eq!(b.poll_timeout(), Some(due + RETRY.initial * 2));

    fake.set_limit(Side::B, None);
    let due = clock.set(due + RETRY.initial * 2);
    b.handle_timeout(due);
    b.handle_readable(due);
    let seen = events(&fake, Side::B, &mut b);
    assert!(seen.failed.is_empty());
    assert_eq!(seen.seqs(), seqs);
    assert_eq!(fake.queued_bytes(Side::B), 0);
    drop((a, b));
    fake.finish();
}

#[test]
fn full_table_after_partial_write_delays_but_never_loses() {
    // The kernel queued a message's descriptors with only its first bytes, so
    // its byte count understates how many slots it needs: the table has room
    // for more descriptors than the bytes promise, and fewer than arrived.
    for (max_fds, bytes_taken, room) in [(3, 1, 2), (64, 8, 30), (253, 1, 100)] {
        let fake = Fake::new("full_table_after_partial_write_delays_but_never_loses");
        let mut clock = Clock::new();
        let (mut a, mut b) = pair(&fake, Reservation::Peek, max_fds);
        fake.set_limit(Side::B, Some(room));
        fake.on_send(Side::A, SendStep::Take(bytes_taken));
        let seqs = push_sends(&fake, Side::A, &mut a, max_fds);
        a.handle_writable(clock.now());
        assert_eq!(fake.queued_bytes(Side::B), max_fds);
        push_recvs(&mut b, max_fds);

        let start = clock.now();
        let mut seen = [Seen::default(), Seen::default()];
        pump_until(
            &fake,
            &mut a,
            &mut b,
            &mut clock,
            &mut seen,
            Some(start + ms(30)),
        );
        assert!(
            seen[1].failed.is_empty(),
            "max {max_fds}: a full table failed the passer: {:?}",
            seen[1].failed
        );
        assert!(seen[1].received.is_empty());
        assert!(b.poll_timeout().is_some(), "still retrying");

        fake.set_limit(Side::B, None);
        pump(&fake, &mut a, &mut b, &mut clock, &mut seen);
        assert!(seen[1].failed.is_empty(), "{:?}", seen[1].failed);
        assert_eq!(seen[1].seqs(), seqs);
        drop((a, b));
        fake.finish();
    }
}

#[test]
fn refusal_is_an_error_not_an_endless_retry() {
    // Peek: the kernel keeps truncating although every probe finds room (a
    // security module refusing the descriptors).
    for installed in [&[][..], &[40][..]] {
        let fake = Fake::new("refusal_is_an_error_not_an_endless_retry");
        let clock = Clock::new();
        let mut b = fake
            .passer(Side::B, config(Reservation::Peek, 2))
            .expect("passer");
        push_recvs(&mut b, 1);
        for _ in 0..20 {
            fake.on_recv(Side::B, RecvStep::truncated(2, installed));
        }
        b.handle_readable(clock.now());
        let peeks = reads(&fake, Side::B);
        assert!((2..=8).contains(&peeks), "gave up after {peeks} peeks");
        assert_eq!(
            count_kind(&fake, Side::B, CallKind::Recvmsg(RecvMode::Discard)),
            0
        );
        let seen = events(&fake, Side::B, &mut b);
        assert!(seen.received.is_empty());
        assert_failed_with(&seen, |e| {
            matches!(e, Error::Protocol(ProtocolError::DescriptorsRefused))
        });
        assert_released(&fake, Side::B, &mut b);
        assert!(fake.pending_script() > 0, "stopped retrying");
        drop(b);
        fake.finish();
    }

    // Sentinel: the slots were free, so a truncation is a refusal at once.
    let fake = Fake::new("refusal_is_an_error_not_an_endless_retry");
    let mut b = fake
        .passer(Side::B, config(Reservation::Sentinel, 2))
        .expect("passer");
    push_recvs(&mut b, 1);
    fake.on_recv(Side::B, RecvStep::truncated(2, &[41]));
    b.handle_readable(Instant::now());
    assert_eq!(reads(&fake, Side::B), 1);
    let seen = events(&fake, Side::B, &mut b);
    assert_failed_with(&seen, |e| {
        matches!(e, Error::Protocol(ProtocolError::DescriptorsRefused))
    });
    assert_eq!(seqs_closed_by(&fake, Side::B), vec![41]);
    assert_released(&fake, Side::B, &mut b);
    drop(b);
    fake.finish();
}

#[test]
fn sentinel_dup_failure_pauses_reading_then_resumes() {
    // Simulated: the table is exactly full with the reservation in place, so
    // the descriptors received take the slots the reservation wants back.
    let fake = Fake::new("sentinel_dup_failure_pauses_reading_then_resumes");
    let mut clock = Clock::new();
    let (mut a, mut b) = pair(&fake, Reservation::Sentinel, 2);
    fake.set_limit(Side::B, Some(fake.table_len(Side::B)));
    let seqs = push_sends(&fake, Side::A, &mut a, 4);
    a.handle_writable(clock.now());
    push_recvs(&mut b, 4);

    let t0 = clock.now();
    b.handle_readable(t0);
    assert_eq!(reads(&fake, Side::B), 1);
    let seen = events(&fake, Side::B, &mut b);
    assert_eq!(seen.seqs(), seqs[..2]);
    assert_eq!(b.held_descriptors(), 1, "only the origin is left");
    assert_eq!(
        b.interest().read,
        Want::Idle,
        "no read without the reservation"
    );
    assert_eq!(
        b.poll_timeout(),
        Some(t0 + RETRY.initial),
        "a retry must be scheduled, or reading never resumes"
    );
    assert_eq!(fake.queued_bytes(Side::B), 2);

    let early = clock.advance(RETRY.initial / 2);
    b.handle_readable(early);
    b.handle_timeout(early);
    assert_eq!(reads(&fake, Side::B), 1, "no read while paused");

    let due = clock.set(t0 + RETRY.initial);
    b.handle_timeout(due);
    assert_eq!(b.held_descriptors(), 3, "reservation whole again");
    assert_eq!(b.interest().read, Want::Now);
    b.handle_readable(due);
    let seen = events(&fake, Side::B, &mut b);
    assert_eq!(seen.seqs(), seqs[2..]);
    let next = b.poll_timeout().expect("paused again, with a deadline");
    b.handle_timeout(clock.set(next));
    assert_eq!(b.held_descriptors(), 3);
    assert_eq!(b.poll_timeout(), None);
    drop((a, b));
    fake.finish();

    // Scripted: one EMFILE while re-taking the slots, then room again.
    let fake = Fake::new("sentinel_dup_failure_pauses_reading_then_resumes");
    let (mut a, mut b) = pair(&fake, Reservation::Sentinel, 2);
    let seqs = push_sends(&fake, Side::A, &mut a, 2);
    fake.on_send(Side::A, SendStep::Take(1));
    a.handle_writable(clock.now());
    push_recvs(&mut b, 3);
    fake.on_dup(Side::B, Errno::MFILE);
    let t0 = clock.now();
    b.handle_readable(t0);
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);
    assert_eq!(b.held_descriptors(), 1);
    assert_eq!(b.poll_timeout(), Some(t0 + RETRY.initial));
    b.handle_timeout(clock.set(t0 + RETRY.initial));
    assert_eq!(b.held_descriptors(), 3);
    assert_eq!(b.interest().read, Want::Now);
    b.handle_readable(clock.now());
    assert!(b.usable().is_ok(), "the owed byte is read alone");
    assert_eq!(fake.queued_bytes(Side::B), 0);
    assert_eq!(b.interest().read, Want::WhenReady);

    // EINTR while re-taking is retried on the spot: no pause.
    fake.on_dup(Side::B, Errno::INTR);
    let seqs = push_sends(&fake, Side::A, &mut a, 1);
    a.handle_writable(clock.now());
    b.handle_readable(clock.now());
    assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs);
    assert_eq!(b.held_descriptors(), 3);
    assert_eq!(b.poll_timeout(), None);
    drop((a, b));
    fake.finish();
}

#[test]
fn bytes_without_descriptors_is_protocol_error() {
    for reservation in BOTH {
        for (bytes, seqs) in [(3, &[900][..]), (2, &[][..])] {
            let fake = Fake::new("bytes_without_descriptors_is_protocol_error");
            let mut b = fake
                .passer(Side::B, config(reservation, 4))
                .expect("passer");
            push_recvs(&mut b, 1);
            fake.peer_write(Side::B, bytes, seqs);
            b.handle_readable(Instant::now());
            let seen = events(&fake, Side::B, &mut b);
            assert!(seen.received.is_empty());
            assert_failed_with(&seen, |e| {
                matches!(e, Error::Protocol(ProtocolError::BytesWithoutDescriptors { bytes: b, descriptors: d })
                    if *b == bytes && *d == seqs.len())
            });
            assert_eq!(seqs_closed_by(&fake, Side::B), seqs);
            assert_released(&fake, Side::B, &mut b);
            drop(b);
            fake.finish();
        }
    }
}

#[test]
fn too_many_descriptors_is_protocol_error() {
    for reservation in BOTH {
        // A foreign peer, and a passer configured with a larger limit.
        for from_passer in [false, true] {
            let fake = Fake::new("too_many_descriptors_is_protocol_error");
            let clock = Clock::new();
            let mut b = fake
                .passer(Side::B, config(reservation, 3))
                .expect("passer");
            let mut a = None;
            if from_passer {
                let mut sender = fake
                    .passer(Side::A, config(reservation, 5))
                    .expect("passer");
                push_sends(&fake, Side::A, &mut sender, 5);
                sender.handle_writable(clock.now());
                a = Some(sender);
            } else {
                fake.peer_write(Side::B, 4, &[0, 1, 2, 3]);
            }
            push_recvs(&mut b, 1);
            b.handle_readable(clock.now());
            let seen = events(&fake, Side::B, &mut b);
            assert!(seen.received.is_empty());
            assert_failed_with(&seen, |e| {
                matches!(
                    e,
                    Error::Protocol(ProtocolError::TooManyDescriptors { limit: 3 })
                )
            });
            // Every read offers room for a whole `sendmsg`, so all of them
            // arrive (none is dropped by the kernel on the reading thread)
            // and all are closed.
            let sent = if from_passer { 5 } else { 4 };
            assert_eq!(
                seqs_closed_by(&fake, Side::B).len(),
                sent,
                "what arrived was closed"
            );
            assert_released(&fake, Side::B, &mut b);
            drop((a, b));
            fake.finish();
        }
    }
}

#[test]
fn foreign_control_message_is_protocol_error() {
    for reservation in BOTH {
        let fake = Fake::new("foreign_control_message_is_protocol_error");
        let mut b = fake
            .passer(Side::B, config(reservation, 2))
            .expect("passer");
        push_recvs(&mut b, 1);
        fake.on_recv(
            Side::B,
            RecvStep::Answer(Msg {
                bytes: 1,
                installed: vec![5],
                foreign_control: true,
                ..Msg::default()
            }),
        );
        b.handle_readable(Instant::now());
        let seen = events(&fake, Side::B, &mut b);
        assert!(seen.received.is_empty());
        assert_failed_with(&seen, |e| {
            matches!(e, Error::Protocol(ProtocolError::ForeignControlMessage))
        });
        assert_eq!(seqs_closed_by(&fake, Side::B), vec![5]);
        assert_released(&fake, Side::B, &mut b);
        drop(b);
        fake.finish();
    }
}

#[test]
fn eof_is_closed_not_failed() {
    for reservation in BOTH {
        let fake = Fake::new("eof_is_closed_not_failed");
        let clock = Clock::new();
        let (mut a, mut b) = pair(&fake, reservation, 3);
        let seqs = push_sends(&fake, Side::A, &mut a, 3);
        a.handle_writable(clock.now());
        a.close();
        assert_eq!(count_kind(&fake, Side::A, CallKind::Shutdown), 1);
        let late = fake.numbered(Side::A);
        let late_seq = fake.seq(late.as_fd());
        // Refused after the close: handed back, not closed by the passer.
        let Err(PushError::Unusable(Error::Closed, late)) = a.push_send(late) else {
            panic!("a push after close was not refused with Closed");
        };
        assert!(!fake.closed_by(Side::A).contains(&Label::Seq(late_seq)));
        assert_eq!(fake.app_close(Side::A, late), Label::Seq(late_seq));
        assert_released(&fake, Side::A, &mut a);

        // One request: one message read, two descriptors kept for later.
        let t1 = b.push_recv().unwrap();
        b.handle_readable(clock.now());
        let seen = events(&fake, Side::B, &mut b);
        assert_eq!(seen.received, vec![(t1, seqs[0])]);
        assert_eq!(seen.closed, 0, "end of stream not read without a request");
        assert_eq!(b.held_descriptors(), 2 + reserved(reservation, 3));

        let t2 = b.push_recv().unwrap();
        let t3 = b.push_recv().unwrap();
        let t4 = b.push_recv().unwrap();
        b.handle_readable(clock.now());
        let seen = events(&fake, Side::B, &mut b);
        assert_eq!(seen.received, vec![(t2, seqs[1]), (t3, seqs[2])]);
        assert_eq!(seen.closed, 1);
        assert!(seen.failed.is_empty(), "{:?}", seen.failed);
        assert!(b.usable().is_ok());
        assert!(b.is_peer_closed());
        assert_eq!(b.outstanding_recvs(), 0, "{t4:?} will not be fulfilled");
        assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
        assert_eq!(b.interest().read, Want::Idle);
        b.handle_readable(clock.now());
        assert!(b.poll_event().is_none(), "end of stream reported once");
        assert_eq!(b.held_descriptors(), reserved(reservation, 3));
        drop((a, b));
        fake.finish();
    }
}

#[test]
fn reads_only_while_requests_outstanding() {
    for reservation in BOTH {
        let fake = Fake::new("reads_only_while_requests_outstanding");
        let clock = Clock::new();
        let (mut a, mut b) = pair(&fake, reservation, 1);
        let seqs = push_sends(&fake, Side::A, &mut a, 5);
        a.handle_writable(clock.now());
        assert_eq!(fake.queued_bytes(Side::B), 5);

        assert_eq!(b.interest().read, Want::Idle);
        b.handle_readable(clock.now());
        assert_eq!(
            count_kind(&fake, Side::B, CallKind::Recvmsg(RecvMode::Peek)),
            0
        );
        assert_eq!(reads(&fake, Side::B), 0, "no request, no read");

        push_recvs(&mut b, 2);
        b.handle_readable(clock.now());
        assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs[..2]);
        assert_eq!(reads(&fake, Side::B), 2, "one read per request");
        assert_eq!(fake.queued_bytes(Side::B), 3);
        assert_eq!(b.interest().read, Want::Idle);
        assert_eq!(b.held_descriptors(), reserved(reservation, 1));
        drop((a, b));
        fake.finish();

        // One request reads at most one more message, which may bring more.
        let fake = Fake::new("reads_only_while_requests_outstanding");
        let (mut a, mut b) = pair(&fake, reservation, 4);
        let seqs = push_sends(&fake, Side::A, &mut a, 8);
        a.handle_writable(clock.now());
        push_recvs(&mut b, 1);
        b.handle_readable(clock.now());
        assert_eq!(reads(&fake, Side::B), 1);
        assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs[..1]);
        assert_eq!(b.held_descriptors(), 3 + reserved(reservation, 4));
        assert_eq!(fake.queued_bytes(Side::B), 4);
        push_recvs(&mut b, 3);
        assert_eq!(events(&fake, Side::B, &mut b).seqs(), seqs[1..4]);
        assert_eq!(reads(&fake, Side::B), 1, "served from what was read ahead");
        drop((a, b));
        fake.finish();
    }
}

#[test]
fn cancel_recv_stops_reading() {
    for reservation in BOTH {
        let fake = Fake::new("cancel_recv_stops_reading");
        let clock = Clock::new();
        let (mut a, mut b) = pair(&fake, reservation, 1);
        let seqs = push_sends(&fake, Side::A, &mut a, 3);
        a.handle_writable(clock.now());

        let t = push_recvs(&mut b, 3);
        assert!(b.cancel_recv(t[1]));
        assert!(!b.cancel_recv(t[1]), "already withdrawn");
        assert!(!b.cancel_recv(RecvToken(99)), "never made");
        b.handle_readable(clock.now());
        let seen = events(&fake, Side::B, &mut b);
        assert_eq!(seen.received, vec![(t[0], seqs[0]), (t[2], seqs[1])]);
        assert!(!b.cancel_recv(t[0]), "already fulfilled");
        assert_eq!(fake.queued_bytes(Side::B), 1);

        let lone = b.push_recv().unwrap();
        assert!(b.cancel_recv(lone));
        assert_eq!(b.interest().read, Want::Idle);
        let before = reads(&fake, Side::B);
        b.handle_readable(clock.now());
        assert_eq!(
            reads(&fake, Side::B),
            before,
            "no read for a withdrawn request"
        );
        assert!(b.poll_event().is_none());

        let last = b.push_recv().unwrap();
        b.handle_readable(clock.now());
        assert_eq!(
            events(&fake, Side::B, &mut b).received,
            vec![(last, seqs[2])]
        );
        drop((a, b));
        fake.finish();
    }
}

#[test]
fn pushes_after_failure_return_the_error() {
    let clock = Clock::new();
    // A send-side failure.
    let fake = Fake::new("pushes_after_failure_return_the_error");
    let (mut a, b) = pair(&fake, Reservation::Sentinel, 2);
    fake.on_send(Side::A, SendStep::Fail(Errno::CONNRESET));
    push_sends(&fake, Side::A, &mut a, 1);
    a.handle_writable(clock.now());
    let seen = events(&fake, Side::A, &mut a);
    let is_reset = |e: &Error| errno_of(e) == Some(Errno::CONNRESET.raw_os_error());
    assert_failed_with(&seen, is_reset);
    for _ in 0..2 {
        let fd = fake.numbered(Side::A);
        let seq = fake.seq(fd.as_fd());
        let err = a.push_send(fd).expect_err("push after failure");
        assert!(is_reset(&err.error()), "{err:?}");
        // The refused descriptor comes back, open, for the application.
        assert!(
            !fake.closed_by(Side::A).contains(&Label::Seq(seq)),
            "the refused descriptor was closed"
        );
        assert_eq!(fake.app_close(Side::A, err.into_inner()), Label::Seq(seq));
        assert!(is_reset(&a.push_recv().expect_err("push after failure")));
    }
    assert!(a.poll_event().is_none(), "the failure is reported once");
    assert_released(&fake, Side::A, &mut a);
    drop((a, b));
    fake.finish();

    // A receive-side failure.
    let fake = Fake::new("pushes_after_failure_return_the_error");
    let mut b = fake
        .passer(Side::B, config(Reservation::Peek, 2))
        .expect("passer");
    push_recvs(&mut b, 1);
    fake.peer_write(Side::B, 1, &[]);
    b.handle_readable(clock.now());
    let is_protocol = |e: &Error| {
        matches!(
            e,
            Error::Protocol(ProtocolError::BytesWithoutDescriptors { .. })
        )
    };
    assert_failed_with(&events(&fake, Side::B, &mut b), is_protocol);
    assert!(is_protocol(&b.push_recv().expect_err("after failure")));
    let fd = fake.numbered(Side::B);
    let refused = b.push_send(fd).expect_err("after failure");
    assert!(is_protocol(&refused.error()));
    fake.app_close(Side::B, refused.into_inner());
    assert_released(&fake, Side::B, &mut b);
    drop(b);
    fake.finish();

    // A local close.
    let fake = Fake::new("pushes_after_failure_return_the_error");
    let mut a = fake
        .passer(Side::A, config(Reservation::Sentinel, 2))
        .expect("passer");
    a.close();
    let fd = fake.numbered(Side::A);
    let Err(PushError::Unusable(Error::Closed, fd)) = a.push_send(fd) else {
        panic!("a push after close was not refused with Closed");
    };
    fake.app_close(Side::A, fd);
    assert!(matches!(a.push_recv(), Err(Error::Closed)));
    assert_released(&fake, Side::A, &mut a);
    drop(a);
    fake.finish();
}

#[test]
fn drop_closes_everything() {
    for reservation in BOTH {
        for close_first in [false, true] {
            let fake = Fake::new("drop_closes_everything");
            let clock = Clock::new();
            let (mut a, mut b) = pair(&fake, reservation, 2);
            let delivered = push_sends(&fake, Side::A, &mut a, 2);
            a.handle_writable(clock.now());
            fake.on_send(Side::A, SendStep::Fail(Errno::AGAIN));
            let queued = push_sends(&fake, Side::A, &mut a, 3);
            a.handle_writable(clock.now());
            assert_eq!(a.queued_sends(), 3);

            // One descriptor waits in an undrained event, one was read ahead.
            push_recvs(&mut b, 1);
            b.handle_readable(clock.now());
            let slots = reserved(reservation, 2);
            assert_eq!(a.held_descriptors(), 3 + slots);
            assert_eq!(b.held_descriptors(), 1 + slots);
            assert_eq!(fake.table_len(Side::B), 2 + slots);

            if close_first {
                a.close();
                b.close();
                assert_eq!(fake.table_len(Side::A), 0);
                assert_eq!(
                    fake.table_len(Side::B),
                    1,
                    "only the undrained event's descriptor is left"
                );
            }
            drop(a);
            drop(b);
            let sent: Vec<u64> = delivered.iter().chain(&queued).copied().collect();
            assert_eq!(seqs_closed_by(&fake, Side::A), sent);
            assert_eq!(seqs_closed_by(&fake, Side::B), delivered);
            fake.finish();
        }
    }
}

#[test]
fn backoff_grows_and_caps() {
    const DELAYS: [u64; 5] = [2, 4, 8, 10, 10];
    let retry = RetryPolicy {
        initial: ms(2),
        max: ms(10),
    };
    let tick = Duration::from_nanos(1);

    // Sending: ETOOMANYREFS again and again.
    let fake = Fake::new("backoff_grows_and_caps");
    let mut clock = Clock::new();
    let cfg = config(Reservation::Peek, 1).with_retry(retry);
    let mut a = fake.passer(Side::A, cfg).expect("passer");
    let mut b = fake.passer(Side::B, cfg).expect("passer");
    for _ in DELAYS {
        fake.on_send(Side::A, SendStep::Fail(Errno::TOOMANYREFS));
    }
    push_sends(&fake, Side::A, &mut a, 1);
    let mut now = clock.now();
    a.handle_writable(now);
    for delay in DELAYS {
        let deadline = a.poll_timeout().expect("backing off");
        assert_eq!(deadline - now, ms(delay));
        a.handle_timeout(deadline - tick);
        assert_eq!(a.interest().write, Want::Idle);
        now = clock.set(deadline);
        a.handle_timeout(now);
        assert_eq!(a.interest().write, Want::Now);
        a.handle_writable(now);
    }
    assert_eq!(events(&fake, Side::A, &mut a).sent, vec![SendToken(0)]);
    assert_eq!(a.poll_timeout(), None);
    // A success starts the next backoff small again.
    fake.on_send(Side::A, SendStep::Fail(Errno::TOOMANYREFS));
    push_sends(&fake, Side::A, &mut a, 1);
    a.handle_writable(now);
    assert_eq!(a.poll_timeout(), Some(now + ms(2)));
    fake.clear_script();

    // Receiving (peek): the table stays full.
    fake.set_limit(Side::B, Some(0));
    push_recvs(&mut b, 1);
    now = clock.now();
    b.handle_readable(now);
    for (i, delay) in DELAYS.into_iter().enumerate() {
        let deadline = b.poll_timeout().expect("backing off");
        assert_eq!(deadline - now, ms(delay));
        if i == DELAYS.len() - 1 {
            fake.set_limit(Side::B, None);
        }
        now = clock.set(deadline);
        b.handle_timeout(now);
        assert_eq!(b.interest().read, Want::Now);
        b.handle_readable(now);
    }
    assert_eq!(events(&fake, Side::B, &mut b).received.len(), 1);
    assert_eq!(b.poll_timeout(), None);
    fake.set_limit(Side::B, Some(0));
    a.handle_timeout(clock.advance(ms(2)));
    a.handle_writable(clock.now());
    push_recvs(&mut b, 1);
    now = clock.now();
    b.handle_readable(now);
    assert_eq!(b.poll_timeout(), Some(now + ms(2)), "reset by the delivery");
    fake.set_limit(Side::B, None);
    drop((a, b));
    fake.finish();

    // Sentinel: re-taking the slots keeps failing.
    let fake = Fake::new("backoff_grows_and_caps");
    let cfg = config(Reservation::Sentinel, 2).with_retry(retry);
    let mut a = fake.passer(Side::A, cfg).expect("passer");
    let mut b = fake.passer(Side::B, cfg).expect("passer");
    push_sends(&fake, Side::A, &mut a, 1);
    a.handle_writable(clock.now());
    for _ in DELAYS {
        fake.on_dup(Side::B, Errno::MFILE);
    }
    push_recvs(&mut b, 1);
    now = clock.now();
    b.handle_readable(now);
    assert_eq!(events(&fake, Side::B, &mut b).received.len(), 1);
    for delay in DELAYS {
        let deadline = b.poll_timeout().expect("backing off");
        assert_eq!(deadline - now, ms(delay));
        assert_eq!(b.held_descriptors(), 1);
        now = clock.set(deadline);
        b.handle_timeout(now);
    }
    assert_eq!(b.held_descriptors(), 3);
    assert_eq!(b.poll_timeout(), None);
    drop((a, b));
    fake.finish();
}

// ---- every fault at every step ----

/// Errnos to plant at a call of this kind, and whether the passer must
/// absorb them (true) or report them as its failure (false).
fn faults_for(kind: CallKind) -> &'static [(Errno, bool)] {
    match kind {
        CallKind::Sendmsg => &[
            (Errno::AGAIN, true),
            (Errno::INTR, true),
            (Errno::TOOMANYREFS, true),
            (Errno::NOBUFS, true),
            (Errno::NOMEM, true),
            (Errno::PIPE, false),
            (Errno::CONNRESET, false),
        ],
        CallKind::Recvmsg(RecvMode::Discard) => &[(Errno::INTR, true), (Errno::CONNRESET, false)],
        CallKind::Recvmsg(_) | CallKind::PeekBytes => &[
            (Errno::AGAIN, true),
            (Errno::INTR, true),
            (Errno::CONNRESET, false),
        ],
        CallKind::Dup => &[
            (Errno::INTR, true),
            (Errno::MFILE, true),
            (Errno::NFILE, true),
            (Errno::BADF, false),
        ],
        CallKind::SetNonblocking => &[(Errno::BADF, false)],
        CallKind::Pipe => &[(Errno::MFILE, false), (Errno::NFILE, false)],
        // A failed shutdown changes nothing the passer relies on.
        CallKind::Shutdown => &[(Errno::NOTCONN, true)],
        CallKind::Close => &[],
    }
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    reservation: Reservation,
    max_fds: usize,
    count: usize,
    /// Bytes the stream to B holds.
    capacity: usize,
    /// B's table has room for this many more descriptors for the first
    /// [`TIGHT`] of the run.
    tight_room: Option<usize>,
}

const TIGHT: Duration = ms(20);

enum Played {
    Unconstructed(Error),
    Ran {
        construction_steps: usize,
        sent: Vec<u64>,
        seen: Box<[Seen; 2]>,
        held: [usize; 2],
        tables: [usize; 2],
    },
}

/// A sends `count` descriptors to B, which asks for all of them; then A
/// closes. Everything is dropped before returning.
fn play(fake: &Fake, s: Scenario) -> Played {
    let cfg = config(s.reservation, s.max_fds);
    let mut a = match fake.passer(Side::A, cfg) {
        Ok(a) => a,
        Err(e) => return Played::Unconstructed(e),
    };
    let mut b = match fake.passer(Side::B, cfg) {
        Ok(b) => b,
        Err(e) => return Played::Unconstructed(e),
    };
    let construction_steps = fake.steps();
    fake.set_capacity(Side::B, s.capacity);
    if let Some(room) = s.tight_room {
        fake.set_limit(Side::B, Some(fake.table_len(Side::B) + room));
    }
    let mut clock = Clock::new();
    let start = clock.now();
    let mut seen = [Seen::default(), Seen::default()];
    let sent = push_sends(fake, Side::A, &mut a, s.count);
    push_recvs(&mut b, s.count);
    pump_until(
        fake,
        &mut a,
        &mut b,
        &mut clock,
        &mut seen,
        Some(start + TIGHT),
    );
    fake.set_limit(Side::B, None);
    pump(fake, &mut a, &mut b, &mut clock, &mut seen);
    a.close();
    pump(fake, &mut a, &mut b, &mut clock, &mut seen);
    let held = [a.held_descriptors(), b.held_descriptors()];
    let tables = [fake.table_len(Side::A), fake.table_len(Side::B)];
    drop((a, b));
    Played::Ran {
        construction_steps,
        sent,
        seen: Box::new(seen),
        held,
        tables,
    }
}

fn non_close_calls(fake: &Fake) -> Vec<(CallKind, Side)> {
    fake.calls()
        .iter()
        .filter(|c| c.kind() != CallKind::Close)
        .map(|c| (c.kind(), c.side()))
        .collect()
}

#[track_caller]
fn assert_complete(
    what: &str,
    sent: &[u64],
    seen: &[Seen; 2],
    held: [usize; 2],
    tables: [usize; 2],
) {
    assert!(
        seen[0].failed.is_empty() && seen[1].failed.is_empty(),
        "{what}: failed: {:?} / {:?}",
        seen[0].failed,
        seen[1].failed
    );
    assert_eq!(seen[1].seqs(), sent, "{what}: delivery");
    assert_eq!(
        seen[0].sent.last(),
        Some(&SendToken(sent.len() as u64 - 1)),
        "{what}: all acknowledged"
    );
    assert_eq!(seen[1].closed, 0, "{what}: B read past its requests");
    assert_eq!(held[0], 0, "{what}: A closed");
    assert_eq!(tables[0], 0, "{what}: A's table");
    assert_eq!(held[1], tables[1], "{what}: B holds exactly what is open");
}

fn sweep(s: Scenario) {
    let baseline = Fake::new("sweep_baseline");
    let Played::Ran {
        construction_steps,
        sent,
        seen,
        held,
        tables,
    } = play(&baseline, s)
    else {
        panic!("{s:?}: the baseline does not construct");
    };
    assert_complete(&format!("{s:?} baseline"), &sent, &seen, held, tables);
    let steps = non_close_calls(&baseline);
    baseline.finish();

    let mut runs = 0;
    for (step, &(kind, side)) in steps.iter().enumerate() {
        for &(errno, absorbed) in faults_for(kind) {
            runs += 1;
            let what = format!("{s:?}: {errno:?} at step {step} ({side:?} {kind:?})");
            let fake = Fake::new("sweep");
            fake.plant_fault(step, errno);
            let played = play(&fake, s);
            let calls = non_close_calls(&fake);
            assert_eq!(
                calls.get(step),
                Some(&(kind, side)),
                "{what}: replay diverged"
            );
            let constructing = step < construction_steps;
            match played {
                Played::Unconstructed(e) => {
                    assert!(constructing, "{what}: construction failed late: {e:?}");
                    assert_ne!(errno, Errno::INTR, "{what}: EINTR not retried");
                    assert!(errno_of(&e).is_some(), "{what}: {e:?}");
                }
                Played::Ran {
                    sent,
                    seen,
                    held,
                    tables,
                    ..
                } => {
                    if constructing {
                        assert_eq!(errno, Errno::INTR, "{what}: constructed despite the fault");
                    }
                    if absorbed || constructing {
                        assert_complete(&what, &sent, &seen, held, tables);
                    } else {
                        let f = side.index();
                        let other = side.peer().index();
                        assert_reported_with(&seen[f], |e| {
                            errno_of(e) == Some(errno.raw_os_error())
                        });
                        assert_eq!(held[f], 0, "{what}: failed side holds descriptors");
                        assert_eq!(tables[f], 0, "{what}: failed side's table");
                        assert!(seen[other].failed.is_empty(), "{what}");
                        let got = seen[1].seqs();
                        assert_eq!(got, sent[..got.len()], "{what}: not a prefix");
                    }
                }
            }
            for side in Side::BOTH {
                let left = fake.table(side);
                assert!(
                    left.is_empty(),
                    "{what}: {side:?} never closed {left:?} through Sys::close"
                );
            }
            fake.finish();
        }
    }
    assert!(runs > 20, "{s:?}: only {runs} runs");
}

#[test]
fn every_fault_at_every_step_is_absorbed_or_reported() {
    let scenarios = [
        Scenario {
            reservation: Reservation::Peek,
            max_fds: 2,
            count: 5,
            capacity: 3,
            tight_room: Some(1),
        },
        Scenario {
            reservation: Reservation::Sentinel,
            max_fds: 2,
            count: 5,
            capacity: 3,
            tight_room: Some(0),
        },
        Scenario {
            reservation: Reservation::Peek,
            max_fds: 1,
            count: 3,
            capacity: 1,
            tight_room: None,
        },
        Scenario {
            reservation: Reservation::Sentinel,
            max_fds: 3,
            count: 4,
            capacity: 2,
            tight_room: Some(1),
        },
    ];
    for s in scenarios {
        sweep(s);
    }
}
