//! A native stream that ends inside a frame, or with descriptors no frame
//! claimed, is never the peer's orderly close, however the end is seen.
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
