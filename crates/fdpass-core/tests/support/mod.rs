//! Shared by the integration tests: the fake `Sys`, a clock that moves only
//! when told to, and an event loop that drives two passers over the
//! simulated kernel.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod fake;

use std::time::{Duration, Instant};

use fdpass_core::{
    Config, Error, Event, RecvToken, Reservation, RetryPolicy, SendToken, Want, Wire,
};

pub use fake::*;

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Short delays so that a test's fake time stays readable.
pub const RETRY: RetryPolicy = RetryPolicy {
    initial: ms(1),
    max: ms(8),
};

/// The classic wire, batching up to `max_fds` descriptors per `sendmsg`:
/// the tests built on this helper pin down that wire's system calls byte by
/// byte (one zero byte per descriptor).
pub fn config(reservation: Reservation, max_fds: usize) -> Config {
    native_config(reservation, max_fds).with_wire(Wire::Classic { batch: max_fds })
}

/// The native wire (the default) with the same settings.
pub fn native_config(reservation: Reservation, max_fds: usize) -> Config {
    Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max_fds)
        .with_retry(RETRY)
}

/// Time as the passers see it; it moves only when a test moves it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    now: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            now: Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn advance(&mut self, by: Duration) -> Instant {
        self.now += by;
        self.now
    }

    /// Moves to `to`, which must not be in the past.
    pub fn set(&mut self, to: Instant) -> Instant {
        assert!(to >= self.now, "time never goes back");
        self.now = to;
        self.now
    }
}

/// The errno inside an [`Error::Io`].
pub fn errno_of(error: &Error) -> Option<i32> {
    match error {
        Error::Io(io) => io.raw_os_error(),
        _ => None,
    }
}

/// What one passer reported, in order.
#[derive(Debug, Default)]
pub struct Seen {
    pub sent: Vec<SendToken>,
    /// Request token and the sequence number of the descriptor it got.
    pub received: Vec<(RecvToken, u64)>,
    pub closed: usize,
    pub failed: Vec<Error>,
    /// `Event::SendFailed`: sending ended, receiving goes on.
    pub send_failed: Vec<Error>,
}

impl Seen {
    pub fn seqs(&self) -> Vec<u64> {
        self.received.iter().map(|(_, seq)| *seq).collect()
    }
}

/// Drains `passer`'s events into `seen`. The application notes each received
/// descriptor's number and closes it at once, freeing its table slot.
pub fn collect(fake: &Fake, side: Side, passer: &mut FakePasser, seen: &mut Seen) {
    while let Some(event) = passer.poll_event() {
        match event {
            Event::Sent(token) => seen.sent.push(token),
            Event::Received(token, fd) => match fake.app_close(side, fd) {
                Label::Seq(seq) => seen.received.push((token, seq)),
                other => panic!("{side:?} received {other:?}, which nobody sent"),
            },
            Event::Closed => seen.closed += 1,
            Event::Failed(error) => seen.failed.push(error),
            Event::SendFailed(error) => seen.send_failed.push(error),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// One turn of an event loop for one passer: due timeouts, then whatever it
/// wants to do now or waits for and the simulated kernel is ready for.
pub fn turn(fake: &Fake, side: Side, passer: &mut FakePasser, now: Instant, seen: &mut Seen) {
    passer.handle_timeout(now);
    let interest = passer.interest();
    if interest.write == Want::Now || (interest.write == Want::WhenReady && fake.writable(side)) {
        passer.handle_writable(now);
    }
    if interest.read == Want::Now || (interest.read == Want::WhenReady && fake.readable(side)) {
        passer.handle_readable(now);
    }
    collect(fake, side, passer, seen);
}

/// Runs the event loop for passers `a` (side A) and `b` (side B) until
/// neither makes a system call and no deadline is pending, or until time
/// would pass `until`. When a turn of both makes no call, time jumps to the
/// next deadline.
pub fn pump_until(
    fake: &Fake,
    a: &mut FakePasser,
    b: &mut FakePasser,
    clock: &mut Clock,
    seen: &mut [Seen; 2],
    until: Option<Instant>,
) {
    for _ in 0..100_000 {
        let before = fake.call_count();
        turn(fake, Side::A, a, clock.now(), &mut seen[0]);
        turn(fake, Side::B, b, clock.now(), &mut seen[1]);
        if fake.call_count() != before {
            continue;
        }
        for (side, passer) in [(Side::A, &*a), (Side::B, &*b)] {
            let interest = passer.interest();
            assert!(
                interest.read != Want::Now && interest.write != Want::Now,
                "{side:?} wants to act now ({interest:?}) but its handlers made no call"
            );
        }
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else { return };
        if let Some(until) = until {
            if at > until {
                return;
            }
        }
        clock.set(at.max(clock.now()));
    }
    panic!("the passers never settled");
}

/// [`pump_until`] with no time limit.
pub fn pump(
    fake: &Fake,
    a: &mut FakePasser,
    b: &mut FakePasser,
    clock: &mut Clock,
    seen: &mut [Seen; 2],
) {
    pump_until(fake, a, b, clock, seen, None);
}
