//! The injection schedule of one soak process.
//!
//! Faults come from a seeded [`Rng`] at times measured from the start of the
//! run, so a seed replays the same schedule: the same kinds of fault, in the
//! same order, at the same offsets, with the same durations and sizes. (How
//! they interleave with the transfer still depends on timing.)
//!
//! Each process injects into itself, on the side where it receives:
//! - **lowered limit**: `RLIMIT_NOFILE` drops to a few slots above what is
//!   open (never below what one largest message needs: a message that can
//!   never fit under the limit is an error by design, not a wait), then goes
//!   back up;
//! - **filled table**: the table is filled to the limit with duplicates and
//!   kept full (refilled every round, since delivered descriptors are closed
//!   and free their slots), then freed;
//! - **churn**: other threads open and close descriptors as fast as they can;
//! - **bursts**: the sender pushes until the socket buffer is full, then
//!   queues more on top (the caller applies these; see [`Injector::step`]).
//!
//! With the sentinel reservation, churn threads are parked (synchronously,
//! holding nothing) while the table is limited or filled: a descriptor
//! opened by another thread between the sentinel's close and its `recvmsg`
//! in a nearly full table is the strategy's documented hole, which the
//! passer reports as `DescriptorsRefused` rather than losing anything. Churn
//! in a table with room runs with both strategies.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::fdcount::FdCounter;
use crate::rng::Rng;

/// What the injector may do.
#[derive(Debug, Clone, Copy)]
pub struct FaultSettings {
    /// Inject at all. Off: the run measures the plain transfer.
    pub enabled: bool,
    /// Threads that open and close descriptors during churn periods.
    pub churn_threads: usize,
    /// Park the churn threads while the table is limited or filled.
    pub quiet_table: bool,
    /// The normal soft `RLIMIT_NOFILE`, restored after each lowering.
    pub nofile: u64,
    /// The lowest soft `RLIMIT_NOFILE` a lowering sets: the passer's socket
    /// plus one largest message (`max_fds_per_message + 1`). Below it a
    /// waiting message can never fit, which the passer reports as
    /// `Error::MessageNeverFits` instead of waiting: a table full for now
    /// must delay delivery, a limit too low for any message is the
    /// application's to fix.
    pub min_nofile: u64,
}

/// How many faults of each kind one process injected.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultCounts {
    /// Times `RLIMIT_NOFILE` was lowered.
    pub limit_lowered: u64,
    /// Times the table was filled.
    pub table_filled: u64,
    /// Bursts requested.
    pub bursts: u64,
    /// Churn periods started.
    pub churn_periods: u64,
    /// Open-and-close operations made by churn threads.
    pub churn_ops: u64,
}

/// Sets the soft descriptor limit, keeping the hard one.
pub fn set_soft_nofile(soft: u64) -> io::Result<()> {
    let current = getrlimit(Resource::Nofile);
    if let Some(hard) = current.maximum {
        if soft > hard {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a soft descriptor limit of {soft} is above the hard limit {hard}"),
            ));
        }
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: current.maximum,
        },
    )?;
    Ok(())
}

enum Table {
    Normal,
    Limited,
    Filled(Vec<OwnedFd>),
}

/// One independent line of the schedule: its own random stream and the time
/// of its next change. Each change draws the same numbers whatever the
/// timing, and the next change is timed from when this one was applied, so
/// a process that falls behind is never flooded with overdue faults.
struct Chain {
    rng: Rng,
    at: Instant,
}

impl Chain {
    fn new(seed: u64, stream: u64, start: Instant, first_ms: (u64, u64)) -> Chain {
        let mut rng = Rng::derive(seed, stream);
        let at = start + Duration::from_millis(rng.range(first_ms.0, first_ms.1));
        Chain { rng, at }
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.range(lo, hi))
    }
}

/// One process's fault injector; see the module docs.
pub struct Injector {
    settings: FaultSettings,
    /// Table faults: normal for 20-200 ms, then limited or filled for 1-40 ms.
    table_chain: Chain,
    table: Table,
    /// Churn: parked for 50-500 ms, then running for 20-300 ms.
    churn_chain: Chain,
    churn_on: bool,
    churn: ChurnPool,
    /// Bursts of 64-1024 descriptors, 20-300 ms apart.
    burst_chain: Chain,
    /// What fills are duplicates of.
    placeholder: OwnedFd,
    counts: FaultCounts,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = match &self.table {
            Table::Normal => "normal".to_string(),
            Table::Limited => "limited".to_string(),
            Table::Filled(fds) => format!("filled ({} duplicates)", fds.len()),
        };
        f.debug_struct("Injector")
            .field("table", &table)
            .field("churn_on", &self.churn_on)
            .field("counts", &self.counts)
            .finish()
    }
}

impl Injector {
    /// A new injector whose schedule starts at `start`. Starts the churn
    /// threads, parked.
    pub fn new(seed: u64, settings: FaultSettings, start: Instant) -> io::Result<Injector> {
        let placeholder =
            rustix::fs::memfd_create("fdpass-soak-fill", rustix::fs::MemfdFlags::CLOEXEC)?;
        let threads = if settings.enabled {
            settings.churn_threads
        } else {
            0
        };
        Ok(Injector {
            settings,
            table_chain: Chain::new(seed, 0, start, (1, 50)),
            table: Table::Normal,
            churn_chain: Chain::new(seed, 1, start, (1, 200)),
            churn_on: false,
            churn: ChurnPool::start(threads)?,
            burst_chain: Chain::new(seed, 2, start, (1, 100)),
            placeholder,
            counts: FaultCounts::default(),
        })
    }

    /// When [`step`](Self::step) has something to do next.
    pub fn next_wake(&self) -> Option<Instant> {
        if !self.settings.enabled {
            return None;
        }
        let mut at = self.table_chain.at.min(self.burst_chain.at);
        if self.settings.churn_threads > 0 {
            at = at.min(self.churn_chain.at);
        }
        Some(at)
    }

    /// Applies every change that is due at `now` and keeps a filled table
    /// full. Returns the size of a burst to queue on top of a full socket
    /// buffer, if one is due.
    pub fn step(&mut self, now: Instant, counter: &mut FdCounter) -> io::Result<Option<usize>> {
        if !self.settings.enabled {
            return Ok(None);
        }
        if self.settings.churn_threads > 0 && self.churn_chain.at <= now {
            self.churn_on = !self.churn_on;
            let next = if self.churn_on {
                self.counts.churn_periods += 1;
                self.churn_chain.millis(20, 300)
            } else {
                self.churn_chain.millis(50, 500)
            };
            self.churn_chain.at = now + next;
        }
        if self.table_chain.at <= now {
            if matches!(self.table, Table::Normal) {
                let kind = self.table_chain.rng.below(2);
                let slack = self.table_chain.rng.below(9);
                let duration = self.table_chain.millis(1, 40);
                self.start_table_fault(kind, slack, counter)?;
                self.table_chain.at = Instant::now() + duration;
            } else {
                self.end_table_fault()?;
                self.table_chain.at = Instant::now() + self.table_chain.millis(20, 200);
            }
        }
        if let Table::Filled(fds) = &mut self.table {
            fill(&self.placeholder, fds)?;
        }
        self.sync_churn();
        let mut burst = None;
        if self.burst_chain.at <= now {
            burst = Some(self.burst_chain.rng.range(64, 1024) as usize);
            self.counts.bursts += 1;
            self.burst_chain.at = now + self.burst_chain.millis(20, 300);
        }
        Ok(burst)
    }

    fn start_table_fault(
        &mut self,
        kind: u64,
        slack: u64,
        counter: &mut FdCounter,
    ) -> io::Result<()> {
        // With the sentinel, park the churn threads (holding nothing) first.
        self.table = Table::Limited;
        self.sync_churn();
        if kind == 0 {
            let open = counter.count()? as u64;
            let current = getrlimit(Resource::Nofile);
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(
                        (open + slack)
                            .max(self.settings.min_nofile)
                            .min(self.settings.nofile),
                    ),
                    maximum: current.maximum,
                },
            )?;
            self.counts.limit_lowered += 1;
        } else {
            let mut fds = Vec::new();
            fill(&self.placeholder, &mut fds)?;
            self.table = Table::Filled(fds);
            self.counts.table_filled += 1;
        }
        Ok(())
    }

    fn end_table_fault(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.table, Table::Normal) {
            Table::Normal => Ok(()),
            Table::Limited => set_soft_nofile(self.settings.nofile),
            Table::Filled(fds) => {
                drop(fds);
                Ok(())
            }
        }
    }

    /// Runs or parks the churn threads as the schedule says. Parking for a
    /// table fault waits until every thread holds nothing.
    fn sync_churn(&mut self) {
        let table_fault = !matches!(self.table, Table::Normal);
        let quiet = self.settings.quiet_table && table_fault;
        self.churn.set_running(self.churn_on && !quiet, quiet);
    }

    /// Ends every fault (the table back to normal, churn threads stopped
    /// and joined) and returns what was injected.
    pub fn finish(mut self) -> io::Result<FaultCounts> {
        self.end_table_fault()?;
        self.counts.churn_ops = self.churn.stop();
        Ok(self.counts)
    }
}

/// Duplicates `placeholder` until the table is full.
fn fill(placeholder: &OwnedFd, fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    loop {
        match rustix::io::fcntl_dupfd_cloexec(placeholder, 0) {
            Ok(fd) => fds.push(fd),
            Err(Errno::MFILE | Errno::NFILE) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Debug, Default)]
struct ChurnShared {
    active: AtomicBool,
    stop: AtomicBool,
    /// Threads parked (holding no descriptor).
    parked: Mutex<usize>,
    changed: Condvar,
    ops: AtomicU64,
}

/// Threads that open and close descriptors as fast as they can while
/// running, and hold none while parked.
#[derive(Debug)]
struct ChurnPool {
    shared: Arc<ChurnShared>,
    threads: Vec<JoinHandle<()>>,
    running: bool,
}

impl ChurnPool {
    fn start(n: usize) -> io::Result<ChurnPool> {
        let shared = Arc::new(ChurnShared::default());
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("churn-{i}"))
                    .spawn(move || churn(&shared))?,
            );
        }
        let pool = ChurnPool {
            shared,
            threads,
            running: false,
        };
        pool.wait_parked();
        Ok(pool)
    }

    /// Starts or parks the threads; with `wait`, returns only once every
    /// thread is parked.
    fn set_running(&mut self, on: bool, wait: bool) {
        if self.threads.is_empty() {
            return;
        }
        if on != self.running {
            self.running = on;
            let _parked = self.shared.parked.lock().unwrap();
            self.shared.active.store(on, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
        if !on && wait {
            self.wait_parked();
        }
    }

    /// Blocks until every thread is parked, holding nothing.
    fn wait_parked(&self) {
        let mut parked = self.shared.parked.lock().unwrap();
        while *parked < self.threads.len() {
            parked = self.shared.changed.wait(parked).unwrap();
        }
    }

    /// Stops and joins the threads; returns their operation count.
    fn stop(&mut self) -> u64 {
        {
            let _parked = self.shared.parked.lock().unwrap();
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.changed.notify_all();
        }
        for thread in self.threads.drain(..) {
            thread.join().expect("a churn thread panicked");
        }
        self.shared.ops.load(Ordering::SeqCst)
    }
}

impl Drop for ChurnPool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}

fn churn(shared: &ChurnShared) {
    let mut i = 0u64;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if !shared.active.load(Ordering::SeqCst) {
            let mut parked = shared.parked.lock().unwrap();
            *parked += 1;
            shared.changed.notify_all();
            while !shared.active.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
                parked = shared.changed.wait(parked).unwrap();
            }
            *parked -= 1;
            continue;
        }
        // Each result is dropped (closed) at once; a full table is expected.
        match i % 3 {
            0 => drop(rustix::fs::memfd_create(
                "fdpass-soak-churn",
                rustix::fs::MemfdFlags::CLOEXEC,
            )),
            1 => drop(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)),
            _ => drop(rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )),
        }
        i += 1;
        shared.ops.fetch_add(1, Ordering::Relaxed);
    }
}
