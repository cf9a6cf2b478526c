//! Listeners that move: a listener given up and sent to another passer keeps
//! its waiting connections and serves there; a descriptor that is not the
//! expected listening socket is refused with a typed error and closed.

mod common;

use std::io::ErrorKind;
use std::os::fd::OwnedFd;

use fdpass_core::socket::{self, tcp_listener_from_fd, unix_listener_from_fd, Listener};
use fdpass_core::{Config, Event, Message, Passer};

use common::{drive, TempDir};

fn pass(fds: Vec<OwnedFd>) -> Vec<OwnedFd> {
    let (mut sender, mut receiver) = Passer::pair(Config::default()).expect("pair");
    sender
        .push_send_message(Message::from_fds(fds))
        .expect("push");
    receiver.push_recv_message().expect("ask");
    let mut received = None;
    drive(&mut [&mut sender, &mut receiver], |_, events| {
        for (_, event) in events {
            match event {
                Event::ReceivedMessage(_, m) => received = Some(m.fds),
                Event::Failed(e) => panic!("failed: {e}"),
                _ => {}
            }
        }
        received.is_some()
    });
    received.expect("received")
}

#[test]
fn a_listener_given_up_and_passed_keeps_its_waiting_connections() {
    let dir = TempDir::new("moving-listener");
    let listener = Listener::bind(dir.path().join("sock")).expect("bind");
    // Connected before the move: waits in the backlog.
    let _waiting = socket::connect(dir.path().join("sock")).expect("connect");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp bind");
    let tcp_address = tcp.local_addr().expect("address");
    let _tcp_waiting = std::net::TcpStream::connect(tcp_address).expect("tcp connect");

    let mut moved = pass(vec![listener.into_fd(), OwnedFd::from(tcp)]).into_iter();
    let listener = Listener::from_fd(moved.next().expect("unix")).expect("a listening unix socket");
    assert_eq!(
        listener.path(),
        std::path::Path::new(""),
        "the path travels out of band"
    );
    listener
        .accept()
        .expect("the waiting connection survived the move");
    let _later = socket::connect(dir.path().join("sock")).expect("connect after the move");
    listener.accept().expect("a new connection");

    let tcp = tcp_listener_from_fd(moved.next().expect("tcp")).expect("a listening tcp socket");
    assert_eq!(tcp.local_addr().expect("address"), tcp_address);
    tcp.accept()
        .expect("the waiting TCP connection survived the move");
}

#[test]
fn a_copy_handed_on_keeps_serving_when_the_original_is_given_up_and_closed() {
    let dir = TempDir::new("moving-listener-copy");
    let original = Listener::bind(dir.path().join("sock")).expect("bind");
    let copy = original.as_ref_fd_copy();
    // The original process stops: it gives its listener up and closes it.
    drop(original.into_fd());
    let successor = Listener::from_fd(copy).expect("the copy is a listener");
    let _client = socket::connect(dir.path().join("sock")).expect("still accepting connections");
    successor.accept().expect("the successor serves");
}

trait CopyFd {
    fn as_ref_fd_copy(&self) -> OwnedFd;
}

impl CopyFd for Listener {
    fn as_ref_fd_copy(&self) -> OwnedFd {
        std::os::fd::AsFd::as_fd(self)
            .try_clone_to_owned()
            .expect("dup")
    }
}

#[test]
fn a_descriptor_that_is_not_the_expected_listener_is_refused_and_closed() {
    if common::role().is_none() {
        let output = common::self_command(
            "a_descriptor_that_is_not_the_expected_listener_is_refused_and_closed",
            "child",
        )
        .output()
        .expect("run the child");
        common::results(&output);
        return;
    }
    let dir = TempDir::new("not-a-listener");
    let before = common::open_descriptors();
    let refuse_unix = |fd: OwnedFd, what: &str| {
        let err = Listener::from_fd(fd).expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
        println!("RESULT {what}: {err}");
    };
    let (pipe_end, _w) = std::io::pipe().expect("pipe");
    refuse_unix(pipe_end.into(), "a pipe");
    let (connected, _peer) = std::os::unix::net::UnixStream::pair().expect("pair");
    refuse_unix(connected.into(), "a connected unix socket");
    refuse_unix(
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("tcp")
            .into(),
        "a tcp listener",
    );
    let unbound = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        None,
    )
    .expect("socket");
    refuse_unix(unbound, "a unix socket that is not listening");
    let datagram = std::os::unix::net::UnixDatagram::bind(dir.path().join("dgram")).expect("dgram");
    refuse_unix(datagram.into(), "a unix datagram socket");

    let unix_listener =
        std::os::unix::net::UnixListener::bind(dir.path().join("sock")).expect("bind");
    let err = tcp_listener_from_fd(unix_listener.into()).expect_err("unix is not tcp");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let err = tcp_listener_from_fd(udp.into()).expect_err("udp is not tcp");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let err = unix_listener_from_fd(tcp.into()).expect_err("tcp is not unix");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    drop(_w);
    drop(_peer);
    assert_eq!(
        common::open_descriptors(),
        before,
        "refused descriptors were closed"
    );
}

#[test]
fn dropping_a_listener_shuts_it_down_for_every_process_holding_it() {
    // Why `into_fd` exists: the documented drop releases the socket for all.
    let dir = TempDir::new("dropped-listener");
    let original = Listener::bind(dir.path().join("sock")).expect("bind");
    let copy = Listener::from_fd(original.as_ref_fd_copy()).expect("copy");
    drop(original);
    assert!(
        socket::connect(dir.path().join("sock")).is_err() || copy.accept().is_err(),
        "a dropped listener is shut down, copies included"
    );
}
