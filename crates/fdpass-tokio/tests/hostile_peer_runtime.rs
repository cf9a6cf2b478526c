//! A raw hostile peer against the tokio adapter on real sockets: the
//! runtime's thread never blocks on what the peer passes, and a stream cut
//! short is never an orderly close. Run on Linux (the raw peer uses its
//! socket flags).
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use fdpass_core::frame::{self, Hello};
use fdpass_tokio::{Error, Passer};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketFlags,
    SocketType,
};

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("operation hung")
}

/// One raw `sendmsg` of `bytes` with `fds` attached.
fn send_raw(peer: &OwnedFd, bytes: &[u8], fds: &[OwnedFd]) {
    let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    }
    let sent = rustix::net::sendmsg(
        peer,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
    assert_eq!(sent, bytes.len());
}

/// A supervisor awaits `closed()` after taking a message; the peer's last
/// frame is cut short by its close. That end is `FrameCutShort`
/// (docs/wire.md, "End of stream"), but `closed()` resolves as the peer's
/// orderly close and `recv_message` then says `None`: a truncated stream
/// passes for a complete one.
#[tokio::test(flavor = "current_thread")]
async fn closed_never_reports_a_frame_cut_short_as_an_orderly_close() {
    let (ours, peer) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let a = Passer::new(ours).unwrap();
    let hello = Hello {
        min_version: 1,
        max_version: 1,
        max_fds: 4,
        max_payload: 4096,
    };
    send_raw(&peer, &hello.encode(), &[]);
    let mut bytes = Vec::new();
    frame::encode_message(&mut bytes, 1, 1, b"whole");
    let mut next = Vec::new();
    frame::encode_message(&mut next, 0, 0, b"0123456789");
    bytes.extend_from_slice(&next[..11]);
    let fd: OwnedFd = std::io::pipe().unwrap().0.into();
    send_raw(&peer, &bytes, &[fd]);
    let first = bounded(a.recv_message()).await.unwrap().expect("a message");
    assert_eq!(first.payload, b"whole");
    rustix::net::shutdown(&peer, Shutdown::Write).unwrap();
    let closed = bounded(a.closed()).await;
    let next = bounded(a.recv_message()).await;
    assert!(
        matches!(
            closed,
            Err(Error::Protocol(
                fdpass_core::ProtocolError::FrameCutShort { .. }
            ))
        ),
        "closed() gave {closed:?}, then recv_message gave {next:?}"
    );
}

/// A TCP socket whose last close blocks for `linger`: `SO_LINGER` on, its
/// send buffer full, its remote end (returned, kept alive) never reading.
fn lingering_socket(linger: Duration) -> (OwnedFd, std::net::TcpStream) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut near = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (far, _) = listener.accept().unwrap();
    rustix::net::sockopt::set_socket_recv_buffer_size(&far, 4096).unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&near, 4096).unwrap();
    near.set_nonblocking(true).unwrap();
    while near.write(&[0u8; 65536]).is_ok() {}
    rustix::net::sockopt::set_socket_linger(&near, Some(linger)).unwrap();
    (near.into(), far)
}

/// A client connects and sends its hello with a lingering TCP socket
/// attached. The server's passer reads the hello at its first poll, with no
/// control buffer: the kernel drops the descriptor inside that `recvmsg`
/// and its last close blocks the runtime's thread for the linger time; a
/// 100 ms timeout around `closed()` cannot fire.
#[tokio::test(flavor = "current_thread")]
async fn a_clients_hello_never_blocks_the_runtime() {
    let (ours, peer) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let server = Passer::new(ours).unwrap();
    let (lingering, _far) = lingering_socket(Duration::from_secs(3));
    let hello = Hello {
        min_version: 1,
        max_version: 1,
        max_fds: 4,
        max_payload: 4096,
    };
    send_raw(&peer, &hello.encode(), &[lingering]);
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_millis(100), server.closed()).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a 100 ms timeout around closed() returned after {took:?}"
    );
}
