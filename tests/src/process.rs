//! Child processes: the test binary re-run for one test in another role.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use fdpass_core::child::{Handoff, ENV_VAR, ID_VAR};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::{timed_out, wait_readable, OVERALL};

/// The role a re-run test binary plays; unset in the process the test
/// harness started.
const ROLE_VAR: &str = "FDPASS_CONFORMANCE_ROLE";
/// The adapter a child was started for, checked against the one it runs.
const ADAPTER_VAR: &str = "FDPASS_CONFORMANCE_ADAPTER";
/// Printed by a child whose role returned normally. Requiring it catches a
/// test name that matched nothing, which the harness reports as a success.
const DONE: &str = "FDPASS-CONFORMANCE-ROLE-DONE";
/// Prefix of the lines a child reports measurements with.
const RESULT: &str = "FDPASS-CONFORMANCE-RESULT";

/// Where a scenario runs: which test, for which adapter, in which role.
#[derive(Debug)]
pub struct Ctx {
    /// The test's name as the harness knows it (`<adapter>::<scenario>`).
    test: String,
    adapter: &'static str,
    role: Option<String>,
}

impl Ctx {
    pub(crate) fn new(adapter: &'static str, test_path: &str) -> Ctx {
        // `module_path!()` starts with the test crate's name; the harness's
        // test names do not.
        let test = test_path
            .split_once("::")
            .map_or(test_path, |(_crate, rest)| rest)
            .to_owned();
        let role = std::env::var(ROLE_VAR).ok();
        if role.is_some() {
            let expected = std::env::var(ADAPTER_VAR).unwrap_or_default();
            assert_eq!(
                expected, adapter,
                "a child for adapter {expected:?} ran adapter {adapter:?}"
            );
        }
        Ctx {
            test,
            adapter,
            role,
        }
    }

    /// The role of this process: `None` in the process the test harness
    /// started, the name given to [`command`](Self::command) in a child.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// Fails on a role the scenario does not know.
    pub fn unknown_role(&self) -> ! {
        panic!("{}: no role {:?} in this scenario", self.test, self.role)
    }

    pub(crate) fn done(&self) {
        if let Some(role) = &self.role {
            println!("{DONE} {role}");
        }
    }

    /// A command that re-runs this test binary for this test only, as
    /// `role`, with its output captured.
    pub fn command(&self, role: &str) -> Command {
        let exe = std::env::current_exe().expect("path of the test binary");
        let mut command = Command::new(exe);
        command
            .args(["--exact", &self.test, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(ADAPTER_VAR, self.adapter)
            // A child of a child must not mistake its parent's socket for one
            // handed to it.
            .env_remove(ENV_VAR)
            .env_remove(ID_VAR)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts a child in `role` that inherits one end of a new socketpair
    /// (it calls [`inherited`](crate::inherited)); returns our end.
    pub fn spawn_connected(&self, role: &str) -> (OwnedFd, ChildProcess) {
        let handoff = Handoff::new().expect("create a socketpair");
        let mut command = self.command(role);
        handoff.configure(&mut command);
        let child = ChildProcess::start(role, command);
        (handoff.finish(), child)
    }

    /// Starts a child in `role` with no connection.
    pub fn spawn(&self, role: &str) -> ChildProcess {
        ChildProcess::start(role, self.command(role))
    }

    /// In a child: waits for the parent's [`ChildProcess::signal`].
    pub fn wait_signal(&self) {
        let stdin = std::io::stdin();
        wait_readable(&stdin, "the parent's signal");
        let mut byte = [0u8];
        loop {
            match rustix::io::read(stdin.as_fd(), &mut byte) {
                Ok(1) => return,
                Ok(_) => panic!("the parent went away without signalling"),
                Err(Errno::INTR) => {}
                Err(e) => panic!("reading the parent's signal failed: {e}"),
            }
        }
    }

    /// In a child: reports a measurement to the parent (see
    /// [`ChildProcess::finish`]).
    pub fn report(&self, key: &str, value: impl fmt::Display) {
        println!("{RESULT} {key}={value}");
    }
}

/// A running child process; killed and reaped if dropped before
/// [`wait`](Self::wait) (a failing parent leaves no orphans).
pub struct ChildProcess {
    role: String,
    child: Option<Child>,
    /// Our end of the child's standard input.
    signal: Option<File>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl ChildProcess {
    /// Spawns `command` (made by [`Ctx::command`]) with a pipe for
    /// [`signal`](Self::signal) as its standard input.
    pub fn start(role: &str, command: Command) -> ChildProcess {
        let (read_end, write_end) =
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("create the signal pipe");
        let mut child = ChildProcess::start_with_stdin(role, command, read_end);
        child.signal = Some(File::from(write_end));
        child
    }

    /// Spawns `command` (made by [`Ctx::command`]) with `stdin` as its
    /// standard input.
    pub fn start_with_stdin(role: &str, mut command: Command, stdin: OwnedFd) -> ChildProcess {
        command.stdin(Stdio::from(stdin));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start the {role} child: {e}"));
        // Drained as the child writes, so a chatty child never blocks on a
        // full pipe.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = child.stdout.take().map(|p| drain(Box::new(p)));
        let stderr = child.stderr.take().map(|p| drain(Box::new(p)));
        ChildProcess {
            role: role.to_owned(),
            child: Some(child),
            signal: None,
            stdout,
            stderr,
        }
    }

    /// Tells the child to go on (it waits in [`Ctx::wait_signal`]).
    pub fn signal(&mut self) {
        self.signal
            .as_mut()
            .expect("this child has no signal pipe")
            .write_all(&[1])
            .expect("signal the child");
    }

    /// Kills the child with `SIGKILL` (it is reaped by [`wait`](Self::wait)).
    pub fn kill(&mut self) {
        self.child
            .as_mut()
            .expect("the child is running")
            .kill()
            .expect("kill the child");
    }

    /// Waits for the child to exit; kills it and fails after [`OVERALL`].
    pub fn wait(mut self) -> Finished {
        let mut child = self.child.take().expect("the child is running");
        // A child still waiting for a signal learns that none will come.
        drop(self.signal.take());
        let exited = wait_exit(&child);
        if !exited {
            let _ = child.kill();
        }
        let status = child.wait().expect("reap the child");
        let collect = |h: Option<JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        let finished = Finished {
            role: std::mem::take(&mut self.role),
            status,
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
        };
        if !exited {
            timed_out(&format!("the child\n{finished}\n"));
        }
        finished
    }

    /// Waits for the child, requires that its role completed, and returns
    /// what it [reported](Ctx::report).
    pub fn finish(self) -> Results {
        let finished = self.wait();
        assert!(
            finished.status.success() && finished.stdout.contains(DONE),
            "the child failed:\n{finished}"
        );
        let pairs = finished
            .stdout
            .lines()
            // The harness prints the test's name on the line where a child's
            // output starts, so a report may follow other text.
            .filter_map(|line| line.split_once(RESULT)?.1.trim().split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Results(pairs)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How much longer than [`OVERALL`] a parent waits for its child: a child
/// stuck in one operation fails on its own first, and says where.
const CHILD_GRACE: Duration = Duration::from_secs(15);

/// Waits for `child` to exit (without reaping it); false if it did not
/// within [`OVERALL`] and [`CHILD_GRACE`].
fn wait_exit(child: &Child) -> bool {
    let pidfd = pidfd_open(Pid::from_child(child), PidfdFlags::empty()).expect("pidfd_open");
    let timeout = Timespec::try_from(OVERALL + CHILD_GRACE).expect("a representable timeout");
    loop {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(n) => return n > 0,
            Err(Errno::INTR) => {}
            Err(e) => panic!("waiting for the child failed: {e}"),
        }
    }
}

/// A child process that exited.
pub struct Finished {
    role: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it printed.
    pub stdout: String,
    /// Everything it printed to standard error.
    pub stderr: String,
}

impl Finished {
    /// The signal that killed the child, if one did.
    pub fn killed_by(&self) -> Option<i32> {
        self.status.signal()
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} child ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.role, self.status, self.stdout, self.stderr
        )
    }
}

/// The measurements a child reported, by key.
#[derive(Debug)]
pub struct Results(pub(crate) Vec<(String, String)>);

impl Results {
    /// The number reported under `key`.
    pub fn number(&self, key: &str) -> u64 {
        let (_, value) = self
            .0
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("the child reported no {key}: {self:?}"));
        value
            .parse()
            .unwrap_or_else(|e| panic!("{key}={value} is not a number: {e}"))
    }
}
