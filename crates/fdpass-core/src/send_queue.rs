//! The output queue: descriptors waiting for the kernel, in push order.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::SendToken;

/// Queued descriptors plus the stream position of the first one.
///
/// Tokens are positions in the stream, so no per-descriptor token is stored:
/// the descriptor at the front always has token `taken`.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    fds: VecDeque<OwnedFd>,
    /// How many descriptors the kernel has taken so far (the front's token).
    taken: u64,
    /// Zero bytes still owed to the stream after a partial write: the kernel
    /// took a message's descriptors with only part of its bytes, and the rest
    /// must follow before the next message so the stream stays in step.
    owed_bytes: usize,
}

impl SendQueue {
    pub(crate) fn push(&mut self, fd: OwnedFd) -> SendToken {
        let token = SendToken(self.taken + self.fds.len() as u64);
        self.fds.push_back(fd);
        token
    }

    /// Whether anything (descriptors or owed bytes) waits to be written.
    pub(crate) fn has_work(&self) -> bool {
        !self.fds.is_empty() || self.owed_bytes > 0
    }

    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }

    pub(crate) fn owed_bytes(&self) -> usize {
        self.owed_bytes
    }

    /// The next message's descriptors: up to `max` from the front, contiguous.
    pub(crate) fn next_batch(&mut self, max: usize) -> &[OwnedFd] {
        let n = self.fds.len().min(max);
        let (front, _) = self.fds.as_slices();
        if front.len() < n {
            self.fds.make_contiguous();
        }
        &self.fds.as_slices().0[..n]
    }

    /// The kernel took the first `n` descriptors with `written` of their `n`
    /// bytes. Returns them (for closing) and the token of the last one.
    pub(crate) fn mark_sent(
        &mut self,
        n: usize,
        written: usize,
    ) -> (std::collections::vec_deque::Drain<'_, OwnedFd>, SendToken) {
        debug_assert!(written >= 1 && written <= n);
        self.owed_bytes = n - written;
        self.taken += n as u64;
        (self.fds.drain(..n), SendToken(self.taken - 1))
    }

    /// `written` owed bytes went out.
    pub(crate) fn pay_owed(&mut self, written: usize) {
        self.owed_bytes -= written.min(self.owed_bytes);
    }

    /// The stream ended (failure): no owed byte will ever be written.
    pub(crate) fn forget_owed_bytes(&mut self) {
        self.owed_bytes = 0;
    }

    /// Empties the queue (on close, drop, or for `take_unsent`); the caller
    /// owns what it gets.
    pub(crate) fn drain_all(&mut self) -> std::collections::vec_deque::Drain<'_, OwnedFd> {
        self.owed_bytes = 0;
        self.fds.drain(..)
    }
}
