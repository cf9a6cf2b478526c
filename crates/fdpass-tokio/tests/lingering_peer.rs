//! A peer's descriptor never stalls the runtime: the passer lets go of the
//! descriptors it rejects, reads ahead or finds in flight without closing
//! them on the runtime's thread, because a peer can make that close block
//! (a TCP socket with `SO_LINGER` on, its send buffer full and its remote
//! end never reading, blocks `close(2)` for the linger time).

use std::io::{ErrorKind, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use fdpass_tokio::{Config, Error, Passer, ProtocolError, Reservation, Wire};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

const LINGER: Duration = Duration::from_secs(3);

/// A TCP socket whose last close blocks for [`LINGER`], and its remote end
/// (kept alive, never reading). Loopback only.
fn lingering_socket() -> (OwnedFd, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let mut near = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (far, _) = listener.accept().expect("accept");
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

/// The raw peer sends `bytes` zero bytes with `fd` attached.
fn pass(peer: &OwnedFd, bytes: usize, fd: OwnedFd) {
    let fds = [fd.as_fd()];
    let mut storage = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut storage);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let payload = vec![0u8; bytes];
    let sent = rustix::net::sendmsg(
        peer,
        &[IoSlice::new(&payload)],
        &mut control,
        SendFlags::DONTWAIT,
    )
    .unwrap();
    assert_eq!(sent, bytes);
}

#[test]
fn tokio_runtime_never_stalls_on_a_lingering_descriptor() {
    for reservation in [Reservation::Peek, Reservation::Sentinel] {
        let (lingering, _far) = lingering_socket();
        let (peer, ours) = fdpass_core_pair();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let start = Instant::now();
        runtime.block_on(async {
            // The raw peer speaks the classic wire (bytes and descriptors).
            let config = Config::default()
                .with_reservation(reservation)
                .with_wire(Wire::Classic { batch: 128 });
            let passer = Passer::with_config(ours, config).unwrap();
            // Two bytes, one descriptor: rejected.
            pass(&peer, 2, lingering);
            let received = tokio::time::timeout(Duration::from_millis(500), passer.recv()).await;
            assert!(
                matches!(
                    received,
                    Ok(Err(Error::Protocol(
                        ProtocolError::BytesWithoutDescriptors { .. }
                    )))
                ),
                "{reservation:?}: {received:?}"
            );
            drop(passer);
        });
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{reservation:?}: the runtime stalled for {took:?}"
        );
    }
}

#[test]
fn tokio_runtime_never_stalls_on_descriptors_in_flight() {
    let (lingering, _far) = lingering_socket();
    let (peer, ours) = fdpass_core_pair();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    runtime.block_on(async {
        let passer = Passer::new(ours).unwrap();
        // Well formed, never read: in flight when the socket is released.
        pass(&peer, 1, lingering);
        drop(passer);
    });
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the runtime stalled for {took:?}"
    );
}

#[test]
fn tokio_runtime_never_stalls_dropping_a_listener_with_a_waiting_connection() {
    let dir = std::env::temp_dir().join(format!(
        "fdpass-tokio-listener-waiting-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (lingering, _far) = lingering_socket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let took = runtime.block_on(async {
        let listener = fdpass_tokio::Listener::bind(dir.join("sock")).unwrap();
        // Connected, never accepted: the connection waits in the listener's
        // queue with the lingering socket its client passed.
        let client = fdpass_core::socket::connect(dir.join("sock")).unwrap();
        pass(&client, 1, lingering);
        let start = Instant::now();
        drop(listener);
        start.elapsed()
    });
    assert!(
        took < Duration::from_secs(1),
        "dropping the listener stalled the runtime for {took:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A connected `SOCK_STREAM` pair: the raw peer's end, ours.
fn fdpass_core_pair() -> (OwnedFd, OwnedFd) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    (a.into(), b.into())
}
