//! A full descriptor table and a peer that dies: scenarios that change
//! process-wide state (the descriptor limit, the table itself, extra threads)
//! run in child processes, re-running this test binary for one test. The
//! parent sends over a Unix-domain listener and asserts on what the child
//! reports and how it exits.

mod common;

use std::cell::Cell;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    accept_from, drive, field, numbered_pipe, open_descriptors, read_number, results, self_command,
    TempDir,
};
use fdpass_core::socket::{connect, Listener};
use fdpass_core::sys::{Received, RecvMode, Sys, SystemCalls};
use fdpass_core::{Config, Event, Passer, Reservation};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Where a child finds the parent's listener.
const SOCKET_VAR: &str = "FDPASS_TEST_SOCKET";

/// The child's descriptor limit: small enough to fill in a moment.
const LIMIT: u64 = 20;

/// Descriptors sent into the small table: more than it can ever hold.
const COUNT: u64 = 30;

/// Receive this many, then fill the table to the limit again.
const REFILL_EVERY: u64 = 3;

/// The parent sends this many at a time: one message under batching, one
/// message each with one descriptor per message.
const GROUP: u64 = 3;

fn config(reservation: Reservation, max: usize) -> Config {
    Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max)
}

#[test]
fn full_table_sentinel_one_per_message() {
    full_table(
        "full_table_sentinel_one_per_message",
        config(Reservation::Sentinel, 1),
        false,
    );
}

#[test]
fn full_table_peek_default() {
    full_table(
        "full_table_peek_default",
        config(Reservation::Peek, Config::default().max_fds_per_message),
        false,
    );
}

#[test]
fn full_table_peek_with_churning_threads() {
    full_table(
        "full_table_peek_with_churning_threads",
        config(Reservation::Peek, Config::default().max_fds_per_message),
        true,
    );
}

/// The parent sends `COUNT` numbered pipes; the child receives them with its
/// table limited to `LIMIT` and kept full, and checks each number.
fn full_table(name: &str, config: Config, churn: bool) {
    if common::role().as_deref() == Some("receiver") {
        return receive_into_full_table(config, churn);
    }
    let line = send_to_child(name, config, COUNT, GROUP);
    assert_eq!(field(&line, "received"), COUNT);
    // The table really was freed and filled up again, over and over, and
    // the passer had to wait for room more than once.
    assert!(field(&line, "fills") >= COUNT / REFILL_EVERY / 2, "{line}");
    assert!(field(&line, "waits") >= 2, "{line}");
}

/// Starts `name` as a child in the role "receiver", sends it `count`
/// numbered pipes, and returns the child's report.
fn send_to_child(name: &str, config: Config, count: u64, group: u64) -> String {
    let dir = TempDir::new("full-table");
    let listener = Listener::bind(dir.path().join("sock")).unwrap();
    let child = self_command(name, "receiver")
        .env(SOCKET_VAR, listener.path())
        .spawn()
        .unwrap();
    let (socket, child) = accept_from(&listener, child);
    let mut passer = Passer::new(socket, config).unwrap();
    // Small groups, each pushed once the previous one is sent: a message can
    // only be received whole, so it must never carry more descriptors than
    // the child's table can make room for.
    let mut pushed = 0;
    let mut sent = 0;
    drive(&mut [&mut passer], |passers, events| {
        for (_, event) in events {
            match event {
                Event::Sent(token) => sent = token.0 + 1,
                other => panic!("unexpected event: {other:?}"),
            }
        }
        if sent == pushed {
            for _ in 0..group.min(count - pushed) {
                passers[0].push_send(numbered_pipe(pushed)).unwrap();
                pushed += 1;
            }
        }
        sent == count
    });
    // Keep our end open until the child is done, so that it never sees the
    // end of the stream early.
    let output = child.wait_with_output().unwrap();
    drop(passer);
    results(&output).swap_remove(0)
}

/// Lowers this process's descriptor limit to `LIMIT`.
fn limit_table() {
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(LIMIT),
            maximum: hard,
        },
    )
    .unwrap();
}

/// Child side of [`full_table`].
fn receive_into_full_table(config: Config, churn: bool) {
    let socket = connect(std::env::var_os(SOCKET_VAR).expect("socket path")).unwrap();
    let mut passer = Passer::new(socket, config).unwrap();
    limit_table();

    // Two threads that open and close descriptors as fast as they can, so
    // that the few free slots change hands all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..if churn { 2 } else { 0 })
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut opened = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match open_null() {
                        Ok(fd) => {
                            drop(fd);
                            opened += 1;
                        }
                        Err(Errno::MFILE | Errno::INTR) => {}
                        Err(e) => panic!("open /dev/null: {e}"),
                    }
                }
                opened
            })
        })
        .collect();

    let mut fillers = Vec::new();
    let mut fills = 0;
    fill(&mut fillers, &mut fills);
    for _ in 0..COUNT {
        passer.push_recv().unwrap();
    }
    let mut received = 0;
    let mut waits = 0;
    let mut last_deadline = None;
    drive(&mut [&mut passer], |passers, events| {
        for (_, event) in events {
            match event {
                Event::Received(token, fd) => {
                    assert_eq!(token.0, received);
                    assert_eq!(read_number(fd), received, "lost or reordered");
                    received += 1;
                    if received % REFILL_EVERY == 0 {
                        fill(&mut fillers, &mut fills);
                    }
                }
                other => panic!("unexpected event: {other:?}"),
            }
        }
        // A new retry deadline means the passer found no room and backs off:
        // free a little of the table for it, once per back-off.
        let deadline = passers[0].poll_timeout();
        if deadline.is_some() && deadline != last_deadline {
            waits += 1;
            fillers.truncate(fillers.len().saturating_sub(2));
        }
        last_deadline = deadline;
        received == COUNT
    });
    stop.store(true, Ordering::Relaxed);
    let opened: u64 = churners.into_iter().map(|t| t.join().unwrap()).sum();
    if churn {
        assert!(opened > 0, "the churning threads never got a descriptor");
    }
    println!("RESULT received={received} fills={fills} waits={waits} churned={opened}");
}

fn open_null() -> Result<OwnedFd, Errno> {
    rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// Opens /dev/null until the table is full (`EMFILE`); counts in `fills`
/// the calls that found room to fill.
fn fill(fillers: &mut Vec<OwnedFd>, fills: &mut u64) {
    let before = fillers.len();
    loop {
        match open_null() {
            Ok(fd) => fillers.push(fd),
            Err(Errno::MFILE) => break,
            Err(Errno::INTR) => {}
            Err(e) => panic!("open /dev/null: {e}"),
        }
    }
    if fillers.len() > before {
        *fills += 1;
    }
}

/// The race the peek strategy must survive, made deterministic: right before
/// each of the first peeks, "another thread" takes every free slot of a
/// nearly full table and gives them back right after, so every one of those
/// peeks truncates while the probe that follows finds the slots free again.
/// That is a busy table, not a refusal: all descriptors must arrive, none may
/// be reported as refused.
#[test]
fn peek_survives_slots_taken_before_each_retry() {
    const NAME: &str = "peek_survives_slots_taken_before_each_retry";
    let config = config(Reservation::Peek, Config::default().max_fds_per_message);
    if common::role().as_deref() == Some("receiver") {
        return receive_despite_thief(config);
    }
    let line = send_to_child(NAME, config, THEFTS + 3, 1);
    assert_eq!(field(&line, "received"), THEFTS + 3);
    assert_eq!(field(&line, "thefts"), THEFTS, "{line}");
}

/// More than the refusals the passer tolerates in a row.
const THEFTS: u64 = 6;

/// The real system calls, except that the first `THEFTS` peeks are preceded
/// by taking every free descriptor slot, which are freed again right after
/// the peek.
#[derive(Debug)]
struct SlotThief {
    inner: SystemCalls,
    thefts: Rc<Cell<u64>>,
}

impl Sys for SlotThief {
    fn sendmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno> {
        self.inner.sendmsg(socket, bytes, fds)
    }

    fn recvmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno> {
        let mut loot = Vec::new();
        if mode == RecvMode::Peek && self.thefts.get() < THEFTS {
            self.thefts.set(self.thefts.get() + 1);
            fill(&mut loot, &mut 0);
        }
        let result = self.inner.recvmsg(socket, buf, max_fds, mode, fds);
        drop(loot);
        result
    }

    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        self.inner.dup(fd)
    }

    fn close(&mut self, fd: OwnedFd) {
        self.inner.close(fd)
    }

    fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.inner.set_nonblocking(fd)
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        self.inner.pipe()
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.inner.shutdown(fd)
    }
}

/// Child side of [`peek_survives_slots_taken_before_each_retry`].
fn receive_despite_thief(config: Config) {
    let socket = connect(std::env::var_os(SOCKET_VAR).expect("socket path")).unwrap();
    let thefts = Rc::new(Cell::new(0));
    let thief = SlotThief {
        inner: SystemCalls::default(),
        thefts: Rc::clone(&thefts),
    };
    let mut passer = Passer::with_sys(thief, socket, config).unwrap();
    limit_table();
    // A nearly full table: room for exactly one descriptor, the size of
    // each message the parent sends.
    let mut fillers = Vec::new();
    fill(&mut fillers, &mut 0);
    fillers.pop();
    let count = THEFTS + 3;
    for _ in 0..count {
        passer.push_recv().unwrap();
    }
    let mut received = 0;
    drive(&mut [&mut passer], |_, events| {
        for (_, event) in events {
            match event {
                Event::Received(_, fd) => {
                    assert_eq!(read_number(fd), received, "lost or reordered");
                    received += 1;
                }
                other => panic!("unexpected event: {other:?}"),
            }
        }
        received == count
    });
    println!("RESULT received={received} thefts={}", thefts.get());
}

/// The receiving child exits while the parent is sending and receiving: the
/// parent's passer reports `Closed` or `Failed` as soon as the socket says so
/// (no timer involved) and holds nothing afterwards. The parent side itself
/// runs in a child process, so that its descriptor count is its own.
#[test]
fn peer_exit_mid_stream() {
    const NAME: &str = "peer_exit_mid_stream";
    match common::role().as_deref() {
        Some("sender") => return send_to_dying_peer(NAME),
        Some("dying") => return receive_a_little_then_exit(),
        _ => {}
    }
    let output = self_command(NAME, "sender").output().unwrap();
    let line = &results(&output)[0];
    assert_eq!(field(line, "baseline"), field(line, "after"), "{line}");
    assert_eq!(field(line, "held"), 0, "{line}");
}

/// How many the dying child takes before exiting, and sends back.
const TAKEN: u64 = 3;
const RETURNED: u64 = 2;

fn send_to_dying_peer(name: &str) {
    let baseline = open_descriptors();
    let started = Instant::now();
    let dir = TempDir::new("peer-exit");
    let listener = Listener::bind(dir.path().join("sock")).unwrap();
    let child = self_command(name, "dying")
        .env(SOCKET_VAR, listener.path())
        .spawn()
        .unwrap();
    let (socket, child) = accept_from(&listener, child);
    drop(listener);
    // One descriptor per message, so that the socket buffer fills after a
    // few hundred and the stream is still going when the peer dies.
    let mut passer = Passer::new(socket, config(Reservation::Peek, 1)).unwrap();
    for _ in 0..10 {
        passer.push_recv().unwrap();
    }
    let mut pushed = 0u64;
    let mut sent = 0u64;
    let mut received = Vec::new();
    let mut outcome = None;
    let mut send_failed = None;
    drive(&mut [&mut passer], |passers, events| {
        for (_, event) in events {
            assert!(outcome.is_none(), "event after the end: {event:?}");
            match event {
                Event::Sent(token) => {
                    assert!(send_failed.is_none(), "Sent after SendFailed");
                    sent = token.0 + 1
                }
                Event::Received(_, fd) => received.push(read_number(fd)),
                Event::SendFailed(e) => send_failed = Some(e.to_string()),
                Event::Closed => outcome = Some("closed".to_owned()),
                Event::Failed(e) => outcome = Some(format!("failed({e})")),
                other => panic!("unexpected event: {other:?}"),
            }
        }
        if outcome.is_some() {
            return true;
        }
        while send_failed.is_none() && pushed - sent < 64 {
            passers[0].push_send(numbered_pipe(pushed)).unwrap();
            pushed += 1;
        }
        false
    });
    let outcome = outcome.unwrap();
    let took = started.elapsed();
    // The peer took its share, and we still had descriptors queued when it
    // died: it died mid-stream.
    assert!(sent >= TAKEN, "sent={sent}");
    assert!(pushed > sent, "pushed={pushed} sent={sent}");
    // What the peer sent before dying arrives, all of it and in order: a
    // send that fails first ends sending only.
    assert_eq!(received, (1000..1000 + RETURNED).collect::<Vec<_>>());
    let held = if outcome == "closed" && send_failed.is_none() {
        // Closed is about reading: what was still queued stays queued until
        // the passer is closed.
        passer.close();
        passer.held_descriptors()
    } else {
        // A failure keeps what the kernel never took, in order and open,
        // for the application to re-route: exactly the unsent ones.
        assert_eq!(passer.held_descriptors() as u64, pushed - sent);
        let unsent: Vec<u64> = passer.take_unsent().into_iter().map(read_number).collect();
        assert!(
            unsent.iter().copied().eq(sent..pushed),
            "unsent {unsent:?}, sent={sent} pushed={pushed}"
        );
        passer.held_descriptors()
    };
    drop(passer);
    let dying = child.wait_with_output().unwrap();
    let dying_line = &results(&dying)[0];
    assert_eq!(field(dying_line, "received"), TAKEN);
    drop(dir);
    let after = open_descriptors();
    // Everything above happened without any timer: readiness alone ended it.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    println!(
        "RESULT baseline={baseline} after={after} held={held} sent={sent} took_ms={} outcome={outcome}",
        took.as_millis()
    );
}

fn receive_a_little_then_exit() {
    let socket = connect(std::env::var_os(SOCKET_VAR).expect("socket path")).unwrap();
    let mut passer = Passer::new(socket, config(Reservation::Peek, 1)).unwrap();
    for _ in 0..TAKEN {
        passer.push_recv().unwrap();
    }
    for n in 0..RETURNED {
        passer.push_send(numbered_pipe(1000 + n)).unwrap();
    }
    let mut received = 0;
    let mut sent = 0;
    drive(&mut [&mut passer], |_, events| {
        for (_, event) in events {
            match event {
                Event::Received(_, fd) => {
                    assert_eq!(read_number(fd), received);
                    received += 1;
                }
                Event::Sent(token) => sent = token.0 + 1,
                other => panic!("unexpected event: {other:?}"),
            }
        }
        received == TAKEN && sent == RETURNED
    });
    println!("RESULT received={received}");
    // Exit with the parent's messages still unread, without running any
    // destructor: as abrupt as a crash, as far as the socket is concerned.
    std::process::exit(0);
}

/// A soft limit of 0 leaves no slot at all: `F_DUPFD` then says `EINVAL`
/// (`fcntl(2)`: the argument is not below `RLIMIT_NOFILE`), not `EMFILE`.
/// It is a full table like any other: delivery waits and nothing fails.
#[test]
fn a_descriptor_limit_of_zero_is_a_typed_error_not_a_silent_wait() {
    const NAME: &str = "a_descriptor_limit_of_zero_is_a_typed_error_not_a_silent_wait";
    if common::role().as_deref() == Some("zero-limit") {
        for reservation in [Reservation::Sentinel, Reservation::Peek] {
            receive_under_a_zero_limit(reservation);
        }
        println!("RESULT ok");
        return;
    }
    let output = self_command(NAME, "zero-limit").output().unwrap();
    assert_eq!(results(&output), ["ok"]);
}

/// Under `RLIMIT_NOFILE` 0 no descriptor can ever be installed: waiting
/// for room would be forever, so the receive fails at once with
/// `MessageNeverFits` (it used to wait for a retry that could never
/// succeed at that limit). Nothing was installed, so nothing leaks.
fn receive_under_a_zero_limit(reservation: Reservation) {
    let (mut sender, mut receiver) = Passer::pair(config(reservation, 1)).unwrap();
    let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
    sender.push_send(read_end).unwrap();
    sender.handle_writable(Instant::now());
    receiver.push_recv().unwrap();

    let saved = getrlimit(Resource::Nofile);
    let zero = Rlimit {
        current: Some(0),
        maximum: saved.maximum,
    };
    setrlimit(Resource::Nofile, zero).unwrap();
    receiver.handle_readable(Instant::now());
    let seen: Vec<Event> = std::iter::from_fn(|| receiver.poll_event()).collect();
    setrlimit(Resource::Nofile, saved).unwrap();
    assert!(
        matches!(
            seen[..],
            [Event::Failed(fdpass_core::Error::MessageNeverFits {
                room: 0,
                ..
            })]
        ),
        "{reservation:?} under a zero limit: {seen:?}"
    );
}
