//! The second process: this binary started again with `--child CASE`.
//!
//! The parent hands it one end of a socketpair ([`fdpass_core::child`]) and
//! steers it over its standard input and output, one line per command, so
//! that the socket carries nothing but the measured traffic:
//!
//! - `recv N`: receive N descriptors (or, in a message case, N messages),
//!   closing each; answers
//!   `ok ALLOCATIONS CPU_NANOS` (allocations this process made meanwhile, and
//!   the CPU time it used).
//! - `echo N`: send back each of N descriptors as it arrives; answers the same.
//! - `quit`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

use fdpass_core::child::{adopt_inherited, Handoff};

use crate::case::{Case, Load};
use crate::{alloc, endpoint, pin, BoxError};

/// The parent's handle on a running child.
pub struct Child {
    process: std::process::Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Child {
    /// Starts the child for `case`; returns it and the parent's socket.
    pub fn spawn(case: Case) -> Result<(Child, OwnedFd), BoxError> {
        let handoff = Handoff::new()?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("--child")
            .arg(case.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        handoff.configure(&mut command);
        let mut process = command.spawn()?;
        let socket = handoff.finish();
        let input = BufWriter::new(process.stdin.take().ok_or("no child stdin")?);
        let output = BufReader::new(process.stdout.take().ok_or("no child stdout")?);
        Ok((
            Child {
                process,
                input,
                output,
            },
            socket,
        ))
    }

    /// Sends one command line.
    pub fn command(&mut self, line: &str) -> Result<(), BoxError> {
        writeln!(self.input, "{line}")?;
        self.input.flush()?;
        Ok(())
    }

    /// Waits for the answer to the last command: the child's allocation count
    /// and CPU nanoseconds meanwhile.
    pub fn answer(&mut self) -> Result<(u64, u64), BoxError> {
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            return Err("the child exited without answering".into());
        }
        let answer = line
            .trim()
            .strip_prefix("ok ")
            .and_then(|rest| rest.split_once(' '))
            .ok_or_else(|| format!("the child answered {line:?}"))?;
        Ok((answer.0.parse()?, answer.1.parse()?))
    }

    /// Tells the child to quit and waits for it.
    pub fn finish(mut self) -> Result<(), BoxError> {
        self.command("quit")?;
        let status = self.process.wait()?;
        if !status.success() {
            return Err(format!("the child failed: {status}").into());
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // After `finish` this finds the child already reaped; after an error
        // it makes sure no child outlives the run.
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// The child's main loop.
pub fn serve(case: &str) -> Result<(), BoxError> {
    let case = Case::parse(case).ok_or_else(|| format!("unknown case {case:?}"))?;
    crate::raise_descriptor_limit();
    let mut endpoint = endpoint::open(case, adopt_inherited()?)?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let count: usize = words.next().map_or(Ok(0), str::parse)?;
        let before = alloc::allocations();
        let cpu_before = alloc::cpu_nanos();
        match verb {
            "recv" if case.load == Load::Fds => endpoint.recv_n(count)?,
            "recv" => endpoint.recv_messages(case.load, count)?,
            "echo" => endpoint.echo(count)?,
            "echo-pinned" => {
                let cpu: usize = words
                    .next()
                    .ok_or("echo-pinned needs a processor")?
                    .parse()?;
                let _pinned = pin::Pinned::to(cpu)?;
                endpoint.echo(count)?;
            }
            "quit" => return Ok(()),
            _ => return Err(format!("unknown command {line:?}").into()),
        }
        let cpu = alloc::cpu_nanos() - cpu_before;
        let allocations = alloc::allocations() - before;
        writeln!(stdout, "ok {allocations} {cpu}")?;
        stdout.flush()?;
    }
}
