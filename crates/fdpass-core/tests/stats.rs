//! `Passer::stats`: the gauges and counters a metrics exporter reads, checked
//! on real socketpairs (traffic both ways, a peer's close, a protocol error,
//! a full descriptor table in a child process with a lowered
//! `RLIMIT_NOFILE`) and, for send back-pressure, which a process cannot
//! provoke at will, on the simulated kernel.
// Linux and Android only: the simulated kernel hands out memfds and
// identifies them by name in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;
mod support;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{drive, field, numbered_pipe, read_number, results, self_command};
use fdpass_core::{Config, Error, Event, Passer, Reservation, Stats};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use support::{Fake, SendStep, Side, RETRY};

/// The child's descriptor limit: small enough to fill in a moment, large
/// enough that freeing the fillers leaves the peek strategy's probe room.
const LIMIT: u64 = 64;

#[test]
fn stats_count_messages_and_descriptors_both_ways() {
    let config = Config::default().with_max_fds_per_message(8);
    let (mut a, mut b) = Passer::pair(config).unwrap();
    // a → b: five descriptors in one message; b → a: two, one message each.
    let five = fdpass_core::Message::from_fds((0..5).map(numbered_pipe).collect());
    a.push_send_message(five).unwrap();
    for _ in 0..5 {
        b.push_recv().unwrap();
    }
    for _ in 0..2 {
        a.push_recv().unwrap();
    }
    let queued = a.stats();
    assert_eq!((queued.queued_sends, queued.outstanding_recvs), (5, 2));
    assert!(queued.held_descriptors >= 5, "{queued:?}");

    let mut b_sent = 0;
    let (mut at_a, mut at_b) = (0, 0);
    drive(&mut [&mut a, &mut b], |passers, events| {
        for (i, event) in events {
            match event {
                Event::Received(_, fd) => {
                    read_number(fd);
                    if i == 0 {
                        at_a += 1
                    } else {
                        at_b += 1
                    }
                }
                Event::Sent(_) => {}
                other => panic!("unexpected event: {other:?}"),
            }
        }
        // b pushes its next descriptor only once the previous one is sent,
        // so each goes in a message of its own.
        if b_sent < 2 && passers[1].queued_sends() == 0 {
            passers[1].push_send(numbered_pipe(10 + b_sent)).unwrap();
            b_sent += 1;
        }
        at_a == 2 && at_b == 5
    });

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (
            sa.messages_sent,
            sa.descriptors_sent,
            sa.messages_received,
            sa.descriptors_received
        ),
        (1, 5, 2, 2),
        "{sa:?}"
    );
    assert_eq!(
        (
            sb.messages_sent,
            sb.descriptors_sent,
            sb.messages_received,
            sb.descriptors_received
        ),
        (2, 2, 1, 5),
        "{sb:?}"
    );
    for s in [sa, sb] {
        assert_eq!((s.queued_sends, s.outstanding_recvs), (0, 0), "{s:?}");
        assert_eq!((s.protocol_errors, s.peer_closes, s.failures), (0, 0, 0));
        assert_eq!(
            (s.full_table_episodes, s.send_backpressure_episodes),
            (0, 0)
        );
        assert!(!s.is_stalled() && s.send_backpressure_since.is_none());
    }

    // The peer's orderly close is counted once; it is not a failure.
    drop(a);
    b.push_recv().unwrap();
    let mut closed = false;
    drive(&mut [&mut b], |_, events| {
        for (_, event) in events {
            assert!(matches!(event, Event::Closed), "{event:?}");
            closed = true;
        }
        closed
    });
    let after = b.stats();
    assert_eq!((after.peer_closes, after.failures), (1, 0), "{after:?}");
}

#[test]
fn a_protocol_error_is_counted_as_one_failure() {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let mut passer = Passer::new(ours.into(), Config::default()).unwrap();
    theirs.write_all(b"not a descriptor stream").unwrap();
    passer.push_recv().unwrap();
    passer.handle_readable(Instant::now());
    assert!(matches!(
        passer.poll_event(),
        Some(Event::Failed(Error::Protocol(_)))
    ));
    let stats = passer.stats();
    assert_eq!(
        (stats.protocol_errors, stats.failures, stats.peer_closes),
        (1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(stats.descriptors_received, 0);
    // Later calls repeat the error; they do not count it again.
    assert!(passer.push_recv().is_err());
    passer.handle_readable(Instant::now());
    assert_eq!(passer.stats().failures, 1);
}

/// The receiver's table is full for two seconds of the driver's clock: the
/// stall shows while it lasts (since the `now` of the first backoff, one
/// episode however many retries), and afterwards the episode count is one
/// and the waiting time is exactly the two seconds between the `now` values.
#[test]
fn a_full_table_stall_is_visible_while_it_lasts_and_counted_after() {
    const NAME: &str = "a_full_table_stall_is_visible_while_it_lasts_and_counted_after";
    if common::role().as_deref() == Some("stalled") {
        return stall_in_a_full_table();
    }
    let output = self_command(NAME, "stalled").output().unwrap();
    let line = results(&output).swap_remove(0);
    assert_eq!(field(&line, "episodes"), 1, "{line}");
    assert_eq!(field(&line, "waited_ms"), 2000, "{line}");
    assert_eq!(field(&line, "received"), 1, "{line}");
}

/// Child side of the test above: asserts at each stage, then reports.
fn stall_in_a_full_table() {
    let config = Config::default().with_reservation(Reservation::Peek);
    let (mut sender, mut receiver) = Passer::pair(config).unwrap();
    let t0 = Instant::now();
    sender.push_send(numbered_pipe(7)).unwrap();
    sender.handle_writable(t0);
    assert!(matches!(sender.poll_event(), Some(Event::Sent(_))));

    limit_table();
    let fillers = fill_table();
    receiver.push_recv().unwrap();
    receiver.handle_readable(t0);
    assert!(receiver.poll_event().is_none(), "nothing fits");
    let stalled = receiver.stats();
    assert!(stalled.is_stalled(), "{stalled:?}");
    assert_eq!(stalled.full_table_since, Some(t0));
    assert_eq!(stalled.full_table_episodes, 1);
    assert_eq!(stalled.descriptors_received, 0);

    // A retry a second later still finds no room: the same episode, which
    // has lasted a second so far.
    let t1 = t0 + Duration::from_secs(1);
    receiver.handle_timeout(t1);
    receiver.handle_readable(t1);
    assert!(receiver.poll_event().is_none(), "still nothing fits");
    let still = receiver.stats();
    assert!(still.is_stalled(), "{still:?}");
    assert_eq!(still.full_table_since, Some(t0));
    assert_eq!(still.full_table_episodes, 1);
    assert_eq!(still.full_table_wait, Duration::from_secs(1));

    drop(fillers);
    let t2 = t0 + Duration::from_secs(2);
    receiver.handle_timeout(t2);
    receiver.handle_readable(t2);
    let Some(Event::Received(_, fd)) = receiver.poll_event() else {
        panic!("the descriptor did not arrive once there was room");
    };
    assert_eq!(read_number(fd), 7);
    let after = receiver.stats();
    assert!(!after.is_stalled(), "{after:?}");
    assert_eq!(after.full_table_episodes, 1);
    assert_eq!(after.failures, 0);
    println!(
        "RESULT episodes={} waited_ms={} received={}",
        after.full_table_episodes,
        after.full_table_wait.as_millis(),
        after.descriptors_received
    );
}

/// With the sentinel strategy a full table stalls receiving after a
/// receive, when the slots it used cannot be taken back: the stall shows
/// while the reservation is short and ends as soon as a retry refills it,
/// before the next message is read (an idle wait for the peer is no stall).
#[test]
fn a_sentinel_stall_lasts_until_the_reservation_is_whole_again() {
    const NAME: &str = "a_sentinel_stall_lasts_until_the_reservation_is_whole_again";
    if common::role().as_deref() == Some("stalled") {
        return sentinel_stall();
    }
    let output = self_command(NAME, "stalled").output().unwrap();
    let line = results(&output).swap_remove(0);
    assert_eq!(field(&line, "episodes"), 1, "{line}");
    assert_eq!(field(&line, "waited_ms"), 2000, "{line}");
    assert_eq!(field(&line, "received"), 2, "{line}");
}

/// Child side of the test above.
fn sentinel_stall() {
    let config = Config::default()
        .with_reservation(Reservation::Sentinel)
        .with_max_fds_per_message(1);
    let (mut sender, mut receiver) = Passer::pair(config).unwrap();
    let t0 = Instant::now();
    sender.push_send(numbered_pipe(1)).unwrap();
    sender.push_send(numbered_pipe(2)).unwrap();
    sender.handle_writable(t0);
    limit_table();
    let fillers = fill_table();
    receiver.push_recv().unwrap();
    receiver.push_recv().unwrap();
    // The first message arrives in the reserved slot, which cannot be
    // taken back: the second waits.
    receiver.handle_readable(t0);
    let Some(Event::Received(_, first)) = receiver.poll_event() else {
        panic!("the reserved slot did not take the first descriptor");
    };
    assert!(receiver.poll_event().is_none());
    let stalled = receiver.stats();
    assert_eq!(stalled.full_table_since, Some(t0), "{stalled:?}");
    assert_eq!(stalled.descriptors_received, 1);

    let t1 = t0 + Duration::from_secs(1);
    receiver.handle_timeout(t1);
    assert!(receiver.stats().is_stalled(), "still no room");

    drop(fillers);
    let t2 = t0 + Duration::from_secs(2);
    receiver.handle_timeout(t2);
    let refilled = receiver.stats();
    assert!(
        !refilled.is_stalled(),
        "the reservation is whole: {refilled:?}"
    );
    receiver.handle_readable(t2);
    let Some(Event::Received(_, second)) = receiver.poll_event() else {
        panic!("the second descriptor did not arrive once there was room");
    };
    assert_eq!((read_number(first), read_number(second)), (1, 2));
    let after = receiver.stats();
    println!(
        "RESULT episodes={} waited_ms={} received={}",
        after.full_table_episodes,
        after.full_table_wait.as_millis(),
        after.descriptors_received
    );
}

/// Send back-pressure (`ETOOMANYREFS`, here scripted twice in a row) is one
/// episode from the first refusal to the message the kernel takes.
#[test]
fn send_backpressure_is_one_episode_however_many_retries() {
    let fake = Fake::new("send_backpressure_is_one_episode_however_many_retries");
    let config = support::config(Reservation::Peek, 2);
    let mut a = fake.passer(Side::A, config).unwrap();
    let mut b = fake.passer(Side::B, config).unwrap();
    for _ in 0..2 {
        a.push_send(fake.numbered(Side::A)).unwrap();
    }
    fake.on_send(Side::A, SendStep::Fail(Errno::TOOMANYREFS));
    fake.on_send(Side::A, SendStep::Fail(Errno::NOBUFS));

    let t0 = Instant::now();
    a.handle_writable(t0);
    let pressed: Stats = a.stats();
    assert_eq!(pressed.send_backpressure_since, Some(t0));
    assert_eq!(pressed.send_backpressure_episodes, 1);
    assert_eq!(pressed.messages_sent, 0);
    assert!(!pressed.is_stalled(), "back-pressure is not a full table");

    let t1 = t0 + RETRY.initial;
    a.handle_timeout(t1);
    a.handle_writable(t1);
    assert_eq!(a.stats().send_backpressure_episodes, 1, "the same episode");

    let t2 = t1 + RETRY.initial * 2;
    a.handle_timeout(t2);
    a.handle_writable(t2);
    let after = a.stats();
    assert_eq!(after.send_backpressure_since, None, "{after:?}");
    assert_eq!(after.send_backpressure_episodes, 1);
    assert_eq!(after.send_backpressure_wait, t2 - t0);
    assert_eq!((after.messages_sent, after.descriptors_sent), (1, 2));
    assert_eq!(after.failures, 0);

    for _ in 0..2 {
        b.push_recv().unwrap();
    }
    b.handle_readable(t2);
    while let Some(event) = b.poll_event() {
        let Event::Received(_, fd) = event else {
            panic!("unexpected event: {event:?}");
        };
        fake.app_close(Side::B, fd);
    }
    assert_eq!(b.stats().descriptors_received, 2);
    drop((a, b));
    fake.finish();
}

/// Lowers this process's descriptor limit to `LIMIT`.
fn limit_table() {
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(LIMIT),
            maximum: hard,
        },
    )
    .unwrap();
}

/// Opens /dev/null until the table is full (`EMFILE`).
fn fill_table() -> Vec<OwnedFd> {
    let mut fillers = Vec::new();
    loop {
        match rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fillers.push(fd),
            Err(Errno::MFILE) => return fillers,
            Err(Errno::INTR) => {}
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
}
