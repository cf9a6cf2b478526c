//! One soak process's half of a run: send a numbered stream and receive the
//! peer's through one [`Passer`] driven by `poll(2)`, while the
//! [`Injector`] injects faults, and check everything on the way and at the
//! end.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_core::{Config, Event, Passer, Want};
use rustix::io::Errno;

use crate::drive;
use crate::faults::{set_soft_nofile, FaultSettings, Injector};
use crate::fdcount::FdCounter;
use crate::payload::{self, Kind, Numbered};
use crate::stats::Stats;

/// How long each direction of a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Exactly this many descriptors each way.
    Count(u64),
    /// Send for this long, then mark the next descriptor as the last.
    For(Duration),
}

/// Everything one process needs for its half of a run.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSpec {
    /// The passer's settings (both processes use the same).
    pub config: Config,
    /// How much to send; with [`Goal::Count`] also how much to expect.
    pub goal: Goal,
    /// Seed of this process's fault schedule.
    pub fault_seed: u64,
    /// Seed of the kinds (pipe or memfd) of what this process sends.
    pub payload_seed: u64,
    /// What to inject.
    pub faults: FaultSettings,
    /// Receive requests kept outstanding.
    pub window: usize,
    /// A violation if nothing is sent or received for this long.
    pub stall_limit: Duration,
    /// `SO_SNDBUF` for the socket (the kernel doubles it); 0 keeps the
    /// default. A small buffer makes bursts fill it even when batched.
    pub sndbuf: usize,
}

/// How often the peak descriptor count is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Runs this process's half. `Err` describes a violation.
///
/// Checks on the way: every descriptor received is the next in sequence,
/// of the kind it says, and nothing arrives after the last; the passer never
/// fails and the peer never closes early; something moves at least every
/// `stall_limit`. At the end: the descriptor count is the baseline plus what
/// the passer reports holding, and once the passer is dropped the baseline
/// less its socket.
pub fn run(socket: OwnedFd, spec: &EndpointSpec, counter: &mut FdCounter) -> Result<Stats, String> {
    let start = Instant::now();
    set_soft_nofile(spec.faults.nofile).map_err(|e| format!("setting RLIMIT_NOFILE: {e}"))?;
    let baseline = count(counter)?;
    let mut stats = Stats {
        baseline_fds: baseline as u64,
        peak_fds: baseline as u64,
        ..Stats::default()
    };
    if spec.sndbuf > 0 {
        rustix::net::sockopt::set_socket_send_buffer_size(&socket, spec.sndbuf)
            .map_err(|e| format!("setting SO_SNDBUF: {e}"))?;
    }
    let mut passer = Passer::new(socket, spec.config).map_err(|e| format!("Passer::new: {e}"))?;
    let mut injector = Injector::new(spec.fault_seed, spec.faults, start)
        .map_err(|e| format!("starting the injector: {e}"))?;
    let result = transfer(&mut passer, &mut injector, spec, counter, &mut stats, start);
    // Whatever happened, the table goes back to normal and the churn threads
    // stop before anything is counted.
    let counts = injector
        .finish()
        .map_err(|e| format!("ending the faults: {e}"))?;
    result?;
    stats.limit_lowered = counts.limit_lowered;
    stats.table_filled = counts.table_filled;
    stats.bursts = counts.bursts;
    stats.churn_periods = counts.churn_periods;
    stats.churn_ops = counts.churn_ops;
    stats.elapsed_us = start.elapsed().as_micros() as u64;

    let held = passer.held_descriptors();
    let open = count(counter)?;
    if open != baseline + held {
        return Err(format!(
            "{open} descriptors open at the end, expected the baseline {baseline} plus the {held} the passer holds"
        ));
    }
    drop(passer);
    let open = count(counter)?;
    if open + 1 != baseline {
        return Err(format!(
            "{open} descriptors open after dropping the passer, expected the baseline {baseline} less its socket"
        ));
    }
    Ok(stats)
}

fn count(counter: &mut FdCounter) -> Result<usize, String> {
    counter
        .count()
        .map_err(|e| format!("counting descriptors: {e}"))
}

fn transfer(
    passer: &mut Passer,
    injector: &mut Injector,
    spec: &EndpointSpec,
    counter: &mut FdCounter,
    stats: &mut Stats,
    start: Instant,
) -> Result<(), String> {
    let mut feeder = Feeder::new(spec, start);
    let mut collector = Collector::new(spec.goal);
    let mut events = Vec::new();
    let mut last_progress = start;
    let mut next_sample = start;
    let mut recv_waiting_since: Option<Instant> = None;
    let mut send_waiting = false;
    let mut socket_full = false;
    loop {
        let now = Instant::now();
        if let Some(burst) = injector
            .step(now, counter)
            .map_err(|e| format!("injecting a fault: {e}"))?
        {
            feeder.start_burst(burst);
        }
        feeder.feed(passer, now, stats)?;
        collector.top_up(passer, spec.window)?;
        while let Some(event) = passer.poll_event() {
            events.push(event);
        }
        if handle(&mut events, &mut feeder, &mut collector, stats, now)? {
            last_progress = now;
        }
        if feeder.done() && collector.got_last {
            if let Some(since) = recv_waiting_since {
                stats.table_full_wait_us += since.elapsed().as_micros() as u64;
            }
            return Ok(());
        }

        // What the passer is waiting for, counted once per episode.
        let interest = passer.interest();
        let deadline = passer.poll_timeout().is_some();
        let recv_waiting =
            passer.outstanding_recvs() > 0 && interest.read == Want::Idle && deadline;
        match (recv_waiting, recv_waiting_since) {
            (true, None) => {
                stats.table_full_waits += 1;
                recv_waiting_since = Some(now);
            }
            (false, Some(since)) => {
                stats.table_full_wait_us += now.duration_since(since).as_micros() as u64;
                recv_waiting_since = None;
            }
            _ => {}
        }
        let now_send_waiting =
            passer.queued_sends() > 0 && interest.write == Want::Idle && deadline;
        if now_send_waiting && !send_waiting {
            stats.send_backoffs += 1;
        }
        send_waiting = now_send_waiting;
        let now_socket_full = interest.write == Want::WhenReady;
        if now_socket_full && !socket_full {
            stats.socket_full += 1;
        }
        socket_full = now_socket_full;
        stats.max_queue = stats.max_queue.max(passer.queued_sends() as u64);

        if now >= next_sample {
            stats.peak_fds = stats.peak_fds.max(count(counter)? as u64);
            next_sample = now + SAMPLE_EVERY;
        }
        if now.duration_since(last_progress) > spec.stall_limit {
            return Err(format!(
                "nothing sent or received for {:?}: sent {} of {} pushed, received {}; passer {:?}",
                spec.stall_limit, feeder.acked, feeder.pushed, collector.next, passer
            ));
        }

        let mut until = (now + Duration::from_millis(50)).min(next_sample);
        for wake in [injector.next_wake(), feeder.wake_at()]
            .into_iter()
            .flatten()
        {
            until = until.min(wake);
        }
        let round =
            drive::step(passer, Some(until), &mut events).map_err(|e| format!("poll: {e}"))?;
        if round.interrupted {
            stats.poll_eintr += 1;
        }
        if handle(
            &mut events,
            &mut feeder,
            &mut collector,
            stats,
            Instant::now(),
        )? {
            last_progress = Instant::now();
        }
    }
}

/// Applies a round's events; true if anything moved.
fn handle(
    events: &mut Vec<Event>,
    feeder: &mut Feeder,
    collector: &mut Collector,
    stats: &mut Stats,
    now: Instant,
) -> Result<bool, String> {
    let mut moved = false;
    for event in events.drain(..) {
        match event {
            Event::Sent(token) => {
                feeder.acked = token.0 + 1;
                stats.sent = feeder.acked;
                moved = true;
            }
            Event::Received(_, fd) => {
                collector.deliver(fd, now, stats)?;
                moved = true;
            }
            Event::Closed => {
                if !collector.got_last {
                    return Err(format!(
                        "the peer closed the connection after only {} of its descriptors",
                        collector.next
                    ));
                }
            }
            Event::Failed(e) => return Err(format!("the passer failed: {e}")),
            other => return Err(format!("an unexpected event: {other:?}")),
        }
    }
    Ok(moved)
}

/// The sending half: makes numbered descriptors and keeps the queue topped up.
struct Feeder {
    goal: Goal,
    seed: u64,
    start: Instant,
    /// The normal queue depth.
    target: usize,
    /// Descriptors pushed so far (the next one's number).
    pushed: u64,
    /// Descriptors the kernel has taken.
    acked: u64,
    last_pushed: bool,
    /// A full table stopped us making descriptors; try again then.
    blocked_until: Option<Instant>,
    /// Descriptors to queue on top of a full socket buffer.
    burst: usize,
    /// While a burst fills the socket buffer: how much it pushed so far.
    filling: Option<usize>,
    /// The most descriptors a burst leaves queued.
    burst_cap: usize,
}

/// The most a burst pushes while trying to fill the socket buffer (a peer
/// that reads as fast as we send never lets it fill).
const BURST_FILL_CAP: usize = 32_768;

/// What a burst pushes per round before letting the loop receive.
const BURST_ROUND: usize = 256;

impl Feeder {
    fn new(spec: &EndpointSpec, start: Instant) -> Feeder {
        Feeder {
            goal: spec.goal,
            seed: spec.payload_seed,
            start,
            target: (2 * spec.config.max_fds_per_message).max(16),
            pushed: 0,
            acked: 0,
            last_pushed: false,
            blocked_until: None,
            burst: 0,
            filling: None,
            // Queued descriptors occupy slots in our own table. Unbounded
            // bursts could fill it on both sides while both socket buffers
            // are full: neither could receive, so neither's queue would
            // drain. A quarter of the table keeps receiving possible.
            burst_cap: (spec.faults.nofile / 4) as usize,
        }
    }

    fn done(&self) -> bool {
        self.last_pushed && self.acked == self.pushed
    }

    /// When the feeder wants to run again without any I/O event.
    fn wake_at(&self) -> Option<Instant> {
        if self.last_pushed {
            return None;
        }
        match (self.blocked_until, self.goal) {
            (Some(at), _) => Some(at),
            (None, Goal::For(d)) => Some(self.start + d),
            (None, Goal::Count(_)) => None,
        }
    }

    /// Makes and pushes the next descriptor. `Ok(false)`: the table is full.
    fn push_one(
        &mut self,
        passer: &mut Passer,
        now: Instant,
        stats: &mut Stats,
    ) -> Result<bool, String> {
        let seq = self.pushed;
        let last = match self.goal {
            Goal::Count(n) => seq + 1 >= n,
            Goal::For(d) => now >= self.start + d,
        };
        let kind = Kind::for_seq(self.seed, seq);
        match payload::make(Numbered { seq, last, kind }) {
            Ok(fd) => {
                passer
                    .push_send(fd)
                    .map_err(|e| format!("push_send of #{seq} refused: {e}"))?;
                self.pushed += 1;
                self.last_pushed = last;
                Ok(true)
            }
            Err(Errno::MFILE | Errno::NFILE) => {
                stats.source_blocked += 1;
                self.blocked_until = Some(now + Duration::from_millis(1));
                Ok(false)
            }
            Err(e) => Err(format!("making descriptor #{seq}: {e}")),
        }
    }

    /// A burst: push (and send) until the socket buffer is full, then queue
    /// `extra` more on top, which the queue must hold.
    fn start_burst(&mut self, extra: usize) {
        self.burst += extra;
        self.filling.get_or_insert(0);
    }

    fn feed(&mut self, passer: &mut Passer, now: Instant, stats: &mut Stats) -> Result<(), String> {
        match self.blocked_until {
            Some(at) if now < at => return Ok(()),
            _ => self.blocked_until = None,
        }
        if self.filling.is_some() {
            return self.fill_socket(passer, now, stats);
        }
        while !self.last_pushed && passer.queued_sends() < self.target {
            if !self.push_one(passer, now, stats)? {
                break;
            }
        }
        Ok(())
    }

    /// One round of a burst: at most [`BURST_ROUND`] descriptors, so that
    /// the loop keeps receiving while a burst runs.
    fn fill_socket(
        &mut self,
        passer: &mut Passer,
        now: Instant,
        stats: &mut Stats,
    ) -> Result<(), String> {
        let mut pushed = self.filling.unwrap_or(0);
        let round_end = pushed + BURST_ROUND;
        let filled = loop {
            let write = passer.interest().write;
            if write == Want::WhenReady {
                break true;
            }
            // Send back-pressure, the end of the stream or the cap: queue
            // the extra anyway.
            let held = write == Want::Idle && passer.queued_sends() > 0;
            if held || self.last_pushed || pushed >= BURST_FILL_CAP {
                break false;
            }
            if pushed >= round_end {
                self.filling = Some(pushed);
                return Ok(());
            }
            for _ in 0..64 {
                if self.last_pushed || !self.push_one(passer, now, stats)? {
                    break;
                }
                pushed += 1;
            }
            if self.blocked_until.is_some() {
                // A full table: go on after the retry.
                self.filling = Some(pushed);
                return Ok(());
            }
            passer.handle_writable(now);
        };
        self.filling = None;
        if filled {
            stats.bursts_filled_buffer += 1;
        }
        let extra = std::mem::take(&mut self.burst);
        let room = self.burst_cap.saturating_sub(passer.queued_sends());
        for _ in 0..extra.min(room) {
            if self.last_pushed || !self.push_one(passer, now, stats)? {
                break;
            }
        }
        stats.max_queue = stats.max_queue.max(passer.queued_sends() as u64);
        Ok(())
    }
}

/// The receiving half: keeps requests outstanding and checks what arrives.
struct Collector {
    goal: Goal,
    /// The sequence number expected next (= descriptors received).
    next: u64,
    got_last: bool,
    /// Requests made so far.
    issued: u64,
    last_delivery: Option<Instant>,
}

impl Collector {
    fn new(goal: Goal) -> Collector {
        Collector {
            goal,
            next: 0,
            got_last: false,
            issued: 0,
            last_delivery: None,
        }
    }

    fn top_up(&mut self, passer: &mut Passer, window: usize) -> Result<(), String> {
        while !self.got_last && passer.outstanding_recvs() < window {
            if let Goal::Count(n) = self.goal {
                if self.issued >= n {
                    break;
                }
            }
            passer
                .push_recv()
                .map_err(|e| format!("push_recv refused after {} received: {e}", self.next))?;
            self.issued += 1;
        }
        Ok(())
    }

    fn deliver(&mut self, fd: OwnedFd, now: Instant, stats: &mut Stats) -> Result<(), String> {
        let n = payload::read(&fd).map_err(|e| format!("descriptor after #{}: {e}", self.next))?;
        drop(fd);
        if self.got_last {
            return Err(format!("descriptor #{} arrived after the last one", n.seq));
        }
        if n.seq != self.next {
            let what = if n.seq < self.next {
                "duplicated or out of order"
            } else {
                "lost or out of order"
            };
            return Err(format!(
                "expected descriptor #{}, got #{} ({what})",
                self.next, n.seq
            ));
        }
        if let Goal::Count(total) = self.goal {
            if n.last != (n.seq + 1 == total) {
                return Err(format!(
                    "descriptor #{} says last={} in a stream of {total}",
                    n.seq, n.last
                ));
            }
        }
        self.next += 1;
        self.got_last = n.last;
        stats.received = self.next;
        if let Some(previous) = self.last_delivery {
            let gap = now.duration_since(previous).as_micros() as u64;
            if gap > stats.longest_stall_us {
                stats.longest_stall_us = gap;
                stats.longest_stall_seq = n.seq;
            }
        }
        self.last_delivery = Some(now);
        Ok(())
    }
}
