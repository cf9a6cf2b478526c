//! The input queue: outstanding receive requests and messages read ahead.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::{Error, Message, RecvToken};

/// What a receive request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The next descriptor (`push_recv`).
    Descriptor,
    /// The next message, or what is left of it (`push_recv_message`).
    Message,
}

/// A message received and not yet handed out whole: its payload, and how
/// many of the descriptors at the front of [`RecvQueue::fds`] are still its.
#[derive(Debug)]
struct Arrived {
    payload: Vec<u8>,
    fds: usize,
}

/// How a request was served.
#[derive(Debug)]
pub(crate) enum Served {
    Descriptor(RecvToken, OwnedFd),
    Message(RecvToken, Message),
    /// A descriptor request met a message that is not descriptors only: the
    /// request ends with this error, the message stays for a message request.
    Refused(RecvToken, Error),
}

/// Requests waiting for what arrives, and what arrived waiting for requests.
///
/// At most one of the two is non-empty at any time, except while the head
/// message carries payload bytes and only descriptor requests wait (each is
/// refused as it reaches the front). Messages wait only when one read
/// brought more than was asked for, so a peer can never make us hold more
/// than the outstanding requests plus one read.
#[derive(Debug, Default)]
pub(crate) struct RecvQueue {
    requests: VecDeque<(RecvToken, Want)>,
    arrived: VecDeque<Arrived>,
    /// The descriptors of `arrived`, in order (one flat queue: the classic
    /// wire's messages of one descriptor then cost no allocation).
    fds: VecDeque<OwnedFd>,
    next_token: u64,
    /// Messages that arrived, ever (for the counters).
    arrivals: u64,
    /// Classic wire: descriptors received beyond their bytes. The kernel may
    /// hand out a message's descriptors with only part of its bytes (a
    /// partial write on the sender's side); the remaining bytes then arrive
    /// on their own.
    owed_bytes: usize,
}

impl RecvQueue {
    fn token(&mut self) -> RecvToken {
        let token = RecvToken(self.next_token);
        self.next_token += 1;
        token
    }

    /// A new request, put in line; whatever can be served now is pushed to
    /// `served`.
    pub(crate) fn push_request(
        &mut self,
        want: Want,
        served: &mut impl FnMut(Served),
    ) -> RecvToken {
        let token = self.token();
        self.requests.push_back((token, want));
        self.serve(served);
        token
    }

    /// A descriptor request fulfilled at once from what was read ahead, if
    /// the next thing there is a descriptor; otherwise nothing changes.
    pub(crate) fn take_descriptor(&mut self) -> Option<(RecvToken, OwnedFd)> {
        if !self.requests.is_empty() {
            return None;
        }
        let head = self.arrived.front()?;
        if !head.payload.is_empty() || head.fds == 0 {
            return None;
        }
        let token = self.token();
        let fd = self.take_fd()?;
        Some((token, fd))
    }

    /// A message request fulfilled at once from what was read ahead, if
    /// anything waits; otherwise nothing changes.
    pub(crate) fn take_message(&mut self) -> Option<(RecvToken, Message)> {
        if !self.requests.is_empty() || self.arrived.is_empty() {
            return None;
        }
        let token = self.token();
        self.pop_message().map(|message| (token, message))
    }

    /// [`take_message`](Self::take_message) without building a [`Message`]:
    /// the message's descriptors are appended to `fds` (no allocation once
    /// `fds` has grown); returns its payload and how many descriptors.
    pub(crate) fn take_message_into(
        &mut self,
        fds: &mut VecDeque<OwnedFd>,
    ) -> Option<(Vec<u8>, usize)> {
        if !self.requests.is_empty() {
            return None;
        }
        let head = self.arrived.pop_front()?;
        let _token = self.token();
        fds.extend(self.fds.drain(..head.fds));
        Some((head.payload, head.fds))
    }

    /// Withdraws an outstanding request; false if it was already served.
    pub(crate) fn cancel(&mut self, token: RecvToken) -> bool {
        match self.requests.iter().position(|(t, _)| *t == token) {
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

    /// A message arrived whole: queue it and serve the requests it can.
    pub(crate) fn arrive(
        &mut self,
        payload: Vec<u8>,
        fds: impl IntoIterator<Item = OwnedFd>,
        served: &mut impl FnMut(Served),
    ) {
        let before = self.fds.len();
        self.fds.extend(fds);
        self.arrivals += 1;
        self.arrived.push_back(Arrived {
            payload,
            fds: self.fds.len() - before,
        });
        self.serve(served);
    }

    /// Serves requests from the front while both sides have something.
    fn serve(&mut self, served: &mut impl FnMut(Served)) {
        while let (Some(&(token, want)), Some(head)) = (self.requests.front(), self.arrived.front())
        {
            let descriptors_only = head.payload.is_empty() && head.fds > 0;
            self.requests.pop_front();
            match want {
                Want::Descriptor if descriptors_only => {
                    if let Some(fd) = self.take_fd() {
                        served(Served::Descriptor(token, fd));
                    }
                }
                Want::Descriptor => served(Served::Refused(
                    token,
                    Error::UnexpectedMessage {
                        payload_len: head.payload.len(),
                        descriptors: head.fds,
                    },
                )),
                Want::Message => {
                    if let Some(message) = self.pop_message() {
                        served(Served::Message(token, message));
                    }
                }
            }
        }
    }

    /// The next descriptor of the head message (which has some).
    fn take_fd(&mut self) -> Option<OwnedFd> {
        let head = self.arrived.front_mut()?;
        let fd = self.fds.pop_front()?;
        head.fds -= 1;
        if head.fds == 0 && head.payload.is_empty() {
            self.arrived.pop_front();
        }
        Some(fd)
    }

    /// The head message, or what descriptor requests left of it.
    fn pop_message(&mut self) -> Option<Message> {
        let head = self.arrived.pop_front()?;
        Some(Message {
            payload: head.payload,
            fds: self.fds.drain(..head.fds).collect(),
        })
    }

    pub(crate) fn arrivals(&self) -> u64 {
        self.arrivals
    }

    pub(crate) fn owed_bytes(&self) -> usize {
        self.owed_bytes
    }

    /// Classic wire: accounts for one read of `bytes` payload bytes with
    /// `fds` descriptors. Returns false when the bytes outnumber the
    /// descriptors they could belong to (a protocol error).
    pub(crate) fn account(&mut self, bytes: usize, fds: usize) -> bool {
        match (self.owed_bytes + fds).checked_sub(bytes) {
            Some(owed) => {
                self.owed_bytes = owed;
                true
            }
            None => false,
        }
    }

    /// Forgets every request and everything read ahead (the stream failed
    /// or was closed by us), handing back the descriptors for closing.
    pub(crate) fn drain_all(&mut self) -> std::collections::vec_deque::Drain<'_, OwnedFd> {
        self.requests.clear();
        self.arrived.clear();
        self.fds.drain(..)
    }

    /// Forgets the outstanding requests only (end of stream: what was read
    /// ahead stays for later requests).
    pub(crate) fn drop_requests(&mut self) {
        self.requests.clear();
    }

    /// Messages read ahead and not yet handed out (whole or in part).
    pub(crate) fn read_ahead_messages(&self) -> usize {
        self.arrived.len()
    }

    /// Descriptors read ahead and not yet handed out.
    pub(crate) fn read_ahead_fds(&self) -> usize {
        self.fds.len()
    }
}
