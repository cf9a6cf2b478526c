//! Attack: a peer stalls fdpass's disposal pool for the whole process. Each
//! descriptor a passer lets go of is closed by one of at most
//! `disposal::MAX_WORKERS` threads; a peer that makes that many closes block
//! (lingering TCP sockets in messages the passer rejects) leaves every later
//! disposal in the process queued for as long as it likes: other
//! connections' rejected descriptors and released sockets stay open.
//! In a file of its own: the pool is process-wide.

use std::io::{ErrorKind, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use fdpass_core::frame::{self, Hello};
use fdpass_core::{Config, Passer};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// How long each lingering close blocks (a real peer picks hours).
const LINGER: Duration = Duration::from_secs(3);

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

#[test]
fn one_peer_never_stalls_every_other_disposal() {
    let hello = Hello {
        min_version: 1,
        max_version: 1,
        max_fds: 4,
        max_payload: 4096,
    }
    .encode();
    // A frame with its reserved byte set: `BadFrame`, its descriptor let go of.
    let mut bad = Vec::new();
    frame::encode_message(&mut bad, 1, 1, b"");
    bad[3] = 1;
    let mut keep = Vec::new();
    for _ in 0..fdpass_core::disposal::MAX_WORKERS {
        let (lingering, far) = lingering_socket();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = Passer::new(ours, Config::default()).unwrap();
        send_with(&peer, &hello, &[], SendFlags::DONTWAIT);
        send_with(&peer, &bad, &[lingering.as_fd()], SendFlags::DONTWAIT);
        drop(lingering);
        passer.push_recv_message().unwrap();
        passer.handle_readable(Instant::now());
        assert!(passer.usable().is_err(), "BadFrame");
        keep.push((passer, peer, far));
    }
    // Another connection, another user of the process: a descriptor let go
    // of now must still be closed soon.
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    let started = Instant::now();
    fdpass_core::disposal::dispose(write_end);
    let mut fds = [rustix::event::PollFd::new(
        &read_end,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: 2,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a pipe end handed to disposal was closed only after {took:?}          (the peer's lingering sockets hold every worker for {LINGER:?}, or as long as it likes)"
    );
    drop(keep);
}
