//! systemd's activation contract, simulated: a child started with its
//! listeners at descriptors 3 and 4 and `LISTEN_PID`, `LISTEN_FDS`,
//! `LISTEN_FDNAMES` set the way `sd_listen_fds(3)` describes takes them as a
//! named set; variables meant for another pid are ignored; the set can be
//! stored in the file-descriptor store through `NOTIFY_SOCKET`.
#![cfg(feature = "systemd")]

mod common;

use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::io::FdFlags;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use common::{results, role, TempDir, ROLE_VAR};

const TEST: &str = "socket_activation_hands_the_listeners_over_as_a_named_set";

/// Runs this test binary as a socket-activated child: `fds` at 3 and up,
/// `LISTEN_PID` set to the child's own pid by the shell that execs it
/// (`$$` survives `exec`), unless `listen_pid` overrides it.
fn activate(
    fds: &[&OwnedFd],
    names: &str,
    listen_pid: Option<&str>,
    role: &str,
    extra: &[(&str, &Path)],
) -> Vec<String> {
    // Numbers above 3 + fds.len(), inheritable, so the shell can move them
    // to 3, 4, ...; single digits, the most a POSIX shell's redirection
    // takes.
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|fd| {
            let copy = rustix::io::fcntl_dupfd_cloexec(fd, 5).expect("dup");
            use std::os::fd::AsRawFd;
            assert!(
                copy.as_raw_fd() <= 9,
                "the test process has few descriptors open"
            );
            rustix::io::fcntl_setfd(&copy, FdFlags::empty()).expect("inheritable");
            copy
        })
        .collect();
    let mut moves = String::new();
    for (i, fd) in high.iter().enumerate() {
        use std::os::fd::AsRawFd;
        moves.push_str(&format!(
            " {}<&{} {}<&-",
            3 + i,
            fd.as_raw_fd(),
            fd.as_raw_fd()
        ));
    }
    let pid = listen_pid.map_or_else(|| "$$".to_owned(), str::to_owned);
    let script = format!(
        "exec{moves}; LISTEN_PID={pid} LISTEN_FDS={} LISTEN_FDNAMES={names} exec \"$0\" \"$@\"",
        fds.len()
    );
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in extra {
        command.env(key, value);
    }
    let output = command.output().expect("run the activated child");
    drop(high);
    results(&output)
}

#[test]
fn socket_activation_hands_the_listeners_over_as_a_named_set() {
    match role().as_deref() {
        None => {}
        Some("activated") => return activated_child(),
        Some("not-for-me") => return not_for_me_child(),
        Some("same-names") => return same_names_child(),
        Some("store") => return store_child(),
        Some(other) => panic!("unknown role {other}"),
    }
    let dir = TempDir::new("systemd");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let tcp_address = tcp.local_addr().expect("address");
    let unix = std::os::unix::net::UnixListener::bind(dir.path().join("admin")).expect("unix");
    // Connections made before the child starts wait in the backlogs.
    let mut tcp_client = std::net::TcpStream::connect(tcp_address).expect("connect tcp");
    let mut unix_client =
        std::os::unix::net::UnixStream::connect(dir.path().join("admin")).expect("connect unix");
    let (tcp, unix) = (OwnedFd::from(tcp), OwnedFd::from(unix));

    let lines = activate(&[&tcp, &unix], "http:admin", None, "activated", &[]);
    assert!(lines.contains(&format!("http {tcp_address}")), "{lines:?}");
    assert!(lines.contains(&"admin accepted".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&"second take refused".to_owned()),
        "{lines:?}"
    );
    let mut answer = String::new();
    tcp_client.read_to_string(&mut answer).expect("read tcp");
    assert_eq!(answer, "served by the activated child");
    unix_client.read_to_string(&mut answer).expect("read unix");

    let lines = activate(&[&tcp], "http", Some("1"), "not-for-me", &[]);
    assert_eq!(lines, ["empty set, descriptor 3 left open"]);

    let lines = activate(&[&tcp, &unix], "web:web", None, "same-names", &[]);
    assert_eq!(lines, ["names web web#2"]);

    // The file-descriptor store: the child notifies a datagram socket we hold.
    let notify =
        std::os::unix::net::UnixDatagram::bind(dir.path().join("notify")).expect("notify socket");
    let lines = activate(
        &[&tcp, &unix],
        "http:admin",
        None,
        "store",
        &[("NOTIFY_SOCKET", &dir.path().join("notify"))],
    );
    assert_eq!(lines, ["stored"]);
    let mut stored = Vec::new();
    for _ in 0..2 {
        let mut bytes = [0u8; 256];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            notify.as_fd(),
            &mut [IoSliceMut::new(&mut bytes)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        )
        .expect("a notification waits");
        let text = String::from_utf8_lossy(&bytes[..received.bytes]).into_owned();
        let fds: Vec<OwnedFd> = control
            .drain()
            .flat_map(|message| match message {
                RecvAncillaryMessage::ScmRights(fds) => fds.collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(fds.len(), 1, "one descriptor per notification: {text}");
        stored.push((text, fds));
    }
    let texts: Vec<&str> = stored.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["FDSTORE=1\nFDNAME=admin\n", "FDSTORE=1\nFDNAME=http\n"]
    );
    let http = fdpass_core::socket::tcp_listener_from_fd(stored.pop().expect("http").1.remove(0))
        .expect("the stored listener");
    assert_eq!(http.local_addr().expect("address"), tcp_address);
}

fn activated_child() {
    let mut fds = fdpass_core::systemd::listen_fds().expect("activation variables");
    assert_eq!(fds.names().collect::<Vec<_>>(), ["admin", "http"]);
    assert_eq!(fds.meta("http"), Some(&b"0"[..]));
    let http = fdpass_core::socket::tcp_listener_from_fd(fds.take("http").expect("http"))
        .expect("a tcp listener");
    println!("RESULT http {}", http.local_addr().expect("address"));
    let (mut conn, _) = http.accept().expect("the waiting connection");
    conn.write_all(b"served by the activated child")
        .expect("answer");
    let admin = fdpass_core::socket::Listener::from_fd(fds.take("admin").expect("admin"))
        .expect("a unix listener");
    admin.accept().expect("the waiting unix connection");
    println!("RESULT admin accepted");
    let again = fdpass_core::systemd::listen_fds().expect_err("taken once");
    assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    println!("RESULT second take refused");
    // Give the admin listener up rather than drop it: dropping shuts it down
    // for the parent as well, which still holds it.
    drop(admin.into_fd());
}

fn not_for_me_child() {
    let fds = fdpass_core::systemd::listen_fds().expect("variables for another pid are ignored");
    assert!(fds.is_empty());
    let three = unsafe_free_is_open(3);
    assert!(three, "descriptor 3 is left alone");
    println!("RESULT empty set, descriptor 3 left open");
}

fn same_names_child() {
    let fds = fdpass_core::systemd::listen_fds().expect("activation variables");
    println!("RESULT names {}", fds.names().collect::<Vec<_>>().join(" "));
    // Both are sockets the parent still serves on: hand them back unharmed.
    for (_, fd, _) in fds {
        drop(fd);
    }
}

fn store_child() {
    let fds = fdpass_core::systemd::listen_fds().expect("activation variables");
    assert!(fdpass_core::systemd::store_fds(&fds).expect("notify"));
    println!("RESULT stored");
}

/// Whether `number` is open, by asking `/proc` rather than owning it.
fn unsafe_free_is_open(number: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{number}")).is_ok()
}
