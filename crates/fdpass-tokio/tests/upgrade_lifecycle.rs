//! The upgrade lifecycle with real successor processes (this test binary
//! re-run in a role): a ready successor gets every named descriptor and the
//! pid file names it; a successor that crashes, hangs or declines is
//! stopped within the bound, with a typed error, and the old process keeps
//! its descriptors; one upgrade runs at a time; nothing leaks.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fdpass_core::handover::NamedFds;
use fdpass_tokio::upgrade::{Successor, UpgradeError, Upgrader};

/// The environment variable that tells a re-run test binary which role it
/// plays.
const ROLE_VAR: &str = "FDPASS_TEST_ROLE";

/// The role this process plays, if it is a child started by this file.
fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// Runs `future` to completion on a runtime of its own (a successor, the
/// measuring child and each test get one).
fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A pipe whose write end got `number` (8 bytes, little-endian) and was then
/// closed; returns the read end. Reading it back to end-of-file proves both
/// which pipe arrived and that no stray copy of the write end survived.
fn numbered_pipe(number: u64) -> OwnedFd {
    let (read_end, mut write_end) = std::io::pipe().expect("pipe");
    write_end
        .write_all(&number.to_le_bytes())
        .expect("write into a fresh pipe");
    OwnedFd::from(read_end)
}

/// Reads back the number of a [`numbered_pipe`], consuming (closing) it.
fn read_number(fd: OwnedFd) -> u64 {
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .expect("read a numbered pipe");
    let bytes: [u8; 8] = bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("a numbered pipe holds 8 bytes, got {}", b.len()));
    u64::from_le_bytes(bytes)
}

/// How many descriptors this process has open, once the descriptors fdpass
/// let go of (closed by a background thread) are closed.
fn open_descriptors() -> usize {
    assert!(
        fdpass_core::disposal::flush(Duration::from_secs(30)),
        "pending disposals did not finish"
    );
    std::fs::read_dir("/proc/self/fd")
        .expect("list open descriptors")
        .count()
}

/// A private directory, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "fdpass-tokio-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .expect("create a temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This test binary re-run for `test` in `role`, output captured; it
/// reports through lines starting with `RESULT ` (see [`results`]).
fn self_command(test: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Asserts that a child test process succeeded and returns its `RESULT`
/// lines; at least one must be present (a test name that matched nothing
/// would otherwise pass).
fn results(output: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let lines: Vec<String> = stdout
        .lines()
        .filter_map(|line| Some(line[line.find("RESULT ")? + "RESULT ".len()..].to_owned()))
        .collect();
    assert!(
        !lines.is_empty(),
        "child reported no RESULT line:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    lines
}

/// This test binary, run as the successor of `test` in `role`.
fn successor_command(test: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role);
    command
}

/// The successor's side, for every role.
fn act_as_successor(role: &str) {
    if role == "deaf" {
        // Busy starting up: it does not even look at the connection, so
        // the old process closing it does not end it.
        loop {
            std::thread::park();
        }
    }
    block_on(async {
        let mut successor = Successor::inherit(Duration::from_secs(30))
            .await
            .expect("the hand-over")
            .expect("started by an upgrade");
        match role {
            "ready" => {
                let fds = successor.fds();
                assert_eq!(fds.names().collect::<Vec<_>>(), ["first", "second"]);
                assert_eq!(fds.meta("second"), Some(&b"meta"[..]));
                assert_eq!(read_number(fds.take("first").expect("first")), 1);
                assert_eq!(read_number(fds.take("second").expect("second")), 2);
                successor
                    .ready(Duration::from_secs(30))
                    .await
                    .expect("ready");
            }
            "crash" => std::process::exit(7),
            "hang" => loop {
                std::thread::park();
            },
            "decline" => successor
                .fail("not today", Duration::from_secs(30))
                .await
                .expect("fail"),
            other => panic!("unknown role {other}"),
        }
    })
}

fn upgrader_with_two_pipes() -> Upgrader {
    let mut fds = NamedFds::new();
    fds.insert("first", numbered_pipe(1)).expect("valid");
    fds.insert_with_meta("second", numbered_pipe(2), "meta")
        .expect("valid");
    Upgrader::new(fds)
}

#[test]
fn a_ready_successor_gets_every_named_descriptor_and_the_pid_file_names_it() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    block_on(async {
        let dir = TempDir::new("upgrade-ready");
        let pid_file = dir.path().join("pid");
        let upgrader = upgrader_with_two_pipes()
            .with_pid_file(&pid_file)
            .expect("pid file");
        assert_eq!(
            std::fs::read_to_string(&pid_file).expect("pid"),
            format!("{}\n", std::process::id())
        );
        let command = successor_command(
            "a_ready_successor_gets_every_named_descriptor_and_the_pid_file_names_it",
            "ready",
        );
        let mut upgraded = upgrader
            .upgrade_by_spawning(command)
            .await
            .expect("the successor is ready");
        let pid = upgraded.pid.expect("a spawned successor's pid");
        assert_eq!(
            std::fs::read_to_string(&pid_file).expect("pid"),
            format!("{pid}\n")
        );
        let status = upgraded
            .child
            .as_mut()
            .expect("spawned")
            .wait()
            .await
            .expect("wait");
        assert!(
            status.success(),
            "the successor's own checks passed: {status}"
        );
        // The old process still holds its originals (it sent copies).
        assert_eq!(upgrader.fds().len(), 2);
    })
}

#[test]
fn a_successor_that_crashes_before_ready_is_reported_with_its_exit_status() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    block_on(async {
        let dir = TempDir::new("upgrade-crash");
        let pid_file = dir.path().join("pid");
        let upgrader = upgrader_with_two_pipes()
            .with_pid_file(&pid_file)
            .expect("pid file");
        let command = successor_command(
            "a_successor_that_crashes_before_ready_is_reported_with_its_exit_status",
            "crash",
        );
        let err = upgrader
            .upgrade_by_spawning(command)
            .await
            .expect_err("it crashed");
        match err {
            UpgradeError::SuccessorExited {
                status: Some(status),
            } => {
                assert_eq!(status.code(), Some(7), "its own exit status")
            }
            other => panic!("expected SuccessorExited with a status, got {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(&pid_file).expect("pid"),
            format!("{}\n", std::process::id()),
            "the pid file still names the old process"
        );
        assert!(
            !upgrader.is_upgrading(),
            "a failed upgrade ends the upgrade"
        );
    })
}

#[test]
fn a_successor_that_hangs_is_killed_when_the_bound_passes() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    block_on(async {
        let upgrader = upgrader_with_two_pipes().with_ready_timeout(Duration::from_millis(500));
        let command = successor_command(
            "a_successor_that_hangs_is_killed_when_the_bound_passes",
            "hang",
        );
        let started = Instant::now();
        let err = upgrader
            .upgrade_by_spawning(command)
            .await
            .expect_err("it hung");
        let took = started.elapsed();
        assert!(matches!(err, UpgradeError::ReadyTimeout { .. }), "{err:?}");
        // The successor was killed and reaped inside the call; the bound holds.
        assert!(took < Duration::from_secs(5), "bounded wait, took {took:?}");
    })
}

#[test]
fn a_successor_that_declines_leaves_the_old_process_serving() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    block_on(async {
        let upgrader = upgrader_with_two_pipes();
        let command = successor_command(
            "a_successor_that_declines_leaves_the_old_process_serving",
            "decline",
        );
        let err = upgrader
            .upgrade_by_spawning(command)
            .await
            .expect_err("it declined");
        assert!(
            matches!(&err, UpgradeError::SuccessorFailed { reason } if reason == "not today"),
            "{err:?}"
        );
        let mut fds = upgrader.into_fds().expect("not shared");
        assert_eq!(read_number(fds.take("first").expect("still ours")), 1);
    })
}

#[test]
fn only_one_upgrade_runs_at_a_time() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    block_on(async {
        let upgrader = upgrader_with_two_pipes().with_ready_timeout(Duration::from_secs(3));
        let first = {
            let upgrader = upgrader.clone();
            tokio::spawn(async move {
                upgrader
                    .upgrade_by_spawning(successor_command(
                        "only_one_upgrade_runs_at_a_time",
                        "hang",
                    ))
                    .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !upgrader.is_upgrading() {
            assert!(Instant::now() < deadline, "the first upgrade never started");
            tokio::task::yield_now().await;
        }
        let err = upgrader
            .upgrade_by_spawning(successor_command(
                "only_one_upgrade_runs_at_a_time",
                "ready",
            ))
            .await
            .expect_err("one at a time");
        assert!(matches!(err, UpgradeError::InProgress), "{err:?}");
        let first = first.await.expect("no panic");
        assert!(
            matches!(first, Err(UpgradeError::ReadyTimeout { .. })),
            "{first:?}"
        );
        // Over: the next upgrade may start (and here fails the same way).
        let again = upgrader
            .upgrade_by_spawning(successor_command(
                "only_one_upgrade_runs_at_a_time",
                "crash",
            ))
            .await;
        assert!(
            matches!(again, Err(UpgradeError::SuccessorExited { .. })),
            "{again:?}"
        );
    })
}

#[test]
fn failed_upgrades_leak_no_descriptor() {
    match role().as_deref() {
        Some("measure") => {}
        Some(other) => return act_as_successor(other),
        None => {
            let output = self_command("failed_upgrades_leak_no_descriptor", "measure")
                .output()
                .expect("run the measuring child");
            results(&output);
            return;
        }
    }
    // This process is the old one: its successors are this binary again.
    block_on(async {
        let upgrader = upgrader_with_two_pipes().with_ready_timeout(Duration::from_millis(500));
        let before = open_descriptors();
        for successor_role in ["crash", "hang", "decline"] {
            let mut command = Command::new(std::env::current_exe().expect("test binary"));
            command
                .args([
                    "--exact",
                    "failed_upgrades_leak_no_descriptor",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE_VAR, successor_role)
                .stdout(Stdio::null());
            assert!(upgrader.upgrade_by_spawning(command).await.is_err());
        }
        let after = open_descriptors();
        assert_eq!(before, after, "descriptors leaked by failed upgrades");
        println!("RESULT open before={before} after={after}");
    })
}

#[test]
fn an_answer_other_than_ready_is_refused_with_a_typed_error() {
    block_on(async {
        let (old_end, new_end) = fdpass_core::socket::pair().expect("pair");
        let upgrader = upgrader_with_two_pipes();
        let old = upgrader.upgrade_over(old_end);
        // A peer that receives the set, then answers with something else.
        let peer = async {
            let peer = fdpass_tokio::Passer::new(new_end).expect("passer");
            peer.recv_message()
                .await
                .expect("the set")
                .expect("the old process is open");
            peer.send_message(fdpass_core::Message::new(
                b"HELLO".to_vec(),
                vec![numbered_pipe(9)],
            ))
            .await
            .expect("sent");
            peer
        };
        let (err, _peer) = tokio::join!(old, peer);
        let err = err.expect_err("not an answer");
        assert!(
            matches!(
                err,
                UpgradeError::UnexpectedAnswer {
                    payload_len: 5,
                    descriptors: 1
                }
            ),
            "{err:?}"
        );
    })
}

#[test]
fn a_malformed_set_is_refused_by_the_successor() {
    block_on(async {
        let (old_end, new_end) = fdpass_core::socket::pair().expect("pair");
        let successor = Successor::from_connection(new_end, Duration::from_secs(30));
        let peer = async {
            let peer = fdpass_tokio::Passer::new(old_end).expect("passer");
            // Announces five entries, carries one descriptor.
            peer.send_message(fdpass_core::Message::new(
                vec![1, 0, 0, 5],
                vec![numbered_pipe(1)],
            ))
            .await
            .expect("sent");
            peer
        };
        let (err, _peer) = tokio::join!(successor, peer);
        let err = err.expect_err("malformed");
        assert!(
            matches!(
                err,
                UpgradeError::HandOver(fdpass_core::handover::NamedFdsError::CountMismatch {
                    announced: 5,
                    descriptors: 1
                })
            ),
            "{err:?}"
        );
    })
}

/// The children of this process (Linux: `/proc/<pid>/stat`, `proc(5)`).
fn children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .expect("list processes")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| process_stat(pid).is_some_and(|(_, parent)| parent == me))
        .collect()
}

/// A process's state letter and parent, or `None` once it is gone.
fn process_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": the command may hold spaces and ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

#[test]
fn dropping_an_upgrade_kills_a_successor_that_is_not_ready() {
    const TEST: &str = "dropping_an_upgrade_kills_a_successor_that_is_not_ready";
    match role().as_deref() {
        Some("drop") => {}
        Some(other) => return act_as_successor(other),
        None => {
            // Alone in a process of its own, so that its only child is the
            // successor.
            let output = self_command(TEST, "drop")
                .output()
                .expect("run the dropping child");
            results(&output);
            return;
        }
    }
    block_on(async {
        let upgrader = upgrader_with_two_pipes();
        let mut command = successor_command(TEST, "deaf");
        // Should it survive, it must not hold the test's output open.
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let mut upgrade = Box::pin(upgrader.upgrade_by_spawning(command));
        // The first poll spawns the successor, which then waits for nothing.
        std::future::poll_fn(|cx| {
            assert!(upgrade.as_mut().poll(cx).is_pending(), "undecided");
            std::task::Poll::Ready(())
        })
        .await;
        assert!(upgrader.is_upgrading());
        let successors = children();
        assert_eq!(successors.len(), 1, "one successor: {successors:?}");
        let pid = successors[0];
        drop(upgrade);
        assert!(!upgrader.is_upgrading(), "dropping ends the upgrade");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match process_stat(pid) {
                // Killed: a zombie until tokio reaps it, or gone.
                None | Some(('Z' | 'X', _)) => break,
                Some(_) if Instant::now() < deadline => std::thread::yield_now(),
                Some(_) => {
                    let successor = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
                    let _ = rustix::process::kill_process(successor, rustix::process::Signal::KILL);
                    panic!("the successor still runs 30 s after the upgrade was dropped");
                }
            }
        }
        println!("RESULT successor {pid} stopped");
    })
}
