//! Closing descriptors that someone else chose, away from the caller's thread.
//!
//! `close(2)` of the last reference to a file runs that file's release, and
//! some releases wait: a TCP socket with `SO_LINGER` set waits up to its
//! linger time for unsent data to be acknowledged (`tcp_close` in the Linux
//! source file `net/ipv4/tcp.c`; `SO_LINGER` in `socket(7)`), a FUSE file
//! waits for its server to answer `FLUSH`, an NFS file writes back dirty
//! pages. A descriptor a peer passed is such a file whenever the peer wants
//! it to be, so a passer never closes one on the caller's thread: it hands
//! it to [`dispose`], and a small pool of background threads closes it.
//!
//! The same holds for the passer's socket itself: when it is released, Linux
//! frees whatever is still queued in it, descriptors in flight included
//! (`unix_release_sock` in `net/unix/af_unix.c` empties the receive queue,
//! and the last `fput` of each file queues the release as task work on the
//! releasing thread, run before it returns to user space: `fput` in
//! `fs/file_table.c`). So the final drop of the socket goes here too, and the release
//! is made orderly on the way: the socket is shut down, its receive queue
//! drained (non-blocking, bounded), and only then closed, because Linux
//! resets the peer's stream (`ECONNRESET`) when a stream socket is released
//! with unread data, where an empty queue gives the peer a plain end of
//! stream.
//!
//! Disposal is asynchronous: a descriptor handed over is closed soon, not at
//! once. A leak check that counts open descriptors waits for [`flush`]
//! first. A close that itself blocks (the linger time, a FUSE server that
//! never answers) holds only its worker; the pool grows to at most
//! [`MAX_WORKERS`] threads while every worker is busy, and idle workers exit.
//! If no thread can be started at all, the descriptor is closed on the
//! caller's thread instead: it is never lost or leaked.
//!
//! Until its close, a descriptor handed over keeps its number and anything
//! registered on it: an event loop that watches the passer's socket by
//! number (mio) deregisters it before dropping the passer, as mio asks
//! anyway, or it may see one more event (the shutdown) for it. At process
//! exit the kernel closes whatever is still queued. A process forked
//! without `exec` has no workers: it must not use fdpass.
//!
//! ```
//! use std::time::Duration;
//!
//! let (read_end, write_end) = rustix::pipe::pipe()?;
//! fdpass_core::disposal::dispose(write_end);
//! assert!(fdpass_core::disposal::flush(Duration::from_secs(10)));
//! assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1])?, 0); // closed: end of file
//! # Ok::<(), rustix::io::Errno>(())
//! ```

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most threads closing descriptors at once. A peer can make each close
/// last as long as it likes, so this bounds the threads it can hold, not the
/// time: further disposals wait for a worker. A peer that hands over this
/// many descriptors whose close blocks (sockets lingering on unsent data,
/// files of a FUSE server that never answers) and has them let go of delays
/// every later disposal in the process, other connections' included, until
/// one of those closes ends; 64 makes that take 64 such descriptors at
/// once, where a handful is routine. Each worker has a small stack
/// ([`WORKER_STACK`]): it only ever calls `close`.
pub const MAX_WORKERS: usize = 64;

/// A worker's stack, in bytes: enough for `close` and the job queue.
pub const WORKER_STACK: usize = 64 * 1024;

/// How long an idle worker waits for more work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(5);

/// At most this many reads drain a socket before its final close. After the
/// shutdown nothing new can arrive (the peer's sends fail with `EPIPE`), so
/// the queue only shrinks; the bound guards against a kernel that differs.
const DRAIN_READS: usize = 1 << 16;

/// Hands `fd` to a background thread, which closes it soon.
///
/// For a descriptor whose close may block, such as one a peer passed: the
/// caller returns at once whatever the file's release does. See the module
/// docs for when it is actually closed and what [`flush`] waits for.
///
/// ```
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// fdpass_core::disposal::dispose(read_end); // returns at once
/// # Ok::<(), rustix::io::Errno>(())
/// ```
pub fn dispose(fd: OwnedFd) {
    submit(Job::Close(fd));
}

/// Hands the passer's socket to a background thread for an orderly release:
/// `shutdown(SHUT_RDWR)`, drain the receive queue, close. The shutdown is
/// done here, at once (it never blocks), so the peer sees the end of stream
/// even while every worker is busy.
pub(crate) fn release_socket(fd: OwnedFd) {
    // Not a socket (a test's stand-in) or already shut down: nothing to do.
    let _ = rustix::net::shutdown(&fd, rustix::net::Shutdown::Both);
    submit(Job::ReleaseSocket(fd));
}

/// Waits until every disposal handed over before this call is done, or until
/// `within` has passed. Returns whether they are all done.
///
/// For leak checks: a descriptor handed to [`dispose`], or released with a
/// passer, may still be open right after the call returns. A disposal whose
/// close blocks (a lingering socket) delays the answer by as long as it
/// blocks, up to `within`.
///
/// ```
/// assert!(fdpass_core::disposal::flush(std::time::Duration::from_secs(10)));
/// ```
pub fn flush(within: Duration) -> bool {
    let deadline = Instant::now().checked_add(within);
    let mut state = lock();
    let upto = state.next_seq;
    loop {
        if state
            .unfinished
            .first()
            .is_none_or(|&oldest| oldest >= upto)
        {
            return true;
        }
        let wait = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return false,
            },
            None => Duration::MAX,
        };
        state = POOL
            .done
            .wait_timeout(state, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// One piece of work for the pool.
enum Job {
    Close(OwnedFd),
    ReleaseSocket(OwnedFd),
}

impl Job {
    fn run(self) {
        match self {
            Job::Close(fd) => drop(fd),
            Job::ReleaseSocket(fd) => {
                drain(&fd);
                drop(fd);
            }
        }
    }
}

/// Reads and discards what is queued in `socket`, without a control buffer:
/// the kernel then drops the descriptors in flight, on this thread.
fn drain(socket: &OwnedFd) {
    let mut scratch = [0u8; 4096];
    for _ in 0..DRAIN_READS {
        match rustix::net::recv(socket, &mut scratch[..], rustix::net::RecvFlags::DONTWAIT) {
            Ok((_, 0)) => return, // empty and shut down: end of stream
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return, // empty (EAGAIN), or not a socket
        }
    }
}

struct State {
    queue: VecDeque<(u64, Job)>,
    next_seq: u64,
    /// Sequence numbers queued or running.
    unfinished: BTreeSet<u64>,
    workers: usize,
    /// Workers waiting for work.
    idle: usize,
}

struct Pool {
    state: Mutex<State>,
    /// Signalled when work is queued.
    work: Condvar,
    /// Signalled when a job is finished.
    done: Condvar,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        queue: VecDeque::new(),
        next_seq: 0,
        unfinished: BTreeSet::new(),
        workers: 0,
        idle: 0,
    }),
    work: Condvar::new(),
    done: Condvar::new(),
};

/// A job never panics while the lock is held, but a poisoned lock must not
/// stop disposals: the state is consistent at every unlock.
fn lock() -> MutexGuard<'static, State> {
    POOL.state.lock().unwrap_or_else(|e| e.into_inner())
}

fn submit(job: Job) {
    let mut state = lock();
    let seq = state.next_seq;
    state.next_seq += 1;
    state.unfinished.insert(seq);
    state.queue.push_back((seq, job));
    let spawn = state.queue.len() > state.idle && state.workers < MAX_WORKERS;
    if !spawn {
        drop(state);
        POOL.work.notify_one();
        return;
    }
    state.workers += 1;
    drop(state);
    let started = std::thread::Builder::new()
        .name("fdpass-dispose".into())
        .stack_size(WORKER_STACK)
        .spawn(work);
    if started.is_err() {
        let mut state = lock();
        state.workers -= 1;
        POOL.work.notify_one();
        if state.workers == 0 {
            // No thread will ever take these: close them here rather than
            // leak them.
            let jobs: Vec<_> = state.queue.drain(..).collect();
            drop(state);
            for (seq, job) in jobs {
                job.run();
                finish(seq);
            }
        }
    }
}

fn finish(seq: u64) {
    lock().unfinished.remove(&seq);
    POOL.done.notify_all();
}

/// A worker: runs jobs until none has come for [`IDLE_EXIT`].
fn work() {
    let mut state = lock();
    loop {
        if let Some((seq, job)) = state.queue.pop_front() {
            drop(state);
            job.run();
            finish(seq);
            state = lock();
            continue;
        }
        state.idle += 1;
        let (next, timeout) = POOL
            .work
            .wait_timeout(state, IDLE_EXIT)
            .unwrap_or_else(|e| e.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            state.workers -= 1;
            return;
        }
    }
}
