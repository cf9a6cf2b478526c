//! A passer that only sends learns that its peer is gone, and how.

use std::os::fd::OwnedFd;
use std::time::Duration;

use fdpass_tokio::{Error, Passer};

const BOUND: Duration = Duration::from_secs(60);

fn pipe_end() -> OwnedFd {
    std::io::pipe().unwrap().0.into()
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("operation hung")
}

fn is_errno(e: &Error, errno: rustix::io::Errno) -> bool {
    matches!(e, Error::Io(io) if io.raw_os_error() == Some(errno.raw_os_error()))
}

#[tokio::test(flavor = "current_thread")]
async fn a_send_only_passer_learns_of_the_peers_orderly_hangup() {
    let (a, b) = Passer::pair().unwrap();
    a.send(pipe_end()).await.unwrap();
    let mut closed = Box::pin(a.closed());
    assert!(
        futures_util::poll!(&mut closed).is_pending(),
        "the peer is still there"
    );
    assert!(bounded(b.recv()).await.unwrap().is_some());
    drop(b);
    bounded(closed).await.unwrap();
    // Sends to it now fail at once, with the kernel's EPIPE.
    let err = bounded(a.send(pipe_end())).await.unwrap_err();
    assert!(is_errno(&err, rustix::io::Errno::PIPE), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_gone_with_our_descriptors_unread_is_reported_as_a_failure() {
    // The peer's socket is released by the kernel with what we sent unread
    // (a crashed process, or a peer that is not a passer): a reset.
    let (ours, theirs) = fdpass_core::socket::pair().unwrap();
    let a = Passer::new(ours).unwrap();
    a.send(pipe_end()).await.unwrap();
    drop(theirs);
    let err = bounded(a.closed()).await.unwrap_err();
    assert!(is_errno(&err, rustix::io::Errno::CONNRESET), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_passer_dropped_with_our_descriptors_unread_reads_as_an_orderly_close() {
    let (a, b) = Passer::pair().unwrap();
    a.send(pipe_end()).await.unwrap();
    drop(b);
    bounded(a.closed()).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn closed_after_a_local_close_says_closed() {
    let (a, _b) = Passer::pair().unwrap();
    a.close();
    assert!(matches!(bounded(a.closed()).await, Err(Error::Closed)));
}

/// What the OS leaves undetectable: a peer that passed us its own socket end
/// and exited lives on in our unread queue (a cycle only the unix garbage
/// collector could break, and it does not while we are reachable). Taking
/// that descriptor out and closing it ends the cycle, and the hang-up shows.
#[tokio::test(flavor = "current_thread")]
async fn a_hangup_hidden_by_our_own_queue_shows_once_the_descriptor_is_taken() {
    let (ours, theirs) = fdpass_core::socket::pair().unwrap();
    let a = Passer::new(ours).unwrap();
    let mut peer = fdpass_core::Passer::new(theirs, fdpass_core::Config::default()).unwrap();
    let own_end = {
        use std::os::fd::AsFd;
        peer.as_fd().try_clone_to_owned().unwrap()
    };
    peer.push_send(own_end).unwrap();
    peer.handle_writable(std::time::Instant::now());
    drop(peer); // exits: its socket lives on inside the message we hold
    let mut closed = Box::pin(a.closed());
    assert!(futures_util::poll!(&mut closed).is_pending());
    assert!(
        futures_util::poll!(&mut closed).is_pending(),
        "nothing can tell yet"
    );
    let their_socket = bounded(a.recv()).await.unwrap().unwrap();
    drop(their_socket); // the last reference: the peer's socket is released
    bounded(closed).await.unwrap();
}
