//! Who may connect to a listener: the socket file's mode, and the peer check.
//!
//! The refused peer is a real second user: the test binary re-executed as
//! `nobody` (uid and gid 65534). Switching users needs root; the tests say so
//! and stop when run without it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fdpass_core::socket::Listener;

const ROLE: &str = "FDPASS_ACCESS_ROLE";
const PATH: &str = "FDPASS_ACCESS_PATH";
const NOBODY: u32 = 65534;

/// Exit codes of the unprivileged child.
const CONNECT_REFUSED_BY_MODE: i32 = 3;
const CLOSED_BY_SERVER: i32 = 4;
const SERVED: i32 = 5;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A directory anyone may enter, so that only the socket's own mode decides.
fn open_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdpass-access-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs this test binary's `unprivileged_client` as `nobody` against `path`.
fn spawn_as_nobody(path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unprivileged_client",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "client")
        .env(PATH, path)
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap()
}

fn wait_bounded(child: &mut std::process::Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("the client was killed by a signal");
        }
        assert!(Instant::now() < deadline, "the unprivileged client hung");
        std::thread::yield_now();
    }
}

/// Accepts until `child` exits, returning its code and what accept said.
fn serve_until_exit(
    listener: &Listener,
    child: &mut std::process::Child,
) -> (i32, Vec<std::io::ErrorKind>) {
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match listener.accept() {
            Ok(_served) => outcomes.push(std::io::ErrorKind::Other),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => outcomes.push(e.kind()),
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (
                status.code().expect("the client was killed by a signal"),
                outcomes,
            );
        }
        assert!(Instant::now() < deadline, "the unprivileged client hung");
        std::thread::yield_now();
    }
}

/// The child side: connect, then read until the server closes or answers.
#[test]
fn unprivileged_client() {
    if std::env::var(ROLE).as_deref() != Ok("client") {
        return; // Only meaningful when spawned by the tests below.
    }
    let path = std::env::var(PATH).unwrap();
    let code = match fdpass_core::socket::connect(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => CONNECT_REFUSED_BY_MODE,
        Err(e) => panic!("connect failed unexpectedly: {e}"),
        Ok(socket) => {
            let mut stream = std::os::unix::net::UnixStream::from(socket);
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                Ok(0) => CLOSED_BY_SERVER,
                Ok(_) => SERVED,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => CLOSED_BY_SERVER,
                Err(e) => panic!("read failed unexpectedly: {e}"),
            }
        }
    };
    std::process::exit(code);
}

#[test]
fn socket_file_is_0600_so_another_user_cannot_connect() {
    if !is_root() {
        eprintln!("this test switches to uid {NOBODY} and needs root; not run");
        return;
    }
    let dir = open_dir("mode");
    let listener = Listener::bind(dir.join("sock")).unwrap();
    let mode = std::fs::metadata(listener.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let mut child = spawn_as_nobody(listener.path());
    assert_eq!(wait_bounded(&mut child), CONNECT_REFUSED_BY_MODE);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn peer_check_refuses_another_user() {
    if !is_root() {
        eprintln!("this test switches to uid {NOBODY} and needs root; not run");
        return;
    }
    let dir = open_dir("check");
    // World-connectable, so that only the peer check stands in the way.
    let mut listener = Listener::bind_with_mode(dir.join("sock"), 0o666).unwrap();
    let refused = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&refused);
    listener.set_peer_check(move |peer| {
        if peer.uid != 0 {
            seen.lock().unwrap().push(peer.uid);
        }
        peer.uid == 0
    });
    let mut child = spawn_as_nobody(listener.path());
    let (code, outcomes) = serve_until_exit(&listener, &mut child);
    assert_eq!(code, CLOSED_BY_SERVER, "the refused client was not cut off");
    // Refused and skipped: neither served nor reported as a listener error;
    // the check saw who it was.
    assert_eq!(outcomes, vec![]);
    assert_eq!(*refused.lock().unwrap(), vec![NOBODY]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn peer_check_admits_the_same_user() {
    let dir = open_dir("admit");
    let mut listener = Listener::bind(dir.join("sock")).unwrap();
    let me = rustix::process::geteuid().as_raw();
    // macOS and FreeBSD report no process id (see `PeerCredentials::pid`).
    let pid = if cfg!(any(target_vendor = "apple", target_os = "freebsd")) {
        None
    } else {
        Some(std::process::id() as i32)
    };
    listener.set_peer_check(move |peer| peer.uid == me && peer.pid == pid);
    let _client = fdpass_core::socket::connect(listener.path()).unwrap();
    listener.accept().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
