//! Who may adopt an inherited socket: only the process a hand-off was made
//! for. Every test runs its roles in real child processes (this test binary,
//! re-executed for one test with a role in the environment), because adopting
//! changes process-wide state and the environment is what is under test.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};

use fdpass_core::child::{adopt_inherited, Handoff, InheritError, ENV_VAR, ID_VAR};

/// Names the role a re-executed test binary plays; absent in the process the
/// test harness started.
const ROLE_VAR: &str = "FDPASS_INHERIT_TEST_ROLE";

fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// This test binary, re-run for `test` only, as `role`, output captured.
fn command(test: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("path of the test binary"));
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn assert_success(who: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{who} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: borrowed for one fcntl(F_GETFD), which takes no ownership and
    // fails with EBADF on a number that is not open.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed).is_ok()
}

/// One byte each way over a stream, proving both ends are the pair we think.
fn exchange(ours: &OwnedFd, label: u8) -> io::Result<u8> {
    let mut stream = UnixStream::from(ours.try_clone()?);
    stream.write_all(&[label])?;
    let mut byte = [0u8];
    stream.read_exact(&mut byte)?;
    Ok(byte[0])
}

/// The worker a hand-off was made for adopts its socket; a program the worker
/// runs later inherits the hand-off variables but not the socket, and has a
/// socket of its own at the same number: it must not adopt that one (two
/// owners of one descriptor abort the process on the second close), and its
/// own socket must stay open and working.
#[test]
fn only_the_process_a_handoff_was_made_for_adopts_the_socket() {
    const TEST: &str = "only_the_process_a_handoff_was_made_for_adopts_the_socket";
    match role().as_deref() {
        None => {
            let handoff = Handoff::new().expect("socketpair");
            let mut worker = command(TEST, "worker");
            handoff.configure(&mut worker);
            let child = worker.spawn().expect("spawn the worker");
            let ours = handoff.finish();
            let mut stream = UnixStream::from(ours);
            // The worker answers our byte over the adopted socket.
            stream.write_all(b"p").expect("write to the worker");
            let mut byte = [0u8];
            stream.read_exact(&mut byte).expect("the worker's answer");
            assert_eq!(&byte, b"w", "the worker adopted some other socket");
            let output = child.wait_with_output().expect("wait for the worker");
            assert_success("the worker", &output);
        }
        Some("worker") => {
            let socket = adopt_inherited().expect("the worker adopts its hand-off");
            let mut stream = UnixStream::from(socket);
            let mut byte = [0u8];
            stream.read_exact(&mut byte).expect("the parent's byte");
            assert_eq!(&byte, b"p");
            stream.write_all(b"w").expect("answer the parent");
            // The grandchild keeps our environment, hand-off variables and
            // all; the adopted socket is close-on-exec, so it does not go.
            let output = command(TEST, "grandchild")
                .output()
                .expect("run the grandchild");
            assert_success("the grandchild", &output);
            drop(stream);
        }
        Some("grandchild") => {
            let number: RawFd = std::env::var(ENV_VAR)
                .expect("the grandchild inherited the hand-off variables")
                .parse()
                .expect("a descriptor number");
            assert!(std::env::var_os(ID_VAR).is_some());
            // A socket of our own at exactly the inherited number: the pair
            // may land there itself (lowest free numbers first); otherwise
            // the number is free (the handed-off socket did not leak here)
            // and a duplicate goes there.
            let (a, b) = fdpass_core::socket::pair().expect("socketpair");
            let (placed, peer) = if a.as_raw_fd() == number {
                (a, b)
            } else if b.as_raw_fd() == number {
                (b, a)
            } else {
                let placed = rustix::io::fcntl_dupfd_cloexec(&a, number).expect("dup");
                assert_eq!(
                    placed.as_raw_fd(),
                    number,
                    "the inherited number is free in the grandchild (the socket did not leak)"
                );
                drop(a);
                (placed, b)
            };

            let adopted = adopt_inherited();
            assert!(
                adopted.is_err(),
                "the grandchild adopted its own socket at {number} as if it had been handed off"
            );
            let err = adopted.unwrap_err();
            assert_eq!(
                io::Error::from(err.clone()).kind(),
                io::ErrorKind::PermissionDenied,
                "{err}"
            );
            assert!(
                matches!(err, InheritError::NotForThisProcess { fd } if fd == number),
                "{err:?}"
            );
            // Our socket is untouched and still ours.
            assert!(is_open(number));
            let mut theirs = UnixStream::from(peer);
            theirs.write_all(b"g").expect("write to our own socket");
            let mut byte = [0u8];
            UnixStream::from(placed.try_clone().expect("dup"))
                .read_exact(&mut byte)
                .expect("read our own socket");
            assert_eq!(&byte, b"g");
            drop(placed); // the one and only close of our socket
        }
        Some(other) => panic!("no role {other:?}"),
    }
}

/// A process started without a hand-off gets a typed answer saying so, not an
/// I/O error of kind `NotFound` that could mean anything.
#[test]
fn a_process_not_started_by_a_handoff_is_told_so_plainly() {
    const TEST: &str = "a_process_not_started_by_a_handoff_is_told_so_plainly";
    match role().as_deref() {
        None => {
            let output = command(TEST, "plain")
                .env_remove(ENV_VAR)
                .env_remove(ID_VAR)
                .output()
                .expect("run the child");
            assert_success("the child", &output);
        }
        Some("plain") => {
            let err = adopt_inherited().expect_err("nothing was handed off");
            let io = io::Error::from(err.clone());
            assert_ne!(io.kind(), io::ErrorKind::NotFound, "{io}");
            assert_eq!(err, InheritError::NotHandedOff);
            assert!(
                err.to_string().contains("not started by a hand-off"),
                "{err}"
            );
            let passer_err = fdpass_core::Error::from(err);
            assert!(matches!(
                passer_err,
                fdpass_core::Error::Inherit(InheritError::NotHandedOff)
            ));
        }
        Some(other) => panic!("no role {other:?}"),
    }
}

/// A number without the socket's identity (a parent that did not use
/// `Handoff::configure`, or a stale variable) adopts nothing and says which
/// variable is wrong; a second adoption in one process is refused, so the
/// socket has one owner.
#[test]
fn a_socket_is_adopted_once_and_only_with_its_identity() {
    const TEST: &str = "a_socket_is_adopted_once_and_only_with_its_identity";
    match role().as_deref() {
        None => {
            let handoff = Handoff::new().expect("socketpair");
            let mut child = command(TEST, "no-identity");
            handoff.configure(&mut child);
            child.env_remove(ID_VAR);
            let output = child.output().expect("run the child");
            assert_success("the child without an identity", &output);
            drop(handoff);

            let handoff = Handoff::new().expect("socketpair");
            let mut child = command(TEST, "twice");
            handoff.configure(&mut child);
            let child = child.spawn().expect("spawn");
            let ours = handoff.finish();
            assert_eq!(exchange(&ours, b'p').expect("exchange"), b'c');
            let output = child.wait_with_output().expect("wait");
            assert_success("the child adopting twice", &output);
        }
        Some("no-identity") => {
            let number: RawFd = std::env::var(ENV_VAR).unwrap().parse().unwrap();
            let err = adopt_inherited().expect_err("no identity, no adoption");
            assert_eq!(
                err,
                InheritError::Malformed {
                    variable: ID_VAR,
                    value: None
                }
            );
            assert!(err.to_string().contains(ID_VAR), "{err}");
            // The inherited socket was not taken over or closed.
            assert!(is_open(number));
        }
        Some("twice") => {
            let first = adopt_inherited().expect("the first adoption");
            let second = adopt_inherited().expect_err("a second owner");
            assert_eq!(second, InheritError::AlreadyAdopted);
            assert!(first.as_fd().as_raw_fd() >= 0);
            assert_eq!(exchange(&first, b'c').expect("exchange"), b'p');
        }
        Some(other) => panic!("no role {other:?}"),
    }
}

/// A parent started with its standard descriptors closed (a daemon) still
/// hands its worker the socket: the child's end must not take number 0, 1
/// or 2, where the spawn sets up the worker's standard streams over it (or
/// leaves it to be written as the worker's stdout).
#[test]
fn a_handoff_reaches_its_worker_even_from_a_parent_without_standard_descriptors() {
    const TEST: &str =
        "a_handoff_reaches_its_worker_even_from_a_parent_without_standard_descriptors";
    match role().as_deref() {
        None => {
            // Closing standard descriptors is process-wide: a child does it.
            let output = command(TEST, "parent").output().expect("run the parent");
            assert_success("the parent without stdin and stdout", &output);
        }
        Some("parent") => {
            // SAFETY: this process owns its standard input and output and
            // gives them up here: nothing else in it uses them from now on
            // (the test harness ignores writes to a closed stdout).
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(0) });
            drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(1) });
            let handoff = Handoff::new().expect("socketpair");
            let mut worker = command(TEST, "worker");
            handoff.configure(&mut worker);
            let child = worker.spawn().expect("spawn the worker");
            let ours = handoff.finish();
            let answer = exchange(&ours, b'p');
            drop(ours);
            let output = child.wait_with_output().expect("wait for the worker");
            assert_success("the worker", &output);
            assert_eq!(answer.ok(), Some(b'w'), "the worker did not answer");
        }
        Some("worker") => {
            let adopted = adopt_inherited().expect("the hand-off was made for this process");
            assert_eq!(exchange(&adopted, b'w').expect("exchange"), b'p');
        }
        Some(_) => {}
    }
}

/// A command configured by a hand-off that is gone by the time it is
/// spawned must not pass the child whatever file now has the hand-off's old
/// number: the spawn fails instead of leaking an unrelated descriptor.
#[test]
fn a_command_spawned_after_its_handoff_is_gone_inherits_nothing_else() {
    const TEST: &str = "a_command_spawned_after_its_handoff_is_gone_inherits_nothing_else";
    const NUMBER_VAR: &str = "FDPASS_INHERIT_TEST_NUMBER";
    match role().as_deref() {
        None => {
            // Descriptor numbers are process-wide: a child plays the parent.
            let output = command(TEST, "parent").output().expect("run the parent");
            assert_success("the parent", &output);
        }
        Some("parent") => {
            let handoff = Handoff::new().expect("socketpair");
            let mut worker = command(TEST, "worker");
            handoff.configure(&mut worker);
            let number: RawFd = worker
                .get_envs()
                .find(|(key, _)| *key == ENV_VAR)
                .and_then(|(_, value)| value?.to_str()?.parse().ok())
                .expect("the hand-off names its number");
            drop(handoff);
            // An unrelated file of the parent's takes that number.
            let mut files = Vec::new();
            let unrelated = loop {
                let file = OwnedFd::from(std::fs::File::open("/dev/null").expect("open"));
                if file.as_raw_fd() == number {
                    break file;
                }
                assert!(
                    file.as_raw_fd() < number + 64,
                    "number {number} never reused"
                );
                files.push(file);
            };
            worker.env(NUMBER_VAR, number.to_string());
            match worker.output() {
                // Refused: nothing leaked.
                Err(_) => {}
                Ok(output) => assert_success("the worker", &output),
            }
            drop((unrelated, files));
        }
        Some("worker") => {
            let number: RawFd = std::env::var(NUMBER_VAR).unwrap().parse().unwrap();
            assert!(
                !is_open(number),
                "the parent's unrelated descriptor {number} leaked into the worker"
            );
        }
        Some(_) => {}
    }
}
