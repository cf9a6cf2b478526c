//! Closing without losing what was queued, handing back what a failed
//! passer never sent, and a bounded send queue. Every receiver is another
//! process; every sender that counts its descriptors runs in a process of
//! its own.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::{
    expect_fd, inherited, limit_descriptors, numbered_pipe, ok, open_descriptors, read_number,
    Adapter, Config, Ctx, Error, PushError,
};

/// What the measurement that asked for a graceful shutdown pushed.
const QUEUED: u64 = 5_000;
/// A generous bound for a shutdown that has to send everything.
const GENEROUS: Duration = Duration::from_secs(30);

/// The kernel's smallest send buffer: only a few one-descriptor messages
/// fit in flight, so most of what is pushed stays in the passer's queue.
fn shrink_send_buffer(socket: &OwnedFd) {
    // Linux rounds any smaller value up to its minimum (SOCK_MIN_SNDBUF,
    // include/net/sock.h).
    rustix::net::sockopt::set_socket_send_buffer_size(socket, 1).expect("SO_SNDBUF");
}

/// One descriptor per message on both ends, so the kernel takes few at once.
fn one_per_message() -> Config {
    Config::default().with_max_fds_per_message(1)
}

/// The identity of an open file, to recognise a descriptor handed back
/// without reading it (reading a numbered pipe consumes its number).
fn inode(fd: impl AsFd) -> (u64, u64) {
    let stat = rustix::fs::fstat(fd).expect("fstat: the descriptor is open");
    (stat.st_dev, stat.st_ino)
}

/// Receives until the end of the stream, checking that descriptors come
/// numbered `0, 1, 2, ...`; returns how many came.
fn receive_in_order<A: Adapter>(passer: &mut A) -> u64 {
    let mut next = 0;
    while let Some(fd) = ok(passer.recv(), "receive") {
        assert_eq!(read_number(fd), next, "out of order or duplicated");
        next += 1;
    }
    next
}

// ---- graceful shutdown ----

/// 5,000 descriptors pushed, then a graceful shutdown: the peer receives
/// every one, in order, then the end of the stream (an abortive close
/// delivered 278 of them).
pub fn graceful_shutdown_delivers_everything_queued<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let results = ctx.spawn("sender").finish();
            assert_eq!(results.number("received"), QUEUED);
        }
        Some("sender") => {
            // 5,000 queued read ends must fit in the table.
            let needed = QUEUED + 1_000;
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            if limit.current.is_some_and(|soft| soft < needed) {
                assert!(
                    limit.maximum.is_none_or(|hard| hard >= needed),
                    "RLIMIT_NOFILE's hard limit is below {needed}"
                );
                limit_descriptors(needed);
            }
            super::peer_death::warm_up::<A>();
            let before = open_descriptors();
            let (socket, receiver) = ctx.spawn_connected("receiver");
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            for n in 0..QUEUED {
                ok(passer.push_send(numbered_pipe(n)), "push_send");
            }
            ok(
                passer.shutdown(Instant::now() + GENEROUS),
                "graceful shutdown",
            );
            drop(passer);
            let received = receiver.finish().number("received");
            ctx.report("received", received);
            assert_eq!(open_descriptors(), before, "a leak");
        }
        Some("receiver") => {
            let mut passer = ok(A::new(inherited(), Config::default()), "wrap");
            ctx.report("received", receive_in_order(&mut passer));
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// A graceful shutdown is bounded: past its deadline with a peer that does
/// not read, it fails with `ShutdownTimedOut` and hands back exactly what
/// the kernel never took, in order and open; the peer gets the rest, then
/// the end of the stream.
pub fn shutdown_past_its_deadline_keeps_the_unsent<A: Adapter>(ctx: &Ctx) {
    const PUSHED: u64 = 50;
    match ctx.role() {
        None => {
            let (socket, mut receiver) = ctx.spawn_connected("stalled");
            shrink_send_buffer(&socket);
            let mut passer = ok(A::new(socket, one_per_message()), "wrap our end");
            for n in 0..PUSHED {
                ok(passer.push_send(numbered_pipe(n)), "push_send");
            }
            let started = Instant::now();
            let outcome = passer.shutdown(started + Duration::from_millis(200));
            assert!(started.elapsed() < Duration::from_secs(10), "unbounded");
            let Err(Error::ShutdownTimedOut { unsent }) = outcome else {
                panic!("a shutdown nobody reads for ended with {outcome:?}");
            };
            assert!(unsent > 0, "the stalled peer took everything");
            let back: Vec<u64> = passer.take_unsent().into_iter().map(read_number).collect();
            let first = PUSHED - unsent as u64;
            assert!(
                back.iter().copied().eq(first..PUSHED),
                "handed back {back:?}"
            );
            receiver.signal();
            let received = receiver.finish().number("received");
            assert_eq!(received, first, "what the kernel took reached the peer");
        }
        Some("stalled") => {
            let mut passer = ok(A::new(inherited(), one_per_message()), "wrap");
            ctx.wait_signal();
            ctx.report("received", receive_in_order(&mut passer));
        }
        Some(_) => ctx.unknown_role(),
    }
}

// ---- what a failed passer hands back ----

/// A worker with 100 descriptors queued for it stops taking them and exits:
/// the parent's passer fails and hands back exactly those the kernel never
/// took, in order and still open; with what the worker received, every
/// descriptor is accounted for once.
pub fn a_failed_passer_hands_back_what_it_never_sent<A: Adapter>(ctx: &Ctx) {
    const QUEUED: u64 = 100;
    const TAKEN: u64 = 30;
    match ctx.role() {
        None => {
            let results = ctx.spawn("parent").finish();
            assert_eq!(
                results.number("received") + results.number("handed_back"),
                QUEUED
            );
        }
        Some("parent") => {
            super::peer_death::warm_up::<A>();
            let before = open_descriptors();
            let (socket, worker) = ctx.spawn_connected("worker");
            shrink_send_buffer(&socket);
            let mut passer = ok(A::new(socket, one_per_message()), "wrap our end");
            for n in 0..QUEUED {
                ok(passer.push_send(numbered_pipe(n)), "push_send");
            }
            let flushed = passer.flush();
            assert!(flushed.is_err(), "a flush to a worker that quit succeeded");
            let received = worker.finish().number("received");
            assert!((TAKEN..QUEUED).contains(&received), "received={received}");
            // Each read proves the descriptor was open and which it is.
            let back: Vec<u64> = passer.take_unsent().into_iter().map(read_number).collect();
            assert!(
                back.iter().copied().eq(received..QUEUED),
                "received {received}, handed back {back:?}"
            );
            assert!(passer.take_unsent().is_empty(), "handed back twice");
            drop(passer);
            ctx.report("received", received);
            ctx.report("handed_back", back.len());
            assert_eq!(open_descriptors(), before, "a leak");
        }
        Some("worker") => {
            let socket = inherited();
            let reading = socket.try_clone().expect("dup");
            let mut passer = ok(A::new(socket, one_per_message()), "wrap");
            for n in 0..TAKEN {
                assert_eq!(read_number(expect_fd(passer.recv())), n);
            }
            // The worker quits: from now on the kernel refuses the parent's
            // sends (EPIPE, as after an exit), and what it already queued
            // for us is read before exiting, so the count is exact.
            rustix::net::shutdown(&reading, rustix::net::Shutdown::Read).expect("SHUT_RD");
            let mut received = TAKEN;
            while let Some(fd) = ok(passer.recv(), "drain") {
                assert_eq!(read_number(fd), received, "out of order or duplicated");
                received += 1;
            }
            ctx.report("received", received);
        }
        Some(_) => ctx.unknown_role(),
    }
}

// ---- back-pressure ----

/// With a high-water mark, a non-blocking push past it gets `Full` with its
/// descriptor back, still open; a blocking send waits for room instead;
/// the slow receiver gets every descriptor once, in order.
pub fn pushes_past_the_high_water_mark_come_back_full<A: Adapter>(ctx: &Ctx) {
    const MARK: usize = 8;
    const TOTAL: u64 = 200;
    match ctx.role() {
        None => {
            let (socket, mut receiver) = ctx.spawn_connected("slow_receiver");
            shrink_send_buffer(&socket);
            let config = one_per_message().with_max_queued_sends(Some(MARK));
            let mut passer = ok(A::new(socket, config), "wrap our end");
            let mut next = 0;
            let full = loop {
                assert!(next < TOTAL, "{TOTAL} pushes and never full");
                let fd = numbered_pipe(next);
                let identity = inode(&fd);
                match passer.try_push_send(fd) {
                    Ok(()) => next += 1,
                    Err(PushError::Full(fd)) => {
                        assert_eq!(inode(&fd), identity, "another descriptor came back");
                        break fd;
                    }
                    Err(e) => panic!("push failed: {e}"),
                }
            };
            assert!(next >= MARK as u64, "full after {next} of {MARK}");
            // The receiver starts now; every send waits for room.
            receiver.signal();
            ok(passer.send(full), "send the one handed back");
            for n in next + 1..TOTAL {
                ok(passer.send(numbered_pipe(n)), "send");
            }
            ok(passer.shutdown(Instant::now() + GENEROUS), "shutdown");
            drop(passer);
            assert_eq!(receiver.finish().number("received"), TOTAL);
        }
        Some("slow_receiver") => {
            let mut passer = ok(A::new(inherited(), one_per_message()), "wrap");
            ctx.wait_signal();
            ctx.report("received", receive_in_order(&mut passer));
        }
        Some(_) => ctx.unknown_role(),
    }
}
