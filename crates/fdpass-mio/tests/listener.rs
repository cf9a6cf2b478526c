//! The mio listener under a peer check: a refusal is never an error of the
//! listener, so an edge-triggered accept loop written with `?` keeps serving.

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdpass_mio::{Error, Listener, Passer};
use mio::{Events, Interest, Poll, Token};

/// A fresh directory for one test's socket.
fn socket_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fdpass-mio-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// The accept loop every mio server writes: drain until `None`, stop at the
/// first error.
fn drain(listener: &Listener, accepted: &mut Vec<Passer>) -> Result<(), Error> {
    while let Some(passer) = listener.accept()? {
        accepted.push(passer);
    }
    Ok(())
}

/// Whether the server closed `client`'s connection (it reads end-of-stream)
/// or keeps it open (nothing more to read yet). An admitted connection's
/// passer has written its hello (native wire): that is read past, and only
/// that.
fn closed_by_server(client: &UnixStream) -> bool {
    client.set_nonblocking(true).expect("non-blocking");
    let mut received = Vec::new();
    let mut buffer = [0u8; 64];
    loop {
        match (&*client).read(&mut buffer) {
            Ok(0) => return true,
            Ok(n) => {
                received.extend_from_slice(&buffer[..n]);
                assert!(
                    received.len() <= fdpass_core::frame::HELLO_LEN,
                    "the server sent more than its hello: {received:?}"
                );
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            other => panic!("unexpected read on a client: {other:?}"),
        }
    }
}

#[test]
fn a_refused_peer_never_stops_an_edge_triggered_accept_loop() {
    let dir = socket_dir("refusals");
    let mut listener = Listener::bind(dir.join("sock")).expect("bind");
    // Refuse every other peer, starting with the first.
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&asked);
    listener.set_peer_check(move |_peer| seen.fetch_add(1, Ordering::SeqCst) % 2 == 1);
    let mut poll = Poll::new().expect("poll");
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)
        .expect("register");

    // Four connections wait before the loop runs: one edge for all of them.
    let clients: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::from(fdpass_core::socket::connect(dir.join("sock")).expect("connect")))
        .collect();

    let mut events = Events::with_capacity(8);
    let mut accepted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the accept loop stalled with {} accepted",
            accepted.len()
        );
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .expect("poll");
        if let Err(e) = drain(&listener, &mut accepted) {
            panic!("a refused peer surfaced as a listener error: {e}");
        }
    }
    assert_eq!(accepted.len(), 2);
    assert_eq!(asked.load(Ordering::SeqCst), 4, "the check saw every peer");
    let closed: Vec<bool> = clients.iter().map(closed_by_server).collect();
    assert_eq!(
        closed,
        [true, false, true, false],
        "refused peers are closed, admitted ones kept"
    );
    assert!(listener.accept().expect("nothing waits").is_none());
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn every_constructor_and_helper_takes_a_config() {
    let config = fdpass_mio::Config::default()
        .with_max_fds_per_message(3)
        // Explicit, so the passers report it back as given (`Auto` resolves).
        .with_reservation(fdpass_mio::Reservation::Sentinel);
    let dir = socket_dir("configs");
    let listener = Listener::bind_with_config(dir.join("sock"), config).expect("bind");
    let client = Passer::connect_with_config(dir.join("sock"), config).expect("connect");
    let server = listener.accept().expect("accept").expect("waits");
    assert_eq!(*client.config(), config);
    assert_eq!(*server.config(), config);
    let (a, b) = UnixStream::pair().expect("pair");
    assert_eq!(
        *Passer::from_std_with_config(a, config).unwrap().config(),
        config
    );
    let b = mio::net::UnixStream::from_std(b);
    assert_eq!(
        *Passer::from_mio_with_config(b, config).unwrap().config(),
        config
    );
    let (left, _right) = Passer::pair_with_config(config).unwrap();
    assert_eq!(*left.config(), config);
    let mut command = std::process::Command::new("true");
    let (passer, mut child) = Passer::spawn_child_with_config(&mut command, config).unwrap();
    assert_eq!(*passer.config(), config);
    assert!(child.wait().unwrap().success());
    // A config every constructor refuses, before it costs anything.
    let bad = fdpass_mio::Config::default().with_max_fds_per_message(0);
    let mut command = std::process::Command::new("true");
    assert!(matches!(
        Passer::spawn_child_with_config(&mut command, bad),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Passer::connect_with_config(dir.join("sock"), bad),
        Err(Error::InvalidConfig(_))
    ));
    assert!(
        listener.accept().expect("accept").is_none(),
        "a refused config cost a connection"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_server_reads_an_accepted_clients_credentials() {
    let dir = socket_dir("credentials");
    let listener = Listener::bind(dir.join("sock")).expect("bind");
    let _client = Passer::connect(dir.join("sock")).expect("connect");
    let server = listener.accept().expect("accept").expect("waits");
    let peer = fdpass_core::socket::peer_credentials(&server).expect("credentials");
    assert_eq!(peer.pid.map(|pid| pid as u32), Some(std::process::id()));
    assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
    assert_eq!(server.peer_credentials().expect("credentials"), peer);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A listener at `path` whose backlog is full: `listen(0)` and one client
/// that is never accepted. Returned to keep both alive.
fn listener_with_a_full_backlog(
    path: &std::path::Path,
) -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    // No flags: `SOCK_CLOEXEC` does not exist everywhere this builds.
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&listener, &SocketAddrUnix::new(path).unwrap()).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let waiting = fdpass_core::socket::connect(path).expect("the first client fits");
    (listener, waiting)
}

#[test]
fn connecting_to_a_listener_with_a_full_backlog_never_blocks() {
    let dir = socket_dir("full-backlog");
    let path = dir.join("sock");
    let _full = listener_with_a_full_backlog(&path);
    // In a thread, so that a connect that waits fails the bound below
    // instead of hanging the test (it returns once the listener goes).
    let (tx, rx) = std::sync::mpsc::channel();
    let connecting = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Passer::connect(&connecting).map(drop));
    });
    let connected = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("connect blocked on the listener's full backlog");
    match connected {
        Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_passer_sends_and_receives_messages_under_the_shared_names() {
    use fdpass_mio::{Message, PeerLimits, PushError, RecvToken, SendToken, Wire};
    // The message calls every adapter offers (fdpass-tokio's and
    // fdpass-smol's under the same names, as futures where they wait), with
    // the core's types re-exported.
    let _: fn(&mut Passer, Message) -> Result<SendToken, PushError<Message>> =
        Passer::push_send_message;
    let _: fn(&mut Passer) -> Result<RecvToken, Error> = Passer::push_recv_message;
    let _: fn(&mut Passer) -> Option<(RecvToken, Message)> = Passer::try_recv_message;
    let _: fn(&Passer) -> Option<PeerLimits> = Passer::peer_limits;
    let _: fn(&mut Passer) -> Vec<Message> = Passer::take_unsent_messages;
    let _: fdpass_core::Message = Message::default();
    let _: Option<fdpass_core::PeerLimits> = None::<PeerLimits>;
    assert_eq!(Wire::CLASSIC, fdpass_core::Wire::Classic { batch: 1 });
    assert_eq!(fdpass_mio::Config::default().wire, Wire::Native);

    // The wire is a setting like any other: a classic pair has no hello,
    // so no limits to report, and refuses payload at the push.
    let classic = fdpass_mio::Config::default().with_wire(Wire::CLASSIC);
    let (mut a, _b) = Passer::pair_with_config(classic).unwrap();
    assert_eq!(a.config().wire, Wire::CLASSIC);
    assert_eq!(a.peer_limits(), None);
    match a.push_send_message(Message::from_payload(b"bytes".to_vec())) {
        Err(PushError::Refused(Error::MessageTooLarge { max_payload: 0, .. }, message)) => {
            assert_eq!(message.payload, b"bytes")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (native, _d) = Passer::pair().unwrap();
    assert_eq!(native.peer_limits().map(|limits| limits.version), Some(1));
}
