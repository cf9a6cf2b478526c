//! Two processes pass pipes to each other over a socketpair, each driving its
//! [`Passer`] with a plain `poll(2)` loop.
//!
//! The parent starts a second copy of this program as its child and hands it
//! one end of a socketpair. The parent sends `COUNT` pipes, each carrying a
//! message; the child reads every message and answers with pipes of its own.
//! Both print what they received, in order.
//!
//! ```text
//! cargo run -p fdpass-core --example poll_demo
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, ExitCode};
use std::time::Instant;

use fdpass_core::child::Handoff;
use fdpass_core::{Config, Event, Passer, Want};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// How many pipes travel each way.
const COUNT: usize = 5;

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let (who, result) = if std::env::args().nth(1).as_deref() == Some("--child") {
        ("child", child())
    } else {
        ("parent", parent())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poll_demo {who}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parent() -> Result<(), BoxError> {
    // The child inherits one end of a new socketpair at a number named in its
    // environment; it stays close-on-exec here, so no other program we might
    // start keeps the connection alive by accident.
    let handoff = Handoff::new()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child");
    handoff.configure(&mut command);
    let mut child = command.spawn()?;
    // Only the child may hold its end now: otherwise we would never see the
    // end of the stream when it exits.
    let ours = handoff.finish();

    let exchanged = exchange_with_child(ours);
    let status = child.wait()?;
    exchanged?;
    if !status.success() {
        return Err(format!("the child failed: {status}").into());
    }
    println!("parent: done");
    Ok(())
}

/// The parent's half: send and receive at the same time.
fn exchange_with_child(socket: OwnedFd) -> Result<(), BoxError> {
    let mut passer = Passer::new(socket, Config::default())?;
    for i in 0..COUNT {
        passer.push_send(message_pipe(&format!("hello from parent #{i}"))?)?;
        passer.push_recv()?;
    }
    let mut sent = 0;
    let mut received = Vec::new();
    drive_until(&mut passer, |events| {
        for event in events.drain(..) {
            match event {
                // One event acknowledges every push up to its token.
                Event::Sent(token) => sent = token.0 + 1,
                Event::Received(_, fd) => received.push(fd),
                _ => {}
            }
        }
        sent == COUNT as u64 && received.len() == COUNT
    })?;
    for (i, fd) in received.into_iter().enumerate() {
        let message = read_message(fd)?;
        println!("parent received: {message}");
        let expected = format!("hello from child #{i}");
        if message != expected {
            return Err(format!("expected {expected:?}, got {message:?}").into());
        }
    }
    Ok(())
}

fn child() -> Result<(), BoxError> {
    let socket = fdpass_core::child::adopt_inherited()?;
    let mut passer = Passer::new(socket, Config::default())?;

    for _ in 0..COUNT {
        passer.push_recv()?;
    }
    let mut received = Vec::new();
    drive_until(&mut passer, |events| {
        for event in events.drain(..) {
            if let Event::Received(_, fd) = event {
                received.push(fd);
            }
        }
        received.len() == COUNT
    })?;
    for (i, fd) in received.into_iter().enumerate() {
        let message = read_message(fd)?;
        println!("child received: {message}");
        let expected = format!("hello from parent #{i}");
        if message != expected {
            return Err(format!("expected {expected:?}, got {message:?}").into());
        }
        passer.push_send(message_pipe(&format!("hello from child #{i}"))?)?;
    }

    // Exit only once the kernel holds every reply: descriptors it took reach
    // the parent even after we are gone, queued ones would be closed unsent.
    let mut sent = 0;
    drive_until(&mut passer, |events| {
        for event in events.drain(..) {
            if let Event::Sent(token) = event {
                sent = token.0 + 1;
            }
        }
        sent == COUNT as u64
    })
}

/// Drives `passer` with `poll(2)` until `done` returns true.
///
/// This is the whole contract of the sans-IO core in one loop: run due
/// retries, ask the passer what it wants, wait for exactly that, tell it what
/// happened, collect its events. `done` sees the events of each round (and is
/// called once before the first, in case there is nothing to wait for); it
/// takes the ones it needs out of the vector, the rest are dropped.
///
/// Fails on [`Event::Failed`], and when the passer wants nothing and has no
/// retry pending while `done` still says no: nothing could ever change then,
/// and waiting would hang.
fn drive_until(
    passer: &mut Passer,
    mut done: impl FnMut(&mut Vec<Event>) -> bool,
) -> Result<(), BoxError> {
    let mut events = Vec::new();
    loop {
        for event in &events {
            if let Event::Failed(e) = event {
                return Err(e.clone().into());
            }
        }
        if done(&mut events) {
            return Ok(());
        }
        events.clear();

        // The passer never reads the clock: retries (after a full descriptor
        // table, or send back-pressure) become due only when we say so.
        let now = Instant::now();
        passer.handle_timeout(now);
        let interest = passer.interest();

        // `Now`: work is waiting and the socket is not known to be blocked,
        // so poll must not wait at all. `WhenReady`: the socket said "would
        // block"; wait for readiness. `Idle`: do not ask for that direction,
        // or poll would wake us for nothing.
        let mut flags = PollFlags::empty();
        if interest.read == Want::WhenReady {
            flags |= PollFlags::IN;
        }
        if interest.write == Want::WhenReady {
            flags |= PollFlags::OUT;
        }
        let must_act = interest.read == Want::Now || interest.write == Want::Now;
        let timeout = if must_act {
            Some(Timespec::default())
        } else if let Some(deadline) = passer.poll_timeout() {
            Some(Timespec::try_from(deadline.saturating_duration_since(now))?)
        } else if !flags.is_empty() {
            None // Readiness alone can wake us: wait as long as it takes.
        } else {
            return Err("the passer has nothing left to do, but we are not done".into());
        };

        // With nothing to wait for but a deadline, poll no descriptor at all:
        // poll reports a hang-up even for an empty event mask, which would
        // turn the wait into a busy loop once the peer is gone.
        let mut fds = [PollFd::new(&*passer, flags)];
        let fds = if flags.is_empty() {
            &mut fds[..0]
        } else {
            &mut fds[..]
        };
        match poll(fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = fds.first().map_or(PollFlags::empty(), |fd| fd.revents());

        // A hang-up or error counts as readiness in both directions: the
        // next system call reports what happened (end of stream, EPIPE).
        let now = Instant::now();
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
        while let Some(event) = passer.poll_event() {
            events.push(event);
        }
    }
}

/// A pipe with `message` written into it and its write end closed: the read
/// end is what we pass, and its reader sees the message, then end-of-file.
fn message_pipe(message: &str) -> Result<OwnedFd, BoxError> {
    let (read_end, mut write_end) = std::io::pipe()?; // close-on-exec on every system
                                                      // A message this short fits in the pipe's buffer: the write never blocks.
    write_end.write_all(message.as_bytes())?;
    Ok(OwnedFd::from(read_end))
}

fn read_message(fd: OwnedFd) -> Result<String, BoxError> {
    let mut message = String::new();
    File::from(fd).read_to_string(&mut message)?;
    Ok(message)
}
