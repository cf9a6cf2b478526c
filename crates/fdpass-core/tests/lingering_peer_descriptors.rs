//! Descriptors the kernel would drop inside our own `recvmsg` for want of
//! control space are never closed on the caller's thread, where a lingering
//! TCP socket's last close blocks for its linger time: the peer's hello
//! carrying one, a frame whose `batch_fds` lies low (the sentinel's exact
//! reservation), more descriptors than the limit. Every read offers room for
//! a whole `sendmsg` and lets go of the surplus through `disposal`.

use std::io::{ErrorKind, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use fdpass_core::frame::{self, Hello};
use fdpass_core::{Config, Passer, Reservation};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

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

/// Runs `f`, asserting it returns within [`PROMPT`].
#[track_caller]
fn promptly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < PROMPT, "{what} took {took:?}");
    out
}

fn hello() -> Vec<u8> {
    Hello {
        min_version: 1,
        max_version: 1,
        max_fds: 4,
        max_payload: 4096,
    }
    .encode()
    .to_vec()
}

/// The peer's first send: its hello with a lingering socket attached. An
/// adapter reads the hello at once, with no request and no control buffer:
/// the kernel drops the descriptor inside that `recvmsg`, and its last
/// close runs on our thread, blocking `handle_readable` for the linger time.
#[test]
fn reading_the_hello_never_blocks_on_a_lingering_descriptor() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let (lingering, _far) = lingering_socket();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer =
            Passer::new(ours, Config::default().with_reservation(reservation)).unwrap();
        passer.watch_hangup(true);
        send_with(&peer, &hello(), &[lingering.as_fd()], SendFlags::DONTWAIT);
        drop(lingering);
        promptly("handle_readable reading the hello", || {
            passer.handle_readable(Instant::now())
        });
        assert!(
            passer.usable().is_err(),
            "a hello with a descriptor is refused"
        );
        promptly("drop", || drop(passer));
    }
}

/// Sentinel: a frame announcing `batch_fds = 0` is read with no control
/// space; the peer attaches a lingering socket anyway. The kernel drops it
/// in our `recvmsg`, whose return then waits for its close.
#[test]
fn a_lying_batch_fds_never_blocks_on_a_lingering_descriptor() {
    let (lingering, _far) = lingering_socket();
    let (peer, ours) = fdpass_core::socket::pair().unwrap();
    let config = Config::default().with_reservation(Reservation::Sentinel);
    let mut passer = Passer::new(ours, config).unwrap();
    send_with(&peer, &hello(), &[], SendFlags::DONTWAIT);
    let mut lie = Vec::new();
    frame::encode_message(&mut lie, 0, 0, b"no descriptors, it says");
    send_with(&peer, &lie, &[lingering.as_fd()], SendFlags::DONTWAIT);
    drop(lingering);
    passer.push_recv_message().unwrap();
    promptly("handle_readable", || passer.handle_readable(Instant::now()));
    promptly("drop", || drop(passer));
}

/// Sentinel, either wire: a send with far more descriptors than the
/// receiver's limit, the last a lingering socket. The consuming read has
/// control space for the limit (a little more after rounding); the kernel
/// drops the rest inside our `recvmsg`, on our thread.
#[test]
fn too_many_descriptors_never_block_on_a_lingering_descriptor() {
    for wire in [
        fdpass_core::Wire::Native,
        fdpass_core::Wire::Classic { batch: 4 },
    ] {
        let (lingering, _far) = lingering_socket();
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let config = Config::default()
            .with_reservation(Reservation::Sentinel)
            .with_max_fds_per_message(4)
            .with_wire(wire);
        let mut passer = Passer::new(ours, config).unwrap();
        let pipes: Vec<OwnedFd> = (0..20).map(|_| std::io::pipe().unwrap().0.into()).collect();
        let mut fds: Vec<BorrowedFd<'_>> = pipes.iter().map(|fd| fd.as_fd()).collect();
        fds.push(lingering.as_fd());
        let bytes = match wire {
            fdpass_core::Wire::Native => {
                send_with(&peer, &hello(), &[], SendFlags::DONTWAIT);
                let mut bytes = Vec::new();
                frame::encode_message(&mut bytes, 4, 4, b"");
                bytes
            }
            _ => vec![0; 4],
        };
        send_with(&peer, &bytes, &fds, SendFlags::DONTWAIT);
        drop((lingering, pipes));
        passer.push_recv_message().unwrap();
        promptly("handle_readable", || passer.handle_readable(Instant::now()));
        assert!(passer.usable().is_err(), "{wire:?}: too many descriptors");
        promptly("drop", || drop(passer));
    }
}
