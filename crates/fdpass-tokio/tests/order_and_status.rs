//! Receive requests are served in the order they were made, and the stream
//! reports an error once.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use fdpass_tokio::{Config, Error, Passer, ProtocolError, Wire};
use futures_util::StreamExt;

const BOUND: Duration = Duration::from_secs(60);

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

#[tokio::test(flavor = "current_thread")]
async fn joined_receives_get_descriptors_in_call_order() {
    let (a, b) = Passer::pair().unwrap();
    // Both wait before anything is sent; tokio's `join!` then polls them in
    // turn from a different one each time.
    let sender = async {
        a.send(numbered(1)).await.unwrap();
        a.send(numbered(2)).await.unwrap();
    };
    let (first, second, ()) = bounded(async { tokio::join!(b.recv(), b.recv(), sender) }).await;
    assert_eq!(number_of(first.unwrap().unwrap()), 1);
    assert_eq!(number_of(second.unwrap().unwrap()), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn receives_polled_in_reverse_order_are_served_in_call_order() {
    let (a, b) = Passer::pair().unwrap();
    let first = b.recv();
    let second = b.recv();
    let third = b.recv();
    // Nothing sent yet: the later ones poll first and wait.
    let sender = async {
        for seq in 1..=3 {
            a.send(numbered(seq)).await.unwrap();
        }
    };
    let (_, third, second, first) =
        bounded(async { tokio::join!(sender, third, second, first) }).await;
    assert_eq!(number_of(first.unwrap().unwrap()), 1);
    assert_eq!(number_of(second.unwrap().unwrap()), 2);
    assert_eq!(number_of(third.unwrap().unwrap()), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_recv_many_asked_first_gets_the_first_descriptors() {
    let (a, b) = Passer::pair().unwrap();
    a.push_send_many((1..=4).map(numbered)).unwrap();
    a.flush().await.unwrap();
    let mut buf = Vec::new();
    let many = b.recv_many(&mut buf, 3);
    let one = b.recv();
    let (one, many) = bounded(async { tokio::join!(one, many) }).await;
    assert_eq!(many.unwrap(), 3);
    assert_eq!(number_of(one.unwrap().unwrap()), 4);
    let numbers: Vec<u64> = buf.into_iter().map(number_of).collect();
    assert_eq!(numbers, [1, 2, 3]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_receive_in_line_hands_its_descriptor_on() {
    let (a, b) = Passer::pair().unwrap();
    let dropped = b.recv();
    let kept = b.recv();
    a.send(numbered(1)).await.unwrap();
    a.send(numbered(2)).await.unwrap();
    drop(dropped);
    assert_eq!(number_of(bounded(kept).await.unwrap().unwrap()), 1);
    assert_eq!(number_of(bounded(b.recv()).await.unwrap().unwrap()), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn the_stream_yields_a_protocol_error_once_then_ends() {
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    // The stray byte is classic-wire input (bytes beyond descriptors).
    let config = Config::default().with_wire(Wire::Classic { batch: 128 });
    let mut b = Passer::from_std_with_config(ours, config).unwrap();
    theirs.write_all(b"x").unwrap(); // one stray byte, no descriptor
    let mut errors = 0;
    let mut polls = 0;
    while let Some(item) = bounded(b.next()).await {
        polls += 1;
        assert!(
            matches!(
                item,
                Err(Error::Protocol(
                    ProtocolError::BytesWithoutDescriptors { .. }
                ))
            ),
            "{item:?}"
        );
        errors += 1;
        if polls == 1_000 {
            break;
        }
    }
    assert_eq!(errors, 1, "the error was yielded {errors} times");
    // Still fused afterwards; the passer itself keeps reporting the failure.
    assert!(bounded(b.next()).await.is_none());
    assert!(b.recv().await.is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn the_stream_ends_once_at_the_peers_close() {
    let (a, mut b) = Passer::pair().unwrap();
    a.send(numbered(5)).await.unwrap();
    drop(a);
    assert_eq!(number_of(bounded(b.next()).await.unwrap().unwrap()), 5);
    assert!(bounded(b.next()).await.is_none());
    assert!(bounded(b.next()).await.is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn futures_polled_again_after_completing_answer_without_a_panic() {
    let (a, b) = Passer::pair().unwrap();
    let mut sending = Box::pin(a.send(numbered(1)));
    assert!(matches!(
        futures_util::poll!(&mut sending),
        std::task::Poll::Ready(Ok(()))
    ));
    assert!(matches!(
        futures_util::poll!(&mut sending),
        std::task::Poll::Ready(Ok(()))
    ));
    a.close();
    let mut refused = Box::pin(a.send(numbered(2)));
    for _ in 0..2 {
        assert!(matches!(
            futures_util::poll!(&mut refused),
            std::task::Poll::Ready(Err(Error::Closed))
        ));
    }
    let mut receiving = Box::pin(b.recv());
    let std::task::Poll::Ready(Ok(Some(fd))) = futures_util::poll!(&mut receiving) else {
        panic!("the descriptor was sent");
    };
    assert_eq!(number_of(fd), 1);
    // Polled again, it is a new request: the peer closed, so the end.
    assert!(matches!(
        futures_util::poll!(&mut receiving),
        std::task::Poll::Ready(Ok(None))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn a_receive_after_our_own_close_says_closed_not_end_of_stream() {
    let (a, _b) = Passer::pair().unwrap();
    let waiting = a.recv();
    a.close();
    assert!(matches!(bounded(waiting).await, Err(Error::Closed)));
    assert!(matches!(bounded(a.recv()).await, Err(Error::Closed)));
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_that_only_shuts_down_its_writing_half_still_receives() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Passer::from_std(ours).unwrap();
    let b = fdpass_core::Passer::new(theirs.into(), fdpass_core::Config::default()).unwrap();
    {
        use std::os::fd::AsFd;
        rustix::net::shutdown(b.as_fd(), rustix::net::Shutdown::Write).unwrap();
    }
    // It will send nothing more: that is what `closed()` reports...
    bounded(a.closed()).await.unwrap();
    assert!(bounded(a.recv()).await.unwrap().is_none());
    // ...and sending to it still works.
    bounded(a.send(numbered(1))).await.unwrap();
    let mut b = b;
    b.push_recv().unwrap();
    b.handle_readable(std::time::Instant::now());
    assert!(matches!(
        b.poll_event(),
        Some(fdpass_core::Event::Received(..))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn what_the_peer_sent_before_its_orderly_close_is_received_even_after_our_send_fails() {
    let (peer, ours) = Passer::pair().unwrap();
    // The peer sends 1, 2 and 3, each in its own message, and closes.
    for seq in 1..=3 {
        bounded(peer.send(numbered(seq))).await.unwrap();
    }
    drop(peer);
    let first = bounded(ours.recv()).await.unwrap().expect("1 arrives");
    assert_eq!(number_of(first), 1);
    // We answer; the peer is gone, so this send fails. That says nothing
    // about what the peer sent before its orderly close.
    assert!(bounded(ours.send(numbered(9))).await.is_err());
    let mut rest = Vec::new();
    let end = loop {
        match bounded(ours.recv()).await {
            Ok(Some(fd)) => rest.push(number_of(fd)),
            other => break other.map(drop),
        }
    };
    assert_eq!(
        rest,
        [2, 3],
        "every descriptor sent before the close arrives"
    );
    assert!(
        end.is_ok(),
        "the end reads as the peer's orderly close, got {end:?}"
    );
}
