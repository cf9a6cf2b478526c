//! Retry deadlines kept by one process-wide thread instead of tokio's timer.
//!
//! tokio's timer panics when polled after the runtime that created it shut
//! down ("A Tokio 1.x context was found, but it is being shutdown") and when
//! the runtime was built without `enable_time`, and tokio offers no way to
//! check either beforehand. A passer outlives runtimes (it is created in one,
//! its `recv()` times out, the runtime is dropped, the passer is used from
//! another), so its deadlines cannot live there. Deadlines are rare (only
//! while the descriptor table is full or the kernel pushes back), so one
//! sleeping thread for the whole process costs nothing on the fast path.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// One reactor's deadline: armed by [`Alarm::poll_at`], woken by the thread.
#[derive(Debug, Default)]
pub(crate) struct Alarm {
    armed: Arc<Mutex<Armed>>,
}

#[derive(Debug, Default)]
struct Armed {
    /// The deadline the owner waits for; entries for any other are stale.
    at: Option<Instant>,
    waker: Option<Waker>,
}

/// The thread's queue: deadlines, earliest first, with whom to wake.
pub(crate) struct Queue {
    entries: Mutex<BinaryHeap<Entry>>,
    changed: Condvar,
}

struct Entry {
    at: Reverse<Instant>,
    alarm: Weak<Mutex<Armed>>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

static QUEUE: OnceLock<io::Result<&'static Queue>> = OnceLock::new();

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic elsewhere.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's alarm thread, started on first use.
///
/// # Errors
/// The thread could not be started (`EAGAIN`: the process or user is at its
/// thread limit); every later call returns the same error.
pub(crate) fn queue() -> io::Result<&'static Queue> {
    let started = QUEUE.get_or_init(|| {
        let queue: &'static Queue = Box::leak(Box::new(Queue {
            entries: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("fdpass-alarm".into())
            .spawn(move || queue.run())
            .map(|_| queue)
    });
    match started {
        Ok(queue) => Ok(queue),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

impl Queue {
    fn run(&self) {
        let mut entries = lock(&self.entries);
        loop {
            let now = Instant::now();
            while entries.peek().is_some_and(|e| e.at.0 <= now) {
                if let Some(entry) = entries.pop() {
                    entry.fire();
                }
            }
            entries = match entries.peek().map(|e| e.at.0) {
                // A wait too long for the platform is capped by std and
                // simply comes round again.
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(entries, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self
                    .changed
                    .wait(entries)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

impl Entry {
    fn fire(self) {
        let Some(alarm) = self.alarm.upgrade() else {
            return; // its reactor is gone
        };
        let waker = {
            let mut armed = lock(&alarm);
            if armed.at != Some(self.at.0) {
                return; // re-armed for another deadline since
            }
            armed.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Alarm {
    /// Ready once `deadline` has passed; until then the alarm thread wakes
    /// `cx` at `deadline`. Re-arming with another deadline forgets the old one.
    pub(crate) fn poll_at(
        &mut self,
        queue: &'static Queue,
        cx: &mut Context<'_>,
        deadline: Instant,
    ) -> Poll<()> {
        if Instant::now() >= deadline {
            lock(&self.armed).at = None;
            return Poll::Ready(());
        }
        let rearmed = {
            let mut armed = lock(&self.armed);
            armed.waker = Some(cx.waker().clone());
            armed.at.replace(deadline) != Some(deadline)
        };
        if rearmed {
            let mut entries = lock(&queue.entries);
            if entries.len() >= 64 {
                // Entries of dropped reactors wait for their deadline, however
                // far; sweep them so the queue stays as small as its users.
                entries.retain(|e| e.alarm.strong_count() > 0);
            }
            let earliest = entries.peek().is_none_or(|e| deadline < e.at.0);
            entries.push(Entry {
                at: Reverse(deadline),
                alarm: Arc::downgrade(&self.armed),
            });
            if earliest {
                queue.changed.notify_one();
            }
        }
        // The thread may have fired between the check above and the arming:
        // the clock decides.
        if Instant::now() >= deadline {
            lock(&self.armed).at = None;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
