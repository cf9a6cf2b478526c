//! What differs between the Unix systems when fdpass makes a descriptor.
//!
//! Linux, Android, FreeBSD, OpenBSD, NetBSD and illumos create sockets,
//! accepted connections and pipes close-on-exec atomically (`SOCK_CLOEXEC`,
//! `accept4`, `pipe2`). macOS has none of these: there the descriptor is made
//! first and `FD_CLOEXEC` is set right after it. That is **not atomic**: a
//! `fork` + `exec` by another thread between the two calls lets the new
//! program inherit the descriptor. Nothing else in the process can close
//! that window; a program that spawns from several threads on macOS should
//! spawn from one thread or hold a lock around both.
//!
//! The same non-atomic order is available on every system as the
//! [`Atomicity::AfterCreation`] path, so that the code macOS runs is also
//! exercised where the tests run (see [`crate::sys::SystemCalls::portable`]).

use std::os::fd::{AsFd, OwnedFd};

use rustix::io::{Errno, FdFlags};
use rustix::net::{AddressFamily, SocketType};

/// How a new descriptor gets its close-on-exec flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Atomicity {
    /// In the call that creates it where the system has the flag; right
    /// after it where the system has none (macOS).
    AtCreation,
    /// Always with `fcntl(F_SETFD, FD_CLOEXEC)` right after creation: what
    /// macOS does, selectable everywhere so that the tests run it.
    AfterCreation,
}

/// Sets `FD_CLOEXEC` on a descriptor this process just created or received.
/// `F_SETFD` fails only with `EBADF`, which an `OwnedFd` rules out.
pub(crate) fn set_cloexec(fd: impl AsFd) -> Result<(), Errno> {
    rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)
}

/// A connected `AF_UNIX` `SOCK_STREAM` pair, both ends close-on-exec.
pub(crate) fn socketpair(atomicity: Atomicity) -> Result<(OwnedFd, OwnedFd), Errno> {
    #[cfg(not(target_vendor = "apple"))]
    if atomicity == Atomicity::AtCreation {
        return rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        );
    }
    #[cfg(target_vendor = "apple")]
    let _ = atomicity; // macOS has only the way below
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        rustix::net::SocketFlags::empty(),
        None,
    )?;
    set_cloexec(&a)?;
    set_cloexec(&b)?;
    Ok((a, b))
}

/// A new `AF_UNIX` `SOCK_STREAM` socket, close-on-exec, non-blocking if asked.
pub(crate) fn socket(atomicity: Atomicity, nonblocking: bool) -> Result<OwnedFd, Errno> {
    #[cfg(not(target_vendor = "apple"))]
    if atomicity == Atomicity::AtCreation {
        let mut flags = rustix::net::SocketFlags::CLOEXEC;
        if nonblocking {
            flags |= rustix::net::SocketFlags::NONBLOCK;
        }
        return rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None);
    }
    #[cfg(target_vendor = "apple")]
    let _ = atomicity; // macOS has only the way below
    let socket = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
    set_cloexec(&socket)?;
    if nonblocking {
        rustix::io::ioctl_fionbio(&socket, true)?;
    }
    Ok(socket)
}

/// Accepts one connection on `listener`, close-on-exec.
pub(crate) fn accept(atomicity: Atomicity, listener: impl AsFd) -> Result<OwnedFd, Errno> {
    #[cfg(not(target_vendor = "apple"))]
    if atomicity == Atomicity::AtCreation {
        return rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC);
    }
    #[cfg(target_vendor = "apple")]
    let _ = atomicity; // macOS has only the way below
    let socket = rustix::net::accept(listener)?;
    set_cloexec(&socket)?;
    Ok(socket)
}

/// A new pipe, both ends close-on-exec: `pipe2(O_CLOEXEC)`, or `pipe` then
/// `fcntl` where there is no `pipe2` (macOS).
pub(crate) fn pipe(atomicity: Atomicity) -> Result<(OwnedFd, OwnedFd), Errno> {
    #[cfg(not(target_vendor = "apple"))]
    if atomicity == Atomicity::AtCreation {
        return rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
    }
    #[cfg(target_vendor = "apple")]
    let _ = atomicity; // macOS has only the way below
    let (read_end, write_end) = rustix::pipe::pipe()?;
    set_cloexec(&read_end)?;
    set_cloexec(&write_end)?;
    Ok((read_end, write_end))
}
