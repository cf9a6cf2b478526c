//! The portable system-call paths (what macOS and illumos take) and the
//! choice of reservation, exercised on whatever system runs the tests.

use std::os::fd::AsFd;

use fdpass_core::sys::{RecvMode, Sys, SystemCalls};
use fdpass_core::{Config, Error, Passer, Reservation};
use rustix::io::FdFlags;

fn cloexec(fd: impl AsFd) -> bool {
    rustix::io::fcntl_getfd(fd)
        .unwrap()
        .contains(FdFlags::CLOEXEC)
}

/// Sends one inheritable pipe end through `sender` and takes it with `receiver`.
fn pass_one_inheritable(sender: &mut SystemCalls, receiver: &mut SystemCalls, mode: RecvMode) {
    let (a, b) = fdpass_core::socket::pair().unwrap();
    let (read_end, _write_end) = sender.pipe().unwrap();
    rustix::io::fcntl_setfd(&read_end, FdFlags::empty()).unwrap();
    assert_eq!(sender.sendmsg(a.as_fd(), &[0], &[read_end]), Ok(1));
    let mut fds = Vec::new();
    let received = receiver
        .recvmsg(b.as_fd(), &mut [0u8; 1], 1, mode, &mut fds)
        .unwrap();
    assert_eq!((received.bytes, fds.len()), (1, 1));
    assert!(cloexec(&fds[0]), "{mode:?}: received without FD_CLOEXEC");
}

#[test]
fn portable_paths_make_received_descriptors_close_on_exec_after_receipt() {
    for mode in [RecvMode::Take, RecvMode::Peek] {
        pass_one_inheritable(
            &mut SystemCalls::portable(),
            &mut SystemCalls::portable(),
            mode,
        );
    }
}

#[test]
fn native_paths_make_received_descriptors_close_on_exec() {
    for mode in [RecvMode::Take, RecvMode::Peek] {
        pass_one_inheritable(&mut SystemCalls::native(), &mut SystemCalls::native(), mode);
    }
}

#[test]
fn portable_pipes_are_close_on_exec_at_both_ends() {
    let (read_end, write_end) = SystemCalls::portable().pipe().unwrap();
    assert!(cloexec(&read_end) && cloexec(&write_end));
}

#[test]
fn portable_paths_report_a_departed_peer_as_epipe() {
    let mut sys = SystemCalls::portable();
    let (a, b) = fdpass_core::socket::pair().unwrap();
    sys.suppress_sigpipe(a.as_fd()).unwrap();
    drop(b);
    assert_eq!(
        sys.sendmsg(a.as_fd(), &[0], &[]),
        Err(rustix::io::Errno::PIPE)
    );
}

#[test]
fn auto_resolves_to_the_sentinel_on_the_portable_paths() {
    let (socket, _peer) = fdpass_core::socket::pair().unwrap();
    let passer = Passer::with_sys(SystemCalls::portable(), socket, Config::default()).unwrap();
    assert_eq!(passer.config().reservation, Reservation::Sentinel);
    assert!(passer.held_descriptors() >= Config::default().max_fds_per_message);
}

#[test]
fn auto_resolves_to_peek_where_the_running_kernel_keeps_peeked_descriptors() {
    let (socket, _peer) = fdpass_core::socket::pair().unwrap();
    let passer = Passer::with_sys(SystemCalls::native(), socket, Config::default()).unwrap();
    let expected = if cfg!(any(target_os = "linux", target_os = "android")) {
        // A real Linux kernel: the probe must have seen peek keep them.
        Reservation::Peek
    } else {
        Reservation::Sentinel
    };
    assert_eq!(passer.config().reservation, expected);
    assert_eq!(Reservation::lossless_here(), expected);
}

#[test]
fn peek_where_it_is_not_lossless_is_a_typed_error_at_construction() {
    let (socket, _peer) = fdpass_core::socket::pair().unwrap();
    let config = Config::default().with_reservation(Reservation::Peek);
    let refused = Passer::with_sys(SystemCalls::portable(), socket, config).unwrap_err();
    assert!(matches!(refused, Error::InvalidConfig(_)), "{refused:?}");
}

/// A seam whose kernel is known not to keep peeked descriptors queued.
#[derive(Debug, Default)]
struct NoPeek(SystemCalls);

impl Sys for NoPeek {
    fn sendmsg(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[std::os::fd::OwnedFd],
    ) -> Result<usize, rustix::io::Errno> {
        self.0.sendmsg(socket, bytes, fds)
    }
    fn recvmsg(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> Result<fdpass_core::sys::Received, rustix::io::Errno> {
        self.0.recvmsg(socket, buf, max_fds, mode, fds)
    }
    fn dup(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<std::os::fd::OwnedFd, rustix::io::Errno> {
        self.0.dup(fd)
    }
    fn close(&mut self, fd: std::os::fd::OwnedFd) {
        self.0.close(fd)
    }
    fn set_nonblocking(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), rustix::io::Errno> {
        self.0.set_nonblocking(fd)
    }
    fn pipe(&mut self) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), rustix::io::Errno> {
        self.0.pipe()
    }
    fn shutdown(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), rustix::io::Errno> {
        self.0.shutdown(fd)
    }
    fn peek_is_lossless(&mut self) -> bool {
        false
    }
}

#[test]
fn a_seam_that_cannot_peek_gets_the_sentinel_by_default_and_an_error_for_peek() {
    let (socket, _peer) = fdpass_core::socket::pair().unwrap();
    let passer = Passer::with_sys(NoPeek::default(), socket, Config::default()).unwrap();
    assert_eq!(passer.config().reservation, Reservation::Sentinel);
    let (socket, _peer) = fdpass_core::socket::pair().unwrap();
    let config = Config::default().with_reservation(Reservation::Peek);
    let refused = Passer::with_sys(NoPeek::default(), socket, config).unwrap_err();
    assert!(matches!(refused, Error::InvalidConfig(_)), "{refused:?}");
}
