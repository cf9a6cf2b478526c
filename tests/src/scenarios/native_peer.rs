//! The native wire is what `docs/wire.md` says, and nothing more: a peer
//! written in Python from that page alone (`tests/peers/native_peer.py`)
//! talks to every adapter, both ways, with messages of every shape and
//! several frames per `sendmsg`, on `SOCK_STREAM` and `SOCK_SEQPACKET`.
//!
//! The shapes below are the Python peer's (`shape`, `number`, `GROUPS`): both
//! ends compute them, so each checks what the other sent, byte for byte and
//! descriptor by descriptor (each descriptor is a pipe holding its number).

use std::os::fd::OwnedFd;

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use crate::{
    expect_closed, expect_fd, ok, peer_finished, python_peer, read_number, Adapter, Ctx, Message,
    MessageAdapter, NATIVE_PEER,
};

/// Descriptors in a message, by its number modulo 8 (`FDS` in the peer).
const FDS: [usize; 8] = [0, 1, 2, 0, 3, 1, 0, 7];
/// Payload bytes in a message, by its number modulo 7 (`LENGTHS`).
const LENGTHS: [usize; 7] = [0, 64, 0, 5, 4096, 1, 300];
/// Every `LARGE_EVERY`th message (at `LARGE_EVERY / 2`) is larger than a
/// sender may send before the receiver's hello: `LARGE_FDS` descriptors
/// and `LARGE_PAYLOAD` bytes, the default `max_payload_len`.
const LARGE_EVERY: usize = 50;
const LARGE_FDS: usize = 40;
const LARGE_PAYLOAD: usize = 64 << 10;
/// With `--fds-only`, the sizes of the peer's payload-less messages in turn.
const GROUPS: [usize; 6] = [1, 2, 3, 7, 1, 40];

/// Messages each way.
const MESSAGES: usize = 200;
/// Descriptors each way on the descriptor-only path.
const DESCRIPTORS: u64 = 600;
/// Numbers of what the peer sends, and of what we send.
const PEER_BASE: u64 = 1_000_000;
const OUR_BASE: u64 = 5_000_000;

/// Message `i`: its payload and its number of descriptors.
fn shape(i: usize) -> (Vec<u8>, usize) {
    let (fds, len) = if i % LARGE_EVERY == LARGE_EVERY / 2 {
        (LARGE_FDS, LARGE_PAYLOAD)
    } else {
        (FDS[i % FDS.len()], LENGTHS[i % LENGTHS.len()])
    };
    let payload = (0..len).map(|k| (i * 131 + k * 7 + 1) as u8).collect();
    (payload, fds)
}

/// The number descriptor `j` of message `i` holds.
fn number(base: u64, i: usize, j: usize) -> u64 {
    base + 1000 * i as u64 + j as u64
}

/// Message `i` as we send it.
fn message(base: u64, i: usize) -> Message {
    let (payload, fds) = shape(i);
    let fds = (0..fds)
        .map(|j| crate::numbered_pipe(number(base, i, j)))
        .collect();
    Message::new(payload, fds)
}

/// Checks that `received` is message `i` (reading its descriptors, which
/// closes them).
fn check_message(received: Message, base: u64, i: usize) {
    let (payload, fds) = shape(i);
    assert!(
        received.payload == payload,
        "message {i}: a payload of {} bytes, not the {} expected, or other bytes",
        received.payload.len(),
        payload.len()
    );
    assert_eq!(received.fds.len(), fds, "message {i}: descriptors");
    let numbers: Vec<u64> = received.fds.iter().map(crate::peek_number).collect();
    let expected: Vec<u64> = (0..fds).map(|j| number(base, i, j)).collect();
    assert_eq!(numbers, expected, "message {i}: the descriptors' numbers");
}

/// The next message, which must come.
fn expect_message<A: MessageAdapter>(passer: &mut A) -> Message {
    match passer.recv_message() {
        Ok(Some(message)) => message,
        Ok(None) => panic!("the peer closed before the expected message"),
        Err(e) => panic!("receiving a message failed: {e}"),
    }
}

/// A connected pair of `AF_UNIX` sockets of `kind`, close-on-exec.
fn connected(kind: SocketType) -> (OwnedFd, OwnedFd) {
    socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None).expect("socketpair")
}

/// Every adapter, through its descriptor calls: the peer sends
/// `DESCRIPTORS` numbered pipes in payload-less messages of 1 to 40
/// descriptors, several messages per `sendmsg`, and we receive them one by
/// one, in order; then we send as many in one batch and the peer checks
/// them; then each end sees the other's orderly close.
pub fn native_peer_from_the_spec_passes_descriptors_both_ways<A: Adapter>(_ctx: &Ctx) {
    for kind in [SocketType::STREAM, SocketType::SEQPACKET] {
        let (ours, theirs) = connected(kind);
        let count = DESCRIPTORS.to_string();
        let (peer_base, our_base) = (PEER_BASE.to_string(), OUR_BASE.to_string());
        let peer = python_peer(
            NATIVE_PEER,
            theirs,
            &[
                "--fds-only",
                "--batch",
                "5",
                "exchange",
                "--count",
                &count,
                "--base",
                &peer_base,
                "--recv-count",
                &count,
                "--recv-base",
                &our_base,
            ],
        );
        let mut passer = ok(A::new(ours, crate::Config::default()), "wrap our end");
        for k in 0..DESCRIPTORS {
            let fd = expect_fd(passer.recv());
            assert_eq!(read_number(fd), PEER_BASE + k, "{kind:?}: descriptor {k}");
        }
        let batch = (0..DESCRIPTORS)
            .map(|k| crate::numbered_pipe(OUR_BASE + k))
            .collect();
        ok(passer.push_send_many(batch), "push_send_many");
        ok(passer.flush(), "flush");
        // The peer ends its side once it checked everything.
        expect_closed(passer.recv());
        passer.close();
        let results = peer_finished(peer);
        assert_eq!(results.number("received_descriptors"), DESCRIPTORS);
        assert_eq!(results.number("frames"), groups(DESCRIPTORS));
        assert!(
            results.number("sends") < results.number("frames"),
            "the peer batched frames: {results:?}"
        );
    }
}

/// Every adapter's message calls: the peer sends `MESSAGES` messages of
/// every shape (empty, payload only, descriptors only, both, the largest
/// payload with 40 descriptors), several frames per `sendmsg`; we receive
/// and check each; then we send as many and the peer checks each; then each
/// end sees the other's orderly close. On a stream and on a seqpacket
/// socket.
pub fn native_peer_from_the_spec_exchanges_messages_both_ways<A: MessageAdapter>(_ctx: &Ctx) {
    for kind in [SocketType::STREAM, SocketType::SEQPACKET] {
        let (ours, theirs) = connected(kind);
        let count = MESSAGES.to_string();
        let (peer_base, our_base) = (PEER_BASE.to_string(), OUR_BASE.to_string());
        let peer = python_peer(
            NATIVE_PEER,
            theirs,
            &[
                "--batch",
                "4",
                "exchange",
                "--count",
                &count,
                "--base",
                &peer_base,
                "--recv-count",
                &count,
                "--recv-base",
                &our_base,
            ],
        );
        let mut passer = ok(A::new(ours, crate::Config::default()), "wrap our end");
        for i in 0..MESSAGES {
            check_message(expect_message(&mut passer), PEER_BASE, i);
        }
        let limits = passer.peer_limits().expect("the peer's hello came first");
        assert_eq!(
            (
                limits.version,
                limits.max_fds_per_message,
                limits.max_payload_len
            ),
            (1, 128, 64 << 10),
            "what the peer announced"
        );
        for i in 0..MESSAGES {
            ok(
                passer
                    .push_send_message(message(OUR_BASE, i))
                    .map_err(Into::into),
                "push_send_message",
            );
        }
        ok(passer.flush(), "flush");
        assert!(
            matches!(passer.recv_message(), Ok(None)),
            "{kind:?}: the peer's orderly close after it checked everything"
        );
        passer.close();
        let results = peer_finished(peer);
        assert_eq!(results.number("received_messages"), MESSAGES as u64);
    }
}

/// Every adapter's message calls, round trip: we push `MESSAGES` messages
/// at once (sent several per `sendmsg` once the peer's hello arrived), the
/// peer sends each back as it parsed it, batched, and every one comes back
/// whole and in order.
pub fn native_peer_echoes_every_message_whole_and_in_order<A: MessageAdapter>(_ctx: &Ctx) {
    let (ours, theirs) = connected(SocketType::STREAM);
    let peer = python_peer(NATIVE_PEER, theirs, &["--batch", "3", "echo"]);
    let mut passer = ok(A::new(ours, crate::Config::default()), "wrap our end");
    for i in 0..MESSAGES {
        ok(
            passer
                .push_send_message(message(OUR_BASE, i))
                .map_err(Into::into),
            "push_send_message",
        );
    }
    for i in 0..MESSAGES {
        check_message(expect_message(&mut passer), OUR_BASE, i);
    }
    passer.close();
    let results = peer_finished(peer);
    assert_eq!(results.number("echoed"), MESSAGES as u64);
}

/// Messages of every shape between two passers, the receiver in a child
/// process with each reservation: `MESSAGES` pushed at once (so the
/// sender's writes are cut short by a full socket buffer), each received
/// whole and in order, and the end of the stream after them.
pub fn messages_of_every_shape_arrive_whole_and_in_order<A: MessageAdapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            for role in ["peek", "sentinel"] {
                let config = crate::Config::default().with_reservation(reservation(role));
                if role == "peek" && crate::peek_refused_here::<A>(config) {
                    continue;
                }
                let (socket, child) = ctx.spawn_connected(role);
                let mut passer = ok(A::new(socket, crate::Config::default()), "wrap our end");
                for i in 0..MESSAGES {
                    ok(
                        passer
                            .push_send_message(message(OUR_BASE, i))
                            .map_err(Into::into),
                        "push_send_message",
                    );
                }
                ok(passer.flush(), "flush");
                passer.close();
                child.finish();
            }
        }
        Some(role) => {
            let config = crate::Config::default().with_reservation(reservation(role));
            let mut passer = crate::inherited_passer::<A>(config);
            for i in 0..MESSAGES {
                check_message(expect_message(&mut passer), OUR_BASE, i);
            }
            assert!(matches!(passer.recv_message(), Ok(None)), "the end");
        }
    }
}

fn reservation(role: &str) -> crate::Reservation {
    match role {
        "peek" => crate::Reservation::Peek,
        "sentinel" => crate::Reservation::Sentinel,
        other => panic!("no reservation {other:?}"),
    }
}

/// How many messages the peer sends `count` descriptors in (see
/// [`GROUPS`]).
fn groups(count: u64) -> u64 {
    let (mut sent, mut messages) = (0, 0);
    while sent < count {
        sent += (GROUPS[messages % GROUPS.len()] as u64).min(count - sent);
        messages += 1;
    }
    messages as u64
}
