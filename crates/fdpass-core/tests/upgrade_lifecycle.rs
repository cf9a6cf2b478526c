//! The upgrade lifecycle with real successor processes (this test binary
//! re-run in a role): a ready successor gets every named descriptor and the
//! pid file names it; a successor that crashes, hangs or declines is
//! stopped within the bound, with a typed error, and the old process keeps
//! its descriptors; one upgrade runs at a time; nothing leaks.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use fdpass_core::handover::NamedFds;
use fdpass_core::upgrade::{Successor, UpgradeError, Upgrader};

use common::{numbered_pipe, read_number, role, TempDir, ROLE_VAR};

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
    let mut successor = Successor::inherit(Duration::from_secs(30))
        .expect("the hand-over")
        .expect("started by an upgrade");
    match role {
        "ready" => {
            let fds = successor.fds();
            assert_eq!(fds.names().collect::<Vec<_>>(), ["first", "second"]);
            assert_eq!(fds.meta("second"), Some(&b"meta"[..]));
            assert_eq!(read_number(fds.take("first").expect("first")), 1);
            assert_eq!(read_number(fds.take("second").expect("second")), 2);
            successor.ready(Duration::from_secs(30)).expect("ready");
        }
        "crash" => std::process::exit(7),
        "hang" => loop {
            std::thread::park();
        },
        "decline" => successor
            .fail("not today", Duration::from_secs(30))
            .expect("fail"),
        other => panic!("unknown role {other}"),
    }
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
    let dir = TempDir::new("upgrade-ready");
    let pid_file = dir.path().join("pid");
    let upgrader = upgrader_with_two_pipes()
        .with_pid_file(&pid_file)
        .expect("pid file");
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid"),
        format!("{}\n", std::process::id())
    );
    let mut command = successor_command(
        "a_ready_successor_gets_every_named_descriptor_and_the_pid_file_names_it",
        "ready",
    );
    let mut upgraded = upgrader
        .upgrade_by_spawning(&mut command)
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
        .expect("wait");
    assert!(
        status.success(),
        "the successor's own checks passed: {status}"
    );
    // The old process still holds its originals (it sent copies).
    assert_eq!(upgrader.fds().len(), 2);
}

#[test]
fn a_successor_that_crashes_before_ready_is_reported_with_its_exit_status() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    let dir = TempDir::new("upgrade-crash");
    let pid_file = dir.path().join("pid");
    let upgrader = upgrader_with_two_pipes()
        .with_pid_file(&pid_file)
        .expect("pid file");
    let mut command = successor_command(
        "a_successor_that_crashes_before_ready_is_reported_with_its_exit_status",
        "crash",
    );
    let err = upgrader
        .upgrade_by_spawning(&mut command)
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
}

#[test]
fn a_successor_that_hangs_is_killed_when_the_bound_passes() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    let upgrader = upgrader_with_two_pipes().with_ready_timeout(Duration::from_millis(500));
    let mut command = successor_command(
        "a_successor_that_hangs_is_killed_when_the_bound_passes",
        "hang",
    );
    let started = Instant::now();
    let err = upgrader
        .upgrade_by_spawning(&mut command)
        .expect_err("it hung");
    let took = started.elapsed();
    assert!(matches!(err, UpgradeError::ReadyTimeout { .. }), "{err:?}");
    // The successor was killed and reaped inside the call; the bound holds.
    assert!(took < Duration::from_secs(5), "bounded wait, took {took:?}");
}

#[test]
fn a_successor_that_declines_leaves_the_old_process_serving() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    let upgrader = upgrader_with_two_pipes();
    let mut command = successor_command(
        "a_successor_that_declines_leaves_the_old_process_serving",
        "decline",
    );
    let err = upgrader
        .upgrade_by_spawning(&mut command)
        .expect_err("it declined");
    assert!(
        matches!(&err, UpgradeError::SuccessorFailed { reason } if reason == "not today"),
        "{err:?}"
    );
    let mut fds = upgrader.into_fds();
    assert_eq!(read_number(fds.take("first").expect("still ours")), 1);
}

#[test]
fn only_one_upgrade_runs_at_a_time() {
    if let Some(role) = role() {
        return act_as_successor(&role);
    }
    let upgrader =
        std::sync::Arc::new(upgrader_with_two_pipes().with_ready_timeout(Duration::from_secs(3)));
    let first = {
        let upgrader = std::sync::Arc::clone(&upgrader);
        std::thread::spawn(move || {
            upgrader.upgrade_by_spawning(&mut successor_command(
                "only_one_upgrade_runs_at_a_time",
                "hang",
            ))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !upgrader.is_upgrading() {
        assert!(Instant::now() < deadline, "the first upgrade never started");
        std::thread::yield_now();
    }
    let err = upgrader
        .upgrade_by_spawning(&mut successor_command(
            "only_one_upgrade_runs_at_a_time",
            "ready",
        ))
        .expect_err("one at a time");
    assert!(matches!(err, UpgradeError::InProgress), "{err:?}");
    let first = first.join().expect("no panic");
    assert!(
        matches!(first, Err(UpgradeError::ReadyTimeout { .. })),
        "{first:?}"
    );
    // Over: the next upgrade may start (and here fails the same way).
    let again = upgrader.upgrade_by_spawning(&mut successor_command(
        "only_one_upgrade_runs_at_a_time",
        "crash",
    ));
    assert!(
        matches!(again, Err(UpgradeError::SuccessorExited { .. })),
        "{again:?}"
    );
}

#[test]
fn failed_upgrades_leak_no_descriptor() {
    match role().as_deref() {
        Some("measure") => {}
        Some(other) => return act_as_successor(other),
        None => {
            let output = common::self_command("failed_upgrades_leak_no_descriptor", "measure")
                .output()
                .expect("run the measuring child");
            common::results(&output);
            return;
        }
    }
    // This process is the old one: its successors are this binary again.
    let upgrader = upgrader_with_two_pipes().with_ready_timeout(Duration::from_millis(500));
    let before = common::open_descriptors();
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
            .stdout(std::process::Stdio::null());
        assert!(upgrader.upgrade_by_spawning(&mut command).is_err());
    }
    let after = common::open_descriptors();
    assert_eq!(before, after, "descriptors leaked by failed upgrades");
    println!("RESULT open before={before} after={after}");
}

/// Drives `passer` until `done` says so, handing it every event.
fn drive_one(passer: &mut fdpass_core::Passer, mut done: impl FnMut(fdpass_core::Event) -> bool) {
    let mut finished = false;
    common::drive(&mut [passer], |_, events| {
        for (_, event) in events {
            if let fdpass_core::Event::Failed(e) = &event {
                panic!("the raw peer failed: {e}");
            }
            finished |= done(event);
        }
        finished
    });
}

#[test]
fn an_answer_other_than_ready_is_refused_with_a_typed_error() {
    let (old_end, new_end) = fdpass_core::socket::pair().expect("pair");
    let upgrader = upgrader_with_two_pipes();
    let old = std::thread::spawn(move || upgrader.upgrade_over(old_end));
    // A peer that receives the set, then answers with something else.
    let mut peer =
        fdpass_core::Passer::new(new_end, fdpass_core::Config::default()).expect("passer");
    peer.push_recv_message().expect("ask");
    drive_one(&mut peer, |event| {
        matches!(event, fdpass_core::Event::ReceivedMessage(..))
    });
    peer.push_send_message(fdpass_core::Message::new(
        b"HELLO".to_vec(),
        vec![numbered_pipe(9)],
    ))
    .expect("push");
    drive_one(&mut peer, |event| {
        matches!(event, fdpass_core::Event::Sent(_))
    });
    let err = old.join().expect("no panic").expect_err("not an answer");
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
}

#[test]
fn a_malformed_set_is_refused_by_the_successor() {
    let (old_end, new_end) = fdpass_core::socket::pair().expect("pair");
    let successor =
        std::thread::spawn(move || Successor::from_connection(new_end, Duration::from_secs(30)));
    let mut peer =
        fdpass_core::Passer::new(old_end, fdpass_core::Config::default()).expect("passer");
    // Announces five entries, carries one descriptor.
    peer.push_send_message(fdpass_core::Message::new(
        vec![1, 0, 0, 5],
        vec![numbered_pipe(1)],
    ))
    .expect("push");
    drive_one(&mut peer, |event| {
        matches!(event, fdpass_core::Event::Sent(_))
    });
    let err = successor.join().expect("no panic").expect_err("malformed");
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
}
