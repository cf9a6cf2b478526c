//! # fdpass-mio
//!
//! Pass open file descriptors between processes over Unix-domain sockets,
//! from a [mio] event loop you own: non-blocking, buffered, in order, and
//! without ever losing a descriptor, even when the receiving process's
//! descriptor table is full.
//!
//! A [`Passer`] wraps one connected socket and is a [`mio::event::Source`]:
//! register it in your [`Poll`](mio::Poll) under your own [`Token`](mio::Token).
//! Queue work with [`push_send`](Passer::push_send) (or
//! [`push_send_many`](Passer::push_send_many) for a batch, sent in full
//! messages) and [`push_recv`](Passer::push_recv), feed it your poll's events with
//! [`handle_event`](Passer::handle_event) and the clock with
//! [`handle_timeout`](Passer::handle_timeout), and drain what happened with
//! [`poll_event`](Passer::poll_event): [`Event::Sent`], [`Event::Received`]
//! (with the descriptor), [`Event::ReceivedMessage`], [`Event::RecvRefused`],
//! [`Event::Closed`], [`Event::SendFailed`], [`Event::Failed`]. All of it is
//! the sans-IO state machine of [`fdpass_core`]; this crate only connects it
//! to mio.
//!
//! ## Messages
//! A [`Message`] is payload bytes and descriptors that arrive together,
//! whole: a connection with its client's address, a file with the number of
//! the request it answers. Send one with
//! [`push_send_message`](Passer::push_send_message), ask for one with
//! [`push_recv_message`](Passer::push_recv_message) (or take one already
//! read with [`try_recv_message`](Passer::try_recv_message)); it comes as
//! [`Event::ReceivedMessage`]. Requests of both kinds are served in the
//! order they were made; a descriptor request that meets a message with
//! payload gets [`Event::RecvRefused`] and the message waits for a message
//! request.
//!
//! Messages need the native wire ([`Wire::Native`], the default), on which
//! each end first sends a hello announcing its limits
//! ([`peer_limits`](Passer::peer_limits)). A passer writes its hello when it
//! is created and reads the peer's on its own, so a passer that only sends
//! or only receives needs nothing more than the usual loop. To talk to
//! AnyEvent::FDpasser, or to Python's `socket.send_fds`/`recv_fds` with one
//! descriptor per message, use [`Wire::CLASSIC`] (descriptors only);
//! `docs/wire.md` in the repository specifies both wires.
//!
//! ```
//! use std::time::Instant;
//! use mio::{Events, Interest, Poll, Token};
//! use fdpass_mio::{Event, Message, Passer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut parent, mut worker) = Passer::pair()?;
//! let mut poll = Poll::new()?;
//! poll.registry().register(&mut worker, Token(7), Interest::READABLE | Interest::WRITABLE)?;
//! worker.push_recv_message()?;
//! let (connection, _client) = std::os::unix::net::UnixStream::pair()?;
//! parent.push_send_message(Message::new(b"203.0.113.7:41512".to_vec(), vec![connection.into()]))?;
//!
//! let mut events = Events::with_capacity(64);
//! let message = loop {
//!     if let Some(event) = worker.poll_event() {
//!         match event {
//!             Event::ReceivedMessage(_token, message) => break message,
//!             Event::Closed => return Err("the parent closed early".into()),
//!             Event::Failed(e) => return Err(e.into()),
//!             _ => continue,
//!         }
//!     }
//!     poll.poll(&mut events, worker.poll_duration(Instant::now()))?;
//!     for event in events.iter() {
//!         worker.handle_event(event);
//!     }
//!     worker.handle_timeout(Instant::now());
//! };
//! assert_eq!(message.payload, b"203.0.113.7:41512");
//! assert_eq!(message.fds.len(), 1);
//! # Ok(()) }
//! ```
//!
//! ## The driving loop
//! Drain events first (a push may complete at once), then poll with the
//! passer's timeout, then hand over what the poll saw and the time:
//!
//! ```
//! use std::time::Instant;
//! use mio::{Events, Interest, Poll, Token};
//! use fdpass_mio::{Event, Passer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut parent, mut worker) = Passer::pair()?;
//! let mut poll = Poll::new()?;
//! poll.registry().register(&mut worker, Token(7), Interest::READABLE | Interest::WRITABLE)?;
//! worker.push_recv()?; // nothing there yet: the loop waits for it
//! let (read_end, _write_end) = rustix::pipe::pipe()?;
//! parent.push_send(read_end)?;
//!
//! let mut events = Events::with_capacity(64);
//! let _fd = loop {
//!     if let Some(event) = worker.poll_event() {
//!         match event {
//!             Event::Received(_token, fd) => break fd,
//!             Event::Closed => return Err("the parent closed early".into()),
//!             Event::Failed(e) => return Err(e.into()),
//!             _ => continue,
//!         }
//!     }
//!     poll.poll(&mut events, worker.poll_duration(Instant::now()))?;
//!     for event in events.iter().filter(|e| e.token() == Token(7)) {
//!         worker.handle_event(event);
//!     }
//!     worker.handle_timeout(Instant::now());
//! };
//! # Ok(()) }
//! ```
//!
//! ## Registration and edge-triggering
//! mio is edge-triggered, and a passer is registered for
//! [`READABLE`](mio::Interest::READABLE) | [`WRITABLE`](mio::Interest::WRITABLE)
//! once, whatever it currently wants (the `interests` given to `register` are
//! not used). It never needs a reregistration to make progress:
//!
//! - An edge that comes while nothing is queued or requested is not needed
//!   later. The passer marks a direction as blocked only when the socket
//!   actually said `EAGAIN`, and any edge for that direction clears the mark.
//!   A later [`push_send`](Passer::push_send) or
//!   [`push_recv`](Passer::push_recv) therefore finds the direction unblocked
//!   and does the I/O right away instead of waiting for an edge that will
//!   not come.
//! - Every [`handle_event`](Passer::handle_event) does I/O until the socket
//!   would block or the passer wants nothing more, as edge-triggering
//!   requires. A direction that hit `EAGAIN` is woken by the next edge, which
//!   comes because the registration always covers both directions.
//! - On the native wire the passer wants one thing nobody asks for: the
//!   peer's hello. It writes its own when it is created and reads the peer's
//!   on the first readable edge (registering reports a socket already
//!   readable), with or without a request, so a passer that only sends
//!   learns the peer's limits, and one that only receives announces its
//!   own, with no push from the application.
//! - An edge for a direction the passer does not want costs a wake-up and no
//!   system call. (A passer that only sends, for example, gets a writable
//!   event when its peer reads.) The kernel merges such edges, so it is at
//!   most one event per direction per `Poll::poll`. Reregistering whenever
//!   the wanted directions change would cost an `epoll_ctl` each time instead,
//!   and the passer would need its own [`Registry`](mio::Registry) handle (one
//!   more descriptor) to do it from a push.
//!
//! So no method of a passer leaves work to be done "now": whatever is left
//! waits for an event of your poll or for
//! [`poll_timeout`](Passer::poll_timeout). Your part is to pass every event
//! that carries the passer's token to [`handle_event`](Passer::handle_event)
//! (an edge that is dropped does not come again), and to call
//! [`handle_timeout`](Passer::handle_timeout) after every poll.
//!
//! ## Timers
//! mio has no timers. A passer waits on a deadline only after the kernel said
//! "not now": the descriptor table was full when descriptors arrived, or send
//! back-pressure (`ETOOMANYREFS`, `ENOBUFS`). Pass
//! [`poll_duration`](Passer::poll_duration) (the smallest over your passers)
//! to [`Poll::poll`](mio::Poll::poll), and call
//! [`handle_timeout`](Passer::handle_timeout) after every poll. It is cheap
//! when nothing is due.
//!
//! ## Child processes
//! [`Passer::spawn_child`] starts a `Command` that inherits the other end of
//! a new connection; the child calls [`Passer::from_inherited`] (both are
//! [`fdpass_core::child`]'s `Handoff` and `adopt_inherited` underneath).
//! `examples/mio_server.rs` is a TCP server that hands every connection to
//! such a worker.
//!
//! ## The same surface on every adapter
//! `fdpass-tokio`, `fdpass-smol` and `fdpass-mio` offer the same constructors
//! and helpers, each with a `_with_config` variant taking a [`Config`]:
//! `Passer::{new, with_config}`, `pair[_with_config]`,
//! `from_std[_with_config]`, `from_<runtime>[_with_config]`,
//! `connect[_with_config]`, `spawn_child[_with_config]`,
//! `from_inherited[_with_config]`, `peer_credentials`, `AsFd`/`AsRawFd`;
//! `Listener::{bind, bind_with_config, bind_with(path, mode, config),
//! set_peer_check, accept, path}`. A listener's peer check closes and skips
//! refused connections in `accept` (a refusal is never an error); the check
//! sees each refused peer's credentials. Every passer closes gracefully
//! with `shutdown(deadline)` (sends what is queued first) or abortively with
//! `close`/`close_abortive`, hands back what a failure left unsent with
//! `take_unsent` (`take_unsent_messages` keeps each message whole), and,
//! under [`Config::max_queued_sends`] and [`Config::max_queued_bytes`],
//! refuses pushes past the mark with [`PushError::Full`]. Every passer sends
//! and receives messages and reports `peer_limits`. They re-export the same
//! types: [`Config`], [`Error`], [`ProtocolError`], [`PushError`],
//! [`Reservation`], [`RetryPolicy`], [`PeerCredentials`], [`InheritError`],
//! [`Message`], [`Wire`], [`PeerLimits`].
//!
//! Where they differ, the runtime is the reason:
//! - this crate's passer is a [`mio::event::Source`] you drive (`push_*`,
//!   `handle_event`, `handle_timeout`, `poll_event`) with `&mut self`
//!   methods; fdpass-tokio's and fdpass-smol's are `Clone` and async
//!   (`send_message`/`recv_message` futures, a `Stream`/`Sink` of
//!   messages) where this one has `push_send_message`, `push_recv_message`,
//!   `try_recv_message` and events;
//! - [`Passer::connect`] connects with a blocking `connect(2)`, which for a
//!   Unix socket completes at once unless the listener's backlog is full
//!   (mio has no connect future); [`Listener::accept`] returns `Ok(None)`
//!   when nothing waits instead of waiting;
//! - [`Passer::spawn_child`] takes a std `Command` (mio has no process type);
//! - [`Passer::config`] returns `&Config` (the passer is owned by your loop,
//!   not shared behind a lock as the async adapters' are).
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod listener;
mod passer;

pub use fdpass_core::child::InheritError;
pub use fdpass_core::socket::PeerCredentials;
pub use fdpass_core::{
    Config, Error, Event, Message, PeerLimits, ProtocolError, PushError, RecvToken, Reservation,
    RetryPolicy, SendToken, Stats, Wire,
};
pub use listener::Listener;
pub use passer::Passer;
