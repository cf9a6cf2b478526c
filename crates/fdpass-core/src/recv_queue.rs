//! The input queue: outstanding receive requests and descriptors read ahead.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::RecvToken;

/// Requests waiting for a descriptor, and descriptors waiting for a request.
///
/// At most one of the two queues is non-empty at any time: a descriptor that
/// arrives goes to the oldest request, and a request made while descriptors
/// wait takes the oldest of them. Descriptors wait only when one message
/// brought more than was asked for, so a peer can never make us hold more than
/// the outstanding requests plus one message.
#[derive(Debug, Default)]
pub(crate) struct RecvQueue {
    requests: VecDeque<RecvToken>,
    read_ahead: VecDeque<OwnedFd>,
    next_token: u64,
    /// Descriptors received beyond their bytes: the kernel may hand out a
    /// message's descriptors with only part of its bytes (a partial write on
    /// the sender's side); the remaining bytes then arrive on their own.
    owed_bytes: usize,
}

/// Where a received descriptor went.
pub(crate) enum Delivery {
    /// To this request.
    Request(RecvToken, OwnedFd),
    /// Kept for the next request.
    ReadAhead,
}

impl RecvQueue {
    /// A new request; fulfilled at once if a descriptor is waiting.
    pub(crate) fn push_request(&mut self) -> (RecvToken, Option<OwnedFd>) {
        let token = RecvToken(self.next_token);
        self.next_token += 1;
        match self.read_ahead.pop_front() {
            Some(fd) => (token, Some(fd)),
            None => {
                self.requests.push_back(token);
                (token, None)
            }
        }
    }

    /// A request fulfilled at once from the descriptors read ahead, if any
    /// wait; otherwise nothing changes (no request is left outstanding).
    pub(crate) fn take_read_ahead(&mut self) -> Option<(RecvToken, OwnedFd)> {
        let fd = self.read_ahead.pop_front()?;
        let token = RecvToken(self.next_token);
        self.next_token += 1;
        Some((token, fd))
    }

    /// Withdraws an outstanding request; false if it was already fulfilled.
    pub(crate) fn cancel(&mut self, token: RecvToken) -> bool {
        match self.requests.iter().position(|t| *t == token) {
            Some(i) => {
                self.requests.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.requests.len()
    }

    pub(crate) fn deliver(&mut self, fd: OwnedFd) -> Delivery {
        match self.requests.pop_front() {
            Some(token) => Delivery::Request(token, fd),
            None => {
                self.read_ahead.push_back(fd);
                Delivery::ReadAhead
            }
        }
    }

    pub(crate) fn owed_bytes(&self) -> usize {
        self.owed_bytes
    }

    /// Accounts for one read of `bytes` payload bytes with `fds` descriptors.
    /// Returns false when the bytes outnumber the descriptors they could
    /// belong to (a protocol error).
    pub(crate) fn account(&mut self, bytes: usize, fds: usize) -> bool {
        match (self.owed_bytes + fds).checked_sub(bytes) {
            Some(owed) => {
                self.owed_bytes = owed;
                true
            }
            None => false,
        }
    }

    /// Forgets every request (the stream ended or failed) and hands back the
    /// descriptors read ahead for closing.
    pub(crate) fn drain_all(&mut self) -> std::collections::vec_deque::Drain<'_, OwnedFd> {
        self.requests.clear();
        self.read_ahead.drain(..)
    }

    /// Forgets the outstanding requests only (end of stream: read-ahead
    /// descriptors stay for later requests).
    pub(crate) fn drop_requests(&mut self) {
        self.requests.clear();
    }

    pub(crate) fn read_ahead_len(&self) -> usize {
        self.read_ahead.len()
    }
}
