//! What the passer promises, whatever the executor: order, no loss under
//! cancellation, end of stream, `Stream`/`Sink`, child processes.

mod common;

use std::future::Future;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll, Waker};

use common::{channel_waker, pipe_with, seq_of, within};
use fdpass_smol::{Config, Error, Passer, Reservation};
use futures_util::{SinkExt, StreamExt};

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Passer>();
    check::<fdpass_smol::SendFd<'static>>();
    check::<fdpass_smol::RecvFd<'static>>();
    check::<fdpass_smol::RecvMany<'static>>();
    check::<fdpass_smol::Flush<'static>>();
    check::<fdpass_smol::Listener>();
}

#[test]
fn both_directions_at_once_from_two_tasks() {
    const COUNT: u64 = 1_000;
    async fn converse(passer: Passer) -> Result<(), Error> {
        let sending = async {
            for seq in 0..COUNT {
                passer.send(pipe_with(seq)).await?;
            }
            Ok::<_, Error>(())
        };
        let receiving = async {
            for seq in 0..COUNT {
                assert_eq!(seq_of(passer.recv().await?.unwrap()), seq);
            }
            Ok::<_, Error>(())
        };
        let (sent, received) = smol::future::zip(sending, receiving).await;
        sent.and(received)
    }
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let left = smol::spawn(converse(a));
        let right = smol::spawn(converse(b));
        left.await?;
        right.await
    }))
    .unwrap();
}

#[test]
fn dropping_a_recv_before_anything_arrived_loses_nothing() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        {
            let mut early = pin!(b.recv());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(early.as_mut().poll(&mut cx).is_pending());
            a.send(pipe_with(0)).await?;
            a.send(pipe_with(1)).await?;
        }
        assert_eq!(seq_of(b.recv().await?.unwrap()), 0);
        assert_eq!(seq_of(b.recv().await?.unwrap()), 1);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn dropping_a_recv_whose_descriptor_arrived_loses_nothing() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let (waker, woken) = channel_waker();
        {
            let mut early = pin!(b.recv());
            assert!(early
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            a.send(pipe_with(0)).await?;
            a.send(pipe_with(1)).await?;
            // The socket became readable and every waiting task was woken.
            woken.recv().await.unwrap();
            // Drive `b` from elsewhere: this reads the descriptor asked for by
            // `early`, which is then dropped without ever seeing it.
            b.push_send(pipe_with(99))?;
        }
        assert_eq!(seq_of(b.recv().await?.unwrap()), 0);
        assert_eq!(seq_of(b.recv().await?.unwrap()), 1);
        assert_eq!(seq_of(a.recv().await?.unwrap()), 99);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn dropping_a_recv_many_whose_descriptor_arrived_loses_nothing() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let (waker, woken) = channel_waker();
        let mut buf = Vec::new();
        {
            let mut early = pin!(b.recv_many(&mut buf, 8));
            assert!(early
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            a.push_send_many((0..3).map(pipe_with))?;
            a.flush().await?;
            woken.recv().await.unwrap();
            // Drive `b` from elsewhere: the message is read for `early`,
            // which is then dropped without ever seeing it.
            b.push_send(pipe_with(99))?;
        }
        assert!(buf.is_empty(), "a dropped recv_many writes nothing");
        assert_eq!(b.recv_many(&mut buf, 2).await?, 2);
        assert_eq!(b.recv_many(&mut buf, 2).await?, 1);
        let seqs: Vec<u64> = buf.into_iter().map(seq_of).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(seq_of(a.recv().await?.unwrap()), 99);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn a_later_request_never_takes_an_earlier_ones_descriptor() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let other = b.clone();
        let mut first = pin!(b.recv());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        // Asked later, on another handle, and awaited first: it gets the
        // second descriptor; the first is `first`'s, kept for it.
        let second = other.recv();
        a.send(pipe_with(0)).await?;
        a.send(pipe_with(1)).await?;
        assert_eq!(seq_of(second.await?.unwrap()), 1);
        assert_eq!(seq_of(within(20, first).await?.unwrap()), 0);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn ten_thousand_pipes_arrive_in_order() {
    const COUNT: u64 = 10_000;
    smol::block_on(within(120, async {
        let (a, b) = Passer::pair()?;
        let sending = async {
            let mut seq = 0;
            while seq < COUNT {
                // Alternate single sends with bursts that travel several
                // descriptors to a message.
                if (seq / 100) % 2 == 0 {
                    a.send(pipe_with(seq)).await?;
                    seq += 1;
                } else {
                    for _ in 0..100 {
                        a.push_send(pipe_with(seq))?;
                        seq += 1;
                    }
                    a.flush().await?;
                }
            }
            drop(a);
            Ok::<_, Error>(())
        };
        let receiving = async {
            let mut expected = 0;
            while let Some(fd) = b.recv().await? {
                assert_eq!(seq_of(fd), expected);
                expected += 1;
            }
            Ok::<_, Error>(expected)
        };
        let (sent, received) = smol::future::zip(sending, receiving).await;
        sent?;
        assert_eq!(received?, COUNT);
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn peer_drop_ends_recv_with_none() {
    smol::block_on(within(60, async {
        // Pending when the peer goes away.
        let (a, b) = Passer::pair()?;
        let waiting = smol::spawn(async move { b.recv().await });
        drop(a);
        assert!(waiting.await?.is_none());

        // What was sent before the drop still arrives first.
        let (a, b) = Passer::pair()?;
        a.push_send(pipe_with(7))?;
        a.flush().await?;
        drop(a);
        assert_eq!(seq_of(b.recv().await?.unwrap()), 7);
        assert!(b.recv().await?.is_none());
        assert!(b.recv().await?.is_none());
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn close_completes_pending_operations() {
    smol::block_on(within(60, async {
        let (a, b) = Passer::pair()?;
        let (waker, woken) = channel_waker();
        let mut cx = Context::from_waker(&waker);
        let mut pending = pin!(b.recv());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        b.clone().close();
        woken.recv().await.unwrap();
        assert!(matches!(
            pending.as_mut().poll(&mut cx),
            Poll::Ready(Err(Error::Closed))
        ));
        assert!(matches!(b.send(pipe_with(0)).await, Err(Error::Closed)));
        assert!(a.recv().await?.is_none());
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn stream_and_sink_roundtrip() {
    smol::block_on(within(60, async {
        let (mut a, b) = Passer::pair()?;
        let mut fds = futures_util::stream::iter((0..100).map(|seq| Ok(pipe_with(seq))));
        let sending = async move {
            a.send_all(&mut fds).await?;
            SinkExt::close(&mut a).await
        };
        let receiving = b.map(|fd| fd.map(seq_of)).collect::<Vec<_>>();
        let (sent, received) = smol::future::zip(sending, receiving).await;
        sent?;
        let received: Vec<u64> = received.into_iter().collect::<Result<_, _>>()?;
        assert_eq!(received, (0..100).collect::<Vec<_>>());
        Ok::<_, Error>(())
    }))
    .unwrap();
}

#[test]
fn sentinel_reservation_works_too() {
    smol::block_on(within(60, async {
        let config = Config::default()
            .with_reservation(Reservation::Sentinel)
            .with_max_fds_per_message(4);
        let (a, b) = Passer::pair_with_config(config)?;
        for seq in 0..50 {
            a.push_send(pipe_with(seq))?;
        }
        for seq in 0..50 {
            assert_eq!(seq_of(b.recv().await?.unwrap()), seq);
        }
        Ok::<_, Error>(())
    }))
    .unwrap();
}

/// Set for the child process of [`spawn_child_roundtrip`].
const CHILD_MARKER: &str = "FDPASS_SMOL_TEST_CHILD";

/// The child of [`spawn_child_roundtrip`]: echoes every descriptor back until
/// the parent closes. Does nothing in an ordinary test run.
#[test]
fn child_echo() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    smol::block_on(async {
        let parent = Passer::from_inherited().unwrap();
        while let Some(fd) = parent.recv().await.unwrap() {
            parent.send(fd).await.unwrap();
        }
    });
}

#[test]
fn spawn_child_roundtrip() {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_echo", "--exact", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (passer, child) = Passer::spawn_child(&mut command).unwrap();
    smol::block_on(within(60, async {
        for seq in 0..20 {
            passer.send(pipe_with(seq)).await?;
        }
        for seq in 0..20 {
            assert_eq!(seq_of(passer.recv().await?.unwrap()), seq);
        }
        Ok::<_, Error>(())
    }))
    .unwrap();
    drop(passer);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
