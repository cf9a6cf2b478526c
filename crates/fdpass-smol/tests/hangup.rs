//! A passer that only sends learns that its peer is gone, and how.

mod common;

use common::{pipe_with, within};
use fdpass_smol::{Error, Passer};

fn is_errno(e: &Error, errno: rustix::io::Errno) -> bool {
    matches!(e, Error::Io(io) if io.raw_os_error() == Some(errno.raw_os_error()))
}

#[test]
fn a_send_only_passer_learns_of_the_peers_orderly_hangup() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        a.send(pipe_with(1)).await?;
        assert!(b.recv().await?.is_some());
        drop(b);
        a.closed().await?;
        let err = a.send(pipe_with(2)).await.unwrap_err();
        assert!(is_errno(&err, rustix::io::Errno::PIPE), "{err}");
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn a_peer_passer_dropped_with_our_descriptors_unread_reads_as_an_orderly_close() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        a.send(pipe_with(1)).await?;
        drop(b);
        a.closed().await?;
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn a_peer_gone_with_our_descriptors_unread_is_reported_as_a_failure() {
    smol::block_on(within(60, async {
        // The kernel releases the peer's socket with what we sent unread (a
        // crashed process, or a peer that is not a passer): a reset.
        let (ours, theirs) = fdpass_core::socket::pair().map_err(Error::from)?;
        let a = Passer::new(ours)?;
        a.send(pipe_with(1)).await?;
        drop(theirs);
        let err = a.closed().await.unwrap_err();
        assert!(is_errno(&err, rustix::io::Errno::CONNRESET), "{err}");
        Ok::<_, Error>(())
    }))
    .unwrap();
}

/// Driven from several threads at once, a hang-up wakes every waiter.
#[test]
fn every_thread_waiting_on_closed_learns_of_the_hangup() {
    let (a, b) = Passer::pair().unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || smol::block_on(within(60, a.closed())))
        })
        .collect();
    drop(b);
    for waiter in waiters {
        waiter.join().unwrap().unwrap();
    }
}
