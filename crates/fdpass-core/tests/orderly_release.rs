//! Our close reads as an orderly end of stream to the peer, even when the
//! peer left messages unread in our socket: Linux resets the peer's stream
//! (`ECONNRESET`) when a stream socket is released with unread data
//! (`unix_release_sock` in `net/unix/af_unix.c`), so the passer drains its
//! socket before the final close.
// Linux and Android only: it checks what Linux does when a unix socket is released with unread data (a reset unless drained).
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use fdpass_core::{Config, Passer, Reservation};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

/// The raw peer passes a pipe's read end in a well-formed message.
fn pass_a_pipe(peer: &OwnedFd) {
    let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
    let fds = [read_end.as_fd()];
    let mut storage = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut storage);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let sent = rustix::net::sendmsg(
        peer,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::DONTWAIT,
    )
    .unwrap();
    assert_eq!(sent, 1);
}

/// What the peer reads once our side is gone (the release is asynchronous:
/// wait for it first, so that a reset would have happened).
fn peer_reads_after_release(peer: &OwnedFd) -> Result<usize, Errno> {
    assert!(fdpass_core::disposal::flush(Duration::from_secs(30)));
    rustix::net::recv(peer, &mut [0u8; 16][..], RecvFlags::DONTWAIT).map(|(n, _)| n)
}

#[test]
fn closing_with_unread_descriptors_reads_as_orderly_close_to_the_peer() {
    for reservation in BOTH {
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer =
            Passer::new(ours, Config::default().with_reservation(reservation)).unwrap();
        for _ in 0..3 {
            pass_a_pipe(&peer);
        }
        passer.close();
        drop(passer);
        assert_eq!(peer_reads_after_release(&peer), Ok(0), "{reservation:?}");
    }
}

#[test]
fn dropping_with_unread_descriptors_reads_as_orderly_close_to_the_peer() {
    for reservation in BOTH {
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let passer = Passer::new(ours, Config::default().with_reservation(reservation)).unwrap();
        for _ in 0..3 {
            pass_a_pipe(&peer);
        }
        drop(passer);
        assert_eq!(peer_reads_after_release(&peer), Ok(0), "{reservation:?}");
    }
}

#[test]
fn dropping_with_unread_bytes_reads_as_orderly_close_to_the_peer() {
    let (peer, ours) = fdpass_core::socket::pair().unwrap();
    let passer = Passer::new(ours, Config::default()).unwrap();
    // Bytes alone (a protocol error, had the passer read them).
    rustix::net::send(&peer, &[1, 2, 3], SendFlags::DONTWAIT).unwrap();
    drop(passer);
    assert_eq!(peer_reads_after_release(&peer), Ok(0));
}

#[test]
fn after_our_close_the_peer_cannot_queue_more() {
    let (peer, ours) = fdpass_core::socket::pair().unwrap();
    let mut passer = Passer::new(ours, Config::default()).unwrap();
    passer.close();
    // Shut down both ways: a later send fails at once rather than queueing
    // data that would then be released unread.
    assert_eq!(
        rustix::net::send(&peer, &[0], SendFlags::DONTWAIT | SendFlags::NOSIGNAL),
        Err(Errno::PIPE)
    );
    drop(passer);
    assert_eq!(peer_reads_after_release(&peer), Ok(0));
}

#[test]
fn dropping_a_seqpacket_passer_with_unread_descriptors_reads_as_orderly_close() {
    for reservation in BOTH {
        let (peer, ours) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let passer = Passer::new(ours, Config::default().with_reservation(reservation)).unwrap();
        for _ in 0..3 {
            pass_a_pipe(&peer);
        }
        drop(passer);
        assert_eq!(peer_reads_after_release(&peer), Ok(0), "{reservation:?}");
    }
}
