//! The native wire's receiving side: bytes and descriptors as they come off
//! the socket, turned into whole messages (`docs/wire.md`, "Receiving").

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::frame::{self, Header, Hello, Kind, HEADER_LEN, HELLO_LEN};
use crate::recv_queue::{RecvQueue, Served};
use crate::ProtocolError;

/// What the peer announced, once its hello has arrived.
///
/// ```
/// use fdpass_core::{Config, Passer};
/// # fn main() -> Result<(), fdpass_core::Error> {
/// let (mut a, mut b) = Passer::pair(Config::default().with_max_fds_per_message(16))?;
/// assert_eq!(a.peer_limits(), None); // nothing read yet
/// let now = std::time::Instant::now();
/// b.handle_writable(now); // b's hello
/// a.handle_readable(now);
/// let limits = a.peer_limits().expect("hello read");
/// assert_eq!((limits.version, limits.max_fds_per_message), (1, 16));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// The wire version the two ends speak.
    pub version: u8,
    /// The most descriptors the peer accepts in one message (and one `sendmsg`).
    pub max_fds_per_message: usize,
    /// The most payload bytes the peer accepts in one message.
    pub max_payload_len: usize,
}

/// The state of the incoming native stream.
#[derive(Debug)]
pub(crate) struct Inbound {
    ours: Hello,
    max_fds: usize,
    max_payload: usize,
    peer: Option<PeerLimits>,
    /// Bytes of a frame not yet complete.
    pending: Vec<u8>,
    /// Descriptors received and not yet claimed by a frame, in order.
    unclaimed: VecDeque<OwnedFd>,
}

impl Inbound {
    pub(crate) fn new(max_fds: usize, max_payload: usize) -> Inbound {
        Inbound {
            ours: Hello::announcing(max_fds, max_payload),
            max_fds,
            max_payload,
            peer: None,
            pending: Vec::new(),
            unclaimed: VecDeque::new(),
        }
    }

    pub(crate) fn peer(&self) -> Option<PeerLimits> {
        self.peer
    }

    /// Bytes the next read may take: up to the end of the hello while it is
    /// awaited with nothing asked (`hello_only`), otherwise one largest
    /// message beyond what is buffered.
    pub(crate) fn read_len(&self, hello_only: bool) -> usize {
        let limit = if hello_only && self.peer.is_none() {
            HELLO_LEN
        } else {
            HEADER_LEN + self.max_payload
        };
        limit.saturating_sub(self.pending.len()).max(1)
    }

    pub(crate) fn held_fds(&self) -> usize {
        self.unclaimed.len()
    }

    /// Takes one read: `bytes` and the descriptors that came with it. Whole
    /// messages go to `recv`. On error every descriptor of the read is in
    /// [`unclaimed`](Self::take_unclaimed), for the caller to let go of.
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        fds: &mut Vec<OwnedFd>,
        recv: &mut RecvQueue,
        served: &mut impl FnMut(Served),
    ) -> Result<(), ProtocolError> {
        // Descriptors with a first read that does not begin with a hello:
        // the classic wire's first message. (A read that begins with the
        // hello may bring the descriptors of the sends after it.)
        let first = self.pending.first().or(bytes.first());
        if self.peer.is_none() && !fds.is_empty() && first != Some(&frame::KIND_HELLO) {
            self.unclaimed.extend(fds.drain(..));
            return Err(ProtocolError::ClassicPeer);
        }
        self.unclaimed.extend(fds.drain(..));
        if self.pending.is_empty() {
            let used = self.parse(bytes, recv, served)?;
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(bytes);
            let used = self.parse(&data, recv, served)?;
            data.drain(..used);
            self.pending = data;
        }
        if self.unclaimed.len() > self.max_fds {
            return Err(ProtocolError::DescriptorsWithoutFrame {
                count: self.unclaimed.len(),
            });
        }
        Ok(())
    }

    /// Parses whole frames from the front of `data`; returns the bytes used.
    fn parse(
        &mut self,
        data: &[u8],
        recv: &mut RecvQueue,
        served: &mut impl FnMut(Served),
    ) -> Result<usize, ProtocolError> {
        let mut at = 0;
        if self.peer.is_none() {
            if let Some(&first) = data.first() {
                // Say what it is as soon as one byte shows it is no hello.
                if first != frame::KIND_HELLO {
                    return Err(if first == 0 {
                        ProtocolError::ClassicPeer
                    } else {
                        ProtocolError::BadHello
                    });
                }
            }
            let Some(hello) = data.get(..HELLO_LEN) else {
                return Ok(0);
            };
            let hello = Hello::decode(hello.try_into().map_err(|_| ProtocolError::BadHello)?)?;
            let version = self.ours.version_with(&hello)?;
            self.peer = Some(PeerLimits {
                version,
                max_fds_per_message: usize::from(hello.max_fds),
                max_payload_len: hello.max_payload as usize,
            });
            at = HELLO_LEN;
        }
        while let Some(header) = data.get(at..at + HEADER_LEN) {
            let header = Header::decode(header.try_into().map_err(|_| ProtocolError::BadFrame)?)?;
            if header.kind != Kind::Message {
                return Err(ProtocolError::BadFrame);
            }
            let fds = usize::from(header.fds);
            if fds > self.max_fds || usize::from(header.batch_fds) > self.max_fds {
                return Err(ProtocolError::TooManyDescriptors {
                    limit: self.max_fds,
                });
            }
            let length = header.length as usize;
            if length > self.max_payload {
                return Err(ProtocolError::PayloadTooLong {
                    limit: self.max_payload,
                });
            }
            // A frame's descriptors arrive no later than its first byte.
            if fds > self.unclaimed.len() {
                return Err(ProtocolError::MissingDescriptors {
                    claimed: fds,
                    received: self.unclaimed.len(),
                });
            }
            let Some(payload) = data.get(at + HEADER_LEN..at + HEADER_LEN + length) else {
                break;
            };
            recv.arrive(payload.to_vec(), self.unclaimed.drain(..fds), served);
            at += HEADER_LEN + length;
        }
        Ok(at)
    }

    /// The end of the stream: an error if it cut a frame short or left
    /// descriptors no frame claimed.
    pub(crate) fn at_end(&self) -> Result<(), ProtocolError> {
        if !self.pending.is_empty() {
            return Err(ProtocolError::FrameCutShort {
                received: self.pending.len(),
            });
        }
        if !self.unclaimed.is_empty() {
            return Err(ProtocolError::DescriptorsWithoutFrame {
                count: self.unclaimed.len(),
            });
        }
        Ok(())
    }

    /// The descriptors received and not claimed, for letting go of.
    pub(crate) fn take_unclaimed(&mut self) -> std::collections::vec_deque::Drain<'_, OwnedFd> {
        self.pending.clear();
        self.unclaimed.drain(..)
    }

    /// What the next frame's header says, if the stream is at a `sendmsg`
    /// boundary and `peeked` (the bytes from the next unread one on) holds
    /// its header, after the peer's hello if that is still to come: the
    /// descriptors the next read brings (`batch_fds`) and the bytes up to the
    /// end of that frame (the hello's included).
    pub(crate) fn next_send(&self, peeked: &[u8]) -> Option<(usize, usize)> {
        if !self.pending.is_empty() || !self.unclaimed.is_empty() {
            return None;
        }
        let at = if self.peer.is_some() {
            0
        } else if peeked.first() == Some(&frame::KIND_HELLO) {
            HELLO_LEN
        } else {
            return None;
        };
        let header = peeked.get(at..at + HEADER_LEN)?;
        let header = Header::decode(header.try_into().ok()?).ok()?;
        if header.kind != Kind::Message || header.batch_fds < header.fds {
            return None;
        }
        Some((
            usize::from(header.batch_fds),
            (at + HEADER_LEN).saturating_add(header.length as usize),
        ))
    }
}
