//! A passer learns of its peer's hang-up without a receive outstanding, and
//! says truthfully how the connection ended.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Instant;

use fdpass_core::{Config, Error, Event, Passer, Want, Wire};

fn pipe_end() -> OwnedFd {
    rustix::pipe::pipe().unwrap().0
}

fn events(passer: &mut Passer) -> Vec<Event> {
    std::iter::from_fn(|| passer.poll_event()).collect()
}

fn watching(passer: Passer) -> Passer {
    let mut passer = passer;
    passer.watch_hangup(true);
    passer
}

#[test]
fn a_send_only_passer_learns_of_the_peers_orderly_hangup() {
    let (a, b) = Passer::pair(Config::default()).unwrap();
    let mut a = watching(a);
    a.push_send(pipe_end()).unwrap();
    a.handle_writable(Instant::now());
    a.handle_readable(Instant::now());
    assert!(matches!(events(&mut a)[..], [Event::Sent(_)]));
    assert_eq!(
        a.interest().read,
        Want::WhenReady,
        "watching, nothing to read yet"
    );
    // The peer reads what was sent, then closes.
    let mut b = b;
    b.push_recv().unwrap();
    b.handle_readable(Instant::now());
    drop(b);
    a.handle_readable(Instant::now());
    assert!(matches!(events(&mut a)[..], [Event::Closed]));
    assert!(a.is_peer_closed());
    assert_eq!(a.interest().read, Want::Idle);
}

#[test]
fn a_peer_whose_socket_dies_with_our_descriptors_unread_is_a_failure_not_a_close() {
    // A peer that is not a passer (or a process that dies) releases its
    // socket with what we sent unread: Linux resets the connection.
    let (ours, theirs) = fdpass_core::socket::pair().unwrap();
    let mut a = watching(Passer::new(ours, Config::default()).unwrap());
    a.push_send(pipe_end()).unwrap();
    a.handle_writable(Instant::now());
    drop(theirs); // what we sent is lost with it
    a.handle_readable(Instant::now());
    let seen = events(&mut a);
    assert!(
        matches!(&seen[..], [Event::Sent(_), Event::Failed(Error::Io(e))]
            if e.raw_os_error() == Some(rustix::io::Errno::CONNRESET.raw_os_error())),
        "{seen:?}"
    );
}

#[test]
fn a_peer_passer_dropped_with_our_descriptors_unread_reads_as_an_orderly_close() {
    // A passer's release is orderly whatever it left unread (see
    // `disposal`): the peer is told `Closed`, not a reset.
    let (a, b) = Passer::pair(Config::default()).unwrap();
    let mut a = watching(a);
    a.push_send(pipe_end()).unwrap();
    a.handle_writable(Instant::now());
    drop(b);
    a.handle_readable(Instant::now());
    let seen = events(&mut a);
    assert!(
        matches!(&seen[..], [Event::Sent(_), Event::Closed]),
        "{seen:?}"
    );
}

#[test]
fn unasked_bytes_suspend_the_watch_so_a_level_triggered_loop_does_not_spin() {
    // A classic peer's byte: the classic wire reads nothing unasked.
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let classic = Config::default().with_wire(Wire::CLASSIC);
    let mut a = watching(Passer::new(ours.into(), classic).unwrap());
    theirs.write_all(b"\0").unwrap();
    a.handle_readable(Instant::now());
    assert!(
        events(&mut a).is_empty(),
        "nothing was asked for, nothing is judged"
    );
    // A poll(2) loop would wait for POLLIN only while `interest` wants it.
    assert_eq!(a.interest().read, Want::Idle);
    // A request reads it (and finds a protocol error: a byte with no descriptor).
    a.push_recv().unwrap();
    assert_eq!(a.interest().read, Want::Now);
    a.handle_readable(Instant::now());
    assert!(matches!(
        events(&mut a)[..],
        [Event::Failed(Error::Protocol(_))]
    ));
}

#[test]
fn the_close_is_reported_only_after_the_descriptors_read_ahead_are_out() {
    let (a, b) = Passer::pair(Config::default()).unwrap();
    let (mut a, mut b) = (a, watching(b));
    // `a` batches once it has `b`'s hello (before it, one per message).
    b.handle_writable(Instant::now());
    a.handle_readable(Instant::now());
    assert!(a.peer_limits().is_some());
    a.push_send_many((0..3).map(|_| pipe_end())).unwrap();
    a.handle_writable(Instant::now());
    drop(a);
    b.push_recv().unwrap();
    b.handle_readable(Instant::now()); // one message: one delivered, two read ahead
    assert_eq!(
        b.interest().read,
        Want::WhenReady,
        "watching, on the next readiness"
    );
    b.handle_readable(Instant::now()); // readable: the end, behind the message
    assert!(
        b.is_peer_closed(),
        "the watch saw the end behind the message"
    );
    let seen = events(&mut b);
    assert!(matches!(seen[..], [Event::Received(..)]), "{seen:?}");
    assert!(b.try_recv().is_some());
    assert!(events(&mut b).is_empty(), "one descriptor is still to come");
    assert!(b.try_recv().is_some());
    assert!(matches!(events(&mut b)[..], [Event::Closed]));
    assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
}

#[test]
fn without_the_watch_the_input_is_touched_only_for_requests() {
    let classic = Config::default().with_wire(Wire::CLASSIC);
    let (a, b) = Passer::pair(classic).unwrap();
    let mut a = a;
    assert_eq!(a.interest().read, Want::Idle);
    drop(b);
    a.handle_readable(Instant::now());
    assert!(events(&mut a).is_empty());
}

#[test]
fn without_the_watch_a_native_passer_reads_only_the_peer_hello_unasked() {
    let (mut a, mut b) = Passer::pair(Config::default()).unwrap();
    // The hello says what may be sent: it is read without a request.
    assert_eq!(a.interest().read, Want::Now);
    let (r, _w) = rustix::pipe::pipe().unwrap();
    b.push_send(r).unwrap();
    b.handle_writable(Instant::now()); // b's hello, then a message
    a.handle_readable(Instant::now());
    assert!(a.peer_limits().is_some());
    assert!(events(&mut a).is_empty());
    // Then nothing more is read until asked: the message waits.
    assert_eq!(a.interest().read, Want::Idle);
    assert_eq!(a.held_descriptors(), 0);
    a.push_recv().unwrap();
    a.handle_readable(Instant::now());
    assert!(matches!(events(&mut a)[..], [Event::Received(..)]));
}

/// A pipe whose read end carries `n` in its buffer, to tell descriptors apart.
fn numbered(n: u8) -> OwnedFd {
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    std::fs::File::from(write_end).write_all(&[n]).unwrap();
    read_end
}

fn number_of(fd: OwnedFd) -> u8 {
    let mut byte = [0u8];
    assert_eq!(rustix::io::read(&fd, &mut byte).unwrap(), 1);
    byte[0]
}

#[test]
fn what_the_peer_sent_before_its_orderly_close_arrives_even_after_our_send_fails() {
    let now = Instant::now();
    let (mut peer, ours) = Passer::pair(Config::default()).unwrap();
    let mut ours = watching(ours);
    // The peer sends 1 and 2 in one message, 3 in another, and closes.
    peer.push_send_many([numbered(1), numbered(2)]).unwrap();
    peer.handle_writable(now);
    peer.push_send(numbered(3)).unwrap();
    peer.handle_writable(now);
    assert_eq!(peer.queued_sends(), 0);
    drop(peer); // an orderly close: the peer reads nothing more
    ours.push_recv().unwrap();
    ours.handle_readable(now);
    let mut got = Vec::new();
    for event in events(&mut ours) {
        match event {
            Event::Received(_, fd) => got.push(number_of(fd)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, [1], "2 is read ahead, 3 still in the socket");
    // We answer: the peer is gone, so this send fails with EPIPE. It says
    // nothing about what the peer sent before its orderly close.
    let _ = ours.push_send(pipe_end());
    ours.handle_writable(now);
    let mut ended = None;
    for _ in 0..10 {
        match ours.push_recv() {
            Ok(_) => ours.handle_readable(now),
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
        for event in events(&mut ours) {
            match event {
                Event::Received(_, fd) => got.push(number_of(fd)),
                Event::Closed | Event::Failed(_) | Event::SendFailed(_) | Event::Sent(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        got,
        [1, 2, 3],
        "every descriptor sent before the close arrives"
    );
    assert!(
        matches!(ended, Some(Error::PeerClosed)),
        "the end reads as the peer's orderly close, got {ended:?}"
    );
}
