//! The surface every adapter shares: the listener's peer check, the
//! connection's credentials, and a `Config` on every constructor and helper.

use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fdpass_smol::{Config, Error, Listener, Passer};

fn socket_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fdpass-smol-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Whether the server closed `client`'s connection (end-of-stream) or keeps
/// it open (nothing to read yet, or the first byte of the native hello its
/// passer sends at once: `H`).
fn closed_by_server(client: &UnixStream) -> bool {
    client.set_nonblocking(true).expect("non-blocking");
    let mut byte = [0u8];
    match (&*client).read(&mut byte) {
        Ok(0) => true,
        Ok(1) if byte[0] == b'H' => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        other => panic!("unexpected read on a client: {other:?}"),
    }
}

/// Bounds every test: a stalled accept fails instead of hanging.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    smol::future::or(future, async {
        smol::Timer::after(Duration::from_secs(20)).await;
        panic!("did not finish within 20 s");
    })
    .await
}

#[test]
fn a_refused_peer_is_skipped_and_never_an_accept_error() {
    smol::block_on(async {
        let dir = socket_dir("refusals");
        let mut listener = Listener::bind(dir.join("sock")).expect("bind");
        let asked = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&asked);
        // Refuse every other peer, starting with the first.
        listener.set_peer_check(move |_peer| seen.fetch_add(1, Ordering::SeqCst) % 2 == 1);
        let clients: Vec<UnixStream> = (0..4)
            .map(|_| {
                UnixStream::from(fdpass_core::socket::connect(dir.join("sock")).expect("connect"))
            })
            .collect();
        let mut accepted = Vec::new();
        for _ in 0..2 {
            match within(listener.accept()).await {
                Ok(passer) => accepted.push(passer),
                Err(e) => panic!("a refused peer surfaced as an accept error: {e}"),
            }
        }
        assert_eq!(asked.load(Ordering::SeqCst), 4, "the check saw every peer");
        let closed: Vec<bool> = clients.iter().map(closed_by_server).collect();
        assert_eq!(
            closed,
            [true, false, true, false],
            "refused peers are closed, admitted ones kept"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
}

#[test]
fn a_server_reads_an_accepted_clients_credentials() {
    smol::block_on(async {
        let dir = socket_dir("credentials");
        let listener = Listener::bind(dir.join("sock")).expect("bind");
        let (_client, server) = within(async {
            futures_util::try_join!(Passer::connect(dir.join("sock")), listener.accept())
        })
        .await
        .expect("connect and accept");
        let peer = fdpass_core::socket::peer_credentials(server.as_fd()).expect("credentials");
        assert_eq!(peer.pid.map(|pid| pid as u32), Some(std::process::id()));
        assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
        assert_eq!(server.peer_credentials().expect("credentials"), peer);
        // Every clone lends the same socket.
        use std::os::fd::AsRawFd;
        assert_eq!(server.clone().as_raw_fd(), server.as_raw_fd());
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
}

#[test]
fn every_constructor_and_helper_takes_a_config() {
    smol::block_on(async {
        let config = Config::default()
            .with_max_fds_per_message(3)
            // Explicit, so the passers report it back as given (`Auto` resolves).
            .with_reservation(fdpass_smol::Reservation::Sentinel);
        let dir = socket_dir("configs");
        let listener = Listener::bind_with_config(dir.join("sock"), config).expect("bind");
        let (client, server) = within(async {
            futures_util::try_join!(
                Passer::connect_with_config(dir.join("sock"), config),
                listener.accept()
            )
        })
        .await
        .expect("connect and accept");
        assert_eq!(client.config(), config);
        assert_eq!(server.config(), config);
        let (a, b) = UnixStream::pair().expect("pair");
        assert_eq!(
            Passer::from_std_with_config(a, config).unwrap().config(),
            config
        );
        let b = async_io::Async::new(b).unwrap();
        assert_eq!(
            Passer::from_async_with_config(b, config).unwrap().config(),
            config
        );
        let (left, _right) = Passer::pair_with_config(config).unwrap();
        assert_eq!(left.config(), config);

        let mut command = std::process::Command::new("true");
        let (passer, mut child) = Passer::spawn_child_with_config(&mut command, config).unwrap();
        assert_eq!(passer.config(), config);
        assert!(child.wait().unwrap().success());

        // A config every constructor refuses, before it costs a child process or
        // a connection.
        let bad = Config::default().with_max_fds_per_message(0);
        let mut command = std::process::Command::new("true");
        assert!(matches!(
            Passer::spawn_child_with_config(&mut command, bad),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            Passer::connect_with_config(dir.join("sock"), bad).await,
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            Listener::bind_with_config(dir.join("other"), bad),
            Err(Error::InvalidConfig(_))
        ));
        std::fs::remove_dir_all(&dir).expect("clean up");
    })
}

#[test]
fn connecting_to_a_listener_with_a_full_backlog_says_so() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
    let dir = socket_dir("full-backlog");
    let path = dir.join("sock");
    // `listen(0)` and one client never accepted: the backlog is full. No
    // flags: `SOCK_CLOEXEC` does not exist everywhere this builds.
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let _waiting = fdpass_core::socket::connect(&path).expect("the first client fits");
    let connected = smol::block_on(within(Passer::connect(&path)));
    match connected {
        // Not `NotConnected` with advice to check that a listener runs.
        Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}"),
        other => panic!("expected WouldBlock, got {:?}", other.map(drop)),
    }
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_message_surface_is_the_same_on_every_async_adapter() {
    use fdpass_smol::{Message, Messages, PeerLimits, PushError, RecvMessage, SendMessage, Wire};
    use futures_util::sink::Sink;
    use futures_util::stream::Stream;
    use std::future::IntoFuture;

    // The signatures every async adapter shares, checked by the compiler.
    let _: fn(&Passer, Message) -> SendMessage<'_> = Passer::send_message;
    let _: fn(&Passer, Message) -> Result<(), PushError<Message>> = Passer::push_send_message;
    let _: fn(&Passer) -> RecvMessage<'_> = Passer::recv_message;
    let _: fn(&Passer) -> Option<PeerLimits> = Passer::peer_limits;
    let _: fn(&Passer) -> Vec<Message> = Passer::take_unsent_messages;
    let _: fn(&Passer) -> Messages = Passer::messages;
    fn resolves_to<F: IntoFuture<Output = T>, T>() {}
    resolves_to::<SendMessage<'static>, Result<(), Error>>();
    resolves_to::<RecvMessage<'static>, Result<Option<Message>, Error>>();
    fn stream_and_sink<T>()
    where
        T: Stream<Item = Result<Message, Error>>
            + Sink<Message, Error = Error>
            + Clone
            + Send
            + Sync
            + Unpin
            + std::fmt::Debug,
    {
    }
    stream_and_sink::<Messages>();
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<SendMessage<'static>>();
    send_and_sync::<RecvMessage<'static>>();
    // The native wire is the default; the classic one is a setting.
    assert_eq!(Config::default().wire, Wire::Native);
    let classic = Config::default().with_wire(Wire::CLASSIC);
    assert_eq!(classic.wire, Wire::Classic { batch: 1 });
}
