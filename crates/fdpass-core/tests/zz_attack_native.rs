//! Attacks on the native wire by a raw hostile peer on real sockets.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod hostile;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use fdpass_core::frame::{self, Hello, HELLO_LEN};
use fdpass_core::{Config, Error, Event, Passer, ProtocolError, Reservation};
use hostile::{send_raw, Raw, Tag};
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

fn stream_pair() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

fn hello(max_fds: u16, max_payload: u32) -> [u8; HELLO_LEN] {
    Hello {
        min_version: 1,
        max_version: 1,
        max_fds,
        max_payload,
    }
    .encode()
}

fn frame(fds: u8, batch_fds: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_message(&mut out, fds, batch_fds, payload);
    out
}

fn send(peer: &OwnedFd, tag: &Tag, bytes: &[u8], n: usize) {
    let fds: Vec<OwnedFd> = (0..n).map(|i| tag.memfd(&format!("m{i}"))).collect();
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|fd| fd.as_fd()).collect();
    let raw = Raw {
        bytes,
        fds: &borrowed,
        credentials: false,
    };
    assert_eq!(send_raw(peer, raw), Ok(bytes.len()));
}

/// Drives `passer` (hang-up watch on, as every adapter sets it) for a
/// bounded number of rounds with no new request, collecting events.
fn settle(passer: &mut Passer) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..16 {
        passer.handle_readable(Instant::now());
        passer.handle_writable(Instant::now());
        while let Some(e) = passer.poll_event() {
            events.push(e);
        }
    }
    events
}

/// A message request served by a whole frame while the same read brought
/// the start of the next one; then the peer closes. The end of the stream in
/// the middle of a frame is `FrameCutShort` (wire.md, "End of stream"), not
/// the peer's orderly close. The hang-up watch, which every adapter turns
/// on, takes the end for an orderly close without asking the frame decoder.
#[test]
fn a_frame_cut_short_is_never_reported_as_an_orderly_close() {
    for reservation in BOTH {
        let tag = Tag::new("cutshort");
        let (peer, socket) = stream_pair();
        let config = Config::default().with_reservation(reservation);
        let mut passer = Passer::new(socket, config).unwrap();
        passer.watch_hangup(true);
        send(&peer, &tag, &hello(4, 4096), 0);
        // A whole frame with its descriptor (so that every reservation reads
        // the whole send at once), then the next frame's header and 3 of its
        // 10 payload bytes.
        let mut bytes = frame(1, 1, b"whole");
        bytes.extend_from_slice(&frame(0, 0, b"0123456789")[..11]);
        send(&peer, &tag, &bytes, 1);
        passer.push_recv_message().unwrap();
        let mut events = settle(&mut passer);
        rustix::net::shutdown(&peer, Shutdown::Write).unwrap();
        events.extend(settle(&mut passer));
        let got: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        assert!(
            matches!(events.first(), Some(Event::ReceivedMessage(..))),
            "{reservation:?}: {got:?}"
        );
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Failed(Error::Protocol(ProtocolError::FrameCutShort { .. }))
            )),
            "{reservation:?}: the cut frame was reported as {got:?}"
        );
    }
}

/// Descriptors no frame claims at the end of the stream are
/// `DescriptorsWithoutFrame` (wire.md's error table) and are let go of at
/// once; with the hang-up watch on and no request outstanding the passer
/// reports an orderly close instead and keeps holding them.
#[test]
fn descriptors_unclaimed_at_the_end_are_never_an_orderly_close() {
    for reservation in BOTH {
        let tag = Tag::new("unclaimed");
        let (peer, socket) = stream_pair();
        let config = Config::default().with_reservation(reservation);
        let mut passer = Passer::new(socket, config).unwrap();
        passer.watch_hangup(true);
        send(&peer, &tag, &hello(4, 4096), 0);
        // One empty message, and two descriptors no frame claims.
        send(&peer, &tag, &frame(0, 2, b""), 2);
        passer.push_recv_message().unwrap();
        let mut events = settle(&mut passer);
        // An orderly end (a peer that reads our hello before closing sees
        // the same).
        rustix::net::shutdown(&peer, Shutdown::Write).unwrap();
        events.extend(settle(&mut passer));
        let got: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Failed(Error::Protocol(
                    ProtocolError::DescriptorsWithoutFrame { .. }
                ))
            )),
            "{reservation:?}: reported as {got:?}"
        );
        assert_eq!(
            tag.open(),
            Vec::<String>::new(),
            "{reservation:?}: the peer's descriptors are still held after the end"
        );
    }
}

/// One largest send of empty frames (8 bytes each, all valid messages)
/// against a single message request: the passer keeps every one of them
/// read ahead. Held memory grows with the frame count, not with one
/// message: 8193 entries for a 64 KiB limit, two million for the 16 MiB
/// limit, each an allocation the peer paid 8 bytes for.
#[test]
fn one_request_never_holds_more_than_one_message_worth_of_read_ahead() {
    for reservation in BOTH {
        let tag = Tag::new("flood");
        let (peer, socket) = stream_pair();
        let max_payload = 65536usize;
        let config = Config::default()
            .with_reservation(reservation)
            .with_max_payload_len(max_payload);
        let mut passer = Passer::new(socket, config).unwrap();
        send(&peer, &tag, &hello(4, 4096), 0);
        let empties: Vec<u8> = (0..(8 + max_payload) / 8)
            .flat_map(|_| frame(0, 0, b""))
            .collect();
        send(&peer, &tag, &empties, 0);
        passer.push_recv_message().unwrap();
        let events = settle(&mut passer);
        assert!(matches!(events.first(), Some(Event::ReceivedMessage(..))));
        let mut read_ahead = 0usize;
        while passer.try_recv_message().is_some() {
            read_ahead += 1;
        }
        let held = read_ahead * std::mem::size_of::<fdpass_core::Message>();
        assert!(
            held <= 8 + max_payload,
            "{reservation:?}: one request left {read_ahead} messages read ahead \
             (at least {held} bytes held for {} bytes of one message)",
            8 + max_payload
        );
    }
}

/// The peer parks a send's worth of descriptors behind frames that claim
/// nothing (allowed: at most `max_fds` unclaimed after a read), then makes
/// every later frame claim the previous send's descriptors while it parks
/// new ones. With no request outstanding the passer then holds two
/// messages' worth of the peer's descriptors: the one read ahead and the
/// parked ones.
#[test]
fn no_request_outstanding_holds_at_most_one_message_of_descriptors() {
    for reservation in BOTH {
        let tag = Tag::new("parked");
        let (peer, socket) = stream_pair();
        let max_fds = 4;
        let config = Config::default()
            .with_reservation(reservation)
            .with_max_fds_per_message(max_fds);
        let mut passer = Passer::new(socket, config).unwrap();
        let own = passer.held_descriptors();
        send(&peer, &tag, &hello(4, 4096), 0);
        // Send 1: an empty message, and 4 descriptors nobody claims yet.
        send(&peer, &tag, &frame(0, 4, b""), 4);
        passer.push_recv_message().unwrap();
        settle(&mut passer);
        // Send 2: an empty message, a message claiming the 4 parked
        // descriptors, and 4 new parked ones.
        let mut bytes = frame(0, 4, b"");
        bytes.extend(frame(4, 0, b""));
        send(&peer, &tag, &bytes, 4);
        passer.push_recv_message().unwrap();
        let events = settle(&mut passer);
        assert_eq!(passer.outstanding_recvs(), 0, "{events:?}");
        let peers = passer.held_descriptors() - own;
        assert!(
            peers <= max_fds,
            "{reservation:?}: no request outstanding, yet {peers} of the peer's descriptors held \
             (one message carries at most {max_fds}); open: {}",
            tag.open().len()
        );
    }
}

/// The same bytes from the peer, judged the same whatever our timing: a
/// first send holding the hello and a message frame (with its descriptor
/// on a stream, or without on a sequenced-packet socket) is accepted when
/// a request was already waiting, and fails (`BadHello`, or on
/// `SOCK_SEQPACKET` `MessageTooLong { limit: 24 }`, an error wire.md gives
/// only for records longer than 8 + max_payload) when the hello is read
/// with no request, as every adapter does at once.
#[test]
fn a_first_send_is_judged_the_same_whether_or_not_a_request_waits() {
    let cases: [(SocketType, usize); 2] = [(SocketType::STREAM, 1), (SocketType::SEQPACKET, 0)];
    for reservation in BOTH {
        for (kind, fds) in cases {
            let mut outcomes = Vec::new();
            for asked_first in [true, false] {
                let tag = Tag::new("hello-and-frame");
                let (peer, socket) =
                    rustix::net::socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
                        .unwrap();
                let mut passer =
                    Passer::new(socket, Config::default().with_reservation(reservation)).unwrap();
                passer.watch_hangup(true);
                let mut bytes = hello(4, 4096).to_vec();
                bytes.extend(frame(fds as u8, fds as u8, b"x"));
                send(&peer, &tag, &bytes, fds);
                if asked_first {
                    passer.push_recv_message().unwrap();
                }
                let mut events = settle(&mut passer);
                if !asked_first && passer.usable().is_ok() {
                    passer.push_recv_message().unwrap();
                    events.extend(settle(&mut passer));
                }
                let delivered = events
                    .iter()
                    .any(|e| matches!(e, Event::ReceivedMessage(..)));
                outcomes.push((delivered, format!("{events:?}")));
            }
            assert_eq!(
                outcomes[0].0, outcomes[1].0,
                "{reservation:?} {kind:?}: with a request waiting: {}; without: {}",
                outcomes[0].1, outcomes[1].1
            );
        }
    }
}
