//! No panic, whatever runtime a passer is used from: none, another one, one
//! without timers, or after the one it was created in shut down.
//!
//! Tests that fill the descriptor table re-run this binary for one test in a
//! child process (the table is process-wide).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::Duration;

use fdpass_tokio::{Config, Error, Passer, Reservation};

const CHILD: &str = "FDPASS_TOKIO_RUNTIME_STATE_CHILD";

fn numbered(seq: u64) -> OwnedFd {
    let (read_end, mut write_end) = std::io::pipe().unwrap();
    write_end.write_all(&seq.to_le_bytes()).unwrap();
    read_end.into()
}

fn number_of(fd: OwnedFd) -> u64 {
    let mut buf = [0u8; 8];
    std::fs::File::from(fd).read_exact(&mut buf).unwrap();
    u64::from_le_bytes(buf)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `test` (this binary's test of that name) in a child process with
/// `CHILD` set, and requires it to succeed (a panic exits with 101).
fn in_child(test: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child {test} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

/// Opens `/dev/null` until the table is full.
fn fill_table() -> Vec<OwnedFd> {
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => filler.push(f.into()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) => {
                return filler
            }
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
}

fn lower_descriptor_limit(limit: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: current.maximum,
        },
    )
    .unwrap();
}

/// The failing input: `recv()` times out while a full-table retry is pending,
/// the runtime is dropped, and the passer is used from a new runtime. It must
/// not panic, and once the table has room the descriptor must still arrive.
#[test]
fn a_passer_outliving_its_runtime_with_a_retry_pending_never_panics() {
    const NAME: &str = "a_passer_outliving_its_runtime_with_a_retry_pending_never_panics";
    if !is_child(NAME) {
        return in_child(NAME);
    }
    // The peek reservation waits for room when the table is full (the
    // sentinel keeps its room reserved instead).
    {
        let reservation = Reservation::Peek;
        lower_descriptor_limit(256);
        let config = Config::default()
            .with_reservation(reservation)
            .with_max_fds_per_message(8);
        let first = runtime();
        let (a, b) = first
            .block_on(async { Passer::pair_with_config(config) })
            .unwrap();
        first.block_on(a.send(numbered(7))).unwrap();
        let filler = fill_table();
        let timed_out = first
            .block_on(async { tokio::time::timeout(Duration::from_millis(50), b.recv()).await });
        assert!(timed_out.is_err(), "the table is full: nothing can arrive");
        drop(first);
        drop(filler);

        let second = runtime();
        let got = second
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), b.recv()).await });
        // The runtime that watched the socket is gone: the passer says so
        // with a typed error (it cannot wait for readiness any more).
        match got {
            Ok(Err(Error::Io(_))) => {}
            other => panic!("expected an I/O error naming the lost runtime, got {other:?}"),
        }
        // Every later call answers, without a panic.
        second.block_on(async {
            assert!(b.recv().await.is_err());
            assert!(a.send(numbered(8)).await.is_err());
            assert!(a.flush().await.is_err());
        });
        drop((a, b));
        drop(second);
    }
}

/// A full-table retry falls due while the passer is driven from a runtime
/// built without timers: tokio's own timer would panic there.
#[test]
fn a_retry_driven_from_a_runtime_without_timers_never_panics() {
    const NAME: &str = "a_retry_driven_from_a_runtime_without_timers_never_panics";
    if !is_child(NAME) {
        return in_child(NAME);
    }
    lower_descriptor_limit(256);
    let io_only = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let (a, b) = io_only.block_on(async { Passer::pair() }).unwrap();
    io_only.block_on(a.send(numbered(11))).unwrap();
    let filler = fill_table();
    // Free the table from another thread once the receiver is waiting on a
    // retry; the retry must then bring the descriptor.
    let (freed_tx, freed_rx) = std::sync::mpsc::channel::<()>();
    let freer = std::thread::spawn(move || {
        freed_rx.recv().unwrap();
        drop(filler);
    });
    let got = io_only.block_on(async {
        let mut recv = std::pin::pin!(b.recv());
        // First poll: the table is full, a retry is armed.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(recv.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        freed_tx.send(()).unwrap();
        recv.await
    });
    freer.join().unwrap();
    assert_eq!(number_of(got.unwrap().unwrap()), 11);
}

use std::future::Future;

/// Creating a passer outside any runtime is an error, not tokio's panic.
#[test]
fn creating_a_passer_outside_a_runtime_is_an_error_not_a_panic() {
    let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    match Passer::from_std(socket) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::Other),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(Passer::pair().is_err());
}

/// Binding a listener outside any runtime is an error, not tokio's panic,
/// and leaves nothing bound at the path.
#[test]
fn binding_a_listener_outside_a_runtime_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!(
        "fdpass-tokio-listener-no-runtime-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bound = std::panic::catch_unwind(|| fdpass_tokio::Listener::bind(dir.join("sock")));
    match bound {
        Ok(Err(Error::Io(e))) => assert_eq!(e.kind(), std::io::ErrorKind::Other),
        Ok(other) => panic!("expected an error, got {other:?}"),
        Err(_) => panic!("binding a listener outside a runtime panicked"),
    }
    assert!(!dir.join("sock").exists(), "a socket file was left bound");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Spawning a child with a hand-off outside any runtime is an error, not
/// tokio's panic, and starts no child (it would be left without a peer).
/// Runs in a child process of its own, so that no other test's children
/// count.
#[test]
fn spawning_a_child_outside_a_runtime_is_an_error_and_starts_no_child() {
    const NAME: &str = "spawning_a_child_outside_a_runtime_is_an_error_and_starts_no_child";
    if !is_child(NAME) {
        return in_child(NAME);
    }
    let spawned = std::panic::catch_unwind(|| {
        Passer::spawn_child(&mut tokio::process::Command::new("true")).map(drop)
    });
    match spawned {
        Ok(Err(Error::Io(e))) => assert_eq!(e.kind(), std::io::ErrorKind::Other),
        Ok(other) => panic!("expected an error, got {other:?}"),
        Err(_) => panic!("spawning a child outside a runtime panicked"),
    }
    let spawned = Passer::spawn_std_child(&mut Command::new("true")).map(drop);
    match spawned {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::Other),
        other => panic!("expected an error, got {other:?}"),
    }
    // No child was started: this process has none to wait for.
    assert_eq!(
        rustix::process::wait(rustix::process::WaitOptions::NOHANG).map(|w| w.is_some()),
        Err(rustix::io::Errno::CHILD),
        "a child process was started"
    );
}

/// Adopting the inherited socket outside any runtime is an error that
/// leaves the hand-off intact: the worker adopts it once in a runtime and
/// it works. Before, the socket was adopted, then released when the passer
/// could not register, and every later adoption said `AlreadyAdopted`.
#[test]
fn adopting_outside_a_runtime_costs_not_the_inherited_connection() {
    const NAME: &str = "adopting_outside_a_runtime_costs_not_the_inherited_connection";
    if !is_child(NAME) {
        let handoff = fdpass_core::child::Handoff::new().unwrap();
        let mut worker = Command::new(std::env::current_exe().unwrap());
        worker
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, NAME);
        handoff.configure(&mut worker);
        let child = worker.spawn().unwrap();
        let ours = handoff.finish();
        let received = runtime().block_on(async {
            let parent = Passer::new(ours).unwrap();
            parent.recv().await
        });
        let status = child.wait_with_output().unwrap();
        assert!(
            status.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let fd = received.unwrap().expect("the worker sent a descriptor");
        assert_eq!(number_of(fd), 7);
        return;
    }
    match Passer::from_inherited() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::Other),
        other => panic!("expected an error outside a runtime, got {other:?}"),
    }
    runtime().block_on(async {
        let passer = Passer::from_inherited().expect("still adoptable");
        passer.send(numbered(7)).await.unwrap();
        passer.flush().await.unwrap();
    });
}

/// Created in one runtime, dropped after it shut down: no panic, nothing
/// leaked.
#[test]
fn a_passer_dropped_after_its_runtime_never_panics() {
    let first = runtime();
    let (a, b) = first.block_on(async { Passer::pair() }).unwrap();
    first.block_on(a.send(numbered(1))).unwrap();
    drop(first);
    drop(a);
    drop(b);
}

/// A huge retry delay that `Config::validate` accepts never overflows an
/// `Instant`, in the core or in the timer.
#[test]
fn the_largest_retry_delay_config_validate_accepts_never_panics() {
    const NAME: &str = "the_largest_retry_delay_config_validate_accepts_never_panics";
    if !is_child(NAME) {
        return in_child(NAME);
    }
    lower_descriptor_limit(256);
    let retry = fdpass_core::RetryPolicy {
        initial: Duration::MAX,
        max: Duration::MAX,
    };
    let config = Config::default().with_retry(retry);
    config.validate().unwrap();
    let rt = runtime();
    let (a, b) = rt
        .block_on(async { Passer::pair_with_config(config) })
        .unwrap();
    rt.block_on(a.send(numbered(3))).unwrap();
    let filler = fill_table();
    let waited =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(50), b.recv()).await });
    assert!(waited.is_err(), "a retry that far away has not come yet");
    drop(filler);
    drop((a, b));
}

/// Created in a multi-thread runtime that keeps running, used from another
/// runtime: the first one's I/O driver still serves the socket.
#[test]
fn a_passer_used_from_another_runtime_than_its_own_works() {
    let home = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = home.block_on(async { Passer::pair() }).unwrap();
    let elsewhere = runtime();
    elsewhere.block_on(async {
        let receiving = tokio::spawn(async move { b.recv().await });
        a.send(numbered(9)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(60), receiving)
            .await
            .expect("the receive hung")
            .unwrap();
        assert_eq!(number_of(got.unwrap().unwrap()), 9);
        drop(a);
    });
    drop(home);
}
