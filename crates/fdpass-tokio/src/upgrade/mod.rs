//! Upgrading a running tokio server without refusing a connection.
//!
//! The old process holds its listeners in an [`Upgrader`] (as a named set,
//! [`NamedFds`]); on a signal it starts a successor with
//! [`Upgrader::upgrade_by_spawning`] (or accepts one started by someone else
//! on a [`HandoverListener`] and calls [`Upgrader::upgrade_over`]). The
//! successor takes the listeners by name ([`Successor::inherit`] or
//! [`Successor::connect`]), sets itself up, and says
//! [`ready`](Successor::ready). Only then does the upgrade return `Ok` in
//! the old process, which stops accepting, drains its connections and
//! exits. Both processes accept on the same listening sockets meanwhile, so
//! no connection is refused at any moment. A successor that crashes, hangs
//! or declines is killed (if this process started it) and the old process
//! goes on serving: [`UpgradeError`] says what happened, within
//! [`Upgrader::with_ready_timeout`].
//!
//! This module is the glue around the sans-IO parts in
//! [`fdpass_core::upgrade`] (the protocol and the [`Attempt`] state machine
//! that decides each upgrade): it spawns the successor with
//! `tokio::process`, talks over the control connection with this crate's
//! [`Passer`](crate::Passer) (`send_message`, `recv_message`), awaits the
//! successor's exit, keeps the deadlines on the crate's alarm thread, and
//! writes the pid file; nothing blocks a runtime thread. It also offers
//! tokio listener helpers. `examples/upgrade.rs` is a complete server;
//! `docs/handover.md` describes the protocol and compares it with other
//! tools.
//!
//! [`Attempt`]: fdpass_core::upgrade::Attempt
//!
//! ```
//! use fdpass_tokio::upgrade::{tcp_listener_copy, Upgrader, UpgradeError};
//! use fdpass_core::handover::NamedFds;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let mut fds = NamedFds::new();
//! fds.insert("http", tcp_listener_copy(&listener)?)?;
//! let upgrader = Upgrader::new(fds);
//! // `false` stands for a successor that crashes before it is ready: the
//! // old process keeps its listener and serves on.
//! let err = upgrader.upgrade_by_spawning(std::process::Command::new("false")).await.unwrap_err();
//! assert!(matches!(err, UpgradeError::SuccessorExited { .. }));
//! let _client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
//! # Ok(()) }
//! ```

mod handover_listener;
mod pid_file;
mod successor;
mod timer;
mod upgrader;

use std::io;
use std::os::fd::{AsFd, OwnedFd};

pub use fdpass_core::handover::NamedFds;
pub use fdpass_core::upgrade::{UpgradeError, DEFAULT_READY_TIMEOUT};
pub use handover_listener::HandoverListener;
pub use successor::Successor;
pub use upgrader::{Upgraded, Upgrader};

/// A tokio TCP listener built from a listening TCP socket inherited or
/// received (checked, made non-blocking and close-on-exec: see
/// [`fdpass_core::socket::tcp_listener_from_fd`]), inside a runtime.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] when `fd` is not a listening TCP socket;
/// registering with the runtime failed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let copy = fdpass_tokio::upgrade::tcp_listener(fdpass_tokio::upgrade::tcp_listener_copy(&listener)?)?;
/// assert_eq!(copy.local_addr()?, listener.local_addr()?);
/// # Ok(()) }
/// ```
pub fn tcp_listener(fd: OwnedFd) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(fdpass_core::socket::tcp_listener_from_fd(fd)?)
}

/// A copy of `listener`'s socket (`F_DUPFD_CLOEXEC`), to put in the set an
/// [`Upgrader`] hands on while the listener goes on accepting here.
///
/// # Errors
///
/// The `dup` failed (for example `EMFILE`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let copy = std::net::TcpListener::from(fdpass_tokio::upgrade::tcp_listener_copy(&listener)?);
/// assert_eq!(copy.local_addr()?, listener.local_addr()?);
/// # Ok(()) }
/// ```
pub fn tcp_listener_copy(listener: &tokio::net::TcpListener) -> io::Result<OwnedFd> {
    listener.as_fd().try_clone_to_owned()
}
