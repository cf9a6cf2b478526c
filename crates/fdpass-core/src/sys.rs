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
//!
//! ```
//! use fdpass_core::sys::{Sys, SystemCalls};
//!
//! let mut sys = SystemCalls::default();
//! let (read_end, write_end) = sys.pipe()?;
//! sys.close(write_end);
//! assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1])?, 0); // end of file
//! # Ok::<(), rustix::io::Errno>(())
//! ```

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::platform::{set_cloexec, Atomicity};
use crate::SCM_MAX_FD;

/// Which kind of `recvmsg` the passer wants.
///
/// ```
/// use std::os::fd::AsFd;
/// use fdpass_core::sys::{RecvMode, Sys, SystemCalls};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut sys = SystemCalls::default();
/// let (a, b) = fdpass_core::socket::pair()?;
/// for _ in 0..2 {
///     let (read_end, _write_end) = sys.pipe()?;
///     sys.sendmsg(a.as_fd(), &[0], &[read_end])?;
/// }
/// let (mut buf, mut fds) = ([0u8; 1], Vec::new());
/// sys.recvmsg(b.as_fd(), &mut buf, 1, RecvMode::Take, &mut fds)?;
/// assert_eq!(fds.len(), 1); // installed
/// let discarded = sys.recvmsg(b.as_fd(), &mut buf, 1, RecvMode::Discard, &mut fds)?;
/// assert_eq!((discarded.bytes, fds.len()), (1, 1)); // read, but nothing installed
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// Consume the message and install its descriptors, close-on-exec
    /// (`MSG_CMSG_CLOEXEC` where the system has it, otherwise `FD_CLOEXEC`
    /// set right after the call).
    Take,
    /// Look without consuming (`MSG_PEEK`, close-on-exec as for `Take`): the
    /// kernel installs copies of the descriptors and keeps the message queued.
    Peek,
    /// Consume the bytes with no control buffer: the kernel drops its own
    /// references to the descriptors instead of installing them.
    Discard,
}

/// What one `recvmsg` returned, besides the descriptors it installed.
///
/// ```
/// use std::os::fd::AsFd;
/// use fdpass_core::sys::{RecvMode, Received, Sys, SystemCalls};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut sys = SystemCalls::default();
/// let (a, b) = fdpass_core::socket::pair()?;
/// drop(a);
/// let received = sys.recvmsg(b.as_fd(), &mut [0u8; 1], 1, RecvMode::Take, &mut Vec::new())?;
/// assert_eq!(received, Received::default()); // no bytes: end of stream
/// # Ok(()) }
/// ```
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
///
/// ```
/// use std::os::fd::{BorrowedFd, OwnedFd};
/// use std::time::Instant;
/// use rustix::io::Errno;
/// use fdpass_core::sys::{RecvMode, Received, Sys, SystemCalls};
/// use fdpass_core::{Config, Event, Passer};
///
/// /// The real calls, except that the first `sendmsg` meets back-pressure.
/// #[derive(Default)]
/// struct Congested {
///     real: SystemCalls,
///     pushed_back: bool,
/// }
///
/// impl Sys for Congested {
///     fn sendmsg(&mut self, socket: BorrowedFd<'_>, bytes: &[u8], fds: &[OwnedFd]) -> Result<usize, Errno> {
///         if !std::mem::replace(&mut self.pushed_back, true) {
///             return Err(Errno::NOBUFS);
///         }
///         self.real.sendmsg(socket, bytes, fds)
///     }
///     fn recvmsg(&mut self, socket: BorrowedFd<'_>, buf: &mut [u8], max_fds: usize, mode: RecvMode, fds: &mut Vec<OwnedFd>) -> Result<Received, Errno> {
///         self.real.recvmsg(socket, buf, max_fds, mode, fds)
///     }
///     fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> { self.real.dup(fd) }
///     fn close(&mut self, fd: OwnedFd) { self.real.close(fd) }
///     fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> { self.real.set_nonblocking(fd) }
///     fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> { self.real.pipe() }
///     fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> { self.real.shutdown(fd) }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (socket, _peer) = fdpass_core::socket::pair()?;
/// let mut passer = Passer::with_sys(Congested::default(), socket, Config::default())?;
/// let (read_end, _write_end) = rustix::pipe::pipe()?;
/// passer.push_send(read_end)?;
/// passer.handle_writable(Instant::now());
/// assert!(passer.poll_event().is_none()); // pushed back: a retry is scheduled
/// let retry_at = passer.poll_timeout().expect("a retry deadline");
/// passer.handle_timeout(retry_at);
/// passer.handle_writable(retry_at);
/// assert!(matches!(passer.poll_event(), Some(Event::Sent(_))));
/// # Ok(()) }
/// ```
pub trait Sys {
    /// `sendmsg(socket, bytes, SCM_RIGHTS(fds), MSG_NOSIGNAL | MSG_DONTWAIT)`
    /// (without `MSG_NOSIGNAL` on macOS: see [`suppress_sigpipe`](Self::suppress_sigpipe)).
    /// `fds` may be empty (then no control message is sent).
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use fdpass_core::sys::{RecvMode, Sys, SystemCalls};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut sys = SystemCalls::default();
    /// let (a, b) = fdpass_core::socket::pair()?;
    /// let (read_end, _write_end) = sys.pipe()?;
    /// assert_eq!(sys.sendmsg(a.as_fd(), &[0], &[read_end])?, 1);
    /// let mut fds = Vec::new();
    /// sys.recvmsg(b.as_fd(), &mut [0u8; 1], 1, RecvMode::Take, &mut fds)?;
    /// assert_eq!(fds.len(), 1);
    /// # Ok(()) }
    /// ```
    fn sendmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno>;

    /// `recvmsg` into `buf` with room for `max_fds` descriptors (none for
    /// [`RecvMode::Discard`]); installed descriptors are appended to `fds`.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use fdpass_core::sys::{RecvMode, Sys, SystemCalls};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut sys = SystemCalls::default();
    /// let (a, b) = fdpass_core::socket::pair()?;
    /// let (read_end, _write_end) = sys.pipe()?;
    /// sys.sendmsg(a.as_fd(), &[0], &[read_end])?;
    /// let mut fds = Vec::new();
    /// let received = sys.recvmsg(b.as_fd(), &mut [0u8; 1], 1, RecvMode::Take, &mut fds)?;
    /// assert_eq!((received.bytes, fds.len()), (1, 1));
    /// assert!(!received.truncated_control);
    /// # Ok(()) }
    /// ```
    fn recvmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno>;

    /// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`.
    ///
    /// ```
    /// use std::os::fd::{AsFd, AsRawFd};
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let mut sys = SystemCalls::default();
    /// let (read_end, _write_end) = sys.pipe()?;
    /// let copy = sys.dup(read_end.as_fd())?;
    /// assert_ne!(copy.as_raw_fd(), read_end.as_raw_fd());
    /// # Ok::<(), rustix::io::Errno>(())
    /// ```
    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno>;

    /// `close(fd)`, at once. The passer uses it for descriptors whose close
    /// cannot wait on someone else's file: its own reservation slots and
    /// probes, the copies a truncated peek installed of a message still
    /// queued in its socket, and descriptors the kernel has just taken in
    /// `sendmsg`. Every other descriptor it lets go of passes through
    /// [`dispose`](Self::dispose).
    ///
    /// ```
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let mut sys = SystemCalls::default();
    /// let (read_end, write_end) = sys.pipe()?;
    /// sys.close(write_end);
    /// assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1])?, 0); // no writer left
    /// # Ok::<(), rustix::io::Errno>(())
    /// ```
    fn close(&mut self, fd: OwnedFd);

    /// Lets go of a descriptor whose close may block: one a peer chose (a
    /// rejected message's, one read ahead, one in a discarded queue). The
    /// passer calls this, never [`close`](Self::close), for every descriptor
    /// that may be the last reference to a file someone else controls, so
    /// that no caller's thread waits on that file's release.
    ///
    /// The default closes at once through [`close`](Self::close), which suits
    /// a seam that models closes; [`SystemCalls`] hands the descriptor to
    /// [`disposal::dispose`](crate::disposal::dispose), which closes it soon
    /// on a background thread.
    ///
    /// ```
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let mut sys = SystemCalls::default();
    /// let (read_end, write_end) = sys.pipe()?;
    /// sys.dispose(write_end); // returns at once
    /// assert!(fdpass_core::disposal::flush(std::time::Duration::from_secs(10)));
    /// assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1])?, 0); // closed by now
    /// # Ok::<(), rustix::io::Errno>(())
    /// ```
    fn dispose(&mut self, fd: OwnedFd) {
        self.close(fd);
    }

    /// Sets `O_NONBLOCK` on `fd`.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use rustix::io::Errno;
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let mut sys = SystemCalls::default();
    /// let (read_end, _write_end) = sys.pipe()?;
    /// sys.set_nonblocking(read_end.as_fd())?;
    /// assert_eq!(rustix::io::read(&read_end, &mut [0u8; 1]), Err(Errno::AGAIN));
    /// # Ok::<(), Errno>(())
    /// ```
    fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno>;

    /// `pipe2(O_CLOEXEC)`, or `pipe` then `fcntl(F_SETFD, FD_CLOEXEC)` where
    /// there is no `pipe2` (macOS) or on the portable paths: the source of the
    /// sentinel reservation's slots.
    ///
    /// ```
    /// use rustix::io::FdFlags;
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let (read_end, write_end) = SystemCalls::default().pipe()?;
    /// assert!(rustix::io::fcntl_getfd(&read_end)?.contains(FdFlags::CLOEXEC));
    /// assert!(rustix::io::fcntl_getfd(&write_end)?.contains(FdFlags::CLOEXEC));
    /// # Ok::<(), rustix::io::Errno>(())
    /// ```
    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno>;

    /// `shutdown(fd, SHUT_RDWR)`, so the peer sees end-of-stream on a local close.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let (a, b) = fdpass_core::socket::pair()?;
    /// SystemCalls::default().shutdown(a.as_fd())?;
    /// assert_eq!(rustix::io::read(&b, &mut [0u8; 1])?, 0); // the peer sees end-of-stream
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno>;

    /// `setsockopt(socket, SOL_SOCKET, SO_OOBINLINE, 1)`: a byte the peer
    /// sends with `MSG_OOB` then stays in the stream as ordinary data.
    /// Otherwise Linux (5.15 and later, `CONFIG_AF_UNIX_OOB`) holds it apart:
    /// a consuming read silently drops it with any descriptors attached, and
    /// a peeking read skips it and reports `EAGAIN` while `poll` keeps
    /// reporting the socket readable (`manage_oob` and `unix_poll` in
    /// `net/unix/af_unix.c`). The default does nothing, for a seam that does
    /// not model sockets.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let (a, _b) = fdpass_core::socket::pair()?;
    /// SystemCalls::default().set_oob_inline(a.as_fd())?;
    /// assert!(rustix::net::sockopt::socket_oobinline(&a)?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn set_oob_inline(&mut self, socket: BorrowedFd<'_>) -> Result<(), Errno> {
        let _ = socket;
        Ok(())
    }

    /// The soft `RLIMIT_NOFILE`: the kernel installs descriptors only at
    /// numbers below it, so a sentinel slot at or above it keeps no room.
    /// `None` when there is no limit, or for a seam that does not model one
    /// (the default).
    ///
    /// ```
    /// use rustix::process::{getrlimit, Resource};
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// assert_eq!(SystemCalls::default().nofile_limit(), getrlimit(Resource::Nofile).current);
    /// ```
    fn nofile_limit(&mut self) -> Option<u64> {
        None
    }

    /// `recv(socket, buf, MSG_PEEK | MSG_DONTWAIT)`: how many bytes wait to
    /// be read (at most `buf.len()`; 0 is the end of the stream), or the error
    /// a read would meet (`EAGAIN`: nothing waits). There is no control
    /// buffer, so nothing is installed and nothing is consumed: the message
    /// and its descriptors stay queued (POSIX `recv`: "the data is treated as
    /// unread"; Linux takes extra references for a peek and, finding no
    /// control buffer, drops only those: `unix_stream_read_generic` in
    /// `net/unix/af_unix.c`, `__scm_recv_common` in `include/net/scm.h`).
    ///
    /// The sentinel reservation looks first so that it frees and re-takes its
    /// slots only when there is something to read. `None` for a seam that
    /// does not model it (the default): the passer then reads without looking.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use rustix::io::Errno;
    /// use fdpass_core::sys::{RecvMode, Sys, SystemCalls};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut sys = SystemCalls::default();
    /// let (a, b) = fdpass_core::socket::pair()?;
    /// assert_eq!(sys.peek_bytes(b.as_fd(), &mut [0u8; 4]), Some(Err(Errno::AGAIN)));
    /// let (read_end, _write_end) = sys.pipe()?;
    /// sys.sendmsg(a.as_fd(), &[0], &[read_end])?;
    /// assert_eq!(sys.peek_bytes(b.as_fd(), &mut [0u8; 4]), Some(Ok(1)));
    /// let mut fds = Vec::new();
    /// sys.recvmsg(b.as_fd(), &mut [0u8; 1], 1, RecvMode::Take, &mut fds)?;
    /// assert_eq!(fds.len(), 1); // the look took nothing
    /// # Ok(()) }
    /// ```
    fn peek_bytes(
        &mut self,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Option<Result<usize, Errno>> {
        let _ = (socket, buf);
        None
    }

    /// Closes every descriptor of `fds`, leaving it empty: the sentinel
    /// reservation's slots, freed before each read. The default closes them
    /// one by one through [`close`](Sys::close); [`SystemCalls`] closes each
    /// run of consecutive numbers with one `close_range(2)` where the kernel
    /// has it (Linux 5.9 and later) and the rest one by one.
    ///
    /// ```
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let mut sys = SystemCalls::default();
    /// let (read_end, _write_end) = sys.pipe()?;
    /// let mut slots = Vec::new();
    /// for _ in 0..4 {
    ///     slots.push(sys.dup(std::os::fd::AsFd::as_fd(&read_end))?);
    /// }
    /// sys.close_many(&mut slots);
    /// assert!(slots.is_empty());
    /// # Ok::<(), rustix::io::Errno>(())
    /// ```
    fn close_many(&mut self, fds: &mut Vec<OwnedFd>) {
        for fd in fds.drain(..) {
            self.close(fd);
        }
    }

    /// Makes sending on `socket` to a peer that went away fail with `EPIPE`
    /// instead of raising `SIGPIPE`, where that takes a socket option: sets
    /// `SO_NOSIGPIPE` on macOS, which has no `MSG_NOSIGNAL` (see
    /// `setsockopt(2)` there). Elsewhere every `sendmsg` passes
    /// `MSG_NOSIGNAL` and this does nothing. The passer calls it once, at
    /// construction.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let (a, b) = fdpass_core::socket::pair()?;
    /// let mut sys = SystemCalls::default();
    /// sys.suppress_sigpipe(a.as_fd())?;
    /// drop(b);
    /// assert_eq!(sys.sendmsg(a.as_fd(), &[0], &[]), Err(rustix::io::Errno::PIPE));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn suppress_sigpipe(&mut self, socket: BorrowedFd<'_>) -> Result<(), Errno> {
        let _ = socket;
        Ok(())
    }

    /// Whether [`Reservation::Peek`](crate::Reservation::Peek) is lossless
    /// through this seam: the kernel installs copies of a peeked message's
    /// descriptors and, when they do not all fit, keeps the message queued
    /// with all of them. `Reservation::Auto` resolves to the peek
    /// reservation only where this is `true`, and asking for it where this is
    /// `false` is [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    ///
    /// The default asks the running kernel once per process (on Linux and
    /// Android; `false` elsewhere, where the peek reservation is not relied
    /// on). [`SystemCalls::portable`] answers `false`.
    ///
    /// ```
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// assert!(!SystemCalls::portable().peek_is_lossless());
    /// if cfg!(target_os = "linux") {
    ///     assert!(SystemCalls::native().peek_is_lossless()); // a real Linux kernel
    /// }
    /// ```
    fn peek_is_lossless(&mut self) -> bool {
        crate::peek_probe::peek_is_lossless_here()
    }

    /// Whether `socket` keeps message boundaries (`SOCK_SEQPACKET`), from
    /// `getsockopt(SO_TYPE)` (`socket(7)`): a read then never joins two
    /// `sendmsg`s. The passer asks once, at construction; anything but a
    /// sequenced-packet socket, an error included, counts as a stream, the
    /// cautious answer.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use fdpass_core::sys::{Sys, SystemCalls};
    ///
    /// let (a, _b) = fdpass_core::socket::pair()?;
    /// assert!(!SystemCalls::default().keeps_boundaries(a.as_fd()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn keeps_boundaries(&mut self, socket: BorrowedFd<'_>) -> bool {
        rustix::net::sockopt::socket_type(socket) == Ok(rustix::net::SocketType::SEQPACKET)
    }
}

/// The real system calls, through rustix.
///
/// Holds the buffers the calls need so the hot path allocates nothing once
/// they have grown to the largest message.
///
/// Two sets of paths: [`native`](Self::native), the best this system offers
/// (the default), and [`portable`](Self::portable), the paths of the systems
/// that lack Linux's flags, so that they run and are tested on Linux too.
/// Building fdpass-core with the `portable-syscalls` feature makes the
/// default the portable one (for test runs; it gives up atomic close-on-exec
/// on Linux).
///
/// ```
/// use fdpass_core::sys::SystemCalls;
/// use fdpass_core::{Config, Passer};
///
/// # fn main() -> Result<(), fdpass_core::Error> {
/// // `Passer::new` makes the real calls: `Passer` is `Passer<SystemCalls>`.
/// let (a, _b): (Passer<SystemCalls>, Passer) = Passer::pair(Config::default())?;
/// assert!(a.usable().is_ok());
/// # Ok(()) }
/// ```
pub struct SystemCalls {
    control: Vec<MaybeUninit<u8>>,
    /// Allocation reused for the `BorrowedFd` array each `sendmsg` needs.
    borrowed: Vec<BorrowedFd<'static>>,
    /// How descriptors this seam creates or receives become close-on-exec.
    cloexec: Atomicity,
    /// Whether this seam may use the peek reservation at all.
    may_peek: bool,
}

impl Default for SystemCalls {
    /// [`SystemCalls::native`], or [`SystemCalls::portable`] when fdpass-core
    /// is built with the `portable-syscalls` feature.
    fn default() -> Self {
        if cfg!(feature = "portable-syscalls") {
            SystemCalls::portable()
        } else {
            SystemCalls::native()
        }
    }
}

impl SystemCalls {
    /// The best paths this system offers: close-on-exec set atomically on
    /// receipt (`MSG_CMSG_CLOEXEC`) and on new pipes (`pipe2`) where the system
    /// has them, the peek reservation where the kernel keeps peeked
    /// descriptors queued (see [`Sys::peek_is_lossless`]).
    ///
    /// ```
    /// use fdpass_core::sys::SystemCalls;
    ///
    /// assert!(!SystemCalls::native().is_portable());
    /// ```
    pub fn native() -> Self {
        SystemCalls {
            control: Vec::new(),
            borrowed: Vec::new(),
            cloexec: Atomicity::AtCreation,
            may_peek: true,
        }
    }

    /// The paths macOS and the other systems without Linux's flags take,
    /// usable on every system: received descriptors get `FD_CLOEXEC` by
    /// `fcntl` right after `recvmsg` (not atomic: a concurrent `fork` + `exec`
    /// can inherit them), pipes are made by `pipe` then `fcntl`, and only the
    /// sentinel reservation is offered ([`Sys::peek_is_lossless`] is `false`).
    /// `SIGPIPE` is suppressed as the system allows: `MSG_NOSIGNAL` where the
    /// flag exists (Linux has no `SO_NOSIGPIPE` to use instead), the socket's
    /// `SO_NOSIGPIPE` on macOS.
    ///
    /// ```
    /// use fdpass_core::sys::SystemCalls;
    /// use fdpass_core::{Config, Passer, Reservation};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (socket, _peer) = fdpass_core::socket::pair()?;
    /// let passer = Passer::with_sys(SystemCalls::portable(), socket, Config::default())?;
    /// assert_eq!(passer.config().reservation, Reservation::Sentinel);
    /// # Ok(()) }
    /// ```
    pub fn portable() -> Self {
        SystemCalls {
            control: Vec::new(),
            borrowed: Vec::new(),
            cloexec: Atomicity::AfterCreation,
            may_peek: false,
        }
    }

    /// Whether these are the [`portable`](Self::portable) paths.
    ///
    /// ```
    /// use fdpass_core::sys::SystemCalls;
    ///
    /// assert!(SystemCalls::portable().is_portable());
    /// assert_eq!(SystemCalls::default().is_portable(), cfg!(feature = "portable-syscalls"));
    /// ```
    pub fn is_portable(&self) -> bool {
        !self.may_peek
    }
}

impl std::fmt::Debug for SystemCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths = if self.is_portable() {
            "portable"
        } else {
            "native"
        };
        f.debug_struct("SystemCalls")
            .field("paths", &paths)
            .finish()
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

/// `MSG_NOSIGNAL`, where the system has it: a peer that went away makes
/// `sendmsg` fail with `EPIPE` instead of raising `SIGPIPE`.
#[cfg(not(target_vendor = "apple"))]
const NO_SIGPIPE: SendFlags = SendFlags::NOSIGNAL;

/// macOS has no `MSG_NOSIGNAL`; [`Sys::suppress_sigpipe`] set `SO_NOSIGPIPE`
/// on the socket instead.
#[cfg(target_vendor = "apple")]
const NO_SIGPIPE: SendFlags = SendFlags::empty();

/// `MSG_CMSG_CLOEXEC` where rustix offers it (Linux, Android, the BSDs);
/// `None` on macOS (no such flag) and illumos (not exposed by rustix), where
/// close-on-exec is set after `recvmsg`.
#[cfg(not(any(target_vendor = "apple", target_os = "illumos", target_os = "solaris")))]
const CMSG_CLOEXEC: Option<RecvFlags> = Some(RecvFlags::CMSG_CLOEXEC);

#[cfg(any(target_vendor = "apple", target_os = "illumos", target_os = "solaris"))]
const CMSG_CLOEXEC: Option<RecvFlags> = None;

impl Sys for SystemCalls {
    fn sendmsg(
        &mut self,
        socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno> {
        let iov = [IoSlice::new(bytes)];
        let flags = NO_SIGPIPE | SendFlags::DONTWAIT;
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
        let atomic_cloexec = match (self.cloexec, CMSG_CLOEXEC) {
            (Atomicity::AtCreation, Some(flag)) if mode != RecvMode::Discard => {
                flags |= flag;
                true
            }
            _ => false,
        };
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
        let first_new = fds.len();
        for message in control.drain() {
            match message {
                RecvAncillaryMessage::ScmRights(rights) => fds.extend(rights),
                _ => received.foreign_control = true,
            }
        }
        if !atomic_cloexec {
            // Not atomic: until this loop has run, a `fork` + `exec` by
            // another thread lets the new program inherit these descriptors.
            // `F_SETFD` fails only with `EBADF`, impossible on descriptors the
            // kernel has just installed and we own; ignoring its result keeps
            // them delivered rather than turning a received message into a loss.
            for fd in &fds[first_new..] {
                let _ = set_cloexec(fd);
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

    fn dispose(&mut self, fd: OwnedFd) {
        crate::disposal::dispose(fd);
    }

    fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::io::ioctl_fionbio(fd, true)
    }

    fn set_oob_inline(&mut self, socket: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::net::sockopt::set_socket_oobinline(socket, true)
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        crate::platform::pipe(self.cloexec)
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::net::shutdown(fd, rustix::net::Shutdown::Both)
    }

    fn nofile_limit(&mut self) -> Option<u64> {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }

    fn peek_bytes(
        &mut self,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Option<Result<usize, Errno>> {
        let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
        Some(rustix::net::recv(socket, buf, flags).map(|(_, waiting)| waiting))
    }

    fn close_many(&mut self, fds: &mut Vec<OwnedFd>) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        crate::close_range::close_runs(fds);
        for fd in fds.drain(..) {
            self.close(fd);
        }
    }

    #[cfg(target_vendor = "apple")]
    fn suppress_sigpipe(&mut self, socket: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::net::sockopt::set_socket_nosigpipe(socket, true)
    }

    fn peek_is_lossless(&mut self) -> bool {
        self.may_peek && crate::peek_probe::peek_is_lossless_here()
    }
}
