//! Helpers shared by the test files: a mio loop driving several passers,
//! numbered pipes, and re-running the test binary as a child process.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fdpass_core::Want;
use fdpass_mio::{Event, Passer};
use mio::{Events, Interest, Poll, Token};

/// The longest any drive loop may take. Reaching it is a failure; nothing
/// ever waits for it to pass.
pub const OVERALL: Duration = Duration::from_secs(60);

/// A mio `Poll` with passers registered under `Token(index)`.
pub struct Loop {
    pub poll: Poll,
    events: Events,
}

impl Loop {
    /// A new poll with `passers` registered, passer `i` under `Token(i)`.
    pub fn new(passers: &mut [&mut Passer]) -> Loop {
        let poll = Poll::new().expect("create a mio poll");
        for (i, passer) in passers.iter_mut().enumerate() {
            poll.registry()
                .register(
                    &mut **passer,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .expect("register a passer");
        }
        Loop {
            poll,
            events: Events::with_capacity(256),
        }
    }

    /// Drives `passers` until `step` returns true.
    ///
    /// `step` runs before the first poll and after every round, with the
    /// events of that round tagged by passer index; it may push more work.
    /// Panics when the overall deadline passes, when an adapter call left a
    /// direction wanting I/O "now" (the adapter must have done it), and when
    /// nothing can ever happen again (no passer waits for readiness or a
    /// deadline) while `step` is not done.
    pub fn drive(
        &mut self,
        passers: &mut [&mut Passer],
        mut step: impl FnMut(&mut [&mut Passer], Vec<(usize, Event)>) -> bool,
    ) {
        let deadline = Instant::now() + OVERALL;
        let mut events = collect(passers);
        loop {
            if step(passers, std::mem::take(&mut events)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "passers not done after {OVERALL:?}: {passers:#?}"
            );
            // A push in `step` may have completed at once: no poll for that.
            events = collect(passers);
            if !events.is_empty() {
                continue;
            }
            let now = Instant::now();
            assert_nothing_now(passers);
            let waiting = passers.iter().any(|p| {
                let i = p.core().interest();
                i.read == Want::WhenReady
                    || i.write == Want::WhenReady
                    || p.poll_timeout().is_some()
            });
            assert!(
                waiting,
                "stalled: no passer waits for readiness or a deadline, yet the test is not done: {passers:#?}"
            );
            let mut wait = deadline.saturating_duration_since(now);
            for passer in passers.iter() {
                if let Some(d) = passer.poll_duration(now) {
                    wait = wait.min(d);
                }
            }
            self.poll_once(passers, Some(wait));
            events = collect(passers);
        }
    }

    /// One `Poll::poll`, its events handed to their passers, then
    /// `handle_timeout` for every passer.
    pub fn poll_once(&mut self, passers: &mut [&mut Passer], timeout: Option<Duration>) {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("poll failed: {e}"),
        }
        for event in self.events.iter() {
            passers[event.token().0].handle_event(event);
        }
        let now = Instant::now();
        for passer in passers.iter_mut() {
            passer.handle_timeout(now);
        }
        assert_nothing_now(passers);
    }
}

/// The adapter's promise: after any of its calls, nothing is left that needs
/// doing without an event or a deadline.
pub fn assert_nothing_now(passers: &[&mut Passer]) {
    for passer in passers {
        let interest = passer.core().interest();
        assert!(
            interest.read != Want::Now && interest.write != Want::Now,
            "the adapter left work to do now: {passer:#?}"
        );
    }
}

fn collect(passers: &mut [&mut Passer]) -> Vec<(usize, Event)> {
    let mut events = Vec::new();
    for (i, passer) in passers.iter_mut().enumerate() {
        while let Some(event) = passer.poll_event() {
            events.push((i, event));
        }
    }
    events
}

/// A pipe whose write end got `number` (8 bytes, little-endian) and was then
/// closed; returns the read end. Reading it back to end-of-file proves which
/// pipe arrived and that no stray copy of the write end survived.
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

/// The environment variable that tells a re-run test binary which role the
/// selected test plays in it.
pub const ROLE_VAR: &str = "FDPASS_MIO_TEST_ROLE";

/// The role this process plays, if it is a child started by [`self_command`].
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A command re-running this test binary for the single test `test_name`
/// with `role`, output captured. A child reports through lines starting with
/// `RESULT`; requiring one also catches a test name that matched nothing,
/// which the harness would report as a success.
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
        .filter_map(|line| line.strip_prefix("RESULT "))
        .map(str::to_owned)
        .collect();
    assert!(
        !lines.is_empty(),
        "child reported no RESULT line:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    lines
}
