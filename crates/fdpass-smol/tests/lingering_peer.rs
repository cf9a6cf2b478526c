//! A client's descriptor never stalls the caller: a listener dropped with a
//! connection still waiting to be accepted releases that connection, and
//! the files its client passed on it, off the dropping thread (a TCP socket
//! with `SO_LINGER` on, its send buffer full and its remote end never
//! reading, blocks `close(2)` for the linger time).

use std::io::{ErrorKind, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

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

/// The raw client sends one zero byte with `fd` attached.
fn pass(client: &OwnedFd, fd: OwnedFd) {
    let fds = [fd.as_fd()];
    let mut storage = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut storage);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let sent = rustix::net::sendmsg(
        client,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::DONTWAIT,
    )
    .unwrap();
    assert_eq!(sent, 1);
}

#[test]
fn dropping_a_listener_never_blocks_on_a_waiting_connections_descriptors() {
    let dir = std::env::temp_dir().join(format!(
        "fdpass-smol-listener-waiting-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (lingering, _far) = lingering_socket();
    let listener = fdpass_smol::Listener::bind(dir.join("sock")).unwrap();
    // Connected, never accepted: the connection waits in the listener's
    // queue with the lingering socket its client passed.
    let client = fdpass_core::socket::connect(dir.join("sock")).unwrap();
    pass(&client, lingering);
    let start = Instant::now();
    drop(listener);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "dropping the listener took {took:?}"
    );
    drop(client);
    std::fs::remove_dir_all(&dir).unwrap();
}
