//! A full descriptor table delays delivery behind a deadline, and
//! `handle_timeout` resumes it. The receiver runs in a child process (this
//! test binary run again) because it lowers its own `RLIMIT_NOFILE`.

mod common;

use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::Instant;

use common::{numbered_pipe, read_number, results, role, self_command, Loop, OVERALL};
use fdpass_core::child::{adopt_inherited, Handoff};
use fdpass_core::Want;
use fdpass_mio::{Config, Event, Passer, Reservation};
use mio::{Events, Interest, Poll, Token};
use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors sent to the receiver.
const COUNT: u64 = 5;

fn config(reservation: Reservation) -> Config {
    // One descriptor per message keeps the sentinel reservation at one slot.
    Config::default()
        .with_max_fds_per_message(1)
        .with_reservation(reservation)
}

/// Parent side: spawns the receiver with one end of a new connection and
/// sends it `COUNT` numbered pipes.
fn run_parent(test_name: &str, reservation: Reservation) {
    let handoff = Handoff::new().unwrap();
    let mut command: Command = self_command(test_name, "receiver");
    handoff.configure(&mut command);
    let child = command.spawn().unwrap();
    let mut passer = Passer::with_config(handoff.finish(), config(reservation)).unwrap();

    let mut lp = Loop::new(&mut [&mut passer]);
    let mut pushed = 0;
    let mut acked = 0;
    lp.drive(&mut [&mut passer], |passers, events| {
        for (_, event) in events {
            match event {
                Event::Sent(token) => acked = token.0 + 1,
                other => panic!("sender: unexpected {other:?}"),
            }
        }
        while pushed < COUNT {
            passers[0].push_send(numbered_pipe(pushed)).unwrap();
            pushed += 1;
        }
        acked == COUNT
    });

    let output = child.wait_with_output().unwrap();
    let lines = results(&output);
    assert_eq!(
        lines,
        vec![format!("delayed=1 received={COUNT} in_order=1")],
        "stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Fills the descriptor table: lowers the soft limit to a little above the
/// highest descriptor in use, then duplicates stderr until `EMFILE`.
fn fill_table() -> Vec<OwnedFd> {
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(highest + 1 + 8),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let mut fillers = Vec::new();
    loop {
        match rustix::io::dup(std::io::stderr()) {
            Ok(fd) => fillers.push(fd),
            Err(Errno::MFILE) => return fillers,
            Err(e) => panic!("dup: {e}"),
        }
    }
}

/// Child side: receives with a full table, checks that delivery waits on a
/// deadline with nothing else to do, frees the table, and lets
/// `handle_timeout` resume delivery.
fn run_receiver(reservation: Reservation) {
    let socket = adopt_inherited().unwrap();
    // Built before the table fills: the sentinel strategy takes its slot now.
    let mut passer = Passer::with_config(socket, config(reservation)).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(
            &mut passer,
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    let mut events = Events::with_capacity(16);

    let mut fillers = fill_table();
    for _ in 0..COUNT {
        passer.push_recv().unwrap();
    }

    let deadline = Instant::now() + OVERALL;
    let mut numbers = Vec::new();
    let mut delayed = false;
    while (numbers.len() as u64) < COUNT {
        assert!(Instant::now() < deadline, "not done: {passer:#?}");
        while let Some(event) = passer.poll_event() {
            match event {
                Event::Received(_, fd) => numbers.push(read_number(fd)),
                other => panic!("receiver: unexpected {other:?}"),
            }
        }
        if !fillers.is_empty() && passer.poll_timeout().is_some() {
            // Delivery is blocked on the table: the passer wants no I/O, only
            // the deadline. Free the table; only handle_timeout may resume.
            assert_eq!(passer.core().interest().read, Want::Idle, "{passer:#?}");
            assert!(passer.core().outstanding_recvs() > 0);
            delayed = true;
            fillers.clear();
        }
        if !fillers.is_empty() {
            // Still waiting for the descriptors to reach the full table.
            assert_eq!(
                passer.core().interest().read,
                Want::WhenReady,
                "{passer:#?}"
            );
        } else {
            assert!(
                passer.core().interest().read == Want::WhenReady
                    || passer.poll_timeout().is_some()
                    || (numbers.len() as u64) == COUNT,
                "stalled: requests outstanding, yet no readiness or deadline awaited: {passer:#?}"
            );
        }
        if (numbers.len() as u64) == COUNT {
            break;
        }
        let retry_pending = passer.poll_timeout().is_some();
        poll.poll(&mut events, passer.poll_duration(Instant::now()))
            .unwrap();
        for event in events.iter() {
            passer.handle_event(event);
        }
        if retry_pending {
            // While a retry is pending, readiness alone delivers nothing.
            assert!(
                passer.poll_event().is_none(),
                "delivered without handle_timeout"
            );
        }
        passer.handle_timeout(Instant::now());
    }
    let in_order = numbers == (0..COUNT).collect::<Vec<_>>();
    println!(
        "\nRESULT delayed={} received={} in_order={}",
        u8::from(delayed),
        numbers.len(),
        u8::from(in_order)
    );
}

#[test]
fn full_table_peek_delays_until_handle_timeout() {
    if role().is_some() {
        return run_receiver(Reservation::Peek);
    }
    run_parent(
        "full_table_peek_delays_until_handle_timeout",
        Reservation::Peek,
    );
}

#[test]
fn full_table_sentinel_delays_until_handle_timeout() {
    if role().is_some() {
        return run_receiver(Reservation::Sentinel);
    }
    run_parent(
        "full_table_sentinel_delays_until_handle_timeout",
        Reservation::Sentinel,
    );
}
