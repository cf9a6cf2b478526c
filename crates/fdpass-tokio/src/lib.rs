//! # fdpass-tokio
//!
//! Pass open file descriptors between processes over Unix-domain sockets,
//! from tokio: non-blocking, buffered, in order, and without ever losing a
//! descriptor, even when the receiving process's descriptor table is full.
//!
//! A [`Passer`] wraps one connected socket. `send(fd).await` resolves once the
//! kernel has the descriptor, `push_send(fd)` only queues it (and
//! `push_send_many(fds)` a whole batch, sent in full messages), `recv().await`
//! yields the next descriptor as an [`OwnedFd`](std::os::fd::OwnedFd)
//! (`recv_many` every one that already arrived, up to a limit). It is
//! also a `Stream` and a `Sink`. All of it is driven by the sans-IO state
//! machine of [`fdpass_core`]; this crate only connects it to tokio's reactor
//! and timers.
//!
//! ```
//! use fdpass_tokio::Passer;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (parent, worker) = Passer::pair()?;
//! let receiver = tokio::spawn(async move {
//!     let mut count = 0;
//!     while let Some(_fd) = worker.recv().await? {
//!         count += 1;
//!     }
//!     Ok::<_, fdpass_tokio::Error>(count)
//! });
//! for _ in 0..10 {
//!     let (read_end, _write_end) = std::io::pipe()?;
//!     parent.send(read_end.into()).await?;
//! }
//! drop(parent);
//! assert_eq!(receiver.await??, 10);
//! # Ok(()) }
//! ```
//!
//! ## Messages
//! A [`Message`] carries payload bytes and descriptors together: the peer
//! receives them whole, in order with everything else. A prefork parent
//! hands over a connection with its client's address; a broker answers a
//! request with the file and the request's number. `send_message(msg).await`
//! and `recv_message().await` are the message forms of `send` and `recv`,
//! and [`Passer::messages`] is a `Stream` and `Sink` of messages. Receives
//! of both kinds wait in one line, served in the order called; a `recv`
//! whose turn comes at a message with payload bytes fails with
//! [`Error::UnexpectedMessage`] and leaves the message, whole, for the next
//! `recv_message`. Messages travel on the native wire, the default
//! ([`Wire::Native`]); a peer that speaks AnyEvent::FDpasser's wire needs
//! [`Wire::Classic`], where a message is descriptors only.
//!
//! ```
//! use fdpass_tokio::{Message, Passer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (parent, worker) = Passer::pair()?;
//! let (conn, _client) = std::os::unix::net::UnixStream::pair()?;
//! parent.send_message(Message::new(b"203.0.113.7:41512".to_vec(), vec![conn.into()])).await?;
//! let message = worker.recv_message().await?.expect("the parent is open");
//! assert_eq!((message.payload.as_slice(), message.fds.len()), (&b"203.0.113.7:41512"[..], 1));
//! # Ok(()) }
//! ```
//!
//! ## Sharing between tasks
//! Every method takes `&self` and [`Passer`] is `Clone`: give a clone to each
//! task. Sending and receiving proceed at the same time; all clones share one
//! queue per direction, so order is kept across them.
//!
//! ## Child processes
//! [`Passer::spawn_child`] starts a `Command` that inherits the other end of
//! a new connection; the child calls [`Passer::from_inherited`]. This replaces
//! AnyEvent::FDpasser's fork + `i_am_parent`/`i_am_child`.
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
//! `take_unsent`, and, under [`Config::max_queued_sends`], refuses pushes
//! past the mark with [`PushError::Full`]. They send and receive messages
//! the same way (`push_send_message`, `take_unsent_messages`,
//! `peer_limits`, and the byte mark [`Config::max_queued_bytes`]). They
//! re-export the same types: [`Config`], [`Wire`], [`Message`],
//! [`PeerLimits`], [`Error`], [`ProtocolError`], [`PushError`],
//! [`Reservation`], [`RetryPolicy`], [`PeerCredentials`], [`InheritError`].
//!
//! Where they differ, the runtime is the reason:
//! - this crate's passer is `Clone` and async (`send`/`recv` futures,
//!   `Stream`, `Sink`), like fdpass-smol's; fdpass-mio's is a
//!   `mio::event::Source` driven by your loop (`push_*`, `handle_event`,
//!   `poll_event`), with `&mut self` methods and no futures;
//! - [`Passer::spawn_child`] takes a `tokio::process::Command` (tokio has its
//!   own, awaitable child type) and [`Passer::spawn_std_child`] a std one;
//!   smol's and mio's `spawn_child` take a std `Command`;
//! - a passer must be created inside a tokio runtime with I/O and time
//!   enabled; fdpass-smol needs no runtime context.
#![warn(missing_docs)]
// The one unsafe block registers the socket with tokio; see `reactor`.
#![deny(unsafe_code)]

mod alarm;
mod futures;
mod listener;
mod messages;
mod passer;
mod reactor;
mod stream;
pub mod upgrade;

pub use crate::futures::{
    Closed, Flush, RecvFd, RecvMany, RecvMessage, SendFd, SendMessage, Shutdown,
};
pub use fdpass_core::child::InheritError;
pub use fdpass_core::socket::PeerCredentials;
pub use fdpass_core::{
    Config, Error, Message, PeerLimits, ProtocolError, PushError, Reservation, RetryPolicy, Stats,
    Wire,
};
pub use listener::Listener;
pub use messages::Messages;
pub use passer::Passer;
