//! One end of a connection for each implementation, with the four operations
//! every measurement is made of.

use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::case::{Case, Imp, Load, Recv};
use crate::BoxError;

mod core_poll;
mod mio_loop;
mod peers;
mod raw;
mod smol_rt;
mod tokio_rt;

/// One end of a connection, as the sender (parent) or the receiver (child).
pub trait Endpoint {
    /// Sends every descriptor, in order, closing each once the kernel has it;
    /// returns when all are in the kernel's hands.
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError>;

    /// Receives `n` descriptors, closing each as it arrives.
    fn recv_n(&mut self, n: usize) -> Result<(), BoxError>;

    /// `rounds` times: sends `fd`, and takes back what the peer returns as
    /// the next `fd`. Returns the last one. Pushes the time onto `stamps`
    /// before the first round and after each (`rounds + 1` in all; reserve
    /// room first, so that nothing allocates meanwhile).
    fn ping(
        &mut self,
        fd: OwnedFd,
        rounds: usize,
        stamps: &mut Vec<Instant>,
    ) -> Result<OwnedFd, BoxError>;

    /// `rounds` times: receives a descriptor and sends it straight back.
    fn echo(&mut self, rounds: usize) -> Result<(), BoxError>;

    /// Sends `n` messages of `load`, in order: each carries
    /// [`PAYLOAD`]`[..load.payload_len()]` and, if `load` has one, the next
    /// descriptor of `fds` (closed once the kernel has it). Returns when all
    /// are in the kernel's hands.
    fn send_messages(&mut self, load: Load, n: usize, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let _ = (load, n, fds);
        Err("this implementation has no message case".into())
    }

    /// Receives `n` messages of `load`, checking each one's size and closing
    /// its descriptors.
    fn recv_messages(&mut self, load: Load, n: usize) -> Result<(), BoxError> {
        let _ = (load, n);
        Err("this implementation has no message case".into())
    }
}

/// The payload bytes of the message cases (a prefix of it for each message;
/// the raw loop's batched sends take several messages' worth at once).
pub static PAYLOAD: [u8; 1 << 16] = [0x5a; 1 << 16];

/// The endpoint of `case` on `socket` (a connected, blocking, close-on-exec
/// `SOCK_STREAM` socket).
pub fn open(case: Case, socket: OwnedFd) -> Result<Box<dyn Endpoint>, BoxError> {
    Ok(match case.imp {
        Imp::Raw => Box::new(raw::Raw::new(
            socket,
            case.batch,
            case.recv == Recv::Peek,
            case.load,
        )),
        Imp::Core => Box::new(core_poll::CorePoll::new(socket, case.config())?),
        Imp::TokioCt
        | Imp::TokioMt
        | Imp::TokioCtQueued
        | Imp::TokioMtQueued
        | Imp::TokioCtEach
        | Imp::TokioMtEach => Box::new(tokio_rt::TokioEndpoint::new(
            socket,
            case.config(),
            matches!(
                case.imp,
                Imp::TokioMt | Imp::TokioMtQueued | Imp::TokioMtEach
            ),
            Idiom::of(case.imp),
        )?),
        Imp::Mio | Imp::MioEach => Box::new(mio_loop::MioLoop::new(
            socket,
            case.config(),
            Idiom::of(case.imp),
        )?),
        Imp::Smol | Imp::SmolQueued | Imp::SmolEach => Box::new(smol_rt::SmolEndpoint::new(
            socket,
            case.config(),
            Idiom::of(case.imp),
        )?),
        Imp::Sendfd => Box::new(peers::Sendfd::new(socket, case.batch)),
        Imp::Passfd => Box::new(peers::Passfd::new(socket)),
        Imp::AsyncSendFd => Box::new(peers::AsyncSendFd::new(socket)?),
    })
}

/// How an fdpass adapter's two ends hand descriptors over and take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idiom {
    /// The sender queues each repetition with one `push_send_many`, then
    /// waits until the kernel has it all; the receiver takes descriptors in
    /// bulk (`recv_many`, or one request at a time and the rest of each
    /// message with `try_recv`).
    Bulk,
    /// One `push_send` per descriptor, then wait; one `recv()` (or one
    /// outstanding request) per descriptor.
    OneByOne,
    /// Start one `send()` per descriptor, then await them in turn; the
    /// receiver as in `Bulk`.
    SendsQueued,
}

impl Idiom {
    fn of(imp: Imp) -> Idiom {
        match imp {
            Imp::TokioCtQueued | Imp::TokioMtQueued | Imp::SmolQueued => Idiom::SendsQueued,
            Imp::TokioCtEach | Imp::TokioMtEach | Imp::MioEach | Imp::SmolEach => Idiom::OneByOne,
            _ => Idiom::Bulk,
        }
    }
}

/// The bulk receiver's step for an event loop (core, mio): one `Received`
/// descriptor, then the rest of its message from `try_recv`, each closed and
/// counted in `got`, up to `n`. Returns whether `n` arrived; if not, the
/// caller asks for the next message.
fn take_message(
    got: &mut usize,
    n: usize,
    first: OwnedFd,
    mut try_recv: impl FnMut() -> Option<OwnedFd>,
) -> bool {
    drop(first);
    *got += 1;
    while *got < n {
        let Some(fd) = try_recv() else { break };
        drop(fd);
        *got += 1;
    }
    *got == n
}

/// How many receive requests a receiver keeps outstanding: enough for two
/// of the largest messages, as a worker that asks ahead would.
pub const RECV_WINDOW: usize = 2 * fdpass_core::SCM_MAX_FD;

fn closed() -> BoxError {
    "the peer closed the connection early".into()
}
