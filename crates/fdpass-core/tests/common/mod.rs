//! Helpers shared by the real-socket test files: a poll(2) driver for
//! passers, numbered pipes, descriptor counting, temporary directories and
//! re-running the test binary as a child process.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::fmt::Debug;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fdpass_core::socket::Listener;
use fdpass_core::sys::Sys;
use fdpass_core::{Event, Passer, Want};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// The longest any drive loop or wait may take. Reaching it is a failure;
/// nothing ever waits for it to pass.
pub const OVERALL: Duration = Duration::from_secs(60);

/// Drives `passers` in this thread with poll(2) until `step` returns true.
///
/// `step` runs before the first poll (to queue the first work) and after
/// every round, with the events of that round tagged by passer index; it may
/// push more work onto the passers. The loop panics when the overall deadline
/// passes, and when nothing can ever happen again (no passer wants I/O or has
/// a retry pending) while `step` is not done: in one thread, such a state
/// would otherwise hang until the deadline.
pub fn drive<S: Sys + Debug>(
    passers: &mut [&mut Passer<S>],
    mut step: impl FnMut(&mut [&mut Passer<S>], Vec<(usize, Event)>) -> bool,
) {
    let deadline = Instant::now() + OVERALL;
    let mut events = Vec::new();
    loop {
        if step(passers, std::mem::take(&mut events)) {
            return;
        }
        let now = Instant::now();
        assert!(
            now < deadline,
            "passers not done after {OVERALL:?}: {passers:#?}"
        );
        for (i, passer) in passers.iter_mut().enumerate() {
            passer.handle_timeout(now);
            collect(i, passer, &mut events);
        }
        if !events.is_empty() {
            continue;
        }

        let interests: Vec<_> = passers.iter().map(|p| p.interest()).collect();
        let must_act = interests
            .iter()
            .any(|i| i.read == Want::Now || i.write == Want::Now);
        let mut wait = deadline.saturating_duration_since(now);
        let mut waiting = false;
        for passer in passers.iter() {
            if let Some(at) = passer.poll_timeout() {
                wait = wait.min(at.saturating_duration_since(now));
                waiting = true;
            }
        }
        if must_act {
            wait = Duration::ZERO;
        }

        // Only passers that wait for readiness go into the poll set: poll
        // reports hang-up even for an empty event mask, which would turn an
        // idle passer on a closed socket into a busy loop.
        let mut revents = vec![PollFlags::empty(); passers.len()];
        {
            let mut members = Vec::new();
            let mut fds = Vec::new();
            for (i, (passer, interest)) in passers.iter().zip(&interests).enumerate() {
                let mut flags = PollFlags::empty();
                if interest.read == Want::WhenReady {
                    flags |= PollFlags::IN;
                }
                if interest.write == Want::WhenReady {
                    flags |= PollFlags::OUT;
                }
                if !flags.is_empty() {
                    members.push(i);
                    fds.push(PollFd::from_borrowed_fd(passer.as_fd(), flags));
                }
            }
            assert!(
                must_act || waiting || !fds.is_empty(),
                "stalled: no passer wants I/O or has a retry pending, yet the test is not done: {passers:#?}"
            );
            let timeout = Timespec::try_from(wait).expect("a wait of at most a minute");
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => panic!("poll failed: {e}"),
            }
            for (i, fd) in members.into_iter().zip(&fds) {
                revents[i] = fd.revents();
            }
        }

        let now = Instant::now();
        for (i, passer) in passers.iter_mut().enumerate() {
            let ready = revents[i];
            let interest = interests[i];
            if interest.read == Want::Now
                || ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
            {
                passer.handle_readable(now);
            }
            if interest.write == Want::Now
                || ready.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR)
            {
                passer.handle_writable(now);
            }
            collect(i, passer, &mut events);
        }
    }
}

fn collect<S: Sys>(index: usize, passer: &mut Passer<S>, events: &mut Vec<(usize, Event)>) {
    while let Some(event) = passer.poll_event() {
        events.push((index, event));
    }
}

/// A pipe whose write end got `number` (8 bytes, little-endian) and was then
/// closed; returns the read end. Reading it back to end-of-file proves both
/// which pipe arrived and that no stray copy of the write end survived.
pub fn numbered_pipe(number: u64) -> OwnedFd {
    let (read_end, mut write_end) = std::io::pipe().expect("pipe"); // close-on-exec on every system
    write_end
        .write_all(&number.to_le_bytes())
        .expect("write into a fresh pipe");
    OwnedFd::from(read_end)
}

/// Reads back the number of a [`numbered_pipe`], consuming (closing) it.
pub fn read_number(fd: OwnedFd) -> u64 {
    let mut bytes = Vec::new();
    File::from(fd)
        .read_to_end(&mut bytes)
        .expect("read a numbered pipe");
    let bytes: [u8; 8] = bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("a numbered pipe holds 8 bytes, got {}", b.len()));
    u64::from_le_bytes(bytes)
}

/// How many descriptors this process has open. Meaningful only in a process
/// that runs a single test: other test threads open and close descriptors
/// concurrently.
pub fn open_descriptors() -> usize {
    // Descriptors fdpass let go of are closed by a background thread, soon:
    // wait for those before counting.
    assert!(
        fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
        "pending disposals did not finish"
    );
    std::fs::read_dir("/proc/self/fd")
        .expect("list open descriptors")
        .count()
}

/// A private directory under the system temporary directory, unique per
/// process and call, removed with everything in it on drop (also when the
/// test panics).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("fdpass-test-{}-{tag}-{n}", std::process::id()));
        // A leftover of an earlier run whose process id was the same.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment variable that tells a re-run test binary which role the
/// selected test plays in it.
pub const ROLE_VAR: &str = "FDPASS_TEST_ROLE";

/// The role this process plays, if it is a child started by [`self_command`].
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A command re-running this test binary for the single test `test_name`
/// with `role`, output captured. A child reports through lines starting with
/// `RESULT ` (see [`results`]); requiring one also catches a test name that
/// matched nothing, which the harness would report as a success.
pub fn self_command(test_name: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("path of the test binary"));
    command
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Asserts that a child test process succeeded and returns its `RESULT`
/// lines (without the prefix); at least one must be present.
pub fn results(output: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    let lines: Vec<String> = stdout
        .lines()
        // The harness prints the test's name without a line break before
        // running it, so a report may start mid-line.
        .filter_map(|line| Some(line[line.find("RESULT ")? + "RESULT ".len()..].to_owned()))
        .collect();
    for line in &lines {
        eprintln!("child reported: {line}");
    }
    assert!(
        !lines.is_empty(),
        "child reported no RESULT line:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    lines
}

/// Waits for a child to exit and panics with everything it printed.
pub fn fail_with_output(child: Child, why: &str) -> ! {
    let output = child.wait_with_output().expect("wait for the child");
    panic!(
        "{why} ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Accepts the connection `child` makes to `listener`. Waits on the listener
/// with poll, waking every 50 ms only to notice a child that died before
/// connecting (which would otherwise cost the whole overall deadline).
pub fn accept_from(listener: &Listener, mut child: Child) -> (OwnedFd, Child) {
    let deadline = Instant::now() + OVERALL;
    loop {
        match listener.accept() {
            Ok(socket) => return (socket, child),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept failed: {e}"),
        }
        if child.try_wait().expect("check on the child").is_some() {
            fail_with_output(child, "the child exited before connecting");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            fail_with_output(child, "the child did not connect in time");
        }
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        let slice = Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        match poll(&mut fds, Some(&slice)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => panic!("poll on the listener failed: {e}"),
        }
    }
}

/// Parses `key=value` words of a `RESULT` line.
pub fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}= in {line:?}: {e}"))
}
