//! `Listener::bind` under a hostile local user: it behaves like `bind(2)`
//! (std's `UnixListener::bind`) plus the safe replacement of a stale socket
//! file, never blocks, never follows a link, changes no file but its own
//! socket, and never makes the socket more open than asked.
//!
//! The hostile user is `nobody` (uid and gid 65534): it owns the directory
//! the listener is bound in, or it binds itself in a child process that
//! switched to it. Switching users needs root; the tests that need it say so
//! and stop when run without it.
// Linux and Android only: it checks the Linux binding steps (`/proc/self/fd`, the socket inode's mode at bind time) and plants FIFOs with `mknodat`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{results, role, self_command, TempDir};
use fdpass_core::socket::{connect, Listener};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

const NOBODY: u32 = 65534;
const PATH_VAR: &str = "FDPASS_BIND_PATH";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("this test acts as uid {NOBODY} and needs root; not run");
            return;
        }
    };
}

/// A scratch directory others may enter, so that only the modes and owners
/// set by each test decide who can do what inside it.
fn scratch(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A directory owned by `nobody` inside `scratch`: its owner can create,
/// rename and remove any entry in it.
fn hostile_dir(scratch: &TempDir) -> PathBuf {
    let dir = scratch.path().join("hostile");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_nobody(&dir);
    dir
}

/// Gives `path` itself (a link is not followed) to `nobody`.
fn chown_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// What a directory holds, entry by entry: enough to see any change made to
/// an entry or a new or missing one.
type Snapshot = BTreeMap<String, String>;

fn snapshot(dir: &Path) -> Snapshot {
    let mut entries = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let target = std::fs::read_link(entry.path())
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        entries.insert(
            entry.file_name().to_string_lossy().into_owned(),
            format!(
                "ino={} mode={:o} uid={} gid={} size={} links={} target={target}",
                meta.ino(),
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size(),
                meta.nlink()
            ),
        );
    }
    entries
}

/// A socket bound at `path` and listening with `backlog`, as another
/// program's listener would be.
fn foreign_listener(path: &Path, backlog: i32) -> OwnedFd {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .unwrap();
    rustix::net::bind(&socket, &SocketAddrUnix::new(path).unwrap()).unwrap();
    rustix::net::listen(&socket, backlog).unwrap();
    socket
}

/// A non-blocking connect to `path`.
fn try_connect(path: &Path) -> Result<OwnedFd, Errno> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::connect(&socket, &SocketAddrUnix::new(path)?)?;
    Ok(socket)
}

/// A live listener whose backlog is full: `listen(0)` and one connection
/// waiting, so that the next connect would wait (or say `EAGAIN`). The
/// pending client is returned too, to keep the backlog full.
fn full_backlog_listener(path: &Path) -> (OwnedFd, OwnedFd) {
    let listener = foreign_listener(path, 0);
    let pending = try_connect(path).unwrap();
    assert_eq!(
        try_connect(path).err(),
        Some(Errno::AGAIN),
        "the backlog should be full"
    );
    (listener, pending)
}

/// A socket file at `path` with nothing listening on it, as a listener
/// that died leaves. Made with mknod(2): a socket bound and closed here could
/// live on for a moment in a child another test is forking.
fn stale_socket(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Socket,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// `Listener::bind_with_mode` in another thread, failing the test if it does
/// not return within `bound` (the thread is left behind if it hangs).
fn bind_within(path: &Path, mode: u32, bound: Duration) -> std::io::Result<Listener> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = Listener::bind_with_mode(&path, mode);
        let _ = tx.send((result, started.elapsed()));
    });
    let (result, took) = rx
        .recv_timeout(bound)
        .unwrap_or_else(|_| panic!("bind did not return within {bound:?}: it blocks"));
    eprintln!("bind returned after {took:?}");
    result
}

/// Asserts that the listener answers at its path: a client connecting there
/// reaches this very socket.
fn assert_reachable(listener: &Listener) {
    let _client = connect(listener.path()).unwrap();
    listener
        .accept()
        .expect("the client reached another socket than the listener");
}

/// Every kind of entry a hostile directory owner can plant at the service
/// path before root binds there with mode 0666: each makes `bind` fail with
/// `AddrInUse` (as `bind(2)` does), promptly, and leaves every entry in the
/// directory, and every file the links point to, exactly as it was.
#[test]
fn planted_entries_are_refused_as_in_use_and_left_unchanged() {
    needs_root!();
    let scratch = scratch("planted");
    let dir = hostile_dir(&scratch);
    // Root's files the links point to; their mode and contents must stay.
    let secret = scratch.path().join("secret");
    std::fs::write(&secret, b"root only").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root_dir = scratch.path().join("root-dir");
    std::fs::create_dir(&root_dir).unwrap();
    let dead_elsewhere = scratch.path().join("dead-elsewhere");
    stale_socket(&dead_elsewhere);

    type Plant = fn(&Path, &Path) -> Option<OwnedFd>;
    let plants: [(&str, Plant); 8] = [
        ("symlink to a root-owned file", |at, scratch| {
            std::os::unix::fs::symlink(scratch.join("secret"), at).unwrap();
            None
        }),
        ("dangling symlink", |at, scratch| {
            std::os::unix::fs::symlink(scratch.join("created-through-the-link"), at).unwrap();
            None
        }),
        ("symlink to a root-owned directory", |at, scratch| {
            std::os::unix::fs::symlink(scratch.join("root-dir"), at).unwrap();
            None
        }),
        ("symlink to a stale socket elsewhere", |at, scratch| {
            std::os::unix::fs::symlink(scratch.join("dead-elsewhere"), at).unwrap();
            None
        }),
        ("fifo", |at, _| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                at,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o666),
                0,
            )
            .unwrap();
            None
        }),
        ("regular file", |at, _| {
            std::fs::write(at, b"data").unwrap();
            None
        }),
        ("directory", |at, _| {
            std::fs::create_dir(at).unwrap();
            None
        }),
        ("live datagram socket", |at, _| {
            let socket = rustix::net::socket(AddressFamily::UNIX, SocketType::DGRAM, None).unwrap();
            rustix::net::bind(&socket, &SocketAddrUnix::new(at).unwrap()).unwrap();
            Some(socket)
        }),
    ];
    let secret_before = (
        std::fs::metadata(&secret).unwrap().mode(),
        std::fs::read(&secret).unwrap(),
    );
    for (what, plant) in plants {
        let at = dir.join(format!("service-{}", what.replace(' ', "-")));
        let _held = plant(&at, scratch.path());
        chown_nobody(&at);
        let before = snapshot(&dir);
        let outside_before = snapshot(scratch.path());
        let err = bind_within(&at, 0o666, Duration::from_secs(2))
            .map(|_| ())
            .expect_err(what);
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{what}: {err}");
        assert_eq!(snapshot(&dir), before, "{what}: the directory changed");
        assert_eq!(
            snapshot(scratch.path()),
            outside_before,
            "{what}: something outside the directory changed"
        );
        assert_eq!(
            (
                std::fs::metadata(&secret).unwrap().mode(),
                std::fs::read(&secret).unwrap()
            ),
            secret_before,
            "{what}: the root-owned file changed"
        );
        assert!(
            std::fs::read_dir(&root_dir).unwrap().next().is_none(),
            "{what}: something was created in the linked directory"
        );
    }
}

/// A live listener (another user's) at the path is in use, also when its
/// backlog is full: the probe never waits for room, and the listener stays
/// where it was, reachable.
#[test]
fn a_live_listener_with_a_full_backlog_is_in_use_and_bind_returns_promptly() {
    let scratch = scratch("full-backlog");
    let path = scratch.path().join("sock");
    let (live, pending) = full_backlog_listener(&path);
    if is_root() {
        chown_nobody(&path);
    }
    let before = snapshot(scratch.path());
    let err = bind_within(&path, 0o600, Duration::from_secs(2))
        .map(|_| ())
        .expect_err("bound over a live listener");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert_eq!(snapshot(scratch.path()), before);
    // The live listener still owns the path: once it takes the waiting
    // connection, a new one reaches it.
    rustix::net::accept(&live).unwrap();
    drop(pending);
    let _client = try_connect(&path).unwrap();
    rustix::net::accept(&live).expect("the live listener lost its path");
}

/// The same with room in the backlog: in use, and the listener keeps its
/// path.
#[test]
fn a_live_listener_is_in_use_and_keeps_its_path() {
    let scratch = scratch("live");
    let path = scratch.path().join("sock");
    let live = foreign_listener(&path, 16);
    let err = Listener::bind(&path)
        .map(|_| ())
        .expect_err("bound over a live listener");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    // bind's own probe connected once; the next connection reaches it too.
    while rustix::net::accept(&live).is_ok() {}
    let _client = try_connect(&path).unwrap();
    rustix::net::accept(&live).expect("the live listener lost its path");
}

/// A stale socket file another user left in a directory it owns is
/// replaced for root, and the path then leads to the new listener, with the
/// asked mode and owner.
#[test]
fn a_stale_socket_of_another_user_is_replaced_by_the_new_listener() {
    needs_root!();
    let scratch = scratch("stale-other");
    let dir = hostile_dir(&scratch);
    let path = dir.join("sock");
    stale_socket(&path);
    chown_nobody(&path);
    let listener = bind_within(&path, 0o666, Duration::from_secs(2)).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o666);
    assert_eq!(meta.uid(), 0);
    assert_reachable(&listener);
    // Only the socket is left in the directory: no staging leftovers.
    assert_eq!(snapshot(&dir).keys().collect::<Vec<_>>(), ["sock"]);
}

/// A stale socket is replaced for its own user too, in a sticky directory
/// such as /tmp.
#[test]
fn a_stale_socket_in_a_sticky_directory_is_replaced_for_its_owner() {
    let scratch = scratch("stale-sticky");
    let dir = scratch.path().join("sticky");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = dir.join("sock");
    stale_socket(&path);
    let listener = Listener::bind(&path).unwrap();
    assert_reachable(&listener);
    assert_eq!(snapshot(&dir).keys().collect::<Vec<_>>(), ["sock"]);
}

/// In a sticky directory, another user's stale socket is not ours to
/// remove: `nobody` binding there gets `AddrInUse` (as from `bind(2)`),
/// whatever the stale socket's mode, and the file stays as it was.
#[test]
fn another_users_stale_socket_in_a_sticky_directory_is_in_use_for_nobody() {
    needs_root!();
    let scratch = scratch("sticky-other");
    let dir = scratch.path().join("sticky");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    for mode in [0o600, 0o666] {
        let path = dir.join(format!("sock-{mode:o}"));
        stale_socket(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = snapshot(&dir);
        let output = self_command("nobody_binds", "bind")
            .env(PATH_VAR, &path)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        assert_eq!(
            results(&output),
            [format!("kind={:?}", ErrorKind::AddrInUse)],
            "stale socket of mode {mode:o}"
        );
        assert_eq!(snapshot(&dir), before, "stale socket of mode {mode:o}");
    }
}

/// The child side of the test above: binds at the path it is given and
/// reports the outcome.
#[test]
fn nobody_binds() {
    if role().as_deref() != Some("bind") {
        return; // Only meaningful when started by the test above.
    }
    let path = std::env::var_os(PATH_VAR).unwrap();
    match Listener::bind(&path) {
        Ok(_) => println!("RESULT kind=Ok"),
        Err(e) => {
            eprintln!("bind said: {e}");
            println!("RESULT kind={:?}", e.kind());
        }
    }
}

/// Paths that name no new entry, or that `bind(2)` cannot take, fail with
/// the same kind of error as std's `UnixListener::bind`, and create nothing.
#[test]
fn odd_paths_fail_like_std() {
    let scratch = scratch("odd");
    let dir = scratch.path();
    std::fs::create_dir(dir.join("subdir")).unwrap();
    std::fs::write(dir.join("file"), b"").unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
    let long = "x".repeat(108);
    let cases: Vec<PathBuf> = vec![
        dir.join("subdir/."),
        dir.join("subdir/.."),
        dir.join("missing/"),
        dir.join("subdir/"),
        dir.join("missing/sock"),
        dir.join("file/sock"),
        dir.join("file"),
        dir.join("subdir"),
        dir.join("dangling"),
        dir.join(&long),
        PathBuf::from("\0abstract"),
    ];
    let before = snapshot(dir);
    for path in cases {
        let std_kind = std::os::unix::net::UnixListener::bind(&path)
            .map(|_| ())
            .expect_err("std bound it")
            .kind();
        let err = Listener::bind(&path)
            .map(|_| ())
            .expect_err("bound an odd path");
        assert_eq!(err.kind(), std_kind, "{path:?}: {err}");
        assert_eq!(snapshot(dir), before, "{path:?}");
    }
}

/// Every path std accepts is accepted, the longest one included (107 bytes
/// and a NUL fill `sun_path`): nothing longer is ever bound on the way.
#[test]
fn the_longest_path_std_accepts_is_accepted() {
    let scratch = scratch("long");
    let base = scratch.path().display().to_string().len() + 1;
    let path = scratch.path().join("x".repeat(107 - base));
    assert_eq!(path.as_os_str().len(), 107);
    let listener = Listener::bind(&path).unwrap();
    assert_reachable(&listener);
}

/// A path whose directory is reached through a symlink is accepted, as by
/// std; the socket is created in the directory the link leads to.
#[test]
fn a_path_through_a_symlinked_directory_is_accepted() {
    let scratch = scratch("via-link");
    let real = scratch.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, scratch.path().join("link")).unwrap();
    let listener = Listener::bind(scratch.path().join("link/sock")).unwrap();
    assert_reachable(&listener);
    assert!(std::fs::symlink_metadata(real.join("sock")).is_ok());
}

/// A relative path is taken from the working directory, as by std. The
/// working directory is process-wide, so this runs in a child process.
#[test]
fn a_relative_path_is_accepted() {
    if role().as_deref() == Some("relative") {
        let dir = std::env::var_os(PATH_VAR).unwrap();
        std::env::set_current_dir(&dir).unwrap();
        let listener = Listener::bind("sock").unwrap();
        assert_reachable(&listener);
        let mode = std::fs::symlink_metadata("sock").unwrap().mode() & 0o7777;
        println!("RESULT mode={mode:o}");
        return;
    }
    let scratch = scratch("relative");
    let output = self_command("a_relative_path_is_accepted", "relative")
        .env(PATH_VAR, scratch.path())
        .output()
        .unwrap();
    assert_eq!(results(&output), ["mode=600"]);
    assert_eq!(
        snapshot(scratch.path()).keys().collect::<Vec<_>>(),
        ["sock"]
    );
}

/// The socket file gets exactly the asked mode whatever the umask: narrower
/// than the umask allows, and wider too. The umask is process-wide, so this
/// runs in a child process.
#[test]
fn the_socket_gets_exactly_the_asked_mode_whatever_the_umask() {
    if role().as_deref() == Some("umask") {
        let dir = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
        for (umask, mode) in [
            (0o000, 0o600),
            (0o077, 0o666),
            (0o027, 0o640),
            (0o022, 0o660),
        ] {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
            let path = dir.join(format!("sock-{umask:o}-{mode:o}"));
            let listener = Listener::bind_with_mode(&path, mode).unwrap();
            let got = std::fs::symlink_metadata(&path).unwrap().mode() & 0o7777;
            println!("RESULT umask={umask:o} asked={mode:o} got={got:o}");
            drop(listener);
        }
        return;
    }
    let scratch = scratch("umask");
    let output = self_command(
        "the_socket_gets_exactly_the_asked_mode_whatever_the_umask",
        "umask",
    )
    .env(PATH_VAR, scratch.path())
    .output()
    .unwrap();
    for line in results(&output) {
        let asked = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("asked=");
        let got = line
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_start_matches("got=");
        assert_eq!(asked, got, "{line}");
    }
}

/// What the no-window design relies on (Linux): the file `bind(2)` creates
/// takes its mode from the unbound socket's inode, minus the umask, so a
/// socket given its mode with `fchmod` before `bind` is never, even for an
/// instant, more open than that mode. Runs in a child (it sets the umask).
#[cfg(target_os = "linux")]
#[test]
fn the_kernel_creates_the_socket_file_with_the_unbound_sockets_mode() {
    if role().as_deref() == Some("kernel-mode") {
        let dir = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        for mode in [0o600, 0o640, 0o666] {
            let socket =
                rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
            rustix::fs::fchmod(&socket, rustix::fs::Mode::from_raw_mode(mode)).unwrap();
            let path = dir.join(format!("sock-{mode:o}"));
            rustix::net::bind(&socket, &SocketAddrUnix::new(&path).unwrap()).unwrap();
            let got = std::fs::symlink_metadata(&path).unwrap().mode() & 0o7777;
            println!("RESULT asked={mode:o} got={got:o}");
        }
        return;
    }
    let scratch = scratch("kernel-mode");
    let output = self_command(
        "the_kernel_creates_the_socket_file_with_the_unbound_sockets_mode",
        "kernel-mode",
    )
    .env(PATH_VAR, scratch.path())
    .output()
    .unwrap();
    assert_eq!(
        results(&output),
        [
            "asked=600 got=600",
            "asked=640 got=640",
            "asked=666 got=644"
        ]
    );
}

/// Many binds racing to replace the same stale socket: exactly one wins, the
/// others get `AddrInUse`, and the path leads to the winner. No bind ever
/// takes over a path another one already holds.
#[test]
fn racing_binds_over_a_stale_socket_leave_exactly_one_listener() {
    let scratch = scratch("race");
    let path = scratch.path().join("sock");
    for round in 0..100 {
        let _ = std::fs::remove_file(&path);
        stale_socket(&path);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let barrier = barrier.clone();
                let path = path.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    Listener::bind(&path)
                })
            })
            .collect();
        let outcomes: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners: Vec<&Listener> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        for failure in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert_eq!(
                failure.kind(),
                ErrorKind::AddrInUse,
                "round {round}: {failure}"
            );
        }
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert_reachable(winners[0]);
        assert_eq!(
            snapshot(scratch.path()).keys().collect::<Vec<_>>(),
            ["sock"],
            "round {round}"
        );
    }
}

/// Every descriptor `bind` opens (the directory, the probed entry, the probe,
/// the staging directory, the socket) is closed, on success and on every
/// failure. Counted in a child process, where no other test opens
/// descriptors meanwhile.
#[test]
fn bind_leaks_no_descriptor_on_success_or_failure() {
    if role().as_deref() == Some("leaks") {
        let dir = PathBuf::from(std::env::var_os(PATH_VAR).unwrap());
        let sock = dir.join("sock");
        let file = dir.join("file");
        std::fs::write(&file, b"").unwrap();
        let before = common::open_descriptors();
        for _ in 0..20 {
            let first = Listener::bind(&sock).unwrap();
            let busy = Listener::bind(&sock).map(|_| ()).unwrap_err();
            assert_eq!(busy.kind(), ErrorKind::AddrInUse);
            drop(first);
            drop(Listener::bind(&sock).unwrap()); // replaces the stale file
            let not_socket = Listener::bind(&file).map(|_| ()).unwrap_err();
            assert_eq!(not_socket.kind(), ErrorKind::AddrInUse);
            let missing = Listener::bind(dir.join("missing/sock"))
                .map(|_| ())
                .unwrap_err();
            assert_eq!(missing.kind(), ErrorKind::NotFound);
            let bad_mode = Listener::bind_with_mode(dir.join("other"), 0o4777)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(bad_mode.kind(), ErrorKind::InvalidInput);
            std::fs::remove_file(&sock).unwrap();
        }
        let after = common::open_descriptors();
        println!("RESULT before={before} after={after}");
        return;
    }
    let scratch = scratch("leaks");
    let output = self_command("bind_leaks_no_descriptor_on_success_or_failure", "leaks")
        .env(PATH_VAR, scratch.path())
        .output()
        .unwrap();
    let report = results(&output).remove(0);
    assert_eq!(
        common::field(&report, "before"),
        common::field(&report, "after"),
        "{report}"
    );
    assert_eq!(
        snapshot(scratch.path()).keys().collect::<Vec<_>>(),
        ["file"],
        "bind left something behind"
    );
}

/// Root may remove any entry of a sticky directory, so another user's stale
/// socket there is replaced, as `rm` plus `bind(2)` would do.
#[test]
fn another_users_stale_socket_in_a_sticky_directory_is_replaced_for_root() {
    needs_root!();
    let scratch = scratch("sticky-root");
    let dir = scratch.path().join("sticky");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = dir.join("sock");
    stale_socket(&path);
    chown_nobody(&path);
    let listener = Listener::bind(&path).unwrap();
    assert_eq!(std::fs::symlink_metadata(&path).unwrap().uid(), 0);
    assert_reachable(&listener);
    assert_eq!(snapshot(&dir).keys().collect::<Vec<_>>(), ["sock"]);
}
