//! The parent's side of one case: throughput and round-trip repetitions.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::case::{Load, Planned};
use crate::child::Child;
use crate::{alloc, endpoint, pin, BoxError};

/// How much work each measurement does.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Timed repetitions per figure (the median is reported).
    pub reps: usize,
    /// Descriptors in the untimed warm-up that also sizes the repetitions.
    pub warm_fds: usize,
    /// Bounds on the descriptors per repetition.
    pub min_fds: usize,
    pub max_fds: usize,
    /// Aimed-for length of one throughput repetition.
    pub fds_time: Duration,
    /// Descriptors the sender may hold at once (from `RLIMIT_NOFILE`): a
    /// repetition larger than this is sent in timed chunks, each prepared
    /// untimed.
    pub chunk: usize,
    /// Round trips in the warm-up that sizes the latency repetitions.
    pub warm_rounds: usize,
    pub min_rounds: usize,
    pub max_rounds: usize,
    /// Aimed-for length of one latency repetition.
    pub rounds_time: Duration,
    /// Measure round trips at all (in the cases planned for it).
    pub latency: bool,
}

impl Budget {
    pub fn full(chunk: usize) -> Budget {
        Budget {
            reps: 15,
            warm_fds: 20_000,
            min_fds: 8_000,
            max_fds: 1_000_000,
            fds_time: Duration::from_millis(60),
            chunk,
            warm_rounds: 1_000,
            min_rounds: 500,
            max_rounds: 50_000,
            rounds_time: Duration::from_millis(40),
            latency: true,
        }
    }

    /// Exactly `n` descriptors in one repetition, after a warm-up a tenth
    /// that size, and no round trips: a fixed amount of work to profile.
    pub fn fixed(n: usize, chunk: usize) -> Budget {
        let n = n.max(10);
        Budget {
            reps: 1,
            warm_fds: n / 10,
            min_fds: n,
            max_fds: n,
            fds_time: Duration::ZERO,
            chunk,
            warm_rounds: 0,
            min_rounds: 0,
            max_rounds: 0,
            rounds_time: Duration::ZERO,
            latency: false,
        }
    }

    pub fn quick(chunk: usize) -> Budget {
        Budget {
            reps: 1,
            warm_fds: 500,
            min_fds: 2_000,
            max_fds: 2_000,
            fds_time: Duration::ZERO,
            chunk,
            warm_rounds: 50,
            min_rounds: 200,
            max_rounds: 200,
            rounds_time: Duration::ZERO,
            latency: true,
        }
    }
}

/// Allocations made during the last (steady-state) throughput repetition.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocations {
    pub sender: u64,
    pub receiver: u64,
    pub descriptors: usize,
}

/// CPU time both processes used in one throughput repetition.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub sender_nanos: u64,
    pub receiver_nanos: u64,
}

/// What one case measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub planned: Planned,
    /// Descriptors per second, one per repetition.
    pub throughput: Vec<f64>,
    /// Descriptors per repetition.
    pub fds_per_rep: usize,
    /// CPU nanoseconds per descriptor (sender, receiver), one pair per
    /// repetition.
    pub cpu_per_fd: Vec<(f64, f64)>,
    /// The median round trip of each repetition, in seconds (empty if not
    /// measured).
    pub round_trip: Vec<f64>,
    /// The same with both processes pinned to one processor.
    pub round_trip_pinned: Vec<f64>,
    pub rounds_per_rep: usize,
    pub allocations: Allocations,
}

/// A case whose child is running, between repetitions.
///
/// Every case is started first, then the repetitions go round all of them,
/// so that a slow stretch of the machine touches every case alike instead
/// of a few cases entirely.
pub struct Running {
    planned: Planned,
    child: Child,
    endpoint: Box<dyn endpoint::Endpoint>,
    fds_per_rep: usize,
    rounds_per_rep: usize,
    throughput: Vec<f64>,
    cpu_per_fd: Vec<(f64, f64)>,
    round_trip: Vec<f64>,
    round_trip_pinned: Vec<f64>,
    allocations: Allocations,
}

/// Starts the child of `planned` and sizes its repetitions with one untimed
/// warm-up of each measurement.
pub fn start(mut planned: Planned, budget: &Budget, origin: &OwnedFd) -> Result<Running, BoxError> {
    planned.latency &= budget.latency;
    let (child, socket) = Child::spawn(planned.case)?;
    let endpoint = endpoint::open(planned.case, socket)?;
    let mut running = Running {
        planned,
        child,
        endpoint,
        fds_per_rep: 0,
        rounds_per_rep: 0,
        throughput: Vec::new(),
        cpu_per_fd: Vec::new(),
        round_trip: Vec::new(),
        round_trip_pinned: Vec::new(),
        allocations: Allocations::default(),
    };
    let (warm, _, _) = running.throughput(budget.warm_fds, origin, budget.chunk)?;
    let rate = budget.warm_fds as f64 / warm.as_secs_f64();
    running.fds_per_rep =
        ((rate * budget.fds_time.as_secs_f64()) as usize).clamp(budget.min_fds, budget.max_fds);
    if planned.latency {
        let each = running.round_trips(budget.warm_rounds, origin, None)?;
        running.rounds_per_rep = ((budget.rounds_time.as_secs_f64() / each) as usize)
            .clamp(budget.min_rounds, budget.max_rounds);
    }
    Ok(running)
}

impl Running {
    pub fn case(&self) -> crate::case::Case {
        self.planned.case
    }

    /// One timed repetition of each measurement of this case.
    pub fn repeat(&mut self, budget: &Budget, origin: &OwnedFd) -> Result<(), BoxError> {
        let (elapsed, allocations, cpu) =
            self.throughput(self.fds_per_rep, origin, budget.chunk)?;
        self.throughput
            .push(self.fds_per_rep as f64 / elapsed.as_secs_f64());
        let n = self.fds_per_rep as f64;
        self.cpu_per_fd
            .push((cpu.sender_nanos as f64 / n, cpu.receiver_nanos as f64 / n));
        // The last repetition's count is the steady state's.
        self.allocations = allocations;
        if self.planned.latency {
            let each = self.round_trips(self.rounds_per_rep, origin, None)?;
            self.round_trip.push(each);
            let cpu = pin::first_cpu()?;
            let each = self.round_trips(self.rounds_per_rep, origin, Some(cpu))?;
            self.round_trip_pinned.push(each);
        }
        Ok(())
    }

    /// Stops the child; the measurements.
    pub fn finish(self) -> Result<Measured, BoxError> {
        let Running {
            planned,
            child,
            endpoint,
            fds_per_rep,
            rounds_per_rep,
            throughput,
            cpu_per_fd,
            round_trip,
            round_trip_pinned,
            allocations,
        } = self;
        drop(endpoint);
        child.finish()?;
        Ok(Measured {
            planned,
            throughput,
            fds_per_rep,
            cpu_per_fd,
            round_trip,
            round_trip_pinned,
            rounds_per_rep,
            allocations,
        })
    }

    /// Sends `n` pre-created descriptors (or `n` messages of the case's
    /// load); the time runs from the first send until the receiver reports
    /// that it has closed the last one.
    fn throughput(
        &mut self,
        n: usize,
        origin: &OwnedFd,
        chunk: usize,
    ) -> Result<(Duration, Allocations, Cpu), BoxError> {
        let mut elapsed = Duration::ZERO;
        let mut allocations = Allocations::default();
        let mut cpu = Cpu::default();
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk);
            left -= k;
            let load = self.planned.case.load;
            let fds = (0..k * load.fds())
                .map(|_| rustix::io::fcntl_dupfd_cloexec(origin.as_fd(), 0))
                .collect::<Result<Vec<_>, _>>()?;
            let command = format!("recv {k}");
            self.child.command(&command)?;
            let cpu_before = alloc::cpu_nanos();
            let before = alloc::allocations();
            let start = Instant::now();
            if load == Load::Fds {
                self.endpoint.send_all(fds)?;
            } else {
                self.endpoint.send_messages(load, k, fds)?;
            }
            let sender = alloc::allocations() - before;
            let (receiver, receiver_cpu) = self.child.answer()?;
            elapsed += start.elapsed();
            cpu.sender_nanos += alloc::cpu_nanos() - cpu_before;
            cpu.receiver_nanos += receiver_cpu;
            allocations.sender += sender;
            allocations.receiver += receiver;
            allocations.descriptors += k;
        }
        Ok((elapsed, allocations, cpu))
    }

    /// `rounds` round trips of one descriptor; the median round trip, in
    /// seconds. Each round is timed on its own, so that a few slow wake-ups
    /// (an idle processor can take long to wake) do not set the figure.
    /// With `pinned`, both processes run on that one processor meanwhile, so
    /// no processor has to wake up at all: the software's own cost.
    fn round_trips(
        &mut self,
        rounds: usize,
        origin: &OwnedFd,
        pinned: Option<usize>,
    ) -> Result<f64, BoxError> {
        let fd = rustix::io::fcntl_dupfd_cloexec(origin.as_fd(), 0)?;
        let mut stamps = Vec::with_capacity(rounds + 1);
        let fd = match pinned {
            None => {
                self.child.command(&format!("echo {rounds}"))?;
                self.endpoint.ping(fd, rounds, &mut stamps)?
            }
            Some(cpu) => {
                let _pinned = pin::Pinned::to(cpu)?;
                self.child.command(&format!("echo-pinned {rounds} {cpu}"))?;
                self.endpoint.ping(fd, rounds, &mut stamps)?
            }
        };
        drop(fd);
        self.child.answer()?;
        let each: Vec<f64> = stamps
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        if each.is_empty() {
            return Err("no round trip was timed".into());
        }
        Ok(median(&each))
    }
}

/// Several runs of the same plan as one set of measurements: each figure
/// becomes the list of the runs' medians, in run order, so that the report's
/// median is the median of the runs and its spread the runs' disagreement.
/// With one run, that run's repetitions are kept as they are. Allocations
/// are the last run's (its steady state).
pub fn merge_runs(mut runs: Vec<Vec<Measured>>) -> Result<Vec<Measured>, BoxError> {
    if runs.len() <= 1 {
        return Ok(runs.pop().unwrap_or_default());
    }
    let last = runs.pop().unwrap_or_default();
    let mut merged = Vec::with_capacity(last.len());
    for (i, last) in last.into_iter().enumerate() {
        let mut all: Vec<&Measured> = Vec::with_capacity(runs.len() + 1);
        for run in &runs {
            let m = run.get(i).ok_or("runs measured different cases")?;
            if m.planned.case != last.planned.case {
                return Err("runs measured different cases".into());
            }
            all.push(m);
        }
        all.push(&last);
        let medians = |pick: fn(&Measured) -> &Vec<f64>| -> Vec<f64> {
            all.iter()
                .map(|m| pick(m))
                .filter(|v| !v.is_empty())
                .map(|v| median(v))
                .collect()
        };
        let throughput = medians(|m| &m.throughput);
        let round_trip = medians(|m| &m.round_trip);
        let round_trip_pinned = medians(|m| &m.round_trip_pinned);
        let cpu_per_fd = all
            .iter()
            .filter(|m| !m.cpu_per_fd.is_empty())
            .map(|m| {
                let send: Vec<f64> = m.cpu_per_fd.iter().map(|c| c.0).collect();
                let recv: Vec<f64> = m.cpu_per_fd.iter().map(|c| c.1).collect();
                (median(&send), median(&recv))
            })
            .collect();
        merged.push(Measured {
            throughput,
            round_trip,
            round_trip_pinned,
            cpu_per_fd,
            ..last.clone()
        });
    }
    Ok(merged)
}

/// The median of `samples` (which must not be empty).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// (max - min) / median: how much the repetitions disagreed.
pub fn spread(samples: &[f64]) -> f64 {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (max - min) / median(samples)
}
