//! A descriptor the peer passes is a file the peer chose, and its last
//! close can block for as long as the peer likes: a TCP socket with
//! `SO_LINGER` on, its send buffer full and its remote end never reading,
//! blocks `close(2)` for the linger time. Whatever the passer lets go of on
//! its own (a rejected message's descriptors, descriptors read ahead, queued
//! sends it discards, received descriptors in undrained events, and
//! whatever is still in flight in its socket when the socket is released)
//! must never be closed on the caller's thread.
//!
//! Each test builds such a lingering socket on loopback, passes it from a
//! raw peer, and bounds the time of the passer's call well under the linger
//! time.

use std::io::{ErrorKind, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use fdpass_core::{Config, Error, Event, Passer, ProtocolError, Reservation};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

/// How long the lingering socket's close blocks.
const LINGER: Duration = Duration::from_secs(3);

/// A bound for any passer call: far below the linger time.
const PROMPT: Duration = Duration::from_millis(1000);

/// A TCP socket whose last close blocks for [`LINGER`]: `SO_LINGER` on, its
/// send buffer full, its remote end (returned too, to keep it alive) never
/// reading. Loopback only.
fn lingering_socket() -> (OwnedFd, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let mut near = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (far, _) = listener.accept().expect("accept");
    // Small buffers fill fast.
    rustix::net::sockopt::set_socket_recv_buffer_size(&far, 4096).unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&near, 4096).unwrap();
    near.set_nonblocking(true).unwrap();
    let chunk = [0u8; 65536];
    loop {
        match near.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the send buffer: {e}"),
        }
    }
    rustix::net::sockopt::set_socket_linger(&near, Some(LINGER)).unwrap();
    (near.into(), far)
}

/// The raw peer sends `bytes` with `fds` attached, as any program could.
fn send_with(peer: &OwnedFd, bytes: &[u8], fds: &[BorrowedFd<'_>], flags: SendFlags) {
    let mut storage = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut storage);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let sent = rustix::net::sendmsg(peer, &[IoSlice::new(bytes)], &mut control, flags)
        .expect("raw sendmsg");
    assert_eq!(sent, bytes.len());
}

/// Passes `fd` (then closes the sender's copy, which is not the last: the
/// message holds another) in a message of `bytes` zero bytes.
fn pass(peer: &OwnedFd, bytes: usize, fds: Vec<OwnedFd>) {
    let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
    send_with(peer, &vec![0; bytes], &borrowed, SendFlags::DONTWAIT);
}

/// A passer on the classic wire: the peers here write that wire by hand.
fn passer(socket: OwnedFd, reservation: Reservation) -> Passer {
    let config = Config::default()
        .with_reservation(reservation)
        .with_wire(fdpass_core::Wire::Classic { batch: 128 });
    Passer::new(socket, config).expect("passer")
}

/// Runs `f`, asserting it returns within [`PROMPT`].
#[track_caller]
fn promptly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < PROMPT, "{what} took {took:?}");
    out
}

#[test]
fn rejected_message_never_blocks_on_a_lingering_descriptor() {
    for reservation in BOTH {
        let (lingering, _far) = lingering_socket();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = passer(ours, reservation);
        // Two bytes, one descriptor: a protocol error.
        pass(&peer, 2, vec![lingering]);
        passer.push_recv().unwrap();
        promptly("handle_readable", || passer.handle_readable(Instant::now()));
        assert!(
            matches!(
                passer.poll_event(),
                Some(Event::Failed(Error::Protocol(
                    ProtocolError::BytesWithoutDescriptors { .. }
                )))
            ),
            "{reservation:?}"
        );
        // The peek strategy left the message in the socket: its descriptor
        // goes with the socket's release.
        promptly("drop", || drop(passer));
    }
}

#[test]
fn close_never_blocks_on_read_ahead() {
    for reservation in BOTH {
        let (lingering, _far) = lingering_socket();
        let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = passer(ours, reservation);
        pass(&peer, 2, vec![read_end, lingering]);
        passer.push_recv().unwrap();
        passer.handle_readable(Instant::now());
        assert!(matches!(passer.poll_event(), Some(Event::Received(..))));
        assert_eq!(passer.outstanding_recvs(), 0);
        // The lingering socket came in the same message and is read ahead.
        promptly("close", || passer.close());
        promptly("drop", || drop(passer));
    }
}

#[test]
fn failure_never_blocks_on_read_ahead() {
    for reservation in BOTH {
        let (lingering, _far) = lingering_socket();
        let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = passer(ours, reservation);
        pass(&peer, 2, vec![read_end, lingering]);
        passer.push_recv().unwrap();
        passer.handle_readable(Instant::now());
        assert!(matches!(passer.poll_event(), Some(Event::Received(..))));
        // A driver that can no longer serve the passer fails it, with the
        // lingering socket read ahead.
        promptly("abort", || {
            passer.abort(std::io::Error::other("reactor gone").into())
        });
        assert!(matches!(passer.poll_event(), Some(Event::Failed(_))));
        promptly("drop", || drop(passer));
    }
}

#[test]
fn drop_never_blocks_on_descriptors_in_flight() {
    for reservation in BOTH {
        let (lingering, _far) = lingering_socket();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let passer = passer(ours, reservation);
        // A well-formed message the passer never reads: its descriptor is in
        // flight in our socket when the socket is released.
        pass(&peer, 1, vec![lingering]);
        promptly("drop", || drop(passer));
    }
}

#[test]
fn undrained_events_never_block_drop() {
    for reservation in BOTH {
        let (lingering, _far) = lingering_socket();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = passer(ours, reservation);
        pass(&peer, 1, vec![lingering]);
        passer.push_recv().unwrap();
        passer.handle_readable(Instant::now());
        // `Event::Received` with the lingering socket is never drained.
        promptly("drop", || drop(passer));
    }
}

#[test]
fn discarded_sends_never_block_close() {
    for reservation in BOTH {
        let (lingering, _far) = lingering_socket();
        let (_peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = passer(ours, reservation);
        // Queued, never written: closing discards it, and ours is the last
        // reference.
        passer.push_send(lingering).unwrap();
        promptly("close", || passer.close());
        let (lingering, _far) = lingering_socket();
        // Refused after the close: handed back, and letting go of it the
        // way `?` does (into an `Error`) never blocks either.
        promptly("push_send", || {
            let refused = passer.push_send(lingering).unwrap_err();
            assert!(matches!(Error::from(refused), Error::Closed))
        });
        promptly("drop", || drop(passer));
    }
}

#[test]
fn disposed_descriptors_are_closed_soon() {
    let (peer, ours) = fdpass_core::socket::pair().unwrap();
    let mut passer = passer(ours, Reservation::Sentinel);
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    pass(&peer, 2, vec![write_end]); // rejected: two bytes, one descriptor
    passer.push_recv().unwrap();
    passer.handle_readable(Instant::now());
    assert!(matches!(passer.poll_event(), Some(Event::Failed(_))));
    drop(passer);
    assert!(fdpass_core::disposal::flush(Duration::from_secs(30)));
    // The pipe's last write end is closed: its reader sees end of file.
    assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn a_blocking_close_never_delays_other_disposals() {
    let (lingering, _far) = lingering_socket();
    fdpass_core::disposal::dispose(lingering); // its close blocks for LINGER
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    fdpass_core::disposal::dispose(write_end);
    // Another worker closes the pipe's write end meanwhile: its reader sees
    // end of file long before the lingering close returns.
    let mut fds = [rustix::event::PollFd::new(
        &read_end,
        rustix::event::PollFlags::IN,
    )];
    let bound = rustix::event::Timespec::try_from(PROMPT).unwrap();
    let ready = rustix::event::poll(&mut fds, Some(&bound)).unwrap();
    assert_eq!(ready, 1, "the pipe was not closed within {PROMPT:?}");
    assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn refused_connection_never_blocks_on_descriptors_in_flight() {
    let dir = std::env::temp_dir().join(format!(
        "fdpass-test-refused-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut listener = fdpass_core::socket::Listener::bind(dir.join("sock")).unwrap();
    listener.set_peer_check(|_peer| false);
    let client = fdpass_core::socket::connect(listener.path()).unwrap();
    // The client passes a lingering socket before it is even accepted.
    let (lingering, _far) = lingering_socket();
    pass(&client, 1, vec![lingering]);
    // The refused peer is skipped; with nobody else waiting, accept says so.
    let refused = promptly("refusing accept", || listener.accept());
    assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dropping_a_listener_never_blocks_on_a_waiting_connections_descriptors() {
    let dir = std::env::temp_dir().join(format!(
        "fdpass-test-waiting-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = fdpass_core::socket::Listener::bind(dir.join("sock")).unwrap();
    // Connected but never accepted: the connection waits in the listener's
    // queue, holding the lingering socket the client passed on it.
    let client = fdpass_core::socket::connect(listener.path()).unwrap();
    let (lingering, _far) = lingering_socket();
    pass(&client, 1, vec![lingering]);
    promptly("dropping the listener", || drop(listener));
    // Gone for new clients as soon as the drop returns, as before.
    let refused = fdpass_core::socket::connect(dir.join("sock")).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    drop(client);
    std::fs::remove_dir_all(&dir).unwrap();
}
