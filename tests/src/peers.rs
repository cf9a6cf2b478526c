//! Peers in another language: the Python 3 programs under `tests/peers/`,
//! started with one end of a connection as their standard input.
//!
//! `native_peer.py` was written from `docs/wire.md` alone, so a scenario that
//! passes with it proves the page is the whole contract of the native wire.
//! `classic_peer.py` uses nothing but Python's own `socket.send_fds` and
//! `socket.recv_fds`, as a Python program facing a classic passer would.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use crate::{ChildProcess, Finished, Results};

/// `tests/peers/native_peer.py`.
pub const NATIVE_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/native_peer.py");
/// `tests/peers/classic_peer.py`.
pub const CLASSIC_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/classic_peer.py");

/// Printed by a peer that completed its mode.
const DONE: &str = "PEER-DONE";
/// Prefix of a peer's measurements.
const RESULT: &str = "PEER-RESULT";
/// Prefix of the line a peer names the peer's protocol error on.
const ERROR: &str = "PEER-ERROR";

/// Starts `python3 <script> <args>` with `socket` as its standard input
/// (the script's `--fd 0`, its default).
pub fn python_peer(script: &str, socket: OwnedFd, args: &[&str]) -> ChildProcess {
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let name = script.rsplit('/').next().unwrap_or(script);
    ChildProcess::start_with_stdin(name, command, socket)
}

/// Waits for a peer and requires that it completed its mode; returns what
/// it reported.
pub fn peer_finished(peer: ChildProcess) -> Results {
    let finished = peer.wait();
    assert!(
        finished.status.success() && finished.stdout.contains(DONE),
        "the Python peer failed:\n{finished}"
    );
    Results(
        finished
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix(RESULT)?.trim().split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// Waits for a peer that must have ended, one way or another, without
/// requiring success; for a peer whose other end failed on purpose.
pub fn peer_ended(peer: ChildProcess) -> Finished {
    peer.wait()
}

/// The protocol error a peer named, if it named one.
pub fn peer_error(finished: &Finished) -> Option<&str> {
    finished
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix(ERROR)?.split_whitespace().next())
}
