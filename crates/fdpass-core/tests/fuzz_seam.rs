//! Fuzzing the passer through its system-call seam, with proptest, in every
//! `cargo test` (the coverage-guided targets in `fuzz/` need `cargo fuzz` and
//! run separately).
//!
//! A case is a configuration (strategy, limit, retry policy, faults while
//! constructing) and a sequence of inputs: answers queued for the scripted
//! `Sys` (byte counts, installed descriptor counts, the truncation and foreign
//! control flags, every errno the passer handles and several it does not, end
//! of stream, partial and zero-length writes, `dup`, `pipe` and `shutdown`
//! failures) interleaved with pushes, cancels, readiness, timeouts, draining,
//! `close` and `abort` on the passer. After every input:
//!
//! - the scripted `Sys` saw nothing wrong: every descriptor closed through
//!   `Sys::close` once, none closed behind its back, sends in the wire format;
//! - events are consistent: `Sent` tokens grow and name descriptors the kernel
//!   took, and the kernel took them in push order, in batches of at most the
//!   limit; `Received` tokens grow, name live requests, and
//!   carry descriptors installed by `recvmsg`, in installation order; at most
//!   one `Failed`, and no event after it (nor after a local close);
//! - the passer holds no more received descriptors than the outstanding
//!   requests plus one message (after draining: fewer than one message), and
//!   `held_descriptors()` equals what is really open on its behalf;
//! - every message read is judged by the wire rules of `docs/wire.md`,
//!   independently of the passer (with the bytes owed by descriptors that
//!   came ahead of them): a rejected message fails the passer with one of the
//!   errors that apply, an accepted one never does, and nothing is read after
//!   a rejection or the end of the stream;
//! - lossless: no descriptor of an accepted message is closed by the passer
//!   while it stays usable;
//! - a read that installed more descriptors than the limit, or a consuming
//!   read that did not consume exactly the peeked message, failed the passer;
//! - `WhenReady` only after the kernel answered `EAGAIN` (or wrote nothing);
//! - the peek strategy holds no probe slots between inputs, the sentinel its
//!   origin and every slot (or a retry is pending);
//! - no deadline lies beyond `now + retry.max`, and back-pressure right after
//!   a successful send backs off from `retry.initial` again;
//! - a handler makes a system call exactly when the passer said it wanted
//!   to, and `handle_timeout(now)` leaves no deadline at or before `now`;
//! - a usable passer with requests outstanding (and the stream not ended)
//!   or sends queued wants to act or has a deadline: it is never stuck;
//! - a failed or closed passer holds nothing but the sends the kernel never
//!   took (a closed one not even those), wants nothing, has no deadline and
//!   returns its error to later pushes; `take_unsent` hands those sends
//!   back, in push order.
//!
//! At the end (after dropping the passer with whatever events it still
//! queued, and the application closing what it kept) no descriptor made by
//! the case is open, counted in `/proc/self/fd`.
//!
//! `FDPASS_FUZZ_CASES` sets the number of cases (default 2,000); the test
//! prints how many cases and executions ran, and the seed, which
//! `FDPASS_FUZZ_SEED` takes to replay a run. For a long run:
//! `FDPASS_FUZZ_CASES=200000 cargo test --release -p fdpass-core --test fuzz_seam -- --nocapture`.
// Linux and Android only: the descriptors are tagged memfds counted in `/proc/self/fd`.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod hostile;

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fdpass_core::{
    Config, Error, Event, Interest, Passer, ProtocolError, RecvToken, Reservation, RetryPolicy,
    SendToken, Want,
};
use hostile::scripted::{
    Kind, Msg, Read, RecvAnswer, Scripted, ScriptedSys, SendAnswer, EXTRA_ROOM,
};
use hostile::Tag;
use proptest::prelude::*;
use proptest::test_runner::{
    Config as ProptestConfig, RngAlgorithm, RngSeed, TestCaseError, TestCaseResult, TestRunner,
};
use rustix::io::Errno;

const DEFAULT_CASES: u32 = 2_000;

/// Errors for `recvmsg`: those the passer handles (`EAGAIN`, `EINTR`) and
/// failures it must turn into `Event::Failed`, including `EMSGSIZE`, which
/// BSD returns for a full table.
const RECV_ERRNOS: [Errno; 12] = [
    Errno::AGAIN,
    Errno::INTR,
    Errno::CONNRESET,
    Errno::NOTCONN,
    Errno::BADF,
    Errno::NOMEM,
    Errno::NOBUFS,
    Errno::MSGSIZE,
    Errno::FAULT,
    Errno::INVAL,
    Errno::PIPE,
    Errno::IO,
];

/// Errors for `sendmsg`: retry now, wait, back off, or fail.
const SEND_ERRNOS: [Errno; 12] = [
    Errno::AGAIN,
    Errno::INTR,
    Errno::TOOMANYREFS,
    Errno::NOBUFS,
    Errno::NOMEM,
    Errno::PIPE,
    Errno::CONNRESET,
    Errno::MSGSIZE,
    Errno::BADF,
    Errno::INVAL,
    Errno::NOTCONN,
    Errno::FAULT,
];

/// Errors for `dup`: a full table (`EMFILE`, `ENFILE`), `EINTR`, and others.
const DUP_ERRNOS: [Errno; 6] = [
    Errno::MFILE,
    Errno::NFILE,
    Errno::INTR,
    Errno::BADF,
    Errno::NOMEM,
    Errno::INVAL,
];

const PIPE_ERRNOS: [Errno; 4] = [Errno::MFILE, Errno::NFILE, Errno::FAULT, Errno::NOMEM];
const SHUTDOWN_ERRNOS: [Errno; 4] = [Errno::NOTCONN, Errno::BADF, Errno::NOTSOCK, Errno::INVAL];
const NONBLOCK_ERRNOS: [Errno; 3] = [Errno::BADF, Errno::NOTTY, Errno::INVAL];

/// One input of a case.
#[derive(Debug, Clone)]
enum Input {
    /// Queue answers for the scripted `Sys`.
    Recv(RecvAnswer),
    /// For the read that consumes a peeked message.
    Discard(RecvAnswer),
    Send(SendAnswer),
    /// `ok` successful `dup`s, then one failing with the errno.
    Dup(usize, Errno),
    Shutdown(Errno),
    /// Inputs to the passer.
    PushSend(usize),
    /// One `push_send_many` of this many.
    PushSendMany(usize),
    PushRecv(usize),
    /// `try_recv`, with whatever events are still undrained.
    TryRecv,
    /// Cancels the n-th request ever made (modulo their number), which may be
    /// fulfilled or cancelled already.
    Cancel(usize),
    Readable,
    Writable,
    /// Move the clock forward and call `handle_timeout`.
    Advance(Duration),
    /// Move the clock to the next deadline, if any, and call `handle_timeout`.
    ToDeadline,
    /// The application drains the events.
    Drain,
    /// The application closes up to n of the received descriptors it kept.
    Release(usize),
    Close {
        drain_first: bool,
    },
    Abort,
}

#[derive(Debug, Clone)]
struct Case {
    reservation: Reservation,
    max: usize,
    retry: RetryPolicy,
    set_nonblocking: bool,
    /// Faults while constructing: `set_nonblocking`, `pipe`, and a `dup`
    /// failing after that many successes.
    nonblocking_fails: Option<Errno>,
    pipe_fails: Option<Errno>,
    dup_fails: Option<(usize, Errno)>,
    inputs: Vec<Input>,
}

fn pick<T: Copy + std::fmt::Debug + 'static>(from: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(from)
}

fn msg(max: usize) -> impl Strategy<Value = Msg> {
    (
        prop_oneof![3 => 0..=max + 1, 1 => 0..=usize::from(u8::MAX)],
        prop_oneof![3 => 0..=max, 1 => max + 1..=max + EXTRA_ROOM + 1],
        proptest::bool::weighted(0.08),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.05),
    )
        .prop_map(
            |(bytes, fds, truncated_data, truncated_control, foreign_control)| Msg {
                bytes,
                fds,
                truncated_data,
                truncated_control,
                foreign_control,
            },
        )
}

/// The weight of benign answers and inputs; failure-prone ones get the
/// case's hostility (1, 4 or 16) instead, so that some cases go deep into
/// retries and partial writes while others fail early in every possible way.
const BENIGN: u32 = 16;

fn input(reservation: Reservation, max: usize, hostility: u32) -> impl Strategy<Value = Input> {
    const B: u32 = BENIGN;
    let h = hostility;
    // A truncated read is a full table to the peek strategy, an everyday
    // event it waits out; to the sentinel it is a failure.
    let truncated = match reservation {
        Reservation::Peek => 2 * B,
        _ => h,
    };
    let recv = prop_oneof![
        // A well-formed message: one byte per descriptor.
        8 * B => (1..=max).prop_map(|n| RecvAnswer::Msg(Msg { bytes: n, fds: n, ..Msg::default() })),
        // Descriptors ahead of their bytes (a partial write on the other
        // side), or the owed bytes alone.
        B => (1..=max)
            .prop_flat_map(|n| (Just(n), 0..=n))
            .prop_map(|(fds, bytes)| RecvAnswer::Msg(Msg { bytes, fds, ..Msg::default() })),
        2 * B => pick(&RECV_ERRNOS[..2]).prop_map(RecvAnswer::Fail),
        // The end of the stream.
        1 => Just(RecvAnswer::Msg(Msg::default())),
        // A full table: fewer descriptors than the bytes promise.
        truncated => (1..=max)
            .prop_flat_map(|n| (Just(n), 0..n))
            .prop_map(|(bytes, fds)| RecvAnswer::Msg(Msg {
                bytes,
                fds,
                truncated_control: true,
                ..Msg::default()
            })),
        2 * h => msg(max).prop_map(RecvAnswer::Msg),
        h => pick(&RECV_ERRNOS[2..]).prop_map(RecvAnswer::Fail),
    ];
    // The consuming read after a peek: interrupted (retried), failing, or
    // returning something other than the peeked message.
    let discard = prop_oneof![
        1 => Just(RecvAnswer::Fail(Errno::INTR)),
        1 => pick(&RECV_ERRNOS).prop_map(RecvAnswer::Fail),
        // Fewer bytes than were peeked (more are cut to the buffer).
        2 => (0..=max).prop_map(|bytes| RecvAnswer::Msg(Msg { bytes, ..Msg::default() })),
        1 => msg(max).prop_map(RecvAnswer::Msg),
    ];
    let send = prop_oneof![
        6 * B => Just(SendAnswer::Write(usize::MAX)),
        2 * B => (0..=max + 1).prop_map(SendAnswer::Write),
        2 * B => pick(&SEND_ERRNOS[..5]).prop_map(SendAnswer::Fail),
        h => pick(&SEND_ERRNOS[5..]).prop_map(SendAnswer::Fail),
    ];
    prop_oneof![
        12 * B => recv.prop_map(Input::Recv),
        h => discard.prop_map(Input::Discard),
        10 * B => send.prop_map(Input::Send),
        B => (0..=max + 20, pick(&DUP_ERRNOS[..3])).prop_map(|(ok, e)| Input::Dup(ok, e)),
        h => (0..=max + 20, pick(&DUP_ERRNOS[3..])).prop_map(|(ok, e)| Input::Dup(ok, e)),
        1 => pick(&SHUTDOWN_ERRNOS).prop_map(Input::Shutdown),
        5 * B => (1..=max.min(6) + 2).prop_map(Input::PushSend),
        2 * B => (0..=2 * max + 3).prop_map(Input::PushSendMany),
        5 * B => (1..=4usize).prop_map(Input::PushRecv),
        3 * B => Just(Input::TryRecv),
        2 * B => any::<usize>().prop_map(Input::Cancel),
        8 * B => Just(Input::Readable),
        6 * B => Just(Input::Writable),
        2 * B => (0..=300u64).prop_map(|ms| Input::Advance(Duration::from_millis(ms))),
        3 * B => Just(Input::ToDeadline),
        4 * B => Just(Input::Drain),
        2 * B => (1..=8usize).prop_map(Input::Release),
        1 => any::<bool>().prop_map(|drain_first| Input::Close { drain_first }),
        1 => Just(Input::Abort),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let reservation = prop_oneof![Just(Reservation::Peek), Just(Reservation::Sentinel)];
    let max =
        prop_oneof![4 => 1..=5usize, 1 => Just(8usize), 1 => Just(64usize), 1 => Just(253usize)];
    let hostility = prop_oneof![Just(1u32), Just(4u32), Just(16u32)];
    (reservation, max, hostility).prop_flat_map(|(reservation, max, hostility)| {
        let retry = (1..=5u64, 0..=200u64).prop_map(|(initial, extra)| RetryPolicy {
            initial: Duration::from_millis(initial),
            max: Duration::from_millis(initial + extra),
        });
        (
            retry,
            proptest::bool::weighted(0.9),
            proptest::option::weighted(0.03, pick(&NONBLOCK_ERRNOS)),
            proptest::option::weighted(0.03, pick(&PIPE_ERRNOS)),
            proptest::option::weighted(0.05, (0..=max + 1, pick(&DUP_ERRNOS))),
            proptest::collection::vec(input(reservation, max, hostility), 0..100),
        )
            .prop_map(
                move |(
                    retry,
                    set_nonblocking,
                    nonblocking_fails,
                    pipe_fails,
                    dup_fails,
                    inputs,
                )| {
                    Case {
                        reservation,
                        max,
                        retry,
                        set_nonblocking,
                        nonblocking_fails,
                        pipe_fails,
                        dup_fails,
                        inputs,
                    }
                },
            )
    })
}

/// How many truncated peeks in a row, each with room found by the probe,
/// make a refusal (`docs/design.md`: "after four in a row").
const REFUSALS: usize = 4;

/// What `docs/wire.md` makes of one message read, judged independently of
/// the passer.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The read found nothing or failed (an errno).
    Nothing,
    /// The end of the stream.
    End,
    Accepted,
    /// A peek truncated with room for more descriptors: a full table or a
    /// refusal; the passer probes and retries.
    Truncated,
    /// The passer must fail with one of these.
    Reject(Vec<ProtocolError>),
}

/// The wire rules, applied to every message the scripted kernel handed out.
struct Oracle {
    reservation: Reservation,
    max: usize,
    /// Bytes owed by descriptors that arrived ahead of them.
    owed: usize,
    /// Reads judged so far.
    judged: usize,
    truncated_in_a_row: usize,
    last: Verdict,
    /// Installed numbers of accepted messages, as ranges.
    accepted: Vec<std::ops::Range<u64>>,
    /// Closes of installed descriptors checked so far.
    closes_checked: usize,
}

impl Oracle {
    fn judge(&mut self, read: &Read) -> Verdict {
        let got = match read.result {
            Err(_) => return Verdict::Nothing,
            Ok(got) => got,
        };
        let fds = read.installed;
        // The end of the stream carries nothing: no control data and no
        // truncation, which make even 0 bytes a message.
        let flagged = got.truncated_control || got.truncated_data || got.foreign_control;
        if got.bytes == 0 && fds == 0 && !flagged {
            return Verdict::End;
        }
        let max = self.max;
        let mut errors = Vec::new();
        if got.foreign_control {
            errors.push(ProtocolError::ForeignControlMessage);
        }
        if got.truncated_data {
            errors.push(ProtocolError::MessageTooLong { limit: max });
        }
        if fds > max || (got.truncated_control && fds >= max) {
            errors.push(ProtocolError::TooManyDescriptors { limit: max });
        }
        if got.truncated_control && fds < max && self.reservation == Reservation::Sentinel {
            // The reserved slots were free: the kernel dropped descriptors.
            errors.push(ProtocolError::DescriptorsRefused);
        }
        if !got.truncated_control && got.bytes > self.owed + fds {
            errors.push(ProtocolError::BytesWithoutDescriptors {
                bytes: got.bytes,
                descriptors: fds,
            });
        }
        if !errors.is_empty() {
            return Verdict::Reject(errors);
        }
        if got.truncated_control {
            self.truncated_in_a_row += 1;
            return Verdict::Truncated;
        }
        self.owed = self.owed + fds - got.bytes;
        self.truncated_in_a_row = 0;
        Verdict::Accepted
    }

    /// Judges the reads made since the last call.
    fn update(&mut self, fake: &Scripted) -> TestCaseResult {
        for read in fake.reads_from(self.judged) {
            check(
                !matches!(self.last, Verdict::End | Verdict::Reject(_)),
                || format!("read {read:?} after {:?}", self.last),
            )?;
            self.judged += 1;
            self.last = self.judge(&read);
            if self.last == Verdict::Accepted {
                self.accepted
                    .push(read.first..read.first + read.installed as u64);
            }
        }
        Ok(())
    }

    /// Lossless: while the passer stays usable it closes no descriptor of
    /// a message it accepted (they go to requests or wait for them).
    fn check_closes(&mut self, fake: &Scripted, usable: bool) -> TestCaseResult {
        let closed = fake.closed_installed_from(self.closes_checked);
        self.closes_checked += closed.len();
        if usable {
            for n in closed {
                check(!self.accepted.iter().any(|r| r.contains(&n)), || {
                    format!("closed r{n}, a descriptor of an accepted message")
                })?;
            }
        }
        Ok(())
    }

    /// Whether the passer may fail with `error` after the reads so far.
    fn allows(&self, error: &ProtocolError) -> bool {
        match &self.last {
            Verdict::Reject(errors) => errors.contains(error),
            Verdict::Truncated => {
                *error == ProtocolError::DescriptorsRefused && self.truncated_in_a_row >= REFUSALS
            }
            _ => false,
        }
    }
}

/// What the application has seen, to check each new event against.
struct Model {
    oracle: Oracle,
    retry: RetryPolicy,
    max: usize,
    /// Successful `push_send`s.
    pushed: u64,
    last_sent: Option<u64>,
    /// Every request token handed out, for `Cancel`.
    issued: Vec<RecvToken>,
    /// Requests neither fulfilled (as far as drained events say) nor cancelled.
    pending: BTreeSet<u64>,
    last_received: Option<u64>,
    last_installed: Option<u64>,
    /// Received descriptors the application keeps for a while.
    kept: Vec<OwnedFd>,
    /// The failure's text, once `Failed` was seen.
    failed: Option<String>,
    /// `SendFailed` was seen: no `Sent` may follow.
    send_failed: bool,
    closed_events: usize,
    /// No event may come any more (after `Failed`, or after a local close
    /// with the events drained first).
    silent: bool,
    received: u64,
    sent_events: u64,
}

fn check(condition: bool, why: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(why()))
    }
}

impl Model {
    fn on_event(&mut self, fake: &Scripted, event: Event) -> Result<(), TestCaseError> {
        check(!self.silent, || format!("event after the end: {event:?}"))?;
        match event {
            Event::Sent(token) => {
                check(!self.send_failed, || {
                    format!("Sent({}) after SendFailed", token.0)
                })?;
                self.sent_events += 1;
                check(self.last_sent < Some(token.0), || {
                    format!("Sent({}) after Sent({:?})", token.0, self.last_sent)
                })?;
                check(token.0 < self.pushed, || {
                    format!("Sent({}) with {} pushed", token.0, self.pushed)
                })?;
                let taken = fake.taken().len() as u64;
                check(token.0 < taken, || {
                    format!("Sent({}) but the kernel took {taken}", token.0)
                })?;
                self.last_sent = Some(token.0);
            }
            Event::Received(token, fd) => {
                self.received += 1;
                let kind = fake.kind_of(fd.as_raw_fd());
                let Some(Kind::Installed(n)) = kind else {
                    return Err(TestCaseError::fail(format!(
                        "Received({}) carries {kind:?}, not a received descriptor",
                        token.0
                    )));
                };
                check(self.last_installed < Some(n), || {
                    format!(
                        "descriptor r{n} handed out after r{:?}",
                        self.last_installed
                    )
                })?;
                check(self.last_received < Some(token.0), || {
                    format!(
                        "Received({}) after Received({:?})",
                        token.0, self.last_received
                    )
                })?;
                check(self.pending.remove(&token.0), || {
                    format!("Received({}) for no pending request", token.0)
                })?;
                self.last_installed = Some(n);
                self.last_received = Some(token.0);
                self.kept.push(fd);
            }
            Event::SendFailed(error) => {
                check(!self.send_failed, || "SendFailed twice".to_owned())?;
                // Only the peer's refusal to read ends sending alone.
                check(
                    matches!(&error, Error::Io(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error())),
                    || format!("sending alone failed with {error:?}"),
                )?;
                self.send_failed = true;
            }
            Event::Closed => {
                self.closed_events += 1;
                check(self.closed_events == 1, || "Closed twice".to_owned())?;
            }
            Event::Failed(error) => {
                if let Error::Protocol(p) = &error {
                    check(self.oracle.allows(p), || {
                        format!(
                            "failed with {p:?}, the wire rules say {:?}",
                            self.oracle.last
                        )
                    })?;
                }
                tally_failure(&error);
                self.failed = Some(error.to_string());
                self.silent = true;
            }
            other => return Err(TestCaseError::fail(format!("unknown event {other:?}"))),
        }
        Ok(())
    }

    fn drain(&mut self, fake: &Scripted, passer: &mut Passer<ScriptedSys>) -> TestCaseResult {
        while let Some(event) = passer.poll_event() {
            self.on_event(fake, event)?;
        }
        Ok(())
    }

    /// A push was refused: the error must say why.
    fn refused(&self, passer: &Passer<ScriptedSys>, error: &Error) -> TestCaseResult {
        match passer.usable() {
            // A receive after the end of the stream, or a send after
            // sending alone failed (with that failure).
            Ok(()) => check(
                matches!(error, Error::PeerClosed)
                    || passer.send_usable().err().map(|e| e.to_string()) == Some(error.to_string()),
                || format!("a usable passer refused a push with {error:?}"),
            ),
            Err(reason) => check(reason.to_string() == error.to_string(), || {
                format!("refused with {error:?} while unusable for {reason:?}")
            }),
        }
    }
}

/// Everything checked after each input.
fn check_state(
    fake: &Scripted,
    passer: &Passer<ScriptedSys>,
    model: &Model,
    drained: bool,
    now: Instant,
) -> TestCaseResult {
    if let Some(at) = passer.poll_timeout() {
        check(at <= now + model.retry.max, || {
            format!("a deadline {:?} away, beyond retry.max", at - now)
        })?;
    }
    let violations = fake.violations();
    check(violations.is_empty(), || format!("{violations:#?}"))?;
    let census = fake.census();
    let kept = model.kept.len();
    let installed_held = census.installed - kept;
    check(installed_held <= model.pending.len() + model.max, || {
        format!(
            "the passer holds {installed_held} received descriptors with {} requests pending and a limit of {}",
            model.pending.len(),
            model.max
        )
    })?;
    check(passer.queued_sends() == census.pushed, || {
        format!("{} queued, {} open", passer.queued_sends(), census.pushed)
    })?;
    if drained {
        // Nothing waits in events: what is open for the passer is its own.
        let own = census.pushed + census.dup + census.pipe + installed_held;
        check(passer.held_descriptors() == own, || {
            format!(
                "held_descriptors() = {}, open on its behalf: {own} ({census:?}, {kept} kept)",
                passer.held_descriptors()
            )
        })?;
        check(installed_held < model.max || installed_held == 0, || {
            format!("{installed_held} read ahead with a limit of {}", model.max)
        })?;
    }
    match &model.oracle.last {
        Verdict::Reject(errors) => check(passer.usable().is_err(), || {
            format!("still usable after a message the wire rules reject with {errors:?}")
        })?,
        // (The sentinel retakes its slots after every read, which can fail
        // the passer right after it read the end.)
        Verdict::End => check(passer.is_peer_closed() || passer.usable().is_err(), || {
            "the end of the stream went unnoticed".to_owned()
        })?,
        _ => {}
    }
    // `WhenReady` only after the kernel said "would block".
    let interest = passer.interest();
    if interest.read == Want::WhenReady {
        let last = fake.last_read().map(|r| r.result);
        check(last == Some(Err(Errno::AGAIN)), || {
            format!("read WhenReady after {last:?}")
        })?;
    }
    if interest.write == Want::WhenReady {
        let last = fake.last_sends().1.map(|s| s.result);
        check(matches!(last, Some(Err(Errno::AGAIN) | Ok(0))), || {
            format!("write WhenReady after {last:?}")
        })?;
    }
    // The reservation holds exactly what its strategy keeps between reads.
    match model.oracle.reservation {
        // Probe slots live only until the retry within the same handler.
        Reservation::Peek => check(census.dup == 0, || {
            format!("{} probe slots held between inputs", census.dup)
        })?,
        _ if passer.usable().is_ok() => {
            check(census.pipe == 1 && census.dup <= model.max, || {
                format!("sentinel holds {census:?}")
            })?;
            check(
                census.dup == model.max || passer.poll_timeout().is_some(),
                || format!("{} of {} slots and no retry pending", census.dup, model.max),
            )?;
        }
        _ => {}
    }
    if fake.bad_discard() {
        check(passer.usable().is_err(), || {
            "consuming a peeked message went wrong, yet the passer goes on".to_owned()
        })?;
    }
    if fake.oversized() {
        // More descriptors than the limit arrived in one read: whatever
        // else was wrong with that message, the passer must have failed.
        check(passer.usable().is_err(), || {
            format!("accepted a message of more than {} descriptors", model.max)
        })?;
    }
    if passer.usable().is_ok() {
        let interest = passer.interest();
        let waiting = passer.poll_timeout().is_some();
        if passer.outstanding_recvs() > 0 && !passer.is_peer_closed() {
            check(interest.read.is_wanted() || waiting, || {
                format!(
                    "stuck: {} requests, {interest:?}, no deadline",
                    passer.outstanding_recvs()
                )
            })?;
        }
        if passer.queued_sends() > 0 && passer.send_usable().is_ok() {
            check(interest.write.is_wanted() || waiting, || {
                format!(
                    "stuck: {} queued, {interest:?}, no deadline",
                    passer.queued_sends()
                )
            })?;
        }
    }
    if passer.usable().is_err() {
        // Only the sends the kernel never took, kept for `take_unsent`.
        check(passer.held_descriptors() == passer.queued_sends(), || {
            format!(
                "an unusable passer holds {} with {} unsent",
                passer.held_descriptors(),
                passer.queued_sends()
            )
        })?;
        check(
            passer.interest()
                == Interest {
                    read: Want::Idle,
                    write: Want::Idle,
                },
            || format!("an unusable passer wants {:?}", passer.interest()),
        )?;
        check(passer.poll_timeout().is_none(), || {
            "an unusable passer has a deadline".to_owned()
        })?;
    }
    Ok(())
}

/// How the passers that failed failed, for the summary.
static FAILURE_KINDS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn tally_failure(error: &Error) {
    let kind = match error {
        Error::Io(e) => match e.raw_os_error() {
            Some(raw) => format!(
                "errno {raw} ({:?})",
                std::io::Error::from_raw_os_error(raw).kind()
            ),
            None => "other I/O error".to_owned(),
        },
        Error::Protocol(p) => {
            let name = format!("{p:?}");
            name.split([' ', '{']).next().unwrap_or_default().to_owned()
        }
        other => format!("{other:?}"),
    };
    let mut kinds = FAILURE_KINDS.lock().unwrap_or_else(|e| e.into_inner());
    *kinds.entry(kind).or_default() += 1;
}

static EXECUTIONS: AtomicU64 = AtomicU64::new(0);
static INPUTS: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
static CONSTRUCTION_FAILURES: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU64 = AtomicU64::new(0);
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static SENT_EVENTS: AtomicU64 = AtomicU64::new(0);
static PEER_CLOSED: AtomicU64 = AtomicU64::new(0);

fn run_case(case: Case) -> TestCaseResult {
    EXECUTIONS.fetch_add(1, Ordering::Relaxed);
    let fake = Scripted::new(Tag::new("fuzz"));
    let tag = fake.tag();
    fake.set_max_fds(case.max);
    if let Some(errno) = case.nonblocking_fails {
        fake.on_set_nonblocking(errno);
    }
    if let Some(errno) = case.pipe_fails {
        fake.on_pipe(errno);
    }
    if let Some((ok, errno)) = case.dup_fails {
        for _ in 0..ok {
            fake.on_dup(Ok(()));
        }
        fake.on_dup(Err(errno));
    }
    // The oracle knows the classic wire's rules (a byte per descriptor).
    let config = Config::default()
        .with_wire(fdpass_core::Wire::Classic { batch: case.max })
        .with_reservation(case.reservation)
        .with_max_fds_per_message(case.max)
        .with_retry(case.retry)
        .with_set_nonblocking(case.set_nonblocking);
    let socket = fake.socket();
    let socket_number = socket.as_raw_fd();
    let result = Passer::with_sys(fake.sys(), socket, config);
    let outcome = match result {
        Ok(mut passer) => {
            let outcome = drive(&fake, &mut passer, &case);
            // Dropped with whatever events it still queues.
            drop(passer);
            outcome
        }
        Err(error) => {
            CONSTRUCTION_FAILURES.fetch_add(1, Ordering::Relaxed);
            check(matches!(error, Error::Io(_)), || {
                format!("construction failed with {error:?}")
            })
            .map(|()| Vec::new())
        }
    };
    fake.closed_elsewhere(socket_number);
    CALLS.fetch_add(fake.calls(), Ordering::Relaxed);
    let kept = outcome?;
    for fd in kept {
        fake.app_close(fd);
    }
    let violations = fake.violations();
    check(violations.is_empty(), || format!("{violations:#?}"))?;
    check(fake.live() == 0, || {
        format!("recorded open at the end: {:?}", fake.census())
    })?;
    let open = tag.open();
    check(open.is_empty(), || format!("open at the end: {open:?}"))
}

/// Feeds the inputs; returns the received descriptors the application kept.
fn drive(
    fake: &Scripted,
    passer: &mut Passer<ScriptedSys>,
    case: &Case,
) -> Result<Vec<OwnedFd>, TestCaseError> {
    let mut model = Model {
        oracle: Oracle {
            reservation: case.reservation,
            max: case.max,
            owed: 0,
            judged: 0,
            truncated_in_a_row: 0,
            last: Verdict::Nothing,
            accepted: Vec::new(),
            closes_checked: 0,
        },
        retry: case.retry,
        max: case.max,
        pushed: 0,
        last_sent: None,
        issued: Vec::new(),
        pending: BTreeSet::new(),
        last_received: None,
        last_installed: None,
        kept: Vec::new(),
        failed: None,
        send_failed: false,
        closed_events: 0,
        silent: false,
        received: 0,
        sent_events: 0,
    };
    let mut now = Instant::now();
    // Drain errors must not lose the descriptors kept so far: the case's
    // leak check runs after a failed property too.
    let result = feed(fake, passer, case, &mut model, &mut now);
    INPUTS.fetch_add(case.inputs.len() as u64, Ordering::Relaxed);
    if model.failed.is_some() {
        FAILURES.fetch_add(1, Ordering::Relaxed);
    }
    RECEIVED.fetch_add(model.received, Ordering::Relaxed);
    SENT_EVENTS.fetch_add(model.sent_events, Ordering::Relaxed);
    PEER_CLOSED.fetch_add(model.closed_events as u64, Ordering::Relaxed);
    let kept = std::mem::take(&mut model.kept);
    match result {
        Ok(()) => {
            // Before the drop: everything recorded open really is, and
            // nothing else made by this case.
            let open = fake.tag().open().len();
            check(open == fake.live(), || {
                format!("{open} open in the table, {} recorded", fake.live())
            })?;
            Ok(kept)
        }
        Err(e) => {
            for fd in kept {
                fake.app_close(fd);
            }
            Err(e)
        }
    }
}

fn feed(
    fake: &Scripted,
    passer: &mut Passer<ScriptedSys>,
    case: &Case,
    model: &mut Model,
    now: &mut Instant,
) -> TestCaseResult {
    check_state(fake, passer, model, true, *now)?;
    for input in &case.inputs {
        fake.begin_input();
        let mut drained = false;
        match input {
            Input::Recv(answer) => fake.on_recv(*answer),
            Input::Discard(answer) => fake.on_discard(*answer),
            Input::Send(answer) => fake.on_send(*answer),
            Input::Dup(ok, errno) => {
                for _ in 0..*ok {
                    fake.on_dup(Ok(()));
                }
                fake.on_dup(Err(*errno));
            }
            Input::Shutdown(errno) => fake.on_shutdown(*errno),
            Input::PushSend(n) => {
                for _ in 0..*n {
                    let (fd, number) = fake.pushed();
                    match passer.push_send(fd) {
                        Ok(token) => {
                            check(token.0 == model.pushed && token.0 == number, || {
                                format!("push {number} got token {}", token.0)
                            })?;
                            model.pushed += 1;
                        }
                        Err(refused) => {
                            let error = refused.error();
                            // A refused push hands its descriptor back.
                            fake.app_close(refused.into_inner());
                            model.refused(passer, &error)?
                        }
                    }
                }
            }
            Input::PushSendMany(n) => {
                let (fds, numbers): (Vec<OwnedFd>, Vec<u64>) =
                    (0..*n).map(|_| fake.pushed()).unzip();
                match passer.push_send_many(fds) {
                    Ok(last) => {
                        let first = model.pushed;
                        check(numbers.iter().copied().eq(first..first + *n as u64), || {
                            format!("batch {numbers:?} pushed after {first}")
                        })?;
                        model.pushed += *n as u64;
                        let expected = (*n > 0).then(|| SendToken(model.pushed - 1));
                        check(last == expected, || {
                            format!("a batch of {n} returned {last:?}, not {expected:?}")
                        })?;
                    }
                    Err(refused) => {
                        let error = refused.error();
                        for fd in refused.into_inner() {
                            fake.app_close(fd);
                        }
                        model.refused(passer, &error)?
                    }
                }
            }
            Input::TryRecv => {
                if let Some((token, fd)) = passer.try_recv() {
                    check(model.issued.last() < Some(&token), || {
                        format!("try_recv token {} after {:?}", token.0, model.issued.last())
                    })?;
                    model.issued.push(token);
                    model.pending.insert(token.0);
                    // Handed out now, as if its event had been drained: the
                    // order checks see it before any event still queued.
                    model.on_event(fake, Event::Received(token, fd))?;
                }
            }
            Input::PushRecv(n) => {
                for _ in 0..*n {
                    match passer.push_recv() {
                        Ok(token) => {
                            check(model.issued.last() < Some(&token), || {
                                format!("request token {} after {:?}", token.0, model.issued.last())
                            })?;
                            model.issued.push(token);
                            model.pending.insert(token.0);
                        }
                        Err(error) => {
                            model.refused(passer, &error)?;
                            if matches!(error, Error::PeerClosed) {
                                // The Closed event may still wait in the queue.
                                check(passer.is_peer_closed(), || {
                                    "PeerClosed, yet the peer's close was not seen".to_owned()
                                })?;
                            }
                        }
                    }
                }
            }
            Input::Cancel(i) => {
                if !model.issued.is_empty() {
                    let token = model.issued[i % model.issued.len()];
                    if passer.cancel_recv(token) {
                        check(model.pending.remove(&token.0), || {
                            format!("cancelled {}, which was not pending", token.0)
                        })?;
                    }
                }
            }
            Input::Readable => {
                let wanted = passer.interest().read;
                let before = fake.calls();
                passer.handle_readable(*now);
                let calls = fake.calls() - before;
                check(wanted.is_wanted() == (calls > 0), || {
                    format!("read interest {wanted:?}, handle_readable made {calls} call(s)")
                })?;
            }
            Input::Writable => {
                let wanted = passer.interest().write;
                let before = fake.calls();
                passer.handle_writable(*now);
                let calls = fake.calls() - before;
                check(wanted.is_wanted() == (calls > 0), || {
                    format!("write interest {wanted:?}, handle_writable made {calls} call(s)")
                })?;
                // Back-pressure right after a message went out: the backoff
                // starts again from its first delay.
                if let (Some(before), Some(last)) = fake.last_sends() {
                    let pressure = matches!(
                        last.result,
                        Err(Errno::TOOMANYREFS | Errno::NOBUFS | Errno::NOMEM)
                    );
                    let sent = before.fds > 0 && matches!(before.result, Ok(n) if n > 0);
                    if calls > 0 && pressure && sent {
                        let next = passer.poll_timeout();
                        check(
                            next.is_some_and(|at| at <= *now + case.retry.initial),
                            || format!("backoff after a success not restarted: {next:?}"),
                        )?;
                    }
                }
            }
            Input::Advance(by) => {
                *now += *by;
                timeout(passer, *now)?;
            }
            Input::ToDeadline => {
                if let Some(at) = passer.poll_timeout() {
                    *now = (*now).max(at);
                }
                timeout(passer, *now)?;
            }
            Input::Drain => {
                model.drain(fake, passer)?;
                drained = true;
            }
            Input::Release(n) => {
                let n = (*n).min(model.kept.len());
                for fd in model.kept.drain(..n) {
                    fake.app_close(fd);
                }
            }
            Input::Close { drain_first } => {
                if *drain_first {
                    model.drain(fake, passer)?;
                    drained = true;
                }
                let was_open = passer.usable().is_ok();
                passer.close();
                check(passer.held_descriptors() == 0, || {
                    "a closed passer holds descriptors".to_owned()
                })?;
                if was_open && *drain_first {
                    model.silent = true;
                }
                match passer.push_recv() {
                    Ok(token) => {
                        return Err(TestCaseError::fail(format!(
                            "push_recv after close returned {token:?}"
                        )))
                    }
                    Err(error) => model.refused(passer, &error)?,
                }
            }
            Input::Abort => {
                let was_open = passer.usable().is_ok();
                passer.abort(std::io::Error::other("aborted by the test").into());
                check(passer.usable().is_err(), || "usable after abort".to_owned())?;
                // What the kernel never took comes back, in push order.
                let queued = passer.queued_sends();
                let unsent = passer.take_unsent();
                check(unsent.len() == queued && passer.queued_sends() == 0, || {
                    format!("{} of {queued} unsent handed back", unsent.len())
                })?;
                let numbers: Vec<Option<Kind>> = unsent
                    .iter()
                    .map(|fd| fake.kind_of(fd.as_raw_fd()))
                    .collect();
                check(
                    numbers.windows(2).all(|w| match w {
                        [Some(Kind::Pushed(a)), Some(Kind::Pushed(b))] => a < b,
                        _ => false,
                    }) && numbers.iter().all(|k| matches!(k, Some(Kind::Pushed(_)))),
                    || format!("unsent handed back as {numbers:?}"),
                )?;
                for fd in unsent {
                    fake.app_close(fd);
                }
                if was_open {
                    // The Failed event is queued last.
                    model.drain(fake, passer)?;
                    drained = true;
                    check(
                        model
                            .failed
                            .as_deref()
                            .is_some_and(|e| e.contains("aborted")),
                        || format!("abort reported {:?}", model.failed),
                    )?;
                }
            }
        }
        model.oracle.update(fake)?;
        model.oracle.check_closes(fake, passer.usable().is_ok())?;
        check_state(fake, passer, model, drained, *now)?;
    }
    // The application's last look, as a driver would before dropping.
    model.drain(fake, passer)?;
    check_state(fake, passer, model, true, *now)
}

fn timeout(passer: &mut Passer<ScriptedSys>, now: Instant) -> TestCaseResult {
    passer.handle_timeout(now);
    let next = passer.poll_timeout();
    check(next.is_none_or(|at| at > now), || {
        format!("a deadline at or before now remains after handle_timeout: {next:?}")
    })
}

#[test]
fn fuzz_passer_through_the_seam() {
    let cases = std::env::var("FDPASS_FUZZ_CASES")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("FDPASS_FUZZ_CASES={v:?}: {e}"))
        })
        .unwrap_or(DEFAULT_CASES);
    // A fixed seed replays a run: the summary prints the one used.
    let seed = std::env::var("FDPASS_FUZZ_SEED")
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("FDPASS_FUZZ_SEED={v:?}: {e}"))
        })
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(Instant::now().elapsed().as_nanos());
            hasher.finish()
        });
    let config = ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        // The default ChaCha generator, unoptimised in a debug build, would
        // take most of the run's time.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), run_case);
    println!(
        "fuzz_seam: seed {seed}, {cases} cases, {} executions (with shrinking), {} inputs, {} system calls; \
         {} descriptors received, {} Sent events, {} peer closes, {} constructions failed, \
         {} passers failed; {:.1?}: {}",
        EXECUTIONS.load(Ordering::Relaxed),
        INPUTS.load(Ordering::Relaxed),
        CALLS.load(Ordering::Relaxed),
        RECEIVED.load(Ordering::Relaxed),
        SENT_EVENTS.load(Ordering::Relaxed),
        PEER_CLOSED.load(Ordering::Relaxed),
        CONSTRUCTION_FAILURES.load(Ordering::Relaxed),
        FAILURES.load(Ordering::Relaxed),
        started.elapsed(),
        if result.is_ok() {
            "no failure, no leak"
        } else {
            "FAILED"
        },
    );
    let kinds = FAILURE_KINDS.lock().unwrap_or_else(|e| e.into_inner());
    println!("fuzz_seam: passer failures by kind: {kinds:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
}
