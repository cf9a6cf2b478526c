//! Which descriptors the passer lets go of through `Sys::dispose` (whose
//! close may block, so the real seam makes it off the caller's thread) and
//! which it closes at once through `Sys::close`, checked with the fake seam,
//! which still sees every descriptor closed exactly once.
// Linux and Android only: its fake `Sys` hands out memfds and identifies them by name in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod support;

use std::time::Instant;

use fdpass_core::{Error, Event, ProtocolError, Reservation};
use support::*;

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

#[test]
fn read_ahead_and_discarded_sends_are_disposed_of() {
    for reservation in BOTH {
        let fake = Fake::new("read_ahead_disposed");
        let mut a = fake.passer(Side::A, config(reservation, 4)).unwrap();
        fake.peer_write(Side::A, 2, &[100, 101]);
        a.push_recv().unwrap();
        a.handle_readable(Instant::now());
        let Some(Event::Received(_, fd)) = a.poll_event() else {
            panic!("{reservation:?}: nothing received");
        };
        assert_eq!(fake.app_close(Side::A, fd), Label::Seq(100));
        let queued = fake.numbered(Side::A);
        let queued_label = fake.label(std::os::fd::AsFd::as_fd(&queued));
        a.push_send(queued).unwrap();
        a.close();
        let disposed = fake.disposed_by(Side::A);
        assert!(
            disposed.contains(&Label::Seq(101)),
            "{reservation:?}: {disposed:?}"
        );
        assert!(
            disposed.contains(&queued_label),
            "{reservation:?}: {disposed:?}"
        );
        drop(a);
        fake.finish();
    }
}

#[test]
fn a_rejected_message_is_disposed_of() {
    for reservation in BOTH {
        let fake = Fake::new("rejected_disposed");
        let mut a = fake.passer(Side::A, config(reservation, 4)).unwrap();
        fake.peer_write(Side::A, 2, &[200]);
        a.push_recv().unwrap();
        a.handle_readable(Instant::now());
        assert!(matches!(
            a.poll_event(),
            Some(Event::Failed(Error::Protocol(
                ProtocolError::BytesWithoutDescriptors { .. }
            )))
        ));
        let disposed = fake.disposed_by(Side::A);
        assert!(
            disposed.contains(&Label::Seq(200)),
            "{reservation:?}: {disposed:?}"
        );
        drop(a);
        fake.finish();
    }
}

#[test]
fn a_truncated_peek_gives_its_slots_back_at_once() {
    let fake = Fake::new("truncated_peek_closed");
    let mut a = fake.passer(Side::A, config(Reservation::Peek, 4)).unwrap();
    // Two descriptors promised, one installed: the table is short.
    fake.on_recv(Side::A, RecvStep::truncated(2, &[300]));
    a.push_recv().unwrap();
    a.handle_readable(Instant::now());
    // The peeked copy of a message still queued is not the last reference:
    // closed at once, so the probe that follows finds its slot free.
    let closed = fake.closed_by(Side::A);
    assert!(closed.contains(&Label::Seq(300)), "{closed:?}");
    assert!(!fake.disposed_by(Side::A).contains(&Label::Seq(300)));
    drop(a);
    fake.clear_script();
    fake.finish();
}

#[test]
fn sent_descriptors_and_the_reservation_are_closed_at_once() {
    for reservation in BOTH {
        let fake = Fake::new("sent_closed");
        let mut a = fake.passer(Side::A, config(reservation, 4)).unwrap();
        let fd = fake.numbered(Side::A);
        let label = fake.label(std::os::fd::AsFd::as_fd(&fd));
        a.push_send(fd).unwrap();
        a.handle_writable(Instant::now());
        assert!(matches!(a.poll_event(), Some(Event::Sent(_))));
        drop(a);
        assert!(fake.closed_by(Side::A).contains(&label));
        // Nothing the passer let go of was someone else's: no disposal.
        assert_eq!(
            fake.disposed_by(Side::A),
            Vec::<Label>::new(),
            "{reservation:?}"
        );
        fake.finish();
    }
}
