//! The output queue: descriptors and messages waiting for the kernel, in
//! push order, and the bytes of a `sendmsg` the kernel took only in part.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::frame;
use crate::{Message, SendToken};

/// One push: a descriptor (`fds` 1, no payload) or a message.
#[derive(Debug)]
struct Queued {
    /// Its descriptors still queued, at the front of [`SendQueue::fds`].
    fds: usize,
    payload: Vec<u8>,
}

/// Limits on one `sendmsg`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Descriptors in one `sendmsg` (and one message).
    pub(crate) fds: usize,
    /// Payload bytes in one message; frame bytes in one `sendmsg` are at
    /// most this plus one header.
    pub(crate) payload: usize,
}

/// What [`SendQueue::next_batch`] made ready to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// `pushes` whole pushes whose `fds` descriptors go with the bytes.
    Ready { pushes: usize, fds: usize },
    /// The next push does not fit the limits (until the peer's hello says
    /// more may be sent, or ever).
    TooLarge,
    /// Nothing queued.
    Empty,
}

/// Queued pushes plus the stream position of the first one.
///
/// Tokens are positions in the stream of pushes, so no per-push token is
/// stored: the push at the front always has token `taken`.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    pushes: VecDeque<Queued>,
    /// Every queued push's descriptors, in order, one flat queue so that a
    /// `sendmsg` takes a contiguous slice.
    fds: VecDeque<OwnedFd>,
    /// Pushes the kernel has taken so far (the front's token).
    taken: u64,
    /// Payload bytes queued.
    payload_bytes: usize,
    /// The bytes of the `sendmsg` being written: `out[written..]` is still
    /// owed to the stream after a partial write (the kernel took the
    /// descriptors with the first part), and goes out before anything else.
    out: Vec<u8>,
    written: usize,
}

impl SendQueue {
    /// Owes `bytes` to the stream before anything queued (the native hello).
    pub(crate) fn owe(&mut self, bytes: &[u8]) {
        self.out.clear();
        self.out.extend_from_slice(bytes);
        self.written = 0;
    }

    pub(crate) fn push(&mut self, fd: OwnedFd) -> SendToken {
        self.fds.push_back(fd);
        self.push_queued(Queued {
            fds: 1,
            payload: Vec::new(),
        })
    }

    pub(crate) fn push_message(&mut self, message: Message) -> SendToken {
        let fds = message.fds.len();
        self.fds.extend(message.fds);
        self.payload_bytes += message.payload.len();
        self.push_queued(Queued {
            fds,
            payload: message.payload,
        })
    }

    fn push_queued(&mut self, queued: Queued) -> SendToken {
        let token = SendToken(self.taken + self.pushes.len() as u64);
        self.pushes.push_back(queued);
        token
    }

    /// Whether anything (pushes or owed bytes) waits to be written.
    pub(crate) fn has_work(&self) -> bool {
        !self.pushes.is_empty() || self.owes()
    }

    /// Descriptors queued.
    pub(crate) fn len(&self) -> usize {
        self.fds.len()
    }

    /// Payload bytes queued.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Whether bytes of a partly written `sendmsg` are owed.
    pub(crate) fn owes(&self) -> bool {
        self.written < self.out.len()
    }

    /// The owed bytes.
    pub(crate) fn owed(&self) -> &[u8] {
        &self.out[self.written..]
    }

    /// `n` owed bytes went out.
    pub(crate) fn pay_owed(&mut self, n: usize) {
        self.written = (self.written + n).min(self.out.len());
    }

    /// The front push's size: (descriptors, payload bytes).
    pub(crate) fn front_size(&self) -> Option<(usize, usize)> {
        self.pushes.front().map(|q| (q.fds, q.payload.len()))
    }

    /// Encodes the next native `sendmsg` into the output buffer: as many
    /// whole pushes from the front as fit `limits`, each a message frame.
    pub(crate) fn next_native_batch(&mut self, limits: BatchLimits) -> Batch {
        let mut pushes = 0;
        let mut fds = 0;
        let mut bytes = 0;
        for queued in &self.pushes {
            let frame_len = frame::HEADER_LEN + queued.payload.len();
            if fds + queued.fds > limits.fds
                || bytes + frame_len > frame::HEADER_LEN + limits.payload
            {
                break;
            }
            pushes += 1;
            fds += queued.fds;
            bytes += frame_len;
        }
        if pushes == 0 {
            return if self.pushes.is_empty() {
                Batch::Empty
            } else {
                Batch::TooLarge
            };
        }
        self.out.clear();
        self.written = 0;
        // `fds` fits in a byte: at most 253 (SCM_MAX_FD) per `sendmsg`.
        let mut batch_fds = u8::try_from(fds).unwrap_or(u8::MAX);
        for queued in self.pushes.iter().take(pushes) {
            let own = u8::try_from(queued.fds).unwrap_or(u8::MAX);
            frame::encode_message(&mut self.out, own, batch_fds, &queued.payload);
            batch_fds = 0;
        }
        Batch::Ready { pushes, fds }
    }

    /// Prepares the next classic `sendmsg`: up to `max` descriptors from the
    /// front, one zero byte each. Returns how many.
    pub(crate) fn next_classic_batch(&mut self, max: usize) -> usize {
        let n = self.fds.len().min(max);
        self.out.clear();
        self.out.resize(n, 0);
        self.written = 0;
        n
    }

    /// The prepared `sendmsg`: its bytes and the first `fds` queued
    /// descriptors, contiguous.
    pub(crate) fn batch(&mut self, fds: usize) -> (&[u8], &[OwnedFd]) {
        if self.fds.as_slices().0.len() < fds {
            self.fds.make_contiguous();
        }
        (&self.out, &self.fds.as_slices().0[..fds])
    }

    /// Classic wire: the kernel took the prepared `sendmsg` with its first
    /// `fds` descriptors and `written` of its bytes (at least one). Returns
    /// the descriptors (for closing) and the token of the last push
    /// completed, if any: a message's descriptors may span several
    /// `sendmsg`s. Every classic push has at least one descriptor.
    pub(crate) fn mark_sent_classic(
        &mut self,
        fds: usize,
        written: usize,
    ) -> (
        std::collections::vec_deque::Drain<'_, OwnedFd>,
        Option<SendToken>,
    ) {
        self.written = written.min(self.out.len());
        let mut left = fds;
        let mut completed = 0u64;
        while left > 0 {
            let Some(front) = self.pushes.front_mut() else {
                break;
            };
            if front.fds > left {
                front.fds -= left;
                break;
            }
            left -= front.fds;
            self.pushes.pop_front();
            completed += 1;
        }
        self.taken += completed;
        let token = (completed > 0).then(|| SendToken(self.taken - 1));
        (self.fds.drain(..fds), token)
    }

    /// Native wire: the kernel took the prepared `sendmsg` of `pushes` whole
    /// pushes carrying `fds` descriptors, with `written` of its bytes.
    pub(crate) fn mark_sent_pushes(
        &mut self,
        pushes: usize,
        fds: usize,
        written: usize,
    ) -> (std::collections::vec_deque::Drain<'_, OwnedFd>, SendToken) {
        self.written = written.min(self.out.len());
        for queued in self.pushes.drain(..pushes) {
            self.payload_bytes -= queued.payload.len();
        }
        self.taken += pushes as u64;
        (self.fds.drain(..fds), SendToken(self.taken - 1))
    }

    /// Forgets owed bytes not one of which was written yet (an unsent hello).
    pub(crate) fn forget_unstarted(&mut self) {
        if self.written == 0 {
            self.forget_owed_bytes();
        }
    }

    /// The prepared `sendmsg` was not taken (the kernel said "not now" or
    /// failed): nothing of it is owed; the next attempt prepares it anew.
    pub(crate) fn abandon_batch(&mut self) {
        self.forget_owed_bytes();
    }

    /// The stream ended (failure): no owed byte will ever be written.
    pub(crate) fn forget_owed_bytes(&mut self) {
        self.out.clear();
        self.written = 0;
    }

    /// Empties the queue (on close, drop, or for `take_unsent`); the caller
    /// owns what it gets.
    pub(crate) fn drain_all(&mut self) -> std::collections::vec_deque::Drain<'_, OwnedFd> {
        self.forget_owed_bytes();
        self.pushes.clear();
        self.payload_bytes = 0;
        self.fds.drain(..)
    }

    /// Empties the queue into whole messages, in push order.
    pub(crate) fn drain_messages(&mut self) -> Vec<Message> {
        self.forget_owed_bytes();
        self.payload_bytes = 0;
        let mut messages = Vec::with_capacity(self.pushes.len());
        for queued in self.pushes.drain(..) {
            messages.push(Message {
                payload: queued.payload,
                fds: self.fds.drain(..queued.fds).collect(),
            });
        }
        messages
    }
}
