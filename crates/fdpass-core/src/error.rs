//! What can go wrong, as types a caller can match on.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::child::InheritError;

/// Why a passer failed, or why a call on it was refused.
///
/// After a failure ([`Event::Failed`](crate::Event::Failed)) the passer is
/// unusable: every later push returns the same error again, so a caller that
/// missed the event still learns what happened. The error is cheap to clone
/// (the underlying `io::Error` sits behind an `Arc`) so that async adapters can
/// hand it to every waiting task.
///
/// An orderly close by the peer is *not* an error: it is reported as
/// [`Event::Closed`](crate::Event::Closed). Only a receive requested after that
/// event returns [`Error::PeerClosed`].
///
/// ```
/// use fdpass_core::{Error, ProtocolError};
///
/// let err = Error::Protocol(ProtocolError::BytesWithoutDescriptors { bytes: 3, descriptors: 1 });
/// assert!(err.to_string().contains("not speaking this protocol"));
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed in a way that retrying cannot fix (for example
    /// `EPIPE` or `ECONNRESET` when the peer went away mid-stream).
    Io(Arc<io::Error>),
    /// The peer sent something that is not a descriptor stream. Every
    /// descriptor that arrived with it has been closed.
    Protocol(ProtocolError),
    /// The peer closed the connection in an orderly way and no received
    /// descriptor is left to hand out. Returned by receive calls made after
    /// [`Event::Closed`](crate::Event::Closed) was reported.
    PeerClosed,
    /// This side closed the passer ([`Passer::close`](crate::Passer::close))
    /// or shut it down ([`Passer::shutdown`](crate::Passer::shutdown)).
    Closed,
    /// The send queue is at its high-water mark
    /// ([`Config::max_queued_sends`](crate::Config::max_queued_sends)); what
    /// [`PushError::Full`](crate::PushError::Full) stands for once its
    /// descriptors were let go of.
    SendQueueFull,
    /// A graceful [`shutdown`](crate::Passer::shutdown) reached its deadline
    /// with descriptors still queued. The socket was shut down; those
    /// descriptors are kept, open, for
    /// [`take_unsent`](crate::Passer::take_unsent).
    ShutdownTimedOut {
        /// Descriptors the kernel had not taken when the deadline passed.
        unsent: usize,
    },
    /// The [`Config`](crate::Config) given at construction is not valid; the
    /// text says which setting and what range it takes.
    InvalidConfig(&'static str),
    /// A descriptor-only receive met a message that is not descriptors only:
    /// it carries payload bytes, or nothing at all. The receive ends with this
    /// error and the message stays, whole, for the next message receive
    /// (`push_recv_message`, `recv_message`): nothing is lost.
    UnexpectedMessage {
        /// The message's payload bytes.
        payload_len: usize,
        /// Its descriptors.
        descriptors: usize,
    },
    /// A message can never be sent to this peer: it has more descriptors or
    /// payload bytes than the peer accepts (its hello's limits on the native
    /// wire; no payload at all on the classic wire). It was not sent.
    MessageTooLarge {
        /// The message's descriptors.
        descriptors: usize,
        /// Its payload bytes.
        payload_len: usize,
        /// The most descriptors per message the peer accepts.
        max_fds: usize,
        /// The most payload bytes per message the peer accepts (0 on the
        /// classic wire).
        max_payload: usize,
    },
    /// A message waiting to be received can never be installed in this
    /// process's descriptor table: it carries more descriptors than the
    /// table can ever hold at the current `RLIMIT_NOFILE` (less the slot of
    /// the passer's own socket), or than the sentinel reservation has slots.
    /// Waiting would be forever, so receiving fails instead; the message's
    /// descriptors were never installed (the kernel still holds them and
    /// drops them with the connection).
    MessageNeverFits {
        /// Descriptors the message (or the reservation it needs) takes.
        descriptors: usize,
        /// How many the table can hold for it: `RLIMIT_NOFILE` less the
        /// socket's slot.
        room: usize,
    },
    /// No inherited connection could be adopted
    /// ([`adopt_inherited`](crate::child::adopt_inherited), the adapters'
    /// `from_inherited`); [`InheritError::NotHandedOff`] means this process
    /// was not started by a hand-off at all.
    Inherit(InheritError),
}

/// A peer broke the wire format described in `docs/wire.md`.
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use std::time::Instant;
/// use fdpass_core::{Config, Error, Event, Passer, ProtocolError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (ours, mut theirs) = UnixStream::pair()?;
/// let classic = Config::default().with_wire(fdpass_core::Wire::CLASSIC);
/// let mut passer = Passer::new(ours.into(), classic)?;
/// theirs.write_all(b"no descriptors")?; // bytes without SCM_RIGHTS
/// passer.push_recv()?;
/// passer.handle_readable(Instant::now());
/// let Some(Event::Failed(Error::Protocol(e))) = passer.poll_event() else {
///     panic!("expected a protocol error");
/// };
/// assert!(matches!(e, ProtocolError::BytesWithoutDescriptors { descriptors: 0, .. }));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// More payload bytes arrived than descriptors to match them: every
    /// descriptor travels with exactly one byte.
    BytesWithoutDescriptors {
        /// Payload bytes in the offending read, not yet matched by descriptors.
        bytes: usize,
        /// Descriptors that came with them.
        descriptors: usize,
    },
    /// One message carried more descriptors than this passer accepts
    /// ([`Config::max_fds_per_message`](crate::Config::max_fds_per_message)).
    /// Configure both ends with the same limit.
    TooManyDescriptors {
        /// This passer's limit.
        limit: usize,
    },
    /// A datagram-style message (`SOCK_SEQPACKET`) was longer than any message
    /// this passer accepts.
    MessageTooLong {
        /// This passer's limit, in bytes (one per descriptor).
        limit: usize,
    },
    /// The kernel dropped descriptors of a message while handing them to us
    /// although the descriptor table had room: a security module refused them,
    /// or (with the sentinel strategy) another thread took the reserved slots
    /// between the close and the `recvmsg`. The descriptors that were dropped
    /// cannot be recovered, so the stream is no longer in sync.
    DescriptorsRefused,
    /// A control message other than `SCM_RIGHTS` arrived (for example
    /// `SCM_CREDENTIALS`).
    ForeignControlMessage,
    /// Native wire: the peer speaks the classic wire (its first message was
    /// a zero byte or descriptors, not a hello).
    ClassicPeer,
    /// Classic wire: the peer speaks the native wire (its first bytes were a
    /// native hello).
    NativePeer,
    /// Native wire: the first frame was not a valid hello (wrong header or
    /// magic, limits out of range).
    BadHello,
    /// Native wire: the two ends' version ranges do not overlap.
    UnsupportedVersion {
        /// The versions this passer speaks (lowest, highest).
        ours: (u8, u8),
        /// The versions the peer announced (lowest, highest).
        theirs: (u8, u8),
    },
    /// Native wire: a second hello, an unknown frame kind, or a non-zero
    /// reserved byte.
    BadFrame,
    /// Native wire: a frame claimed more descriptors than had arrived before it.
    MissingDescriptors {
        /// Descriptors the frame claimed.
        claimed: usize,
        /// Descriptors received and unclaimed when its header was read.
        received: usize,
    },
    /// Native wire: descriptors arrived that no frame claims (more than one
    /// message's worth unclaimed after a read, or any at the end of the stream).
    DescriptorsWithoutFrame {
        /// Descriptors unclaimed.
        count: usize,
    },
    /// Native wire: a message's payload was longer than this passer accepts
    /// ([`Config::max_payload_len`](crate::Config::max_payload_len), which
    /// it announced).
    PayloadTooLong {
        /// This passer's limit, in bytes.
        limit: usize,
    },
    /// Native wire: the stream ended in the middle of a frame.
    FrameCutShort {
        /// Bytes of the unfinished frame that had arrived.
        received: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => match e.raw_os_error().and_then(os_advice) {
                // An error from the system: what it was, then what it means
                // here and what to do.
                Some(advice) => write!(f, "{e}: {advice}"),
                // An error fdpass built says both already.
                None => write!(f, "{e}"),
            },
            Error::Protocol(p) => write!(
                f,
                "the peer broke the descriptor protocol: {p}; this passer has failed and closed what it held; reconnect"
            ),
            Error::PeerClosed => f.write_str(
                "the peer closed the connection; no descriptor is left to receive; stop receiving or reconnect",
            ),
            Error::Closed => {
                f.write_str("this passer was closed; create a new one to pass more descriptors")
            }
            Error::SendQueueFull => f.write_str(
                "the send queue is at its high-water mark (Config::max_queued_sends), so nothing was queued; try again once queued descriptors were sent (send().await waits for room), or raise the mark",
            ),
            Error::ShutdownTimedOut { unsent } => write!(
                f,
                "the graceful shutdown reached its deadline with {unsent} descriptor(s) the peer had not taken (it reads too slowly or not at all); they are kept open: take them back with take_unsent and try again with another peer or a later deadline"
            ),
            Error::InvalidConfig(why) => {
                write!(f, "invalid passer configuration: {why}; fix the Config")
            }
            Error::Inherit(e) => write!(f, "no inherited connection to adopt: {e}"),
            Error::UnexpectedMessage { payload_len, descriptors } => write!(
                f,
                "the next message carries {payload_len} payload byte(s) and {descriptors} descriptor(s), and a descriptor-only receive takes only messages of descriptors; it waits, whole, for a message receive (recv_message)"
            ),
            Error::MessageTooLarge {
                descriptors,
                payload_len,
                max_fds,
                max_payload: 0,
            } => write!(
                f,
                "a message of {payload_len} payload byte(s) and {descriptors} descriptor(s) cannot go on the classic wire, which carries no payload and at most {max_fds} descriptor(s) per message; it was not sent: use Wire::Native on both ends to send payloads"
            ),
            Error::MessageTooLarge {
                descriptors,
                payload_len,
                max_fds,
                max_payload,
            } => write!(
                f,
                "a message of {descriptors} descriptor(s) and {payload_len} payload byte(s) exceeds what the peer accepts ({max_fds} descriptor(s), {max_payload} byte(s) per message); it was not sent: split it, or raise the peer's max_fds_per_message or max_payload_len"
            ),
            Error::MessageNeverFits { descriptors, room } => write!(
                f,
                "a message needs {descriptors} free descriptor slot(s) but this process's table can never hold more than {room} for it at the current RLIMIT_NOFILE; raise the limit (ulimit -n, setrlimit) or have the peer send fewer descriptors per message (max_fds_per_message)"
            ),
        }
    }
}

/// What a system error means for a passer or its set-up, and what to do.
fn os_advice(code: i32) -> Option<&'static str> {
    use rustix::io::Errno;
    let advice = match Errno::from_raw_os_error(code) {
        Errno::PIPE | Errno::CONNRESET => {
            "the peer went away without an orderly close (it exited, crashed or reset the connection); descriptors the kernel had not taken are kept for take_unsent; connect again or restart the peer"
        }
        Errno::MFILE => {
            "this process's descriptor table is full; close descriptors or raise RLIMIT_NOFILE (ulimit -n)"
        }
        Errno::NFILE => {
            "the system's open-file limit was reached; close descriptors or raise the system limit"
        }
        Errno::NOBUFS | Errno::NOMEM => {
            "the kernel is short of memory for socket buffers; try again later or send fewer descriptors at once"
        }
        Errno::ACCESS | Errno::PERM => {
            "permission denied by file modes, ownership or a security module; check who may use this path or socket"
        }
        Errno::NOTSOCK | Errno::AFNOSUPPORT | Errno::OPNOTSUPP | Errno::PROTOTYPE => {
            "this is not a Unix-domain stream or seqpacket socket; a passer wraps only those, so check what you wrapped"
        }
        Errno::NOTCONN => "the socket is not connected; make sure it is connected before wrapping it in a passer",
        Errno::BADF => {
            "the descriptor is not open: something else closed it; make sure every descriptor has exactly one owner"
        }
        _ => return None,
    };
    Some(advice)
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BytesWithoutDescriptors { bytes, descriptors } => write!(
                f,
                "{bytes} byte(s) arrived with only {descriptors} descriptor(s) to match; every descriptor travels with one byte and nothing else is sent, so the peer is not speaking this protocol; make sure it is an fdpass passer and that nothing else writes to its socket"
            ),
            ProtocolError::TooManyDescriptors { limit } => write!(
                f,
                "a message carried more than the {limit} descriptor(s) this passer accepts; configure the sender's max_fds_per_message to at most {limit}"
            ),
            ProtocolError::MessageTooLong { limit } => write!(
                f,
                "a message was longer than {limit} byte(s), the most this passer accepts; configure both ends with the same max_fds_per_message"
            ),
            ProtocolError::DescriptorsRefused => f.write_str(
                "the kernel dropped descriptors although the table had room (a security module refused them, or another thread took the reserved slots), so the stream is out of sync; check the security module's log, or use Reservation::Peek where another thread opens descriptors",
            ),
            ProtocolError::ForeignControlMessage => f.write_str(
                "a control message other than SCM_RIGHTS arrived (credentials arrive when SO_PASSCRED is set on this socket); turn SO_PASSCRED off and send only descriptors",
            ),
            ProtocolError::ClassicPeer => f.write_str(
                "the peer speaks the classic wire (AnyEvent::FDpasser's, or Python's send_fds: a byte per descriptor, no hello); configure Wire::Classic on this end (Config::with_wire(Wire::CLASSIC)), or make the peer speak the native wire",
            ),
            ProtocolError::NativePeer => f.write_str(
                "the peer speaks fdpass's native wire (its first bytes were a hello); configure Wire::Native on this end, or Wire::Classic on the peer",
            ),
            ProtocolError::BadHello => f.write_str(
                "the peer's first frame was not a valid native hello (docs/wire.md); make sure the peer is an fdpass passer speaking the native wire and that nothing else writes to its socket",
            ),
            ProtocolError::UnsupportedVersion { ours, theirs } => write!(
                f,
                "the peer speaks native wire versions {}..={} and this passer {}..={}, which do not overlap; upgrade the older end",
                theirs.0, theirs.1, ours.0, ours.1
            ),
            ProtocolError::BadFrame => f.write_str(
                "a frame had an unknown kind or a non-zero reserved byte, or a second hello came; the peer does not follow docs/wire.md",
            ),
            ProtocolError::MissingDescriptors { claimed, received } => write!(
                f,
                "a frame claimed {claimed} descriptor(s) but only {received} had arrived before it; the peer does not attach each frame's descriptors to the sendmsg that carries it (docs/wire.md)"
            ),
            ProtocolError::DescriptorsWithoutFrame { count } => write!(
                f,
                "{count} descriptor(s) arrived that no frame claims; the peer does not follow docs/wire.md"
            ),
            ProtocolError::PayloadTooLong { limit } => write!(
                f,
                "a message's payload was longer than the {limit} byte(s) this passer accepts and announced; the peer ignored the announcement, or raise max_payload_len here"
            ),
            ProtocolError::FrameCutShort { received } => write!(
                f,
                "the peer closed the connection in the middle of a frame ({received} byte(s) of it had arrived); it crashed, or does not follow docs/wire.md"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(&**e),
            Error::Inherit(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::from(io::Error::from(e))
    }
}

impl From<InheritError> for Error {
    fn from(e: InheritError) -> Self {
        Error::Inherit(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(inner) => io::Error::new(inner.kind(), Error::Io(inner)),
            Error::Protocol(_) => io::Error::new(io::ErrorKind::InvalidData, e),
            Error::PeerClosed => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            Error::Closed => io::Error::new(io::ErrorKind::NotConnected, e),
            Error::SendQueueFull => io::Error::new(io::ErrorKind::WouldBlock, e),
            Error::ShutdownTimedOut { .. } => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::InvalidConfig(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            Error::Inherit(inner) => io::Error::from(inner),
            Error::UnexpectedMessage { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
            Error::MessageTooLarge { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
            Error::MessageNeverFits { .. } => io::Error::new(io::ErrorKind::OutOfMemory, e),
        }
    }
}
