//! A message the receiver's descriptor table can never hold is an error,
//! promptly, not a wait for room that will never come; a table that is
//! merely full still delays (`full_table`). And a receiver that announces
//! no more than its table holds gets everything.
//!
//! Each receiver runs in a child process that lowers its `RLIMIT_NOFILE`
//! once its passer exists, as a program that runs short of descriptors
//! later would. The sender is the core passer in the test's process.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::adapters::core::Core;
use crate::{
    expect_closed, expect_fd, inherited_passer, limit_descriptors, numbered_pipe, ok,
    open_descriptors, read_number, Adapter, Config, Ctx, Error, Message, MessageAdapter,
    Reservation, Wire,
};

/// How long the error may take. The wait it replaces never ends; a
/// generous bound, far below that.
const PROMPT: Duration = Duration::from_secs(10);
/// The number a descriptor of the receiver's own holds: it must survive.
const MINE: u64 = 4242;

/// What a receiver's wire and the message's size are, from its role
/// (`<wire>-<descriptors>`).
fn parse_role(role: &str) -> (Wire, usize) {
    let (wire, n) = role.split_once('-').expect("<wire>-<descriptors>");
    let wire = match wire {
        "native" => Wire::Native,
        "classic" => Wire::CLASSIC,
        other => panic!("no wire {other:?}"),
    };
    (wire, n.parse().expect("a number of descriptors"))
}

/// Sends `n` numbered pipes in one `sendmsg` on `wire` (on the native wire,
/// one message of `n`, sent once the receiver's hello allowed it; on the
/// classic wire, a batch of `n`), and returns once the kernel took them.
fn send_in_one(socket: OwnedFd, wire: Wire, n: usize) {
    let fds = (0..n as u64).map(numbered_pipe).collect::<Vec<_>>();
    // A sentinel receiver fails at its first read, maybe before this send.
    let check = |sent: Result<(), Error>, what: &str| {
        if !sentinel_here() {
            ok(sent, what);
        }
    };
    match wire {
        Wire::Native => {
            let mut sender = ok(Core::new(socket, Config::default()), "wrap our end");
            check(sender.send_message(Message::from_fds(fds)), "send_message");
        }
        _ => {
            let config = Config::default().with_wire(Wire::Classic { batch: n });
            let mut sender = ok(Core::new(socket, config), "wrap our end");
            ok(sender.push_send_many(fds), "push_send_many");
            check(sender.flush(), "flush");
        }
    }
}

/// Whether the receivers here take the sentinel reservation: its slots fill
/// a small table by themselves, so the receiver fails at its first read
/// whatever was sent (and may be gone before a sender's `sendmsg`).
fn sentinel_here() -> bool {
    Reservation::lossless_here() == Reservation::Sentinel
}

/// Descriptors open now, less the sentinel reservation of a passer built
/// with `config` (its own slots, let go of when it fails): what must be open
/// again after the failure. Counted before the limit is lowered, since the
/// slots alone may exceed it.
fn open_but_reservation(config: &Config) -> usize {
    let slots = if sentinel_here() && config.reservation != Reservation::Peek {
        config.max_fds_per_message + 1
    } else {
        0
    };
    open_descriptors() - slots
}

/// Puts the soft `RLIMIT_NOFILE` back where it was before the test lowered it.
fn restore_limit(saved: rustix::process::Rlimit) {
    rustix::process::setrlimit(rustix::process::Resource::Nofile, saved)
        .expect("restore RLIMIT_NOFILE");
}

/// Receives once under the lowered limit `limit`; requires
/// `Error::MessageNeverFits` within [`PROMPT`] with the room the limit
/// leaves and at least `descriptors`; returns the descriptors it named.
/// Then the passer stays failed.
fn expect_never_fits<A: Adapter>(passer: &mut A, limit: u64, descriptors: usize) -> usize {
    let start = Instant::now();
    let outcome = passer.recv();
    let took = start.elapsed();
    let named = match outcome {
        Err(Error::MessageNeverFits {
            descriptors: named,
            room,
        }) => {
            // The passer's own socket takes one slot under any limit.
            assert_eq!(room as u64, limit - 1, "the room the limit leaves");
            assert!(named >= descriptors && named > room, "{named} in {room}");
            named
        }
        Err(e) => panic!("expected MessageNeverFits, got {e:?}"),
        Ok(Some(_)) => panic!("a descriptor arrived that the table cannot hold"),
        Ok(None) => panic!("an undeliverable message read as an orderly close"),
    };
    assert!(took < PROMPT, "MessageNeverFits took {took:?}");
    assert!(
        matches!(passer.recv(), Err(Error::MessageNeverFits { .. })),
        "the passer stays failed"
    );
    named
}

/// Under `RLIMIT_NOFILE` 40, one message of 41 or 60 descriptors on the
/// native wire, or one classic `sendmsg` of 41: the receive fails with
/// `Error::MessageNeverFits` naming exactly that many (with the default
/// reservation where it peeks), closes nothing of the receiver's own, and
/// leaves nothing open.
pub fn a_message_the_table_can_never_hold_is_an_error_not_a_wait<A: Adapter>(ctx: &Ctx) {
    const LIMIT: u64 = 40;
    match ctx.role() {
        None => {
            for role in ["native-41", "native-60", "classic-41"] {
                let (socket, child) = ctx.spawn_connected(role);
                let (wire, n) = parse_role(role);
                send_in_one(socket, wire, n);
                child.finish();
            }
        }
        Some(role) => {
            let (wire, n) = parse_role(role);
            let config = Config::default().with_wire(wire);
            let mut passer = inherited_passer::<A>(config);
            let mine = numbered_pipe(MINE);
            let before = open_but_reservation(&config);
            let saved = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            limit_descriptors(LIMIT);
            let named = expect_never_fits(&mut passer, LIMIT, n);
            if Reservation::lossless_here() == Reservation::Peek {
                assert_eq!(named, n, "the message's own descriptors");
            }
            restore_limit(saved);
            assert_eq!(open_descriptors(), before, "nothing left open or closed");
            assert_eq!(read_number(mine), MINE, "our own descriptor is intact");
        }
    }
}

/// A sentinel reservation of the default 128 slots under `RLIMIT_NOFILE`
/// 20, on either wire: the receive fails with `Error::MessageNeverFits` at
/// once (the reservation can never be whole again, whatever the message)
/// and closes nothing of the receiver's own. The native sender sends one
/// descriptor, which needs no hello from the receiver; the classic one 30.
pub fn a_reservation_the_table_can_never_hold_is_an_error_not_a_wait<A: Adapter>(ctx: &Ctx) {
    const LIMIT: u64 = 20;
    match ctx.role() {
        None => {
            for role in ["native-1", "classic-30"] {
                let (socket, child) = ctx.spawn_connected(role);
                let (wire, n) = parse_role(role);
                send_in_one(socket, wire, n);
                child.finish();
            }
        }
        Some(role) => {
            let (wire, n) = parse_role(role);
            let config = Config::default()
                .with_wire(wire)
                .with_reservation(Reservation::Sentinel);
            let mut passer = inherited_passer::<A>(config);
            let mine = numbered_pipe(MINE);
            limit_descriptors(LIMIT);
            // The reservation's slots alone exceed the limit: nothing can
            // be opened to count descriptors, so only the outcome and our
            // own descriptor are checked.
            expect_never_fits(&mut passer, LIMIT, n);
            assert_eq!(read_number(mine), MINE, "our own descriptor is intact");
        }
    }
}

/// Descriptors in the batch, and the limit they exceed by one.
const BATCH: u64 = 17;
const SMALL_LIMIT: u64 = 16;

/// Under `RLIMIT_NOFILE` 16, a sender that learnt the receiver's limits
/// pushes a batch of 17 descriptors, which leave in one `sendmsg` (the
/// receiver announced 128 per message): the sender's flush succeeds (the
/// kernel took them), and the receiver's receive fails with
/// `Error::MessageNeverFits` for the 17, promptly, instead of stalling for
/// ever; nothing of its own is closed or left open.
pub fn a_batch_the_table_can_never_hold_is_an_error_not_a_wait<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("small table");
            let mut sender = ok(Core::new(socket, Config::default()), "wrap our end");
            let limits = sender.wait_for_peer_limits();
            // A sentinel receiver fails at its first read whatever is sent,
            // maybe before its hello: its own outcome is what counts there.
            if !sentinel_here() {
                let limits = ok(limits, "the receiver's hello");
                assert_eq!(limits.max_fds_per_message, 128, "the default announced");
            }
            ok(
                sender.push_send_many((0..BATCH).map(numbered_pipe).collect()),
                "push_send_many",
            );
            let flushed = sender.flush();
            // A sentinel receiver fails at its first read, maybe before this.
            if !sentinel_here() {
                ok(flushed, "flush: the kernel took the batch");
            }
            child.finish();
        }
        Some("small table") => {
            let config = Config::default();
            let mut passer = inherited_passer::<A>(config);
            let mine = numbered_pipe(MINE);
            let before = open_but_reservation(&config);
            let saved = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            limit_descriptors(SMALL_LIMIT);
            let named = expect_never_fits(&mut passer, SMALL_LIMIT, BATCH as usize);
            if Reservation::lossless_here() == Reservation::Peek {
                assert_eq!(named, BATCH as usize, "the batch's descriptors");
            }
            restore_limit(saved);
            assert_eq!(open_descriptors(), before, "nothing left open or closed");
            assert_eq!(read_number(mine), MINE, "our own descriptor is intact");
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// The same batch of 17 under `RLIMIT_NOFILE` 16, arriving in the same read
/// as the sender's hello (the Python peer sends both at once, so the
/// receiver's first read holds both): the receive still fails with
/// `Error::MessageNeverFits` for the 17, promptly. Between two passers this
/// happens whenever the sender's hello and its first batch leave before the
/// receiver reads.
pub fn a_batch_that_comes_with_the_hello_and_can_never_fit_is_an_error_not_a_wait<A: Adapter>(
    ctx: &Ctx,
) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("small table");
            let count = BATCH.to_string();
            let peer = crate::python_peer(
                crate::NATIVE_PEER,
                socket,
                &["rush", "--count", &count, "--base", "0"],
            );
            child.finish();
            crate::peer_ended(peer);
        }
        Some("small table") => {
            let socket = crate::inherited();
            // Both sends wait in the socket before the passer reads: a peek
            // without room for descriptors installs none.
            let both = frame_bytes_of_hello_and_batch();
            wait_for_bytes(&socket, both);
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            let mine = numbered_pipe(MINE);
            limit_descriptors(SMALL_LIMIT);
            let named = expect_never_fits(&mut passer, SMALL_LIMIT, BATCH as usize);
            if Reservation::lossless_here() == Reservation::Peek {
                assert_eq!(named, BATCH as usize, "the batch's descriptors");
            }
            assert_eq!(read_number(mine), MINE, "our own descriptor is intact");
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// Bytes of a hello and of `BATCH` frames of one descriptor each.
fn frame_bytes_of_hello_and_batch() -> usize {
    fdpass_core::frame::HELLO_LEN + BATCH as usize * fdpass_core::frame::HEADER_LEN
}

/// Waits until `n` bytes wait in `socket`, looking with `MSG_PEEK` and no
/// room for descriptors (so none is installed); fails after `OVERALL`.
fn wait_for_bytes(socket: &OwnedFd, n: usize) {
    use rustix::net::{recv, RecvFlags};
    let give_up = Instant::now() + crate::OVERALL;
    let mut buf = vec![0u8; n];
    loop {
        crate::wait_readable(socket, "the peer's sends");
        let (seen, _) = recv(socket, &mut buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)
            .expect("peek at the socket");
        if seen >= n {
            return;
        }
        assert!(seen > 0, "the peer closed before sending everything");
        assert!(Instant::now() < give_up, "the peer's sends did not arrive");
    }
}

/// The fix the error names: the same batch of 17 under `RLIMIT_NOFILE` 16
/// reaches a receiver that announces 4 descriptors per message, every
/// descriptor in order, since the sender never puts more than 4 in one
/// `sendmsg`.
pub fn a_receiver_that_announces_what_its_table_holds_gets_the_whole_batch<A: Adapter>(ctx: &Ctx) {
    const ANNOUNCED: usize = 4;
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("small table");
            let mut sender = ok(Core::new(socket, Config::default()), "wrap our end");
            let limits = ok(sender.wait_for_peer_limits(), "the receiver's hello");
            assert_eq!(limits.max_fds_per_message, ANNOUNCED, "what it announced");
            ok(
                sender.push_send_many((0..BATCH).map(numbered_pipe).collect()),
                "push_send_many",
            );
            ok(sender.flush(), "flush");
            sender.close();
            child.finish();
        }
        Some("small table") => {
            let config = Config::default().with_max_fds_per_message(ANNOUNCED);
            let mut passer = inherited_passer::<A>(config);
            limit_descriptors(SMALL_LIMIT);
            for n in 0..BATCH {
                assert_eq!(read_number(expect_fd(passer.recv())), n, "in order");
            }
            expect_closed(passer.recv());
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// Message calls: a message of 41 descriptors and a payload under
/// `RLIMIT_NOFILE` 40 fails the message receive with
/// `Error::MessageNeverFits` too.
pub fn a_message_receive_reports_a_message_that_can_never_fit<A: MessageAdapter>(ctx: &Ctx) {
    const LIMIT: u64 = 40;
    const N: usize = 41;
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("receiver");
            let mut sender = ok(Core::new(socket, Config::default()), "wrap our end");
            let fds = (0..N as u64).map(numbered_pipe).collect();
            let sent = sender.send_message(Message::new(b"forty-one".to_vec(), fds));
            // A sentinel receiver fails at its first read, maybe before its
            // hello could say the message fits.
            if !sentinel_here() {
                ok(sent, "send_message");
            }
            child.finish();
        }
        Some("receiver") => {
            let mut passer = inherited_passer::<A>(Config::default());
            limit_descriptors(LIMIT);
            let start = Instant::now();
            match passer.recv_message() {
                Err(Error::MessageNeverFits { descriptors, room }) => {
                    assert_eq!(room as u64, LIMIT - 1);
                    assert!(descriptors >= N, "{descriptors}");
                }
                Err(e) => panic!("expected MessageNeverFits, got {e:?}"),
                Ok(Some(_)) => panic!("a message arrived that the table cannot hold"),
                Ok(None) => panic!("an undeliverable message read as an orderly close"),
            }
            assert!(start.elapsed() < PROMPT, "not promptly");
        }
        Some(_) => ctx.unknown_role(),
    }
}
