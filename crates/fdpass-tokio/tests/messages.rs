//! Messages over real sockets: payload bytes and descriptors together, in
//! one line with descriptor receives, cancel safe, as a stream and a sink,
//! and held back by the byte high-water mark.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use fdpass_tokio::{Config, Error, Message, Passer, PushError};
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

fn numbers(message: Message) -> (Vec<u8>, Vec<u64>) {
    let fds = message.fds.into_iter().map(number_of).collect();
    (message.payload, fds)
}

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("operation hung")
}

/// The messages each test sends: with and without payload, with none, one
/// or several descriptors, and an empty one.
fn assorted(base: u64) -> Vec<Message> {
    vec![
        Message::new(b"payload and one".to_vec(), vec![numbered(base)]),
        Message::from_payload(vec![7u8; 5000]),
        Message::from_fds(vec![numbered(base + 1), numbered(base + 2)]),
        Message::default(),
        Message::new(
            b"payload and three".to_vec(),
            (3..6).map(|i| numbered(base + i)).collect(),
        ),
    ]
}

fn assorted_numbers(base: u64) -> Vec<(Vec<u8>, Vec<u64>)> {
    vec![
        (b"payload and one".to_vec(), vec![base]),
        (vec![7u8; 5000], vec![]),
        (vec![], vec![base + 1, base + 2]),
        (vec![], vec![]),
        (
            b"payload and three".to_vec(),
            vec![base + 3, base + 4, base + 5],
        ),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn messages_with_and_without_payload_arrive_whole_both_ways() {
    let (left, right) = Passer::pair().unwrap();
    for (from, to, base) in [(&left, &right, 100), (&right, &left, 200)] {
        for message in assorted(base) {
            bounded(from.send_message(message)).await.unwrap();
        }
        for expected in assorted_numbers(base) {
            let got = bounded(to.recv_message())
                .await
                .unwrap()
                .expect("a message");
            assert_eq!(numbers(got), expected);
        }
    }
    // Each end read the other's hello: the defaults.
    for passer in [&left, &right] {
        let peer = passer.peer_limits().expect("the hello arrived");
        assert_eq!(
            (peer.max_fds_per_message, peer.max_payload_len),
            (128, 65536)
        );
    }
    drop(left);
    assert!(bounded(right.recv_message()).await.unwrap().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn descriptor_and_message_receives_are_served_in_the_order_called() {
    let (a, b) = Passer::pair().unwrap();
    // Made in this order, polled in the reverse order.
    let first = b.recv();
    let second = b.recv_message();
    let mut buf = Vec::new();
    let third = b.recv_many(&mut buf, 2);
    let fourth = b.recv_message();
    let fifth = b.recv();
    a.push_send(numbered(1)).unwrap();
    a.push_send_message(Message::new(b"two".to_vec(), vec![numbered(2)]))
        .unwrap();
    a.push_send_many([numbered(3), numbered(4)]).unwrap();
    // The fourth gets what the third left of a message of two.
    a.push_send_message(Message::from_fds(vec![numbered(5), numbered(6)]))
        .unwrap();
    a.push_send(numbered(7)).unwrap();
    bounded(a.flush()).await.unwrap();
    let (fifth, fourth, third, second, first) =
        bounded(async { tokio::join!(fifth, fourth, third, second, first) }).await;
    assert_eq!(number_of(first.unwrap().unwrap()), 1);
    assert_eq!(
        numbers(second.unwrap().unwrap()),
        (b"two".to_vec(), vec![2])
    );
    assert_eq!(third.unwrap(), 2);
    assert_eq!(numbers(fourth.unwrap().unwrap()), (vec![], vec![5, 6]));
    assert_eq!(number_of(fifth.unwrap().unwrap()), 7);
    let third: Vec<u64> = buf.into_iter().map(number_of).collect();
    assert_eq!(third, [3, 4]);
    assert_eq!(b.stats().held_descriptors, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_recv_message_asked_after_a_recv_gets_the_rest_of_the_message() {
    let (a, b) = Passer::pair().unwrap();
    let one = b.recv();
    let rest = b.recv_message();
    a.send_message(Message::from_fds((1..=3).map(numbered).collect()))
        .await
        .unwrap();
    let (rest, one) = bounded(async { tokio::join!(rest, one) }).await;
    assert_eq!(number_of(one.unwrap().unwrap()), 1);
    assert_eq!(numbers(rest.unwrap().unwrap()), (vec![], vec![2, 3]));
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_recv_message_whose_message_arrived_loses_nothing() {
    let (a, b) = Passer::pair().unwrap();
    let dropped = b.recv_message();
    let served = b.recv_message();
    a.send_message(Message::new(b"one".to_vec(), vec![numbered(1)]))
        .await
        .unwrap();
    a.send_message(Message::from_payload("two")).await.unwrap();
    // Serving the second reads both: the first message now waits in the
    // line for `dropped`.
    let two = bounded(served).await.unwrap().unwrap();
    assert_eq!(two.payload, b"two");
    assert_eq!(b.stats().held_descriptors, 1);
    drop(dropped);
    // The next request in line gets it, whole.
    let one = bounded(b.recv_message()).await.unwrap().unwrap();
    assert_eq!(numbers(one), (b"one".to_vec(), vec![1]));
    assert_eq!(b.stats().held_descriptors, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_recv_message_hands_a_descriptor_only_message_to_a_recv_behind_it() {
    let (a, b) = Passer::pair().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut dropped = pin!(b.recv_message());
        assert!(dropped.as_mut().poll(&mut cx).is_pending());
    }
    a.send_message(Message::from_fds(vec![numbered(1), numbered(2)]))
        .await
        .unwrap();
    assert_eq!(number_of(bounded(b.recv()).await.unwrap().unwrap()), 1);
    assert_eq!(number_of(bounded(b.recv()).await.unwrap().unwrap()), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_recv_that_meets_a_payload_is_refused_and_the_message_then_arrives_whole() {
    let (a, b) = Passer::pair().unwrap();
    a.send_message(Message::new(b"with bytes".to_vec(), vec![numbered(1)]))
        .await
        .unwrap();
    a.send(numbered(2)).await.unwrap();
    for _ in 0..2 {
        // Refused, taking nothing: the passer stays usable.
        let refused = bounded(b.recv()).await;
        assert!(
            matches!(
                refused,
                Err(Error::UnexpectedMessage {
                    payload_len: 10,
                    descriptors: 1
                })
            ),
            "{refused:?}"
        );
    }
    let mut buf = Vec::new();
    assert!(matches!(
        bounded(b.recv_many(&mut buf, 8)).await,
        Err(Error::UnexpectedMessage { .. })
    ));
    assert!(buf.is_empty());
    let message = bounded(b.recv_message()).await.unwrap().unwrap();
    assert_eq!(numbers(message), (b"with bytes".to_vec(), vec![1]));
    assert_eq!(number_of(bounded(b.recv()).await.unwrap().unwrap()), 2);
    assert_eq!(b.stats().failures, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn messages_round_trip_through_the_sink_and_the_stream() {
    let (a, b) = Passer::pair().unwrap();
    let mut sink = a.messages();
    let mut outgoing = futures_util::stream::iter((0..200u64).map(|seq| {
        Ok(Message::new(
            seq.to_le_bytes().to_vec(),
            vec![numbered(seq)],
        ))
    }));
    let sending = async {
        sink.send_all(&mut outgoing).await?;
        sink.close().await // flushes, then closes
    };
    let receiving = async {
        let mut stream = b.messages();
        let mut seq = 0u64;
        while let Some(message) = stream.next().await {
            let (payload, fds) = numbers(message?);
            assert_eq!((payload, fds), (seq.to_le_bytes().to_vec(), vec![seq]));
            seq += 1;
        }
        Ok::<_, Error>(seq)
    };
    let (sent, received) = bounded(async { tokio::join!(sending, receiving) }).await;
    sent.unwrap();
    assert_eq!(received.unwrap(), 200);
}

#[tokio::test(flavor = "current_thread")]
async fn send_message_waits_for_room_under_the_byte_high_water_mark() {
    const MARK: usize = 4096;
    const PAYLOAD: usize = 1000;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    // The smallest send buffer: the kernel soon stops taking messages.
    rustix::net::sockopt::set_socket_send_buffer_size(&ours, 1).unwrap();
    let config = Config::default().with_max_queued_bytes(Some(MARK));
    let a = Passer::from_std_with_config(ours, config).unwrap();
    let b = Passer::from_std(theirs).unwrap();
    let payload = |seq: u64| {
        let mut bytes = vec![seq as u8; PAYLOAD];
        bytes[..8].copy_from_slice(&seq.to_le_bytes());
        bytes
    };
    let mut pushed = 0u64;
    loop {
        match a.push_send_message(Message::from_payload(payload(pushed))) {
            Ok(()) => pushed += 1,
            Err(PushError::Full(_back)) => break,
            Err(e) => panic!("push failed: {e}"),
        }
        assert!(pushed < 10_000, "never full");
    }
    // Full in bytes: a send waits, holding its message.
    let mut cx = Context::from_waker(Waker::noop());
    let mut waiting = pin!(a.send_message(Message::from_payload(payload(pushed))));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    // The peer reads; the waiting send gets room and completes.
    let receiving = async {
        for seq in 0..=pushed {
            let message = b.recv_message().await?.expect("a message");
            assert_eq!(message.payload, payload(seq), "message {seq}");
        }
        Ok::<_, Error>(())
    };
    let (sent, received) = bounded(async { tokio::join!(waiting, receiving) }).await;
    sent.unwrap();
    received.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_the_peer_can_never_take_is_refused_and_handed_back() {
    let (a, b) = Passer::pair_with_config(Config::default().with_max_payload_len(4096)).unwrap();
    // Learn b's limits first.
    a.send_message(Message::from_payload("hi")).await.unwrap();
    bounded(b.recv_message()).await.unwrap();
    bounded(b.send_message(Message::from_payload("hi")))
        .await
        .unwrap();
    bounded(a.recv_message()).await.unwrap();
    assert_eq!(a.peer_limits().unwrap().max_payload_len, 4096);
    let too_large = Message::new(vec![0; 4097], vec![numbered(1)]);
    match a.push_send_message(too_large) {
        Err(PushError::Refused(Error::MessageTooLarge { .. }, back)) => {
            assert_eq!(numbers(back), (vec![0; 4097], vec![1]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bounded(a.send_message(Message::from_payload(vec![0; 4097]))).await,
        Err(Error::MessageTooLarge { .. })
    ));
    // Still usable.
    bounded(a.send_message(Message::from_payload(vec![1; 4096])))
        .await
        .unwrap();
    assert_eq!(
        bounded(b.recv_message()).await.unwrap().unwrap().payload,
        vec![1; 4096]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn unsent_messages_come_back_whole_after_the_peer_is_gone() {
    let (a, b) = Passer::pair().unwrap();
    drop(b);
    let sent = bounded(a.send_message(Message::new(b"client 1".to_vec(), vec![numbered(1)]))).await;
    assert!(sent.is_err(), "{sent:?}");
    let unsent = a.take_unsent_messages();
    assert_eq!(unsent.len(), 1);
    let (payload, fds) = numbers(unsent.into_iter().next().unwrap());
    assert_eq!((payload, fds), (b"client 1".to_vec(), vec![1]));
}
