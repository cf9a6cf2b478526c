//! Hostile or broken peers of the native wire, on real sockets. The peer is
//! not a passer: it writes with raw `sendmsg` the bytes and descriptors a
//! test chooses. Every malformed input of `docs/wire.md`'s error table ends
//! in its typed error, after the passer closed every descriptor it received
//! and did not deliver, without a panic, and without blocking: each case
//! runs to its end within a bound far below any wait the passer could make.
//!
//! Leaks are checked as in `hostile_peers.rs`: in-process by tagged memfds
//! (other tests run in parallel threads), and in a child process that runs
//! nothing else, by counting `/proc/self/fd` before and after every case
//! once `disposal::flush` has closed what the passer let go of.
// Linux and Android only: the peer's descriptors are tagged memfds counted in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;
mod hostile;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use common::{drive, open_descriptors};
use fdpass_core::frame::{self, Hello, HELLO_LEN};
use fdpass_core::{
    Config, Error, Event, Interest, Message, Passer, ProtocolError, Reservation, Want, Wire,
};
use hostile::{send_raw, Raw, Tag};
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

/// The receiver's limits in every case.
const MAX_FDS: usize = 4;
const MAX_PAYLOAD: usize = 4096;

/// A case may take this long at most; a passer that blocked or waited on a
/// retry would take far longer (or forever).
const BOUND: Duration = Duration::from_secs(5);

fn config(reservation: Reservation) -> Config {
    Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(MAX_FDS)
        .with_max_payload_len(MAX_PAYLOAD)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stream,
    Seqpacket,
}

const KINDS: [Kind; 2] = [Kind::Stream, Kind::Seqpacket];

/// A connected pair: the raw peer's end, the passer's end.
fn pair(kind: Kind) -> (OwnedFd, OwnedFd) {
    let kind = match kind {
        Kind::Stream => SocketType::STREAM,
        Kind::Seqpacket => SocketType::SEQPACKET,
    };
    rustix::net::socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
        .expect("socketpair")
}

/// A valid hello announcing these limits.
fn hello(max_fds: u16, max_payload: u32) -> [u8; HELLO_LEN] {
    Hello {
        min_version: 1,
        max_version: 1,
        max_fds,
        max_payload,
    }
    .encode()
}

/// A message frame with these header fields and payload.
fn frame(fds: u8, batch_fds: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_message(&mut out, fds, batch_fds, payload);
    out
}

/// The raw peer sends `bytes` with `n` new tagged memfds attached (labelled
/// from `first` on) in one `sendmsg`, which must take everything; its own
/// copies are closed at once.
fn send(peer: &OwnedFd, tag: &Tag, bytes: &[u8], first: usize, n: usize) {
    let fds: Vec<OwnedFd> = (first..first + n)
        .map(|i| tag.memfd(&format!("m{i}")))
        .collect();
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|fd| fd.as_fd()).collect();
    let raw = Raw {
        bytes,
        fds: &borrowed,
        credentials: false,
    };
    assert_eq!(
        send_raw(peer, raw),
        Ok(bytes.len()),
        "the raw peer's sendmsg"
    );
}

/// How a run ended, and what it delivered.
#[derive(Debug)]
struct Outcome {
    messages: Vec<Message>,
    end: Option<Error>,
    closed: bool,
}

/// Pushes `requests` message requests, then drives `passer` until it fails
/// or sees the end of the stream, within [`BOUND`].
fn run(passer: &mut Passer, requests: usize) -> Outcome {
    for _ in 0..requests {
        passer.push_recv_message().expect("push_recv_message");
    }
    let started = Instant::now();
    let mut outcome = Outcome {
        messages: Vec::new(),
        end: None,
        closed: false,
    };
    drive(&mut [passer], |_, events| {
        for (_, event) in events {
            assert!(
                outcome.end.is_none() && !outcome.closed,
                "event after the end: {event:?}"
            );
            match event {
                Event::ReceivedMessage(_, message) => outcome.messages.push(message),
                Event::Failed(e) => outcome.end = Some(e),
                Event::Closed => outcome.closed = true,
                other => panic!("unexpected event {other:?}"),
            }
        }
        outcome.end.is_some() || outcome.closed
    });
    assert!(
        started.elapsed() < BOUND,
        "the case took {:?}: something waited",
        started.elapsed()
    );
    outcome
}

/// [`run`] with descriptor requests (`push_recv`), as a classic receiver
/// makes them.
fn run_descriptors(passer: &mut Passer, requests: usize) -> Outcome {
    for _ in 0..requests {
        passer.push_recv().expect("push_recv");
    }
    let started = Instant::now();
    let mut end = None;
    let mut messages = Vec::new();
    drive(&mut [passer], |_, events| {
        for (_, event) in events {
            match event {
                Event::Failed(e) => end = Some(e),
                Event::Received(_, fd) => messages.push(Message::from(fd)),
                other => panic!("unexpected event {other:?}"),
            }
        }
        end.is_some() || messages.len() >= requests
    });
    assert!(
        started.elapsed() < BOUND,
        "the case took {:?}",
        started.elapsed()
    );
    Outcome {
        messages,
        end,
        closed: false,
    }
}

/// Asserts that the run failed with `expected`, and that the failed passer
/// holds nothing, wants nothing and reports the same error to later pushes.
fn assert_failed(outcome: &Outcome, passer: &mut Passer, expected: ProtocolError) {
    match &outcome.end {
        Some(Error::Protocol(got)) if *got == expected => {}
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
    match passer.push_recv_message() {
        Err(Error::Protocol(again)) => assert_eq!(again, expected),
        other => panic!("a push after the failure returned {other:?}"),
    }
}

/// One hostile peer: what it sends (on a connected raw socket, with a tag
/// for its descriptors), the requests the passer makes, how many messages
/// arrive before the error, and the error.
struct Case {
    name: &'static str,
    kinds: &'static [Kind],
    wire: Wire,
    /// The receiver's limit of descriptors per message.
    max_fds: usize,
    requests: usize,
    peer: fn(&OwnedFd, &Tag),
    delivered: usize,
    expected: ProtocolError,
}

/// Runs `case` on every socket kind it names with `reservation`: the typed
/// error, nothing held after it, nothing of the peer's left open.
fn check(case: &Case, reservation: Reservation) {
    for &kind in case.kinds {
        let tag = Tag::new(case.name);
        let (peer, socket) = pair(kind);
        let config = config(reservation)
            .with_wire(case.wire)
            .with_max_fds_per_message(case.max_fds);
        let mut passer = Passer::new(socket, config).unwrap();
        (case.peer)(&peer, &tag);
        let mut outcome = run(&mut passer, case.requests);
        assert_eq!(
            outcome.messages.len(),
            case.delivered,
            "{}, {kind:?}, {reservation:?}: messages before the error",
            case.name
        );
        for message in outcome.messages.drain(..) {
            for fd in &message.fds {
                assert!(
                    tag.label_of(fd.as_raw_fd()).is_some(),
                    "{}: not the peer's",
                    case.name
                );
            }
        }
        assert_failed(&outcome, &mut passer, case.expected);
        drop((passer, peer));
        tag.assert_none_open(&format!("{}, {kind:?}, {reservation:?}", case.name));
    }
}

const STREAM_ONLY: &[Kind] = &[Kind::Stream];

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a hello of versions that do not overlap",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, _| {
                let future = Hello {
                    min_version: 2,
                    max_version: 3,
                    max_fds: 4,
                    max_payload: 4096,
                };
                send(peer, &Tag::new("unused"), &future.encode(), 0, 0);
            },
            delivered: 0,
            expected: ProtocolError::UnsupportedVersion {
                ours: (1, 1),
                theirs: (2, 3),
            },
        },
        Case {
            name: "a hello with a wrong magic",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                let mut bad = hello(4, 4096);
                bad[10] = b'X';
                send(peer, tag, &bad, 0, 0);
            },
            delivered: 0,
            expected: ProtocolError::BadHello,
        },
        Case {
            name: "a hello announcing no descriptors",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| send(peer, tag, &hello(0, 4096), 0, 0),
            delivered: 0,
            expected: ProtocolError::BadHello,
        },
        Case {
            name: "a second hello",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 2,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                send(peer, tag, &frame(1, 1, b"first"), 0, 1);
                send(peer, tag, &hello(4, 4096), 1, 0);
            },
            delivered: 1,
            expected: ProtocolError::BadFrame,
        },
        Case {
            name: "an unknown frame kind",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                let mut unknown = frame(1, 1, b"what");
                unknown[0] = b'X';
                send(peer, tag, &unknown, 0, 1);
            },
            delivered: 0,
            expected: ProtocolError::BadFrame,
        },
        Case {
            name: "a reserved byte set",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                let mut reserved = frame(2, 2, b"");
                reserved[3] = 1;
                send(peer, tag, &reserved, 0, 2);
            },
            delivered: 0,
            expected: ProtocolError::BadFrame,
        },
        Case {
            name: "a length beyond the announced max_payload",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                let mut long = frame(1, 1, b"");
                long[4..8].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
                send(peer, tag, &long, 0, 1);
            },
            delivered: 0,
            expected: ProtocolError::PayloadTooLong { limit: MAX_PAYLOAD },
        },
        Case {
            name: "a frame claiming more descriptors than announced",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                send(
                    peer,
                    tag,
                    &frame(MAX_FDS as u8 + 1, MAX_FDS as u8 + 1, b""),
                    0,
                    2,
                );
            },
            delivered: 0,
            expected: ProtocolError::TooManyDescriptors { limit: MAX_FDS },
        },
        Case {
            name: "a send carrying more descriptors than announced",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                let mut two = frame(3, 6, b"a");
                two.extend(frame(3, 0, b"b"));
                send(peer, tag, &two, 0, 6);
            },
            delivered: 0,
            expected: ProtocolError::TooManyDescriptors { limit: MAX_FDS },
        },
        Case {
            name: "descriptors beyond a read's worth that no frame claims",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 3,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                // Each send carries three descriptors its frame does not
                // claim: after the second read six wait, more than one send
                // may carry. (Its frame is whole, and delivered, first.)
                send(peer, tag, &frame(0, 3, b"x"), 0, 3);
                send(peer, tag, &frame(0, 3, b"y"), 3, 3);
            },
            delivered: 2,
            expected: ProtocolError::DescriptorsWithoutFrame { count: 6 },
        },
        Case {
            name: "descriptors no frame claims at the end of the stream",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 2,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                send(peer, tag, &frame(0, 2, b"unclaimed"), 0, 2);
                rustix::net::shutdown(peer, Shutdown::Write).unwrap();
            },
            delivered: 1,
            expected: ProtocolError::DescriptorsWithoutFrame { count: 2 },
        },
        Case {
            name: "a frame claiming descriptors that never came",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                send(peer, tag, &frame(2, 2, b"two"), 0, 1);
            },
            delivered: 0,
            expected: ProtocolError::MissingDescriptors {
                claimed: 2,
                received: 1,
            },
        },
        // On a stream Linux joins a send without descriptors to the next
        // one in a single read, so there the late descriptors reach the
        // frame in time (as if sent with it); records stay apart.
        Case {
            name: "descriptors sent after the frame that claims them",
            kinds: &[Kind::Seqpacket],
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                send(peer, tag, &frame(1, 0, b"late"), 0, 0);
                send(peer, tag, &frame(0, 1, b""), 0, 1);
            },
            delivered: 0,
            expected: ProtocolError::MissingDescriptors {
                claimed: 1,
                received: 0,
            },
        },
        Case {
            name: "a frame cut short by the peer's close",
            kinds: STREAM_ONLY,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 2,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                let whole = frame(1, 1, b"0123456789");
                send(peer, tag, &whole[..11], 0, 1);
                rustix::net::shutdown(peer, Shutdown::Write).unwrap();
            },
            delivered: 0,
            expected: ProtocolError::FrameCutShort { received: 11 },
        },
        Case {
            name: "a hello cut short by the peer's close",
            kinds: STREAM_ONLY,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096)[..10], 0, 0);
                rustix::net::shutdown(peer, Shutdown::Write).unwrap();
            },
            delivered: 0,
            expected: ProtocolError::FrameCutShort { received: 10 },
        },
        Case {
            name: "a classic peer facing a native receiver",
            kinds: &KINDS,
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| send(peer, tag, &[0], 0, 1),
            delivered: 0,
            expected: ProtocolError::ClassicPeer,
        },
        Case {
            name: "a native hello facing a classic receiver",
            kinds: &KINDS,
            wire: Wire::Classic { batch: 1 },
            // Room to read the hello's header (a smaller classic limit is
            // the next test's).
            max_fds: 128,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                send(peer, tag, &frame(1, 1, b""), 0, 1);
            },
            delivered: 0,
            expected: ProtocolError::NativePeer,
        },
        Case {
            name: "a seqpacket record too long",
            kinds: &[Kind::Seqpacket],
            wire: Wire::Native,
            max_fds: MAX_FDS,
            requests: 1,
            peer: |peer, tag| {
                send(peer, tag, &hello(4, 4096), 0, 0);
                // A valid frame of the largest payload, and one byte more.
                let mut long = frame(1, 1, &[7; MAX_PAYLOAD]);
                long.push(0);
                send(peer, tag, &long, 0, 1);
            },
            delivered: 0,
            expected: ProtocolError::MessageTooLong {
                limit: frame::HEADER_LEN + MAX_PAYLOAD,
            },
        },
    ]
}

/// Runs the case named `name`, with both reservations.
fn case(name: &str) {
    let all = cases();
    let case = all
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name:?}"));
    for reservation in BOTH {
        check(case, reservation);
    }
}

#[test]
fn a_version_mismatch_is_unsupported_version() {
    case("a hello of versions that do not overlap");
}

#[test]
fn a_hello_with_a_wrong_magic_is_bad_hello() {
    case("a hello with a wrong magic");
}

#[test]
fn a_hello_with_limits_out_of_range_is_bad_hello() {
    case("a hello announcing no descriptors");
}

#[test]
fn a_second_hello_is_bad_frame_after_what_came_before() {
    case("a second hello");
}

#[test]
fn an_unknown_frame_kind_is_bad_frame() {
    case("an unknown frame kind");
}

#[test]
fn a_reserved_byte_set_is_bad_frame() {
    case("a reserved byte set");
}

#[test]
fn a_length_beyond_the_announced_max_payload_is_payload_too_long() {
    case("a length beyond the announced max_payload");
}

#[test]
fn a_frame_claiming_more_descriptors_than_announced_is_too_many_descriptors() {
    case("a frame claiming more descriptors than announced");
}

#[test]
fn a_send_with_more_descriptors_than_announced_is_too_many_descriptors() {
    case("a send carrying more descriptors than announced");
}

#[test]
fn descriptors_without_their_frame_are_descriptors_without_frame() {
    case("descriptors beyond a read's worth that no frame claims");
}

#[test]
fn unclaimed_descriptors_at_the_end_are_descriptors_without_frame() {
    case("descriptors no frame claims at the end of the stream");
}

#[test]
fn a_frame_claiming_descriptors_that_never_came_is_missing_descriptors() {
    case("a frame claiming descriptors that never came");
}

#[test]
fn descriptors_after_their_frame_are_missing_descriptors() {
    case("descriptors sent after the frame that claims them");
}

#[test]
fn a_frame_cut_short_by_the_peers_close_is_frame_cut_short() {
    case("a frame cut short by the peer's close");
}

#[test]
fn a_hello_cut_short_by_the_peers_close_is_frame_cut_short() {
    case("a hello cut short by the peer's close");
}

#[test]
fn a_classic_peer_facing_a_native_receiver_is_classic_peer() {
    case("a classic peer facing a native receiver");
}

#[test]
fn a_native_hello_facing_a_classic_receiver_is_native_peer() {
    case("a native hello facing a classic receiver");
}

/// A classic receiver of one descriptor per message (AnyEvent::FDpasser's
/// limit) reads a native hello one byte at a time: its first byte, with no
/// descriptor, must still be told apart as a native peer, with the fix named,
/// not reported as stray bytes.
#[test]
fn a_native_hello_facing_a_classic_receiver_of_one_descriptor_is_native_peer() {
    for reservation in BOTH {
        let tag = Tag::new("native-to-classic-1");
        let (peer, socket) = pair(Kind::Stream);
        let config = config(reservation)
            .with_wire(Wire::CLASSIC)
            .with_max_fds_per_message(1);
        let mut passer = Passer::new(socket, config).unwrap();
        send(&peer, &tag, &hello(4, 4096), 0, 0);
        send(&peer, &tag, &frame(1, 1, b""), 0, 1);
        let outcome = run_descriptors(&mut passer, 1);
        assert_eq!(
            outcome.messages.len(),
            0,
            "{reservation:?}: a classic receiver delivered a native peer's descriptor"
        );
        assert_failed(&outcome, &mut passer, ProtocolError::NativePeer);
        drop((passer, peer));
        tag.assert_none_open("native to classic of one");
    }
}

#[test]
fn a_seqpacket_record_too_long_is_message_too_long() {
    case("a seqpacket record too long");
}

/// The peer's hello is read, and judged, with no request outstanding: a
/// classic peer or a bad hello fails the passer at once, closing the
/// descriptor the classic peer sent (it is never installed: the hello is read
/// without room for descriptors).
#[test]
fn a_bad_first_send_fails_the_passer_before_any_request() {
    for reservation in BOTH {
        for (name, bytes, fds, expected) in [
            ("classic", &[0u8][..], 1, ProtocolError::ClassicPeer),
            ("bad", &[b'H'; HELLO_LEN][..], 0, ProtocolError::BadHello),
        ] {
            let tag = Tag::new(name);
            let (peer, socket) = pair(Kind::Stream);
            let mut passer = Passer::new(socket, config(reservation)).unwrap();
            send(&peer, &tag, bytes, 0, fds);
            let outcome = run(&mut passer, 0);
            assert_failed(&outcome, &mut passer, expected);
            drop((passer, peer));
            tag.assert_none_open(name);
        }
    }
}

/// The peer's end of the stream cuts its hello short while no request is
/// outstanding (the hello is read anyway): that is a frame cut short, as it
/// is with a request, not an orderly close.
#[test]
fn a_hello_cut_short_with_no_request_is_frame_cut_short() {
    for reservation in BOTH {
        let tag = Tag::new("hello-cut-no-request");
        let (peer, socket) = pair(Kind::Stream);
        let mut passer = Passer::new(socket, config(reservation)).unwrap();
        send(&peer, &tag, &hello(4, 4096)[..10], 0, 0);
        rustix::net::shutdown(&peer, Shutdown::Write).unwrap();
        let outcome = run(&mut passer, 0);
        assert!(
            !outcome.closed,
            "{reservation:?}: a hello cut short was read as an orderly close"
        );
        assert_failed(
            &outcome,
            &mut passer,
            ProtocolError::FrameCutShort { received: 10 },
        );
        drop((passer, peer));
        tag.assert_none_open("hello cut short");
    }
}

/// A message larger than what may be sent before the peer's hello waits for
/// it; when the peer closes without ever sending one (after our own hello
/// went out, so no write meets `EPIPE`), the message can never be sent.
/// Sending must end (`Event::SendFailed`) and the message come back whole
/// through `take_unsent_messages`, rather than wait forever with nothing to
/// wake it.
#[test]
fn a_message_waiting_for_a_hello_that_never_comes_is_handed_back() {
    for reservation in BOTH {
        let tag = Tag::new("no-hello");
        let (peer, socket) = pair(Kind::Stream);
        let mut passer = Passer::new(socket, config(reservation)).unwrap();
        passer.handle_writable(Instant::now()); // our hello
        assert!(passer.poll_event().is_none());
        let fds = vec![tag.memfd("a"), tag.memfd("b")];
        passer
            .push_send_message(Message::new(b"two".to_vec(), fds))
            .unwrap();
        // The peer reads our hello (so that its close is orderly, not a
        // reset), and closes without sending its own.
        let mut ours = [0u8; HELLO_LEN];
        assert_eq!(rustix::io::read(&peer, &mut ours), Ok(HELLO_LEN));
        drop(peer);
        let started = Instant::now();
        let mut closed = false;
        let mut send_failed = false;
        drive(&mut [&mut passer], |passers, events| {
            for (_, event) in events {
                match event {
                    Event::Closed => closed = true,
                    // A failure ends sending too.
                    Event::SendFailed(_) | Event::Failed(_) => send_failed = true,
                    other => panic!("unexpected event {other:?}"),
                }
            }
            // Done once the end was read and nothing is left to do.
            send_failed || (closed && !passers[0].interest().write.is_wanted())
        });
        assert!(started.elapsed() < BOUND);
        assert!(
            send_failed,
            "{reservation:?}: the peer is gone and the message can never be sent, yet sending \
             did not end (queued: {}, send_usable: {:?})",
            passer.queued_sends(),
            passer.send_usable()
        );
        let unsent = passer.take_unsent_messages();
        assert_eq!(unsent.len(), 1, "{reservation:?}: the message comes back");
        assert_eq!(
            (unsent[0].payload.as_slice(), unsent[0].fds.len()),
            (&b"two"[..], 2)
        );
        drop((unsent, passer));
        tag.assert_none_open("no hello");
    }
}

/// Every case again, in a child process that runs nothing else, with the
/// whole descriptor table counted before and after each (after
/// `disposal::flush`, which `open_descriptors` waits for).
#[test]
fn no_native_peer_leaks_a_descriptor_process_wide() {
    const NAME: &str = "no_native_peer_leaks_a_descriptor_process_wide";
    if common::role().as_deref() == Some("every-native-case") {
        let baseline = open_descriptors();
        let mut runs = 0;
        for reservation in BOTH {
            for case in cases() {
                check(&case, reservation);
                assert_eq!(
                    open_descriptors(),
                    baseline,
                    "{}, {reservation:?}",
                    case.name
                );
                runs += 1;
            }
        }
        println!(
            "RESULT runs={runs} baseline={baseline} after={}",
            open_descriptors()
        );
        return;
    }
    let output = common::self_command(NAME, "every-native-case")
        .output()
        .unwrap();
    let results = common::results(&output);
    let line = &results[0];
    assert_eq!(common::field(line, "runs") as usize, 2 * cases().len());
    assert_eq!(
        common::field(line, "baseline"),
        common::field(line, "after")
    );
}
