//! The line of receive requests and the messages that arrived for them.
//!
//! The driver pulls what the passer read ahead as whole messages and asks
//! for the rest by kind; either way what arrives is shared out here, in
//! stream order: a descriptor request (`recv`, `recv_many`) takes descriptors of messages
//! that are descriptors only, a message request (`recv_message`) takes the
//! next message whole (or what descriptor requests ahead of it left of it),
//! and a descriptor request that meets a message with payload bytes (or an
//! empty one) is refused with [`Error::UnexpectedMessage`] and takes nothing,
//! so the message waits for the next message request. These are the rules
//! of the passer's own queue (`recv_queue.rs`), applied to a line whose
//! requests may be dropped at any time.
//!
//! Nothing arrived is assigned to a request ahead of time: which request
//! owns what is worked out from the front of the line each time a request
//! looks ([`RecvLine::locate`]). So when a request leaves the line unserved
//! (its future was dropped), what it would have got goes to the request
//! behind it, and nothing is lost.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::{Error, Message, Passer};

/// What a request in line takes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// `recv`: the next descriptor.
    One,
    /// `recv_many`: its first descriptor and what else is here when that one
    /// is, up to `limit`, across messages of descriptors only. Fixed
    /// (`taken`) as soon as its first one is here, so the requests behind it
    /// know where theirs start and wait for nothing but their own.
    Batch { limit: usize, taken: Option<usize> },
    /// `recv_message`: the next message.
    Message,
}

/// One receive request in line.
#[derive(Debug, Clone, Copy)]
struct Place {
    ticket: u64,
    kind: Kind,
}

/// Where a request's share is in [`RecvLine::arrived`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Share {
    /// `count` descriptors, from descriptor `skip` of message `at` on,
    /// through messages of descriptors only.
    Fds {
        at: usize,
        skip: usize,
        count: usize,
    },
    /// Message `at` from descriptor `skip` on (descriptor requests ahead
    /// take the first `skip`).
    Message { at: usize, skip: usize },
    /// A descriptor request meets message `at`, which carries payload bytes
    /// or nothing at all: refused; the message stays.
    Refused { at: usize },
}

/// A position in what arrived: message `at`, its first `skip` descriptors
/// taken by the requests walked past.
#[derive(Debug, Default)]
struct Cursor {
    at: usize,
    skip: usize,
}

/// A message received and not yet claimed (whole or in part): its payload,
/// and how many of the descriptors in [`RecvLine::fds`] are still its.
#[derive(Debug)]
struct Arrived {
    payload: Vec<u8>,
    fds: usize,
}

/// Receive requests in the order they were made, and messages received and
/// not yet claimed, oldest first.
///
/// Invariant: no message in `arrived` has had all its descriptors taken, so
/// a message there without payload and without descriptors is one the peer
/// sent empty.
#[derive(Debug, Default)]
pub(super) struct RecvLine {
    places: VecDeque<Place>,
    next_ticket: u64,
    arrived: VecDeque<Arrived>,
    /// The descriptors of `arrived`, in order: one flat queue, so that
    /// descriptors pass through without an allocation per message.
    fds: VecDeque<OwnedFd>,
}

fn descriptors_only(message: &Arrived) -> bool {
    message.payload.is_empty() && message.fds > 0
}

impl RecvLine {
    /// Requests in line.
    pub(super) fn len(&self) -> usize {
        self.places.len()
    }

    /// Descriptors received and not yet claimed.
    pub(super) fn held_descriptors(&self) -> usize {
        self.fds.len()
    }

    /// Whether a `recv_message` is in line.
    pub(super) fn has_message_request(&self) -> bool {
        self.places
            .iter()
            .any(|place| matches!(place.kind, Kind::Message))
    }

    /// A new place at the back of the line; its ticket.
    pub(super) fn enlist(&mut self, kind: Kind) -> u64 {
        let ticket = self.next_ticket;
        self.places.push_back(Place { ticket, kind });
        // 2^64 requests: centuries at a billion a second.
        self.next_ticket = self.next_ticket.wrapping_add(1);
        ticket
    }

    /// A message the passer delivered joins the back of what arrived.
    pub(super) fn arrive(&mut self, message: Message) {
        let fds = message.fds.len();
        self.fds.extend(message.fds);
        self.arrived.push_back(Arrived {
            payload: message.payload,
            fds,
        });
    }

    /// A descriptor the passer delivered for a descriptor request: a
    /// message of one, as far as the line can tell.
    pub(super) fn arrive_fd(&mut self, fd: OwnedFd) {
        self.fds.push_back(fd);
        self.arrived.push_back(Arrived {
            payload: Vec::new(),
            fds: 1,
        });
    }

    /// Moves the messages `passer` read ahead (newer than anything here) to
    /// the back of what arrived, without I/O and without an allocation per
    /// message.
    pub(super) fn pull_read_ahead(&mut self, passer: &mut Passer) {
        while let Some((payload, fds)) = passer.try_recv_message_into(&mut self.fds) {
            self.arrived.push_back(Arrived { payload, fds });
        }
    }

    /// Lets go of everything arrived (closed or failed: nobody will claim it).
    pub(super) fn drain_arrived(&mut self) -> impl Iterator<Item = OwnedFd> + '_ {
        self.arrived.clear();
        self.fds.drain(..)
    }

    /// Where message `at`'s descriptors start in `fds`.
    fn start_of(&self, at: usize) -> usize {
        self.arrived.range(..at).map(|message| message.fds).sum()
    }

    /// Where the share of the request `ticket` is, if all of it is here;
    /// `None` while it is not, or if `ticket` is not in line. Fixes the
    /// batches that became known on the way.
    pub(super) fn locate(&mut self, ticket: u64) -> Option<Share> {
        let mut cursor = Cursor::default();
        for place in self.places.iter_mut() {
            let share = step(&self.arrived, &mut cursor, &mut place.kind)?;
            if place.ticket == ticket {
                return Some(share);
            }
        }
        None
    }

    /// How many requests, from the back, have nothing here yet: each needs
    /// a message from the passer.
    pub(super) fn lacking(&mut self) -> usize {
        let mut cursor = Cursor::default();
        let total = self.places.len();
        for (i, place) in self.places.iter_mut().enumerate() {
            if step(&self.arrived, &mut cursor, &mut place.kind).is_none() {
                return total - i;
            }
        }
        0
    }

    /// Takes the request `ticket` out of line; what kind it was.
    pub(super) fn leave(&mut self, ticket: u64) -> Option<Kind> {
        let at = self
            .places
            .binary_search_by_key(&ticket, |place| place.ticket)
            .ok()?;
        self.places.remove(at).map(|place| place.kind)
    }

    /// The one descriptor of a [`Share::Fds`] of count 1.
    pub(super) fn take_one(&mut self, at: usize, skip: usize) -> Option<OwnedFd> {
        let index = self.start_of(at) + skip;
        let message = self.arrived.get_mut(at)?;
        if skip >= message.fds {
            return None;
        }
        message.fds -= 1;
        if message.fds == 0 {
            self.arrived.remove(at);
        }
        self.fds.remove(index)
    }

    /// The descriptors of a [`Share::Fds`], appended to `buf` in order.
    pub(super) fn take_fds(
        &mut self,
        at: usize,
        skip: usize,
        count: usize,
        buf: &mut Vec<OwnedFd>,
    ) {
        let (mut at, mut skip, mut left) = (at, skip, count);
        while left > 0 {
            let index = self.start_of(at) + skip;
            let Some(message) = self.arrived.get_mut(at) else {
                break;
            };
            let moved = left.min(message.fds.saturating_sub(skip));
            message.fds -= moved;
            left -= moved;
            if message.fds == 0 {
                self.arrived.remove(at);
            } else {
                at += 1;
            }
            buf.extend(self.fds.drain(index..index + moved));
            skip = 0;
        }
    }

    /// The message of a [`Share::Message`].
    pub(super) fn take_message(&mut self, at: usize, skip: usize) -> Option<Message> {
        let index = self.start_of(at) + skip;
        let head = self.arrived.get_mut(at)?;
        let count = head.fds.saturating_sub(skip);
        let payload = if skip == 0 {
            self.arrived.remove(at)?.payload
        } else {
            // Descriptor requests ahead keep the first `skip`; this one gets
            // the rest (the message is descriptors only: no payload to split).
            head.fds = skip;
            Vec::new()
        };
        let fds = self.fds.drain(index..index + count).collect();
        Some(Message::new(payload, fds))
    }

    /// The error of a [`Share::Refused`].
    pub(super) fn refusal(&self, at: usize) -> Error {
        let (payload_len, descriptors) = self
            .arrived
            .get(at)
            .map_or((0, 0), |message| (message.payload.len(), message.fds));
        Error::UnexpectedMessage {
            payload_len,
            descriptors,
        }
    }
}

/// The share of the request of `kind` whose turn starts at `cursor`, and
/// moves `cursor` past it; `None` if it is not all here.
fn step(arrived: &VecDeque<Arrived>, cursor: &mut Cursor, kind: &mut Kind) -> Option<Share> {
    let head = arrived.get(cursor.at)?;
    let (at, skip) = (cursor.at, cursor.skip);
    let limit = match kind {
        Kind::Message => {
            cursor.at += 1;
            cursor.skip = 0;
            return Some(Share::Message { at, skip });
        }
        // Refused: it takes nothing, the next request meets the same message.
        _ if !descriptors_only(head) => return Some(Share::Refused { at }),
        Kind::One => None,
        Kind::Batch { limit, taken } => Some((limit, taken)),
    };
    let count = match limit {
        None => 1,
        Some((limit, taken)) => {
            // Descriptors here from the cursor on, through messages of
            // descriptors only. A batch fixed earlier shrinks to them if a
            // request ahead left the line and moved its start onto fewer.
            let mut run = 0;
            let mut from = skip;
            for message in arrived.range(at..) {
                if !descriptors_only(message) {
                    break;
                }
                run += message.fds - from;
                from = 0;
            }
            *taken.insert(taken.unwrap_or(*limit).min(run))
        }
    };
    // Advance over `count` descriptors.
    let mut left = count;
    while left > 0 {
        let Some(message) = arrived.get(cursor.at) else {
            break;
        };
        let available = message.fds - cursor.skip;
        let moved = left.min(available);
        left -= moved;
        cursor.skip += moved;
        if cursor.skip == message.fds {
            cursor.at += 1;
            cursor.skip = 0;
        }
    }
    Some(Share::Fds { at, skip, count })
}
