//! One soak process's half of a run: send a numbered stream and receive the
//! peer's through one [`Passer`] driven by `poll(2)`, while the
//! [`Injector`] injects faults, and check everything on the way and at the
//! end. The stream is of descriptors, or (with [`EndpointSpec::mix`]) of
//! the messages of [`crate::mix`].

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_core::{Config, Event, Message, Passer, Want};
use rustix::io::Errno;

use crate::drive;
use crate::faults::{set_soft_nofile, FaultSettings, Injector};
use crate::fdcount::FdCounter;
use crate::mix::{self, Shape};
use crate::payload::{self, Kind, Numbered};
use crate::stats::Stats;

/// How long each direction of a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Exactly this many pushes (descriptors or messages) each way.
    Count(u64),
    /// Send for this long, then mark the next push as the last.
    For(Duration),
}

/// How a process ends its half once its whole stream was reported sent and
/// the peer's whole stream arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A graceful `Passer::shutdown`, driven until it reports that every
    /// byte queued went out and the socket was shut down.
    Shutdown,
    /// Drop the passer at once, trusting that every push reported `Sent` is
    /// wholly in the kernel's hands.
    Drop,
}

/// Everything one process needs for its half of a run.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSpec {
    /// The passer's settings (both processes use the same).
    pub config: Config,
    /// How much to send; with [`Goal::Count`] also how much to expect.
    pub goal: Goal,
    /// Push the messages of [`crate::mix`] (native wire) instead of one
    /// descriptor per push; both processes do the same.
    pub mix: bool,
    /// Seed of this process's fault schedule.
    pub fault_seed: u64,
    /// Seed of the kinds (pipe or memfd) of what this process sends, and of
    /// its messages' shapes and payloads.
    pub payload_seed: u64,
    /// The peer's `payload_seed`: what the receiver expects.
    pub peer_payload_seed: u64,
    /// How this half ends.
    pub end: End,
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
    if spec.end == End::Shutdown {
        shut_down(&mut passer, spec.stall_limit)?;
    }
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

/// A graceful shutdown, driven until it is done: what an application does
/// that wants everything it queued to reach the peer before it lets go.
fn shut_down(passer: &mut Passer, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    passer.shutdown(deadline);
    let mut events = Vec::new();
    while passer.shutdown_outcome().is_none() {
        drive::step(passer, Some(deadline), &mut events).map_err(|e| format!("poll: {e}"))?;
        events.clear();
    }
    match passer.shutdown_outcome() {
        Some(Err(e)) => Err(format!("the graceful shutdown failed: {e}")),
        _ => Ok(()),
    }
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
    let mut collector = Collector::new(spec);
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
                spec.stall_limit, feeder.acked, feeder.pushed, collector.received, passer
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
            Event::ReceivedMessage(_, message) => {
                collector.deliver_message(message, now, stats)?;
                moved = true;
            }
            Event::RecvRefused(_, e) => {
                return Err(format!(
                    "a request was refused after {} received: {e}",
                    collector.received
                ))
            }
            Event::Closed => {
                if !collector.got_last {
                    return Err(format!(
                        "the peer closed the connection after only {} of its pushes",
                        collector.received
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
    /// Pushing messages of the mix, for a peer with these limits.
    mix: Option<(usize, usize)>,
    /// The normal queue depth.
    target: usize,
    /// Pushes so far (the next one's number).
    pushed: u64,
    /// Pushes the kernel has taken.
    acked: u64,
    /// Numbered descriptors made so far for messages (the next one's number).
    fds_made: u64,
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

/// The most messages of the mix queued at once, whatever a burst asks: their
/// payloads are memory, not table slots.
const MIX_QUEUE_CAP: u64 = 4096;

impl Feeder {
    fn new(spec: &EndpointSpec, start: Instant) -> Feeder {
        Feeder {
            goal: spec.goal,
            seed: spec.payload_seed,
            start,
            mix: spec
                .mix
                .then_some((spec.config.max_fds_per_message, spec.config.max_payload_len)),
            target: (2 * spec.config.max_fds_per_message).max(16),
            pushed: 0,
            acked: 0,
            fds_made: 0,
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

    /// Pushes queued and not yet taken by the kernel: descriptors, or
    /// messages of the mix (which may carry none).
    fn queued(&self, passer: &Passer) -> usize {
        match self.mix {
            None => passer.queued_sends(),
            Some(_) => (self.pushed - self.acked) as usize,
        }
    }

    /// Makes and pushes the next descriptor or message. `Ok(false)`: the
    /// table is full.
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
        if let Some((max_fds, max_payload)) = self.mix {
            return self.push_message(passer, now, stats, seq, last, (max_fds, max_payload));
        }
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

    /// Makes message `seq` of the mix (its numbered descriptors and its
    /// payload) and pushes it. `Ok(false)`: the table is full; whatever was
    /// made for it is closed, and the same message is made again later.
    fn push_message(
        &mut self,
        passer: &mut Passer,
        now: Instant,
        stats: &mut Stats,
        seq: u64,
        last: bool,
        (max_fds, max_payload): (usize, usize),
    ) -> Result<bool, String> {
        let shape = Shape::for_seq(self.seed, seq, max_fds, max_payload);
        let mut fds = Vec::with_capacity(shape.fds);
        for i in 0..shape.fds as u64 {
            let number = self.fds_made + i;
            let kind = Kind::for_seq(self.seed, number);
            match payload::make(Numbered {
                seq: number,
                last,
                kind,
            }) {
                Ok(fd) => fds.push(fd),
                Err(Errno::MFILE | Errno::NFILE) => {
                    stats.source_blocked += 1;
                    self.blocked_until = Some(now + Duration::from_millis(1));
                    return Ok(false);
                }
                Err(e) => return Err(format!("making descriptor #{number}: {e}")),
            }
        }
        let message = Message::new(mix::payload(self.seed, seq, shape.payload_len, last), fds);
        passer
            .push_send_message(message)
            .map_err(|e| format!("push_send_message of message #{seq} refused: {e}"))?;
        self.fds_made += shape.fds as u64;
        self.pushed += 1;
        self.last_pushed = last;
        Ok(true)
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
        while !self.last_pushed && self.queued(passer) < self.target {
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
            let held = write == Want::Idle && self.queued(passer) > 0;
            let cap = match self.mix {
                None => BURST_FILL_CAP,
                Some(_) => MIX_QUEUE_CAP as usize,
            };
            if held || self.last_pushed || pushed >= cap {
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
        let mut room = self.burst_cap.saturating_sub(passer.queued_sends());
        if self.mix.is_some() {
            room = room.min(MIX_QUEUE_CAP.saturating_sub(self.pushed - self.acked) as usize);
        }
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
    /// The peer's stream, when it sends the mix: its seed and limits.
    mix: Option<(u64, usize, usize)>,
    /// Pushes received whole (descriptors, or messages of the mix).
    received: u64,
    /// The descriptor number expected next.
    next: u64,
    got_last: bool,
    /// Pushes asked for so far (messages, in the mix).
    issued: u64,
    /// Mix: the messages asked for and not yet whole, in order, with how
    /// they are taken.
    expected: VecDeque<Expected>,
    last_delivery: Option<Instant>,
}

/// A message of the mix that requests were made for.
#[derive(Debug)]
struct Expected {
    seq: u64,
    shape: Shape,
    /// Taken by one descriptor request per descriptor: how many arrived.
    by_descriptor: Option<usize>,
    /// The last flag its first descriptor carried, which every other one
    /// must carry too.
    flag: Option<bool>,
}

impl Collector {
    fn new(spec: &EndpointSpec) -> Collector {
        Collector {
            goal: spec.goal,
            mix: spec.mix.then_some((
                spec.peer_payload_seed,
                spec.config.max_fds_per_message,
                spec.config.max_payload_len,
            )),
            received: 0,
            next: 0,
            got_last: false,
            issued: 0,
            expected: VecDeque::new(),
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
            let refused = |e| {
                format!(
                    "a receive request refused after {} received: {e}",
                    self.received
                )
            };
            match self.mix {
                None => {
                    passer.push_recv().map_err(refused)?;
                }
                Some((seed, max_fds, max_payload)) => {
                    let seq = self.issued;
                    let shape = Shape::for_seq(seed, seq, max_fds, max_payload);
                    let by_descriptor = shape.by_descriptor_requests(seq);
                    if by_descriptor {
                        for _ in 0..shape.fds {
                            passer.push_recv().map_err(refused)?;
                        }
                    } else {
                        passer.push_recv_message().map_err(refused)?;
                    }
                    self.expected.push_back(Expected {
                        seq,
                        shape,
                        by_descriptor: by_descriptor.then_some(0),
                        flag: None,
                    });
                }
            }
            self.issued += 1;
        }
        Ok(())
    }

    /// Checks a numbered descriptor: the next in number, of the kind it
    /// says, with the last flag `last` (if known); returns its flag.
    fn check_descriptor(&mut self, fd: OwnedFd, last: Option<bool>) -> Result<bool, String> {
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
        if let Some(last) = last {
            if n.last != last {
                return Err(format!(
                    "descriptor #{} says last={}, its message says {last}",
                    n.seq, n.last
                ));
            }
        }
        self.next += 1;
        Ok(n.last)
    }

    /// Checks the last flag of push `seq` against the goal.
    fn check_last(&self, what: &str, seq: u64, last: bool) -> Result<(), String> {
        if let Goal::Count(total) = self.goal {
            if last != (seq + 1 == total) {
                return Err(format!(
                    "{what} #{seq} says last={last} in a stream of {total}"
                ));
            }
        }
        Ok(())
    }

    /// One push is whole: counts it and the stall before it.
    fn completed(&mut self, last: bool, now: Instant, stats: &mut Stats) {
        self.received += 1;
        self.got_last = last;
        stats.received = self.received;
        if let Some(previous) = self.last_delivery {
            let gap = now.duration_since(previous).as_micros() as u64;
            if gap > stats.longest_stall_us {
                stats.longest_stall_us = gap;
                stats.longest_stall_seq = self.received - 1;
            }
        }
        self.last_delivery = Some(now);
    }

    /// A descriptor, from a descriptor request: the next push of a
    /// descriptor stream, or the next descriptor of a descriptor-only
    /// message of the mix that is taken that way.
    fn deliver(&mut self, fd: OwnedFd, now: Instant, stats: &mut Stats) -> Result<(), String> {
        if self.mix.is_none() {
            let seq = self.next;
            let last = self.check_descriptor(fd, None)?;
            self.check_last("descriptor", seq, last)?;
            stats.descriptors_received += 1;
            self.completed(last, now, stats);
            return Ok(());
        }
        let Some(front) = self.expected.front() else {
            return Err("a descriptor arrived with no request for it".into());
        };
        let (seq, fds, flag) = (front.seq, front.shape.fds, front.flag);
        let Some(got) = front.by_descriptor else {
            return Err(format!(
                "a descriptor arrived for a descriptor request while message #{seq} was awaited by a message request"
            ));
        };
        let last = self.check_descriptor(fd, flag)?;
        stats.descriptors_received += 1;
        if got == 0 {
            self.check_last("message", seq, last)?;
        }
        if got + 1 < fds {
            if let Some(front) = self.expected.front_mut() {
                front.by_descriptor = Some(got + 1);
                front.flag = Some(last);
            }
            return Ok(());
        }
        self.expected.pop_front();
        self.completed(last, now, stats);
        Ok(())
    }

    /// A whole message from a message request: the next message of the mix,
    /// its payload byte for byte and its descriptors in number order.
    fn deliver_message(
        &mut self,
        message: Message,
        now: Instant,
        stats: &mut Stats,
    ) -> Result<(), String> {
        let Some((seed, _, _)) = self.mix else {
            return Err("a message arrived in a descriptor stream".into());
        };
        let Some(front) = self.expected.pop_front() else {
            return Err("a message arrived with no request for it".into());
        };
        if front.by_descriptor.is_some() {
            return Err(format!(
                "a message arrived for a message request while message #{} was awaited by descriptor requests",
                front.seq
            ));
        }
        let (seq, shape) = (front.seq, front.shape);
        if self.got_last {
            return Err(format!("message #{seq} arrived after the last one"));
        }
        if message.fds.len() != shape.fds {
            return Err(format!(
                "message #{seq}: {} descriptors, expected {}",
                message.fds.len(),
                shape.fds
            ));
        }
        let flag = mix::check_payload(seed, seq, shape.payload_len, &message.payload)?;
        let mut last = (shape.payload_len > 0).then_some(flag);
        for fd in message.fds {
            let fd_last = self.check_descriptor(fd, last)?;
            last = Some(fd_last);
            stats.descriptors_received += 1;
        }
        let last = last.ok_or_else(|| format!("message #{seq} carries nothing"))?;
        self.check_last("message", seq, last)?;
        stats.payload_bytes_received += message.payload.len() as u64;
        self.completed(last, now, stats);
        Ok(())
    }
}
