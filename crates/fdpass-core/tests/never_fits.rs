//! A message the receiver's descriptor table can never hold is a typed
//! error, promptly; a table that is merely small still delivers everything.
//! Each case lowers RLIMIT_NOFILE, so each runs in a child process.

mod common;

use std::os::fd::OwnedFd;
use std::time::Instant;

use common::{drive, numbered_pipe, read_number, results, self_command};
use fdpass_core::{Config, Error, Event, Message, Passer, Reservation};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Lowers the soft limit to `n`; returns the limit it replaced.
fn lower_limit_to(n: u64) -> Rlimit {
    let saved = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(n),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    saved
}

/// Runs `body` in a child process when this is the parent.
fn in_child(name: &str, body: impl FnOnce()) {
    if common::role().as_deref() == Some("child") {
        body();
        println!("RESULT ok");
        return;
    }
    let output = self_command(name, "child").output().unwrap();
    assert_eq!(results(&output), ["ok"]);
}

/// A native sender (opened before the limit is lowered) sends one message
/// of `n` descriptors to a receiver whose limit is then `limit`.
fn one_message_under(limit: u64, n: usize, reservation: Reservation) -> Vec<Event> {
    let config = Config::default().with_reservation(reservation);
    let (mut sender, mut receiver) = Passer::pair(config).unwrap();
    let now = Instant::now();
    receiver.handle_writable(now);
    sender.handle_readable(now); // the receiver's hello: up to 128 per message
    let fds: Vec<OwnedFd> = (0..n as u64).map(numbered_pipe).collect();
    sender.push_send_message(Message::from_fds(fds)).unwrap();
    sender.handle_writable(now);
    assert_eq!(sender.queued_sends(), 0, "in the kernel's hands");
    let saved = lower_limit_to(limit);
    receiver.push_recv_message().unwrap();
    receiver.handle_readable(now);
    let seen = std::iter::from_fn(|| receiver.poll_event()).collect();
    setrlimit(Resource::Nofile, saved).unwrap();
    seen
}

#[test]
fn a_message_larger_than_the_table_can_ever_hold_is_an_error_not_a_wait() {
    in_child(
        "a_message_larger_than_the_table_can_ever_hold_is_an_error_not_a_wait",
        || {
            for n in [41, 60] {
                let seen = one_message_under(40, n, Reservation::Peek);
                assert!(
                    matches!(
                        seen[..],
                        [Event::Failed(Error::MessageNeverFits { descriptors, room: 39 })]
                            if descriptors == n
                    ),
                    "{n}: {seen:?}"
                );
            }
        },
    );
}

#[test]
fn a_sentinel_reservation_that_can_never_fit_is_an_error_not_a_wait() {
    in_child(
        "a_sentinel_reservation_that_can_never_fit_is_an_error_not_a_wait",
        || {
            // 128 slots, taken under the usual limit; the limit drops to 20.
            let seen = one_message_under(20, 1, Reservation::Sentinel);
            assert!(
                matches!(
                    seen[..],
                    [Event::Failed(Error::MessageNeverFits {
                        descriptors: 128,
                        room: 19
                    })]
                ),
                "{seen:?}"
            );
        },
    );
}

const PATH_VAR: &str = "FDPASS_TEST_LISTENER";

#[test]
fn a_small_table_receives_a_batch_larger_than_itself_in_parts() {
    const NAME: &str = "a_small_table_receives_a_batch_larger_than_itself_in_parts";
    if common::role().as_deref() == Some("small-table") {
        // The receiver, in its own process: created under RLIMIT_NOFILE 16,
        // its hello announces batches that fit, and the sender keeps to them.
        lower_limit_to(16);
        let path = std::env::var(PATH_VAR).unwrap();
        let socket = fdpass_core::socket::connect(path).unwrap();
        let mut receiver = Passer::new(socket, Config::default()).unwrap();
        assert_eq!(receiver.config().reservation, Reservation::Peek);
        let mut got = Vec::new();
        drive(&mut [&mut receiver], |passers, events| {
            for (_, event) in events {
                match event {
                    Event::Received(_, fd) => got.push(read_number(fd)),
                    other => panic!("{other:?}"),
                }
            }
            if passers[0].outstanding_recvs() == 0 && got.len() < 17 {
                passers[0].push_recv().unwrap();
            }
            got.len() == 17
        });
        assert_eq!(got, (0..17).collect::<Vec<_>>());
        println!("RESULT ok");
        return;
    }
    let dir = common::TempDir::new("small-table");
    let path = dir.path().join("sock");
    let listener = fdpass_core::socket::Listener::bind(&path).unwrap();
    let child = self_command(NAME, "small-table")
        .env(PATH_VAR, &path)
        .spawn()
        .unwrap();
    let (socket, child) = common::accept_from(&listener, child);
    let mut sender = Passer::new(socket, Config::default()).unwrap();
    // The receiver's hello first, so that the sender batches (before it, one
    // descriptor goes per message).
    drive(&mut [&mut sender], |passers, events| {
        assert!(events.is_empty(), "{events:?}");
        passers[0].peer_limits().is_some()
    });
    let announced = sender.peer_limits().unwrap().max_fds_per_message;
    assert!(announced <= 7, "announced {announced} under a limit of 16");
    for n in 0..17 {
        sender.push_send(numbered_pipe(n)).unwrap();
    }
    let mut closed = false;
    drive(&mut [&mut sender], |passers, events| {
        for (_, event) in events {
            match event {
                Event::Sent(_) => {}
                Event::Closed | Event::SendFailed(_) => closed = true,
                other => panic!("{other:?}"),
            }
        }
        passers[0].queued_sends() == 0 || closed
    });
    if closed {
        common::fail_with_output(child, "the receiver went away");
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(results(&output), ["ok"]);
}
