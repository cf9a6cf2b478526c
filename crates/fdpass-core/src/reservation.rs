//! Room in the descriptor table for what arrives: the two strategies' state.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;

use crate::sys::Sys;

/// The state each [`Reservation`](crate::Reservation) strategy keeps between reads.
#[derive(Debug)]
pub(crate) enum Slots {
    /// Peek strategy. Holds slots only after a truncated peek whose probe
    /// found room: they keep that room for the immediate retry.
    Peek {
        probes: Vec<OwnedFd>,
        /// Truncated peeks in a row although a probe found room each time.
        refusals: u32,
    },
    /// Sentinel strategy: `size` duplicates of `origin` occupy table slots.
    Sentinel {
        origin: OwnedFd,
        slots: Vec<OwnedFd>,
        size: usize,
    },
}

/// How many truncated peeks in a row, each followed by a probe that found
/// room, mean the kernel refuses the descriptors for good (a security module)
/// rather than a table that other threads keep filling.
pub(crate) const REFUSALS_BEFORE_ERROR: u32 = 4;

/// Room a probe must find beyond a truncated message's own descriptors before
/// the truncation counts towards a refusal. Between closing the probe slots
/// and the retried peek, other threads can take a few slots, and in a nearly
/// full table they do so again and again; room for the message alone would
/// then read as a refusal. A security module's refusal repeats with any
/// amount of room, so asking for more only spares the nearly full table.
pub(crate) const REFUSAL_MARGIN: usize = 16;

/// The outcome of trying to take `n` table slots.
pub(crate) enum Room {
    /// All `n` slots were taken (and are held).
    Available,
    /// The table is full (`EMFILE`/`ENFILE`): try again after a backoff.
    Full,
    /// The reservation can never fit under the current `RLIMIT_NOFILE`: it
    /// needs more slots than the `room` the limit leaves.
    NeverFits { room: usize },
}

impl Slots {
    /// Sentinel strategy: a pipe's read end is the origin (its write end is
    /// closed at once, so the origin is inert), plus `size` duplicates.
    pub(crate) fn sentinel<S: Sys>(sys: &mut S, size: usize) -> Result<Self, Errno> {
        let (origin, write_end) = sys.pipe()?;
        sys.close(write_end);
        let mut slots = Slots::Sentinel {
            origin,
            slots: Vec::with_capacity(size),
            size,
        };
        // Whatever the outcome, what was taken goes back through `sys`.
        match slots.refill(sys) {
            Ok(Room::Available) => Ok(slots),
            Ok(Room::Full | Room::NeverFits { .. }) => {
                slots.close_all(sys);
                Err(Errno::MFILE)
            }
            Err(e) => {
                slots.close_all(sys);
                Err(e)
            }
        }
    }

    pub(crate) fn peek() -> Self {
        Slots::Peek {
            probes: Vec::new(),
            refusals: 0,
        }
    }

    /// Whether a read may start: the sentinel reservation must be whole.
    pub(crate) fn is_ready(&self) -> bool {
        match self {
            Slots::Peek { .. } => true,
            Slots::Sentinel { slots, size, .. } => slots.len() == *size,
        }
    }

    /// Frees the held slots just before a `recvmsg`, so what arrives has room.
    pub(crate) fn release<S: Sys>(&mut self, sys: &mut S) {
        match self {
            Slots::Peek { probes, .. } => {
                for fd in probes.drain(..) {
                    sys.close(fd);
                }
            }
            // All of them at every read: runs of consecutive slots go in one
            // call each where the seam can.
            Slots::Sentinel { slots, .. } => sys.close_many(slots),
        }
    }

    /// Sentinel strategy: frees only `n` of the slots (fewer than all), for
    /// a read known to bring at most `n` descriptors: the native wire's
    /// frame header says how many before they are taken. Frees all of them
    /// with the peek strategy's probes, as [`release`](Self::release).
    pub(crate) fn release_some<S: Sys>(&mut self, sys: &mut S, n: usize) {
        match self {
            Slots::Sentinel { slots, .. } if n < slots.len() => {
                // The most recently taken: usually consecutive numbers, one
                // `close_range` for them all.
                let mut freed = slots.split_off(slots.len() - n);
                sys.close_many(&mut freed);
            }
            _ => self.release(sys),
        }
    }

    /// Sentinel strategy: takes back the slots freed by [`release`](Self::release).
    pub(crate) fn refill<S: Sys>(&mut self, sys: &mut S) -> Result<Room, Errno> {
        let Slots::Sentinel {
            origin,
            slots,
            size,
        } = self
        else {
            return Ok(Room::Available);
        };
        take_slots(sys, origin.as_fd(), slots, *size)
    }

    /// Sentinel strategy, before a read: closes the slots whose numbers are
    /// at or above the descriptor limit (it can be lowered at any time, and
    /// the kernel installs descriptors only below it, so such a slot keeps no
    /// room) and takes them again below it. `Full`: the table under the
    /// limit has no room; the reservation is short until a retry refills it.
    pub(crate) fn fit_under_limit<S: Sys>(&mut self, sys: &mut S) -> Result<Room, Errno> {
        let Slots::Sentinel { slots, size, .. } = self else {
            return Ok(Room::Available);
        };
        let Some(limit) = sys.nofile_limit() else {
            return Ok(Room::Available);
        };
        let room = room_under(limit);
        if *size > room {
            return Ok(Room::NeverFits { room });
        }
        let usable = |fd: &OwnedFd| (fd.as_raw_fd() as u64) < limit;
        if slots.iter().all(usable) {
            return Ok(Room::Available);
        }
        let (keep, unusable): (Vec<_>, Vec<_>) = slots.drain(..).partition(usable);
        *slots = keep;
        for fd in unusable {
            sys.close(fd);
        }
        self.refill(sys)
    }

    /// Peek strategy, after a truncated peek: tries to take `n` slots (holding
    /// them for the retry) to tell a full table from a refusal.
    pub(crate) fn probe<S: Sys>(
        &mut self,
        sys: &mut S,
        socket: BorrowedFd<'_>,
        n: usize,
    ) -> Result<Room, Errno> {
        let Slots::Peek { probes, .. } = self else {
            return Ok(Room::Available);
        };
        let room = take_slots(sys, socket, probes, n)?;
        if !matches!(room, Room::Available) {
            for fd in probes.drain(..) {
                sys.close(fd);
            }
        }
        Ok(room)
    }

    /// Peek strategy: counts one more refusal; true when there were too many.
    pub(crate) fn note_refusal(&mut self) -> bool {
        match self {
            Slots::Peek { refusals, .. } => {
                *refusals += 1;
                *refusals >= REFUSALS_BEFORE_ERROR
            }
            Slots::Sentinel { .. } => true,
        }
    }

    /// A message was read whole: the refusal streak is over.
    pub(crate) fn note_success(&mut self) {
        if let Slots::Peek { refusals, .. } = self {
            *refusals = 0;
        }
    }

    /// Closes everything held (failure, close, drop).
    pub(crate) fn close_all<S: Sys>(&mut self, sys: &mut S) {
        self.release(sys);
        match std::mem::replace(self, Slots::peek()) {
            Slots::Sentinel { origin, .. } => sys.close(origin),
            peek => *self = peek,
        }
    }

    /// How many table slots this reservation occupies right now.
    pub(crate) fn held(&self) -> usize {
        match self {
            Slots::Peek { probes, .. } => probes.len(),
            Slots::Sentinel { slots, .. } => slots.len() + 1,
        }
    }
}

/// The descriptors the table can ever hold for arrivals under the soft
/// `RLIMIT_NOFILE` `limit`: every number below it but the one the passer's
/// own socket takes.
pub(crate) fn room_under(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(1)).unwrap_or(usize::MAX)
}

/// Duplicates `from` until `held` has `n` entries; a full table is not an error.
fn take_slots<S: Sys>(
    sys: &mut S,
    from: BorrowedFd<'_>,
    held: &mut Vec<OwnedFd>,
    n: usize,
) -> Result<Room, Errno> {
    while held.len() < n {
        match sys.dup(from) {
            Ok(fd) => held.push(fd),
            Err(Errno::MFILE | Errno::NFILE) => return Ok(Room::Full),
            // `F_DUPFD` from 0 fails with `EINVAL` only when the soft
            // `RLIMIT_NOFILE` is 0 (fcntl(2)): no slot at all, a full table.
            Err(Errno::INVAL) => return Ok(Room::Full),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Room::Available)
}
