//! # fdpass-core
//!
//! Pass open file descriptors between processes over Unix-domain sockets:
//! non-blocking, buffered, in order, and without ever losing a descriptor,
//! even when the receiving process's descriptor table is full.
//!
//! Descriptors travel alone or in [`Message`]s with payload bytes, on the
//! native wire (framed and versioned; each end announces its limits) or on
//! the classic wire of AnyEvent::FDpasser and Python's `send_fds` (see
//! [`Wire`] and `docs/wire.md`).
//!
//! This crate is the reactor-free heart of fdpass: a [`Passer`] is a state
//! machine that owns the send and receive queues, the descriptor-slot
//! reservation and the retry timers. It never blocks, never polls and never
//! reads the clock. You feed it what you observe and it tells you what it
//! wants. `fdpass-tokio`, `fdpass-mio` and `fdpass-smol` drive it for their
//! runtimes; any other event loop can drive it the same way.
//!
//! ## The vocabulary
//! - Inputs: [`Passer::push_send`] (or [`Passer::push_send_many`] for a
//!   batch, [`Passer::push_send_message`] for a message),
//!   [`Passer::push_recv`] or [`Passer::push_recv_message`] (or
//!   [`Passer::try_recv`], [`Passer::try_recv_message`] for what was
//!   already read ahead),
//!   [`Passer::handle_readable`], [`Passer::handle_writable`],
//!   [`Passer::handle_timeout`] (with `now` from your clock),
//!   [`Passer::shutdown`] (graceful: sends what is queued first) or
//!   [`Passer::close`] (abortive).
//! - Outputs: [`Passer::interest`] (per direction: [`Want::Idle`],
//!   [`Want::Now`] or [`Want::WhenReady`]), [`Passer::poll_timeout`] (the next
//!   deadline), and [`Passer::poll_event`] ([`Event::Sent`],
//!   [`Event::Received`], [`Event::ReceivedMessage`], [`Event::RecvRefused`],
//!   [`Event::Closed`], [`Event::SendFailed`], [`Event::Failed`]).
//! - Observing: [`Passer::stats`], a [`Stats`] snapshot of gauges and
//!   counters for a metrics exporter; with the `tracing` feature, events
//!   for full-table stalls, send back-pressure, protocol errors, failures
//!   and the peer's close (`docs/design.md`, "Observability").
//!
//! ## The whole driving loop
//! A plain `poll(2)` loop, here receiving three descriptors:
//!
//! ```
//! use std::time::Instant;
//! use rustix::event::{poll, PollFd, PollFlags, Timespec};
//! use fdpass_core::{Config, Event, Passer, Want};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut sender, mut receiver) = Passer::pair(Config::default())?;
//! for _ in 0..3 {
//!     let (read_end, _write_end) = rustix::pipe::pipe()?;
//!     sender.push_send(read_end)?;
//!     receiver.push_recv()?;
//! }
//!
//! let mut received = Vec::new();
//! while received.len() < 3 {
//!     for passer in [&mut sender, &mut receiver] {
//!         let now = Instant::now();
//!         passer.handle_timeout(now);
//!         let interest = passer.interest();
//!         // Wait only for what the passer wants and is blocked on.
//!         let mut flags = PollFlags::empty();
//!         if interest.read == Want::WhenReady { flags |= PollFlags::IN; }
//!         if interest.write == Want::WhenReady { flags |= PollFlags::OUT; }
//!         let must_act = interest.read == Want::Now || interest.write == Want::Now;
//!         let timeout = if must_act { Some(Timespec::default()) } else {
//!             let wait = passer.poll_timeout().map_or(std::time::Duration::from_millis(10), |t| t.saturating_duration_since(now));
//!             Some(Timespec::try_from(wait)?)
//!         };
//!         // With nothing to wait for on the socket, leave it out of the poll:
//!         // a hung-up socket reports HUP even with an empty event mask.
//!         let mut fds = [PollFd::from_borrowed_fd(std::os::fd::AsFd::as_fd(&*passer), flags)];
//!         let watched = if flags.is_empty() { &mut fds[..0] } else { &mut fds[..] };
//!         poll(watched, timeout.as_ref())?;
//!         let ready = fds[0].revents();
//!         let now = Instant::now();
//!         if interest.read == Want::Now || ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
//!             passer.handle_readable(now);
//!         }
//!         if interest.write == Want::Now || ready.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR) {
//!             passer.handle_writable(now);
//!         }
//!         while let Some(event) = passer.poll_event() {
//!             match event {
//!                 Event::Received(_token, fd) => received.push(fd),
//!                 Event::Sent(_) | Event::Closed => {}
//!                 Event::Failed(e) => return Err(e.into()),
//!                 _ => {}
//!             }
//!         }
//!     }
//! }
//! assert_eq!(received.len(), 3);
//! # Ok(()) }
//! ```
//!
//! `examples/poll_demo.rs` is the same loop across two processes.
//!
//! ## Guarantees
//! 1. Every descriptor and message sent arrives exactly once, whole, in FIFO
//!    order; receive requests of both kinds are served in the order made.
//! 2. No call blocks; sending and receiving proceed independently.
//! 3. A full descriptor table delays delivery and never loses a descriptor
//!    (see [`Reservation`]); a message the table can never hold at the
//!    current `RLIMIT_NOFILE` is [`Error::MessageNeverFits`], not a wait.
//! 4. Every descriptor the passer holds is closed exactly once, on success,
//!    failure, close or drop, or handed back to the application exactly once
//!    (a refused push's [`PushError`], the unsent sends of a failed passer
//!    through [`Passer::take_unsent`]). Those that may be the last reference to a file
//!    the peer chose (rejected, read ahead, discarded, or still in flight in
//!    the socket when it is released) are closed soon by a background thread
//!    rather than at once, because such a close can block for as long as the
//!    peer likes; a leak check waits for [`disposal::flush`] first.
//! 5. Received descriptors are close-on-exec, set atomically
//!    (`MSG_CMSG_CLOEXEC`) where the system has the flag; on macOS and
//!    illumos `FD_CLOEXEC` is set right after `recvmsg`, which is not atomic.
//! 6. Bad input from the peer is a typed [`Error::Protocol`], never a panic or
//!    a leak, and the passer never reads more than the outstanding requests
//!    plus one message (at most `max_payload_len` + 8 bytes and
//!    `max_fds_per_message` descriptors), besides the native peer's 24-byte
//!    hello.
//! 7. An orderly close by the peer is [`Event::Closed`], distinct from
//!    [`Event::Failed`]; our own close or drop reads as an orderly end of
//!    stream to the peer, even with its messages unread.
//!
//! `docs/design.md` explains the state machine and both reservation
//! strategies; `docs/wire.md` the bytes on the wire.
// Unsafe code lives in `child` only (adopting an inherited descriptor number).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod child;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod close_range;
mod config;
mod diagnostics;
pub mod disposal;
pub mod driver;
mod error;
mod event;
pub mod frame;
mod inbound;
mod message;
mod passer;
mod peek_probe;
mod platform;
mod push_error;
mod recv_queue;
mod reservation;
mod retry;
mod send_queue;
mod shared_socket;
pub mod socket;
mod stats;
pub mod sys;

pub use config::{
    Config, Reservation, RetryPolicy, Wire, MAX_PAYLOAD_LIMIT, MIN_PAYLOAD_LIMIT, SCM_MAX_FD,
};
pub use error::{Error, ProtocolError};
pub use event::{Event, Interest, RecvToken, SendToken, Want};
pub use inbound::PeerLimits;
pub use message::Message;
pub use passer::Passer;
pub use push_error::PushError;
pub use shared_socket::SharedSocket;
pub use stats::Stats;
