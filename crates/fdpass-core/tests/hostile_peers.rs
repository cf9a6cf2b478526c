//! Hostile or broken peers on real sockets. The peer is not a passer: it
//! writes with raw `sendmsg` whatever bytes and control messages a test
//! chooses. Every case ends in the exact typed error `docs/wire.md` gives for
//! it, or is accepted by design (and says so), with no panic and no leak.
//!
//! Leaks are checked two ways. In-process, every descriptor a case makes is a
//! memfd whose name carries a tag unique to the case, and the case ends by
//! asserting that none with its tag is open (other tests run in parallel
//! threads of this process, so only our own descriptors can be counted). In a
//! child process that runs nothing else, every case runs again with the whole
//! descriptor table counted before and after, and the flood is checked against
//! the exact table count at every step.
// Linux and Android only: the peer's descriptors are tagged memfds counted in `/proc/self/fd`, and some cases send `SCM_CREDENTIALS`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;
mod hostile;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use common::{drive, open_descriptors};
use fdpass_core::{Config, Error, Event, Interest, Passer, ProtocolError, Reservation, Want};
use hostile::{send_raw, Raw, Tag};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

/// The classic wire: these peers write it by hand (a byte per descriptor),
/// and break it in every way they can. The native wire's hostile peers are
/// in `hostile_native_peers.rs`.
fn config(reservation: Reservation, max: usize) -> Config {
    Config::default()
        .with_wire(fdpass_core::Wire::Classic { batch: max })
        .with_reservation(reservation)
        .with_max_fds_per_message(max)
}

/// A connected `SOCK_STREAM` pair: the raw peer's end, the passer's end.
fn stream() -> (OwnedFd, OwnedFd) {
    fdpass_core::socket::pair().expect("socketpair")
}

/// A connected `SOCK_SEQPACKET` pair: the raw peer's end, the passer's end.
fn seqpacket() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

/// `n` new tagged memfds labelled `m<first>`, `m<first + 1>`, ...
fn memfds(tag: &Tag, first: usize, n: usize) -> Vec<OwnedFd> {
    (first..first + n)
        .map(|i| tag.memfd(&format!("m{i}")))
        .collect()
}

fn borrowed(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(|fd| fd.as_fd()).collect()
}

/// The raw peer sends `bytes` with `fds` attached in one `sendmsg`, which must
/// take everything, then closes its own copies of `fds`.
fn send(peer: &OwnedFd, bytes: &[u8], fds: Vec<OwnedFd>) {
    let fds_borrowed = borrowed(&fds);
    let raw = Raw {
        bytes,
        fds: &fds_borrowed,
        credentials: false,
    };
    assert_eq!(
        send_raw(peer, raw),
        Ok(bytes.len()),
        "the raw peer's sendmsg"
    );
}

/// How a run of the passer ended.
#[derive(Debug)]
enum End {
    Failed(Error),
    Closed,
    /// As many descriptors as the run asked for arrived.
    Received,
}

#[derive(Debug)]
struct Outcome {
    received: Vec<OwnedFd>,
    end: End,
}

/// Pushes `requests` receive requests, then drives `passer` until it fails,
/// sees the end of the stream, or (with `stop_after`) has received that many
/// descriptors. Panics on a `Sent` event or on any event after the end.
fn run(passer: &mut Passer, requests: usize, stop_after: Option<usize>) -> Outcome {
    for _ in 0..requests {
        passer.push_recv().expect("push_recv");
    }
    let mut received = Vec::new();
    let mut end = None;
    drive(&mut [passer], |_, events| {
        for (_, event) in events {
            assert!(end.is_none(), "event after {end:?}: {event:?}");
            match event {
                Event::Received(_, fd) => received.push(fd),
                Event::Failed(e) => end = Some(End::Failed(e)),
                Event::Closed => end = Some(End::Closed),
                other => panic!("unexpected event {other:?}"),
            }
        }
        end.is_some() || stop_after.is_some_and(|n| received.len() >= n)
    });
    Outcome {
        received,
        end: end.unwrap_or(End::Received),
    }
}

/// The labels of received descriptors, which must all be the tag's.
fn labels(tag: &Tag, fds: &[OwnedFd]) -> Vec<String> {
    fds.iter()
        .map(|fd| {
            tag.label_of(fd.as_raw_fd())
                .unwrap_or_else(|| panic!("received a descriptor the peer never sent: {fd:?}"))
        })
        .collect()
}

fn expected_labels(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// Asserts that the run failed with `expected`, and that the failed passer
/// holds nothing, wants nothing and reports the same error to later pushes.
fn assert_failed(outcome: &Outcome, passer: &mut Passer, expected: ProtocolError) {
    match &outcome.end {
        End::Failed(Error::Protocol(got)) if *got == expected => {}
        other => panic!("expected {expected:?}, the passer ended with {other:?}"),
    }
    assert_eq!(
        passer.held_descriptors(),
        0,
        "a failed passer holds nothing"
    );
    assert_eq!(
        passer.interest(),
        Interest {
            read: Want::Idle,
            write: Want::Idle
        }
    );
    assert_eq!(passer.poll_timeout(), None);
    match passer.push_recv() {
        Err(Error::Protocol(again)) => assert_eq!(again, expected),
        other => panic!("a push after the failure returned {other:?}"),
    }
}

// ---- bytes with no descriptors ----

fn bytes_without_descriptors(reservation: Reservation) {
    for (kind, (peer, socket)) in [("stream", stream()), ("seqpacket", seqpacket())] {
        let tag = Tag::new("stray-bytes");
        let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
        send(&peer, b"xyz", Vec::new());
        let outcome = run(&mut passer, 1, None);
        assert!(outcome.received.is_empty(), "{kind}");
        assert_failed(
            &outcome,
            &mut passer,
            ProtocolError::BytesWithoutDescriptors {
                bytes: 3,
                descriptors: 0,
            },
        );
        drop(passer);
        tag.assert_none_open(kind);
    }
}

#[test]
fn bytes_without_descriptors_peek() {
    bytes_without_descriptors(Reservation::Peek);
}

#[test]
fn bytes_without_descriptors_sentinel() {
    bytes_without_descriptors(Reservation::Sentinel);
}

// ---- more descriptors than bytes, and the reverse ----

/// Descriptors ahead of their bytes are accepted as bytes owed (`wire.md`: a
/// partial write on the sender's side), on a stream and, since the count does
/// not depend on the socket type, on `SOCK_SEQPACKET` too. Bytes beyond what
/// is owed are strays.
fn descriptors_ahead_of_bytes(reservation: Reservation) {
    let tag = Tag::new("fds-ahead");
    let (peer, socket) = stream();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    // One byte carries three descriptors: two bytes are owed.
    send(&peer, &[0], memfds(&tag, 0, 3));
    let first = run(&mut passer, 3, Some(3));
    assert!(matches!(first.end, End::Received), "{first:?}");
    assert_eq!(labels(&tag, &first.received), expected_labels(0..3));
    // The owed bytes alone, then a well-formed message: both accepted
    // (whether the kernel returns them in one read or two).
    send(&peer, &[0, 0], Vec::new());
    send(&peer, &[0], memfds(&tag, 3, 1));
    let second = run(&mut passer, 1, Some(1));
    assert!(matches!(second.end, End::Received), "{second:?}");
    assert_eq!(labels(&tag, &second.received), expected_labels(3..4));
    // Nothing is owed any more: one more byte alone is a stray.
    send(&peer, &[0], Vec::new());
    let third = run(&mut passer, 1, None);
    assert_failed(
        &third,
        &mut passer,
        ProtocolError::BytesWithoutDescriptors {
            bytes: 1,
            descriptors: 0,
        },
    );
    drop((first, second, passer));
    tag.assert_none_open("stream");

    let tag = Tag::new("fds-ahead-seqpacket");
    let (peer, socket) = seqpacket();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    send(&peer, &[0], memfds(&tag, 0, 3));
    send(&peer, &[0, 0], Vec::new());
    send(&peer, &[0], memfds(&tag, 3, 1));
    let all = run(&mut passer, 4, Some(4));
    assert!(matches!(all.end, End::Received), "{all:?}");
    assert_eq!(labels(&tag, &all.received), expected_labels(0..4));
    drop((all, passer));
    tag.assert_none_open("seqpacket");
}

#[test]
fn descriptors_ahead_of_bytes_are_owed_peek() {
    descriptors_ahead_of_bytes(Reservation::Peek);
}

#[test]
fn descriptors_ahead_of_bytes_are_owed_sentinel() {
    descriptors_ahead_of_bytes(Reservation::Sentinel);
}

/// Three bytes with one descriptor: two bytes have no descriptor.
fn bytes_ahead_of_descriptors(reservation: Reservation) {
    for (kind, (peer, socket)) in [("stream", stream()), ("seqpacket", seqpacket())] {
        let tag = Tag::new("bytes-ahead");
        let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
        send(&peer, &[0, 0, 0], memfds(&tag, 0, 1));
        let outcome = run(&mut passer, 1, None);
        assert!(outcome.received.is_empty(), "{kind}");
        assert_failed(
            &outcome,
            &mut passer,
            ProtocolError::BytesWithoutDescriptors {
                bytes: 3,
                descriptors: 1,
            },
        );
        // The descriptor that came with the bad bytes is closed already.
        tag.assert_none_open(kind);
        drop(passer);
    }
}

#[test]
fn bytes_ahead_of_descriptors_peek() {
    bytes_ahead_of_descriptors(Reservation::Peek);
}

#[test]
fn bytes_ahead_of_descriptors_sentinel() {
    bytes_ahead_of_descriptors(Reservation::Sentinel);
}

// ---- more descriptors than the limit ----

/// `SCM_MAX_FD` descriptors in one message to a passer that accepts 4.
fn too_many_descriptors(reservation: Reservation) {
    let too_many = ProtocolError::TooManyDescriptors { limit: 4 };
    let too_long = ProtocolError::MessageTooLong { limit: 4 };
    let cases = [
        ("stream, a byte each", stream(), 253, too_many),
        ("stream, one byte", stream(), 1, too_many),
        ("seqpacket, one byte", seqpacket(), 1, too_many),
        // The record is longer than the limit too, and that is seen first.
        ("seqpacket, a byte each", seqpacket(), 253, too_long),
    ];
    for (kind, (peer, socket), bytes, expected) in cases {
        let tag = Tag::new("253");
        let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
        send(&peer, &[0; 253][..bytes], memfds(&tag, 0, 253));
        let outcome = run(&mut passer, 1, None);
        assert!(outcome.received.is_empty(), "{kind}");
        assert_failed(&outcome, &mut passer, expected);
        // What the passer took (or peeked) is closed; the rest never
        // entered the table.
        tag.assert_none_open(kind);
        drop(passer);
    }
}

#[test]
fn too_many_descriptors_peek() {
    too_many_descriptors(Reservation::Peek);
}

#[test]
fn too_many_descriptors_sentinel() {
    too_many_descriptors(Reservation::Sentinel);
}

/// One descriptor more than the limit. Control space is rounded up to 8
/// bytes, so for an odd limit the kernel finds room for one more descriptor
/// than asked for and installs it without `MSG_CTRUNC`: the passer must count
/// what arrived, not rely on the truncation flag.
fn one_more_than_the_limit(reservation: Reservation) {
    for max in [1, 2, 3, 4, 5] {
        let tag = Tag::new("limit-plus-one");
        let (peer, socket) = stream();
        let mut passer = Passer::new(socket, config(reservation, max)).unwrap();
        send(&peer, &vec![0; max + 1], memfds(&tag, 0, max + 1));
        let outcome = run(&mut passer, max + 1, None);
        assert!(outcome.received.is_empty(), "max {max}");
        assert_failed(
            &outcome,
            &mut passer,
            ProtocolError::TooManyDescriptors { limit: max },
        );
        tag.assert_none_open(&format!("max {max}"));
        drop(passer);
    }
}

#[test]
fn one_more_than_the_limit_peek() {
    one_more_than_the_limit(Reservation::Peek);
}

#[test]
fn one_more_than_the_limit_sentinel() {
    one_more_than_the_limit(Reservation::Sentinel);
}

// ---- SCM_CREDENTIALS ----

/// Without `SO_PASSCRED` on the receiving socket (fdpass never sets it) the
/// kernel does not deliver `SCM_CREDENTIALS`: the passer never sees them. A
/// message with credentials and a descriptor is then simply a message; with
/// credentials alone it is a stray byte.
fn credentials_without_passcred(reservation: Reservation) {
    let tag = Tag::new("creds");
    let (peer, socket) = stream();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    let idle = passer.held_descriptors();
    let fds = memfds(&tag, 0, 1);
    let raw = Raw {
        bytes: &[0],
        fds: &borrowed(&fds),
        credentials: true,
    };
    assert_eq!(send_raw(&peer, raw), Ok(1));
    drop(fds);
    let outcome = run(&mut passer, 1, Some(1));
    assert!(matches!(outcome.end, End::Received), "{outcome:?}");
    assert_eq!(labels(&tag, &outcome.received), expected_labels(0..1));
    assert_eq!(passer.held_descriptors(), idle);

    let raw = Raw {
        bytes: &[0],
        fds: &[],
        credentials: true,
    };
    assert_eq!(send_raw(&peer, raw), Ok(1));
    let stray = run(&mut passer, 1, None);
    assert_failed(
        &stray,
        &mut passer,
        ProtocolError::BytesWithoutDescriptors {
            bytes: 1,
            descriptors: 0,
        },
    );
    drop((outcome, passer));
    tag.assert_none_open("credentials");
}

#[test]
fn credentials_without_passcred_never_arrive_peek() {
    credentials_without_passcred(Reservation::Peek);
}

#[test]
fn credentials_without_passcred_never_arrive_sentinel() {
    credentials_without_passcred(Reservation::Sentinel);
}

/// With `SO_PASSCRED` set on the passer's socket (by whoever made it), the
/// kernel attaches the sender's credentials to every message, whether the
/// sender asked to or not: the passer fails with `ForeignControlMessage`,
/// whatever its limit (the control buffer always has room to decode them).
fn credentials_with_passcred(reservation: Reservation) {
    for (kind, explicit) in [("explicit credentials", true), ("plain message", false)] {
        for max in [1, 2, 3, 4, 253] {
            for (socket_type, (peer, socket)) in [("stream", stream()), ("seqpacket", seqpacket())]
            {
                let what = format!("{kind}, max {max}, {socket_type}");
                let tag = Tag::new("passcred");
                rustix::net::sockopt::set_socket_passcred(&socket, true).unwrap();
                let mut passer = Passer::new(socket, config(reservation, max)).unwrap();
                let fds = memfds(&tag, 0, 1);
                let raw = Raw {
                    bytes: &[0],
                    fds: &borrowed(&fds),
                    credentials: explicit,
                };
                assert_eq!(send_raw(&peer, raw), Ok(1), "{what}");
                drop(fds);
                let outcome = run(&mut passer, 1, None);
                assert!(outcome.received.is_empty(), "{what}");
                assert_failed(&outcome, &mut passer, ProtocolError::ForeignControlMessage);
                tag.assert_none_open(&what);
                drop(passer);
            }
        }
    }
}

#[test]
fn credentials_with_passcred_are_foreign_peek() {
    credentials_with_passcred(Reservation::Peek);
}

#[test]
fn credentials_with_passcred_are_foreign_sentinel() {
    credentials_with_passcred(Reservation::Sentinel);
}

// ---- garbage, end of stream ----

fn garbage_then_eof(reservation: Reservation) {
    // The passer reads at most its limit in bytes at a time.
    for (max, bytes) in [(4, 4), (64, 8)] {
        let tag = Tag::new("garbage");
        let (peer, socket) = stream();
        let mut passer = Passer::new(socket, config(reservation, max)).unwrap();
        send(&peer, b"garbage!", Vec::new());
        drop(peer);
        let outcome = run(&mut passer, 2, None);
        assert!(outcome.received.is_empty());
        assert_failed(
            &outcome,
            &mut passer,
            ProtocolError::BytesWithoutDescriptors {
                bytes,
                descriptors: 0,
            },
        );
        drop(passer);
        tag.assert_none_open("garbage");
    }

    // A good message first: it is delivered before the failure.
    let tag = Tag::new("good-then-garbage");
    let (peer, socket) = stream();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    send(&peer, &[0], memfds(&tag, 0, 1));
    send(&peer, b"garbage!", Vec::new());
    drop(peer);
    let outcome = run(&mut passer, 2, None);
    assert_eq!(labels(&tag, &outcome.received), expected_labels(0..1));
    assert_failed(
        &outcome,
        &mut passer,
        ProtocolError::BytesWithoutDescriptors {
            bytes: 4,
            descriptors: 0,
        },
    );
    drop((outcome, passer));
    tag.assert_none_open("good then garbage");

    // Descriptors ahead of their bytes, then the end: the descriptors are
    // delivered and the end is an orderly close; the bytes still owed are
    // forgotten with the stream.
    let tag = Tag::new("owed-then-eof");
    let (peer, socket) = stream();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    send(&peer, &[0], memfds(&tag, 0, 3));
    drop(peer);
    let outcome = run(&mut passer, 4, None);
    assert_eq!(labels(&tag, &outcome.received), expected_labels(0..3));
    assert!(matches!(outcome.end, End::Closed), "{outcome:?}");
    assert!(matches!(passer.push_recv(), Err(Error::PeerClosed)));
    drop((outcome, passer));
    tag.assert_none_open("owed then end of stream");
}

#[test]
fn garbage_then_eof_peek() {
    garbage_then_eof(Reservation::Peek);
}

#[test]
fn garbage_then_eof_sentinel() {
    garbage_then_eof(Reservation::Sentinel);
}

// ---- SOCK_SEQPACKET records ----

fn seqpacket_longer_than_the_limit(reservation: Reservation) {
    let too_long = ProtocolError::MessageTooLong { limit: 4 };
    for (kind, bytes, fds) in [("with descriptors", 10, 2), ("bytes only", 10, 0)] {
        let tag = Tag::new("long-record");
        let (peer, socket) = seqpacket();
        let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
        send(&peer, &vec![0; bytes], memfds(&tag, 0, fds));
        let outcome = run(&mut passer, 1, None);
        assert!(outcome.received.is_empty(), "{kind}");
        assert_failed(&outcome, &mut passer, too_long);
        tag.assert_none_open(kind);
        drop(passer);
    }

    // A record exactly at the limit is fine; one byte and descriptor more
    // is too long.
    let tag = Tag::new("limit-record");
    let (peer, socket) = seqpacket();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    send(&peer, &[0; 4], memfds(&tag, 0, 4));
    send(&peer, &[0; 5], memfds(&tag, 4, 5));
    let outcome = run(&mut passer, 5, None);
    assert_eq!(labels(&tag, &outcome.received), expected_labels(0..4));
    assert_failed(&outcome, &mut passer, too_long);
    drop((outcome, passer));
    tag.assert_none_open("at the limit, then over it");
}

#[test]
fn seqpacket_longer_than_the_limit_peek() {
    seqpacket_longer_than_the_limit(Reservation::Peek);
}

#[test]
fn seqpacket_longer_than_the_limit_sentinel() {
    seqpacket_longer_than_the_limit(Reservation::Sentinel);
}

/// A zero-length `SOCK_SEQPACKET` record reads as 0 bytes, exactly like the
/// end of the stream, and is reported as `Closed`: a peer can end the
/// conversation this way as it could by closing, nothing more. A zero-length
/// record that carries descriptors is not an end: they are accepted as owed
/// bytes, like any descriptors ahead of their bytes.
fn seqpacket_empty_records(reservation: Reservation) {
    let tag = Tag::new("empty-record");
    let (peer, socket) = seqpacket();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    send(&peer, &[], memfds(&tag, 0, 2));
    send(&peer, &[0, 0], Vec::new());
    send(&peer, &[0], memfds(&tag, 2, 1));
    let outcome = run(&mut passer, 3, Some(3));
    assert!(matches!(outcome.end, End::Received), "{outcome:?}");
    assert_eq!(labels(&tag, &outcome.received), expected_labels(0..3));

    send(&peer, &[], Vec::new());
    let end = run(&mut passer, 1, None);
    assert!(matches!(end.end, End::Closed), "{end:?}");
    assert!(passer.is_peer_closed());
    assert!(matches!(passer.push_recv(), Err(Error::PeerClosed)));
    assert!(passer.usable().is_ok(), "an end of stream is not a failure");
    drop((outcome, passer, peer));
    tag.assert_none_open("empty records");
}

#[test]
fn seqpacket_empty_records_peek() {
    seqpacket_empty_records(Reservation::Peek);
}

#[test]
fn seqpacket_empty_records_sentinel() {
    seqpacket_empty_records(Reservation::Sentinel);
}

/// With `SO_PASSCRED` on the passer's socket, even a zero-length record
/// arrives with the sender's credentials. Its 0 bytes look like the end of
/// the stream, but an end carries no control data: the record is a foreign
/// control message, not an orderly close.
fn empty_record_with_credentials(reservation: Reservation) {
    let (peer, socket) = seqpacket();
    rustix::net::sockopt::set_socket_passcred(&socket, true).unwrap();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    let raw = Raw {
        bytes: &[],
        fds: &[],
        credentials: false,
    };
    assert_eq!(send_raw(&peer, raw), Ok(0));
    let outcome = run(&mut passer, 1, None);
    assert!(!passer.is_peer_closed(), "{outcome:?}");
    assert_failed(&outcome, &mut passer, ProtocolError::ForeignControlMessage);
}

#[test]
fn an_empty_record_with_credentials_is_foreign_not_an_end_peek() {
    empty_record_with_credentials(Reservation::Peek);
}

#[test]
fn an_empty_record_with_credentials_is_foreign_not_an_end_sentinel() {
    empty_record_with_credentials(Reservation::Sentinel);
}

// ---- a peer that dies with descriptors unread ----

/// The peer closes while descriptors the passer sent wait unread in its
/// queue: Linux reports the connection reset, not an orderly end.
fn peer_dies_with_unread_descriptors(reservation: Reservation) {
    let tag = Tag::new("reset");
    let (peer, socket) = stream();
    let mut passer = Passer::new(socket, config(reservation, 4)).unwrap();
    let mut last = None;
    for fd in memfds(&tag, 0, 2) {
        last = Some(passer.push_send(fd).unwrap());
    }
    let mut all_sent = false;
    drive(&mut [&mut passer], |_, events| {
        for (_, event) in events {
            match event {
                Event::Sent(token) => all_sent = Some(token) == last,
                other => panic!("unexpected event {other:?}"),
            }
        }
        all_sent
    });
    drop(peer);
    let outcome = run(&mut passer, 1, None);
    match &outcome.end {
        End::Failed(Error::Io(e)) => {
            assert_eq!(e.raw_os_error(), Some(Errno::CONNRESET.raw_os_error()))
        }
        other => panic!("expected a connection reset, got {other:?}"),
    }
    assert_eq!(passer.held_descriptors(), 0);
    drop(passer);
    tag.assert_none_open("reset");
}

#[test]
fn peer_dies_with_unread_descriptors_peek() {
    peer_dies_with_unread_descriptors(Reservation::Peek);
}

#[test]
fn peer_dies_with_unread_descriptors_sentinel() {
    peer_dies_with_unread_descriptors(Reservation::Sentinel);
}

// ---- a flood nobody asked for ----

/// Descriptors the raw peer pushes at the passer in each flood.
const FLOOD: usize = 4_000;

/// The raw peer sends messages of `max` descriptors (one byte each), labelled
/// from `first` on, until the socket would block or `FLOOD` are out. Returns
/// how many it sent and whether it was stopped by a full socket.
fn flood_until_blocked(peer: &OwnedFd, tag: &Tag, first: usize, max: usize) -> (usize, bool) {
    let mut sent = 0;
    while first + sent < FLOOD {
        let n = max.min(FLOOD - first - sent);
        let fds = memfds(tag, first + sent, n);
        let raw = Raw {
            bytes: &[0; 253][..n],
            fds: &borrowed(&fds),
            credentials: false,
        };
        match send_raw(peer, raw) {
            Ok(written) => {
                assert_eq!(written, n, "a short message is written whole");
                sent += n;
            }
            // The socket is full, or the kernel's per-user limit on
            // descriptors in flight is reached.
            Err(Errno::AGAIN | Errno::TOOMANYREFS) => return (sent, true),
            Err(e) => panic!("the raw peer's sendmsg failed: {e}"),
        }
    }
    (sent, false)
}

/// Bytes waiting in the passer's socket, unread.
fn unread(passer: &Passer) -> usize {
    rustix::io::ioctl_fionread(passer.as_fd()).expect("FIONREAD") as usize
}

/// Thousands of descriptors arrive while the passer has one request at a
/// time: it reads one message per request and never holds more than that
/// message's surplus. Checked at every step against the passer's own count,
/// the tagged descriptors, the bytes left unread in the socket and the whole
/// descriptor table (so this must run in a process of its own).
fn flood(reservation: Reservation, max: usize) -> String {
    let tag = Tag::new("flood");
    let (peer, socket) = stream();
    let mut passer = Passer::new(socket, config(reservation, max)).unwrap();
    let idle = passer.held_descriptors();
    let baseline = open_descriptors();

    // Nobody asked: however much arrives, the passer reads none of it.
    let (mut sent, blocked_first) = flood_until_blocked(&peer, &tag, 0, max);
    assert!(sent > 0);
    passer.handle_readable(Instant::now());
    assert!(passer.poll_event().is_none());
    assert_eq!(passer.held_descriptors(), idle);
    assert_eq!(unread(&passer), sent);
    assert_eq!(open_descriptors(), baseline);
    tag.assert_none_open("before any request");

    let mut received = 0;
    let mut floods = 1;
    let mut blocked = usize::from(blocked_first);
    let mut most_read_ahead = 0;
    passer.push_recv().unwrap();
    for _ in 0..FLOOD * 4 {
        if sent < FLOOD {
            let (more, stopped) = flood_until_blocked(&peer, &tag, sent, max);
            sent += more;
            floods += 1;
            blocked += usize::from(stopped);
        }
        let now = Instant::now();
        let reads = passer.interest().read.is_wanted();
        if reads {
            passer.handle_readable(now);
        }
        // One request, so at most one message was read: its first
        // descriptor went to the request, the rest wait.
        let read_ahead = passer.held_descriptors() - idle;
        assert!(
            read_ahead < max,
            "{read_ahead} read ahead with a limit of {max}"
        );
        most_read_ahead = most_read_ahead.max(read_ahead);
        let mut got = 0;
        while let Some(event) = passer.poll_event() {
            match event {
                Event::Received(_, fd) => {
                    let label = tag.label_of(fd.as_raw_fd());
                    assert_eq!(label, Some(format!("m{received}")), "out of order");
                    received += 1;
                    got += 1;
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert!(got <= 1, "one request brought {got} descriptors");
        // Exact accounts: the table holds the baseline plus what is read
        // ahead; the socket holds everything else that was sent.
        assert_eq!(open_descriptors(), baseline + read_ahead);
        if reads {
            // Which descriptors those are; only after a read, when new ones
            // can have entered the table (it is the slow check).
            assert_eq!(tag.open().len(), read_ahead);
        }
        assert_eq!(unread(&passer), sent - received - read_ahead);
        if received == FLOOD {
            break;
        }
        passer.push_recv().unwrap();
    }
    assert_eq!(received, FLOOD, "the flood was not consumed");
    assert_eq!(passer.held_descriptors(), idle);
    drop((passer, peer));
    tag.assert_none_open("after the flood");
    format!(
        "flood reservation={reservation:?} max={max} received={received} floods={floods} \
         blocked={blocked} most_read_ahead={most_read_ahead} baseline={baseline} after={}",
        open_descriptors()
    )
}

/// Runs the flood in a child process, where no other test thread changes the
/// descriptor count.
#[test]
fn flood_holds_at_most_one_message() {
    const NAME: &str = "flood_holds_at_most_one_message";
    if common::role().as_deref() == Some("flood") {
        for reservation in BOTH {
            for max in [1, 4, 253] {
                let before = open_descriptors();
                let report = flood(reservation, max);
                assert_eq!(open_descriptors(), before, "{report}");
                println!("RESULT {report}");
            }
        }
        return;
    }
    let output = common::self_command(NAME, "flood").output().unwrap();
    let results = common::results(&output);
    assert_eq!(results.len(), 6, "{results:?}");
    for line in &results {
        let max = common::field(line, "max") as usize;
        assert_eq!(common::field(line, "received") as usize, FLOOD, "{line}");
        assert_eq!(
            common::field(line, "most_read_ahead") as usize,
            max - 1,
            "a message's surplus was held: {line}"
        );
        if max < 253 {
            assert!(
                common::field(line, "blocked") > 0,
                "the socket never filled: {line}"
            );
        }
    }
}

// ---- every case, with the whole descriptor table counted ----

/// One hostile case, run for one reservation strategy.
type Scenario = fn(Reservation);

#[test]
fn no_leaks_process_wide() {
    const NAME: &str = "no_leaks_process_wide";
    if common::role().as_deref() == Some("every-case") {
        let baseline = open_descriptors();
        let pipe = rustix::pipe::pipe().unwrap();
        assert_eq!(
            open_descriptors(),
            baseline + 2,
            "the count follows the table"
        );
        drop(pipe);
        for reservation in BOTH {
            let cases: [(&str, Scenario); 10] = [
                ("bytes without descriptors", bytes_without_descriptors),
                ("descriptors ahead of bytes", descriptors_ahead_of_bytes),
                ("bytes ahead of descriptors", bytes_ahead_of_descriptors),
                ("too many descriptors", too_many_descriptors),
                ("one more than the limit", one_more_than_the_limit),
                (
                    "credentials without SO_PASSCRED",
                    credentials_without_passcred,
                ),
                ("credentials with SO_PASSCRED", credentials_with_passcred),
                ("garbage then end of stream", garbage_then_eof),
                ("long records", seqpacket_longer_than_the_limit),
                ("empty records", seqpacket_empty_records),
            ];
            for (name, case) in cases {
                case(reservation);
                assert_eq!(open_descriptors(), baseline, "{name}, {reservation:?}");
            }
            peer_dies_with_unread_descriptors(reservation);
            assert_eq!(open_descriptors(), baseline, "reset, {reservation:?}");
        }
        println!("RESULT baseline={baseline} after={}", open_descriptors());
        return;
    }
    let output = common::self_command(NAME, "every-case").output().unwrap();
    let results = common::results(&output);
    let line = &results[0];
    assert_eq!(
        common::field(line, "baseline"),
        common::field(line, "after")
    );
}
