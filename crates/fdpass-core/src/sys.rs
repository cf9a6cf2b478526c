//! The seam between the passer's decisions and the kernel.
//!
//! Every system call the passer makes goes through [`Sys`], so that tests can
//! put a scripted fake in its place and make any call fail at any step. The
//! passer makes all decisions; an implementation of `Sys` only performs one
//! call and reports what the kernel said. [`SystemCalls`] is the real one,
//! built on rustix.
//!
//! This module is public only so that fault-injection tests and fuzzers outside
//! the crate can drive a [`Passer`](crate::Passer) with their own `Sys`; it is
//! not meant for applications and may change in any release.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::SCM_MAX_FD;

/// Which kind of `recvmsg` the passer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// Consume the message and install its descriptors (`MSG_CMSG_CLOEXEC`).
    Take,
    /// Look without consuming (`MSG_PEEK | MSG_CMSG_CLOEXEC`): the kernel
    /// installs copies of the descriptors and keeps the message queued.
    Peek,
    /// Consume the bytes with no control buffer: the kernel drops its own
    /// references to the descriptors instead of installing them.
    Discard,
}

/// What one `recvmsg` returned, besides the descriptors it installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Payload bytes read (0 means end of stream).
    pub bytes: usize,
    /// `MSG_TRUNC`: a datagram-style message was longer than the buffer.
    pub truncated_data: bool,
    /// `MSG_CTRUNC`: control data did not fit, or descriptors could not be
    /// installed (full table, or refused by a security module).
    pub truncated_control: bool,
    /// A control message other than `SCM_RIGHTS` arrived.
    pub foreign_control: bool,
}

/// The system calls a passer makes. See the module docs.
pub trait Sys {
    /// `sendmsg(socket, bytes, SCM_RIGHTS(fds), MSG_NOSIGNAL | MSG_DONTWAIT)`.
    /// `fds` may be empty (then no control message is sent).
    fn sendmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno>;

    /// `recvmsg` into `buf` with room for `max_fds` descriptors (none for
    /// [`RecvMode::Discard`]); installed descriptors are appended to `fds`.
    fn recvmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno>;

    /// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`.
    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno>;

    /// `close(fd)`. Every descriptor the passer lets go of passes through here.
    fn close(&mut self, fd: OwnedFd);

    /// Sets `O_NONBLOCK` on `fd`.
    fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno>;

    /// `pipe2(O_CLOEXEC)`: the source of the sentinel reservation's slots.
    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno>;

    /// `shutdown(fd, SHUT_RDWR)`, so the peer sees end-of-stream on a local close.
    fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno>;

    /// The soft `RLIMIT_NOFILE`: the kernel installs descriptors only at
    /// numbers below it, so a sentinel slot at or above it keeps no room.
    /// `None` when there is no limit, or for a seam that does not model one
    /// (the default).
    fn nofile_limit(&mut self) -> Option<u64> {
        None
    }
}

/// The real system calls, through rustix.
///
/// Holds the buffers the calls need so the hot path allocates nothing once
/// they have grown to the largest message.
#[derive(Default)]
pub struct SystemCalls {
    control: Vec<MaybeUninit<u8>>,
    /// Allocation reused for the `BorrowedFd` array each `sendmsg` needs.
    borrowed: Vec<BorrowedFd<'static>>,
}

impl std::fmt::Debug for SystemCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemCalls")
    }
}

/// Turns an empty `Vec` of one lifetime into an empty `Vec` of another while
/// keeping its allocation (in-place collection of an empty iterator reuses it).
fn recycle<'a, 'b>(mut v: Vec<BorrowedFd<'a>>) -> Vec<BorrowedFd<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was cleared"))
        .collect()
}

impl Sys for SystemCalls {
    fn sendmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno> {
        let iov = [IoSlice::new(bytes)];
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        if fds.is_empty() {
            return rustix::net::sendmsg(socket, &iov, &mut SendAncillaryBuffer::default(), flags);
        }
        let mut borrowed = recycle(std::mem::take(&mut self.borrowed));
        borrowed.extend(fds.iter().map(|fd| fd.as_fd()));
        let space = rustix::cmsg_space!(ScmRights(fds.len()));
        if self.control.len() < space {
            self.control.resize(space, MaybeUninit::uninit());
        }
        let mut control = SendAncillaryBuffer::new(&mut self.control[..space]);
        let pushed = control.push(SendAncillaryMessage::ScmRights(&borrowed));
        debug_assert!(pushed, "control buffer sized by cmsg_space");
        let result = rustix::net::sendmsg(socket, &iov, &mut control, flags);
        self.borrowed = recycle(borrowed);
        result
    }

    fn recvmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut flags = RecvFlags::DONTWAIT;
        if mode != RecvMode::Discard {
            flags |= RecvFlags::CMSG_CLOEXEC;
        }
        if mode == RecvMode::Peek {
            flags |= RecvFlags::PEEK;
        }
        let max_fds = if mode == RecvMode::Discard {
            0
        } else {
            max_fds.min(SCM_MAX_FD)
        };
        let space = if max_fds == 0 {
            0
        } else {
            rustix::cmsg_space!(ScmRights(max_fds))
        };
        if self.control.len() < space {
            self.control.resize(space, MaybeUninit::uninit());
        }
        let mut control = RecvAncillaryBuffer::new(&mut self.control[..space]);
        let msg = rustix::net::recvmsg(socket, &mut iov, &mut control, flags)?;
        let mut received = Received {
            bytes: msg.bytes,
            truncated_data: msg.flags.contains(ReturnFlags::TRUNC),
            truncated_control: msg.flags.contains(ReturnFlags::CTRUNC),
            foreign_control: false,
        };
        for message in control.drain() {
            match message {
                RecvAncillaryMessage::ScmRights(rights) => fds.extend(rights),
                _ => received.foreign_control = true,
            }
        }
        Ok(received)
    }

    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        rustix::io::fcntl_dupfd_cloexec(fd, 0)
    }

    fn close(&mut self, fd: OwnedFd) {
        drop(fd);
    }

    fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::io::ioctl_fionbio(fd, true)
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::net::shutdown(fd, rustix::net::Shutdown::Both)
    }

    fn nofile_limit(&mut self) -> Option<u64> {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
}
