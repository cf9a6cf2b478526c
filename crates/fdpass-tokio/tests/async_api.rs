//! The tokio surface: concurrency, cancel safety, Stream/Sink, failures.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use fdpass_tokio::{Config, Error, Passer};
use futures_util::{SinkExt, StreamExt};

/// Generous bound: a test that needs it has hung.
const BOUND: Duration = Duration::from_secs(60);

/// A pipe's read end that carries `seq`.
fn numbered(seq: u64) -> OwnedFd {
    let (read_end, mut write_end) = std::io::pipe().unwrap();
    write_end.write_all(&seq.to_le_bytes()).unwrap();
    read_end.into()
}

fn number_of(fd: OwnedFd) -> u64 {
    let mut buf = [0u8; 8];
    std::fs::File::from(fd).read_exact(&mut buf).unwrap();
    u64::from_le_bytes(buf)
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("operation hung")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_and_receives_concurrently_from_different_tasks() {
    let (left, right) = Passer::pair().unwrap();
    const N: u64 = 2_000;
    let mut tasks = Vec::new();
    for (me, peer) in [(left.clone(), right.clone()), (right, left)] {
        tasks.push(tokio::spawn(async move {
            for seq in 0..N {
                me.send(numbered(seq)).await.unwrap();
            }
        }));
        tasks.push(tokio::spawn(async move {
            for seq in 0..N {
                let fd = peer.recv().await.unwrap().unwrap();
                assert_eq!(number_of(fd), seq);
            }
        }));
    }
    for task in tasks {
        bounded(task).await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn receive_loop_in_select_with_a_ticker_loses_nothing() {
    let (left, right) =
        Passer::pair_with_config(Config::default().with_max_fds_per_message(7)).unwrap();
    const N: u64 = 3_000;
    let sender = tokio::spawn(async move {
        for seq in 0..N {
            left.push_send(numbered(seq)).unwrap();
            if seq % 100 == 0 {
                left.flush().await.unwrap();
            }
        }
        left.flush().await.unwrap();
    });
    // Every tick drops a pending recv() future: cancel safety in practice.
    let mut ticker = tokio::time::interval(Duration::from_micros(50));
    let mut next = 0;
    let mut dropped = 0u64;
    bounded(async {
        while next < N {
            tokio::select! {
                fd = right.recv() => {
                    assert_eq!(number_of(fd.unwrap().unwrap()), next);
                    next += 1;
                }
                _ = ticker.tick() => dropped += 1,
            }
        }
    })
    .await;
    bounded(sender).await.unwrap();
    assert!(
        dropped > 0,
        "the ticker never won, so no future was dropped"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_recv_hands_its_descriptor_to_the_next() {
    let (left, right) = Passer::pair().unwrap();
    let mut first = Box::pin(right.recv());
    assert!(futures_util::poll!(&mut first).is_pending());
    left.send(numbered(1)).await.unwrap();
    left.send(numbered(2)).await.unwrap();
    // A second receiver drives the passer; the oldest descriptor is kept for
    // `first`, which asked before it.
    assert_eq!(number_of(bounded(right.recv()).await.unwrap().unwrap()), 2);
    // Dropped, `first` hands its descriptor to the next request.
    drop(first);
    assert_eq!(number_of(bounded(right.recv()).await.unwrap().unwrap()), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_recv_many_loses_nothing_and_leaves_buf_alone() {
    let (left, right) = Passer::pair().unwrap();
    let mut buf = Vec::new();
    {
        let mut waiting = Box::pin(right.recv_many(&mut buf, 8));
        assert!(futures_util::poll!(&mut waiting).is_pending());
        left.push_send_many((1..=3).map(numbered)).unwrap();
        left.flush().await.unwrap();
        left.send(numbered(4)).await.unwrap();
        // Another receiver, asking later, gets the next after the batch
        // `waiting` asked for first (the three that came together).
        assert_eq!(number_of(bounded(right.recv()).await.unwrap().unwrap()), 4);
    }
    assert!(buf.is_empty(), "a dropped recv_many writes nothing");
    assert_eq!(bounded(right.recv_many(&mut buf, 8)).await.unwrap(), 3);
    let numbers: Vec<u64> = buf.into_iter().map(number_of).collect();
    assert_eq!(numbers, [1, 2, 3]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_send_still_sends_in_order() {
    let (left, right) = Passer::pair().unwrap();
    drop(left.send(numbered(0)));
    left.send(numbered(1)).await.unwrap();
    assert_eq!(number_of(bounded(right.recv()).await.unwrap().unwrap()), 0);
    assert_eq!(number_of(bounded(right.recv()).await.unwrap().unwrap()), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn stream_and_sink_round_trip() {
    let (mut left, right) = Passer::pair().unwrap();
    // More than the socket buffer holds unread, so the sink must wait for the
    // receiver while flushing: they run as two tasks.
    let sender = tokio::spawn(async move {
        let items = (0..2_000).map(|seq| Ok(numbered(seq)));
        left.send_all(&mut futures_util::stream::iter(items))
            .await
            .unwrap();
        SinkExt::close(&mut left).await.unwrap();
    });
    let numbers: Vec<u64> = bounded(right.map(|fd| number_of(fd.unwrap())).collect()).await;
    assert_eq!(numbers, (0..2_000).collect::<Vec<_>>());
    bounded(sender).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn orderly_close_is_none_not_an_error() {
    let (left, right) = Passer::pair().unwrap();
    left.send(numbered(9)).await.unwrap();
    drop(left);
    assert_eq!(number_of(bounded(right.recv()).await.unwrap().unwrap()), 9);
    assert!(bounded(right.recv()).await.unwrap().is_none());
    assert!(bounded(right.recv()).await.unwrap().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn a_failure_shows_up_on_every_later_call() {
    let (left, right) = Passer::pair().unwrap();
    drop(right);
    // Fire-and-forget: the first push meets EPIPE while sending, and says so
    // on the next call.
    left.push_send(numbered(0)).unwrap();
    let err = left.push_send(numbered(1)).unwrap_err().error();
    assert!(
        matches!(&err, Error::Io(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error())),
        "{err}"
    );
    assert!(left.send(numbered(2)).await.is_err());
    assert!(left.flush().await.is_err());
    // Sending alone failed: the peer's orderly close still reads as one.
    assert!(matches!(left.recv().await, Ok(None)));
}

#[tokio::test(flavor = "current_thread")]
async fn close_ends_the_peers_stream_and_refuses_further_use() {
    let (left, right) = Passer::pair().unwrap();
    left.close();
    assert!(matches!(left.send(numbered(0)).await, Err(Error::Closed)));
    assert!(bounded(right.recv()).await.unwrap().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn batched_fifo_of_ten_thousand() {
    let (left, right) =
        Passer::pair_with_config(Config::default().with_max_fds_per_message(253)).unwrap();
    const N: u64 = 10_000;
    let sender = tokio::spawn(async move {
        for seq in 0..N {
            left.push_send(numbered(seq)).unwrap();
        }
        left.flush().await.unwrap();
    });
    for seq in 0..N {
        assert_eq!(
            number_of(bounded(right.recv()).await.unwrap().unwrap()),
            seq
        );
    }
    bounded(sender).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn listener_accepts_passers() {
    let dir = std::env::temp_dir().join(format!("fdpass-tokio-listener-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let listener = fdpass_tokio::Listener::bind(&path).unwrap();
    let (client, server) = tokio::try_join!(Passer::connect(&path), listener.accept()).unwrap();
    client.send(numbered(5)).await.unwrap();
    server.send(numbered(6)).await.unwrap();
    assert_eq!(number_of(bounded(server.recv()).await.unwrap().unwrap()), 5);
    assert_eq!(number_of(bounded(client.recv()).await.unwrap().unwrap()), 6);
    std::fs::remove_dir_all(&dir).unwrap();
}
