//! Whether the running kernel makes the peek reservation lossless, asked once
//! per process.
//!
//! [`Reservation::Peek`](crate::Reservation::Peek) relies on what Linux does
//! in `scm_detach_fds` (net/core/scm.c): `recvmsg(MSG_PEEK)` installs copies
//! of the passed descriptors, and when they do not all fit (short control
//! buffer or full table) it sets `MSG_CTRUNC` and leaves the message queued
//! with every descriptor it carries. Other systems do not promise this, so
//! the peek reservation is never chosen there.
//!
//! A Linux binary is not always run by Linux, though: WSL 1, gVisor, FreeBSD's
//! Linux emulation and illumos LX zones implement the same system calls with
//! their own socket code. So on Linux and Android the answer is not known when
//! the crate is compiled, and this module asks the running kernel, once:
//! over a private socketpair it sends eight copies of a pipe end in one
//! message, peeks with room for one (with its alignment padding the buffer
//! holds at most four, so the kernel must report `MSG_CTRUNC` and install only
//! some), then takes the message with room for eight (all eight must still be
//! there). Anything else,
//! including any failing call, answers "no", and the sentinel is used.

use std::sync::OnceLock;

#[cfg(any(target_os = "linux", target_os = "android"))]
use {
    rustix::net::{
        RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
        SendAncillaryMessage, SendFlags,
    },
    std::io::{IoSlice, IoSliceMut},
    std::mem::MaybeUninit,
    std::os::fd::{AsFd, OwnedFd},
};

/// The cached answer for this process: `true` only where the kernel was seen
/// to keep a peeked message's descriptors queued after `MSG_CTRUNC`.
pub(crate) fn peek_is_lossless_here() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(probe)
}

/// Elsewhere the peek reservation is not relied on: see the module docs.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn probe() -> bool {
    false
}

/// The probe itself: a few system calls on descriptors it creates and closes.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn probe() -> bool {
    let Ok((ours, theirs)) = crate::platform::socketpair(crate::platform::Atomicity::AtCreation)
    else {
        return false;
    };
    let Ok((read_end, _write_end)) = crate::platform::pipe(crate::platform::Atomicity::AtCreation)
    else {
        return false;
    };
    let fds = [read_end.as_fd(); SENT];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(SENT))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return false;
    }
    let sent = rustix::net::sendmsg(
        &ours,
        &[IoSlice::new(&[0; SENT])],
        &mut control,
        SendFlags::NOSIGNAL,
    );
    if sent != Ok(SENT) {
        return false;
    }
    // Peek with room for fewer than all: a truncated look.
    let peeked = receive(&theirs, 1, RecvFlags::PEEK);
    // Take with room for all: the message must still carry every one.
    let taken = receive(&theirs, SENT, RecvFlags::empty());
    matches!(peeked, Some((1..SENT, true))) && taken == Some((SENT, false))
}

/// Descriptors in the probe's message: few, so that the probe runs in a
/// process with a small RLIMIT_NOFILE too (it holds at most this many plus
/// four while it runs), and more than the control buffer sized for one
/// descriptor holds once rounded up for alignment (up to four), so that the
/// peek is truncated.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SENT: usize = 5;

/// One non-blocking `recvmsg` with room for `room` descriptors: how many
/// arrived (closed at once) and whether `MSG_CTRUNC` was set.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn receive(socket: &OwnedFd, room: usize, flags: RecvFlags) -> Option<(usize, bool)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(SENT))];
    let space_for_room = rustix::cmsg_space!(ScmRights(room)).min(space.len());
    let mut control = RecvAncillaryBuffer::new(&mut space[..space_for_room]);
    let mut bytes = [0u8; SENT];
    let msg = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        flags | RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    )
    .ok()?;
    let mut installed: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            installed.extend(rights);
        }
    }
    (msg.bytes == SENT).then_some((installed.len(), msg.flags.contains(ReturnFlags::CTRUNC)))
}
