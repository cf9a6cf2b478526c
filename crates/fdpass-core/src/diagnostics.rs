//! The `tracing` events a passer emits, one function each (docs/design.md,
//! "Observability" lists them with their levels).
//!
//! Without the `tracing` feature every function is empty and inlined: no
//! event code, no field formatting and no dependency is compiled in. With it,
//! each event costs `tracing`'s usual check of the enabled level when nobody
//! listens. None is emitted per descriptor above `TRACE`: a full-table or
//! back-pressure episode logs its start and end, not each retry.
//!
//! Every event carries `socket`, the passer's socket descriptor number, to
//! tell connections apart.
// The arguments are used only by the events that the feature compiles in.
#![cfg_attr(not(feature = "tracing"), allow(unused_variables, dead_code))]

use std::os::fd::RawFd;
use std::time::Duration;

use rustix::io::Errno;

use crate::Error;

/// A full-table episode at least this long ends with an `INFO` event rather
/// than `DEBUG`: delivery stalled long enough for an operator to care (short
/// stalls are routine in a process that keeps its table nearly full).
pub(crate) const LONG_STALL: Duration = Duration::from_secs(1);

/// `DEBUG`: a receive found no room in the descriptor table; receiving backs
/// off until there is some.
#[inline]
pub(crate) fn full_table_started(socket: RawFd) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        socket,
        "descriptor table full: descriptors wait in the socket until there is room"
    );
}

/// `DEBUG`, or `INFO` from [`LONG_STALL`] on: a receive succeeded after a
/// full-table episode of `waited`.
#[inline]
pub(crate) fn full_table_ended(socket: RawFd, waited: Duration) {
    #[cfg(feature = "tracing")]
    {
        let waited_secs = waited.as_secs_f64();
        if waited >= LONG_STALL {
            tracing::info!(
                socket,
                waited_secs,
                "descriptor table has room again: receiving resumed after a long stall"
            );
        } else {
            tracing::debug!(
                socket,
                waited_secs,
                "descriptor table has room again: receiving resumed"
            );
        }
    }
}

/// `DEBUG`: the kernel refused a `sendmsg` for lack of resources
/// (`ETOOMANYREFS`, `ENOBUFS`, `ENOMEM`); sending backs off.
#[inline]
pub(crate) fn send_backpressure_started(socket: RawFd, errno: Errno) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        socket,
        errno = errno.raw_os_error(),
        error = %errno,
        "send back-pressure: the kernel refused a message for now; sending backs off"
    );
}

/// `DEBUG`: the kernel took a message again after a back-pressure episode of
/// `waited`.
#[inline]
pub(crate) fn send_backpressure_ended(socket: RawFd, waited: Duration) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        socket,
        waited_secs = waited.as_secs_f64(),
        "send back-pressure over: sending resumed"
    );
}

/// `DEBUG`: the peer closed in an orderly way (end of stream).
#[inline]
pub(crate) fn peer_closed(socket: RawFd) {
    #[cfg(feature = "tracing")]
    tracing::debug!(socket, "the peer closed the connection (end of stream)");
}

/// `WARN`: the passer failed. A protocol error gets its own message (the peer
/// is not an fdpass passer, or something else writes to its socket); any
/// other failure is usually the peer's death (`EPIPE`, `ECONNRESET`).
///
/// `WARN`, not `ERROR`: the failure ends one connection and the application
/// is told with a typed error; whether that is an error for the service (a
/// crashed worker of a prefork server is routine) is the application's call.
#[inline]
pub(crate) fn failed(socket: RawFd, error: &Error) {
    #[cfg(feature = "tracing")]
    match error {
        Error::Protocol(protocol) => protocol_error(socket, protocol),
        other => tracing::warn!(socket, error = %other, "passer failed"),
    }
}

/// `WARN`: sending failed for good (`EPIPE`: the peer reads no more) while
/// receiving goes on; as for [`failed`], the application is told with a
/// typed error ([`Event::SendFailed`](crate::Event::SendFailed)).
#[inline]
pub(crate) fn send_failed(socket: RawFd, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(socket, error = %error, "sending failed; receiving goes on");
    #[cfg(not(feature = "tracing"))]
    let _ = (socket, error);
}

#[cfg(feature = "tracing")]
fn protocol_error(socket: RawFd, error: &crate::ProtocolError) {
    tracing::warn!(
        socket,
        error = %error,
        "the peer broke the descriptor protocol; passer failed"
    );
}

/// `TRACE`: descriptors a read installed were let go of undelivered (closed
/// off this thread, as each may be the last reference to a file the peer
/// chose).
#[inline]
pub(crate) fn disposed_installed(socket: RawFd, count: usize) {
    #[cfg(feature = "tracing")]
    tracing::trace!(
        socket,
        count,
        "descriptors received with a failed read were let go of"
    );
}
