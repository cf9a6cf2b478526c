//! Messages (payload bytes with descriptors) between mio passers over real
//! sockets, driven by a real mio `Poll`: whole, in order, both ways, served
//! in the order requests were made, and the native handshake done by the
//! event loop alone.

mod common;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{numbered_pipe, read_number, Loop};
use fdpass_mio::{Config, Error, Event, Message, Passer, PeerLimits, PushError, RecvToken};

/// The `index`-th message of a stream: payloads of several sizes (none, a
/// few bytes, more than one read of the peer's minimum, close to the
/// default limit) and 0 to 3 numbered descriptors, in every combination.
fn nth_message(index: u64) -> Message {
    let payload_len = match index % 5 {
        0 => 0,
        1 => 1,
        2 => 100,
        3 => 5000, // beyond what may go before the hello
        _ => 60_000,
    };
    let payload: Vec<u8> = (0..payload_len).map(|i| (i as u64 ^ index) as u8).collect();
    let fds = (0..index % 4)
        .map(|k| numbered_pipe(index * 10 + k))
        .collect();
    Message::new(payload, fds)
}

/// Checks that `message` is exactly [`nth_message`]`(index)`, reading each
/// descriptor back.
fn assert_is_nth(message: Message, index: u64) {
    let expected = nth_message(index);
    assert_eq!(
        message.payload, expected.payload,
        "payload of message {index}"
    );
    let numbers: Vec<u64> = message.fds.into_iter().map(read_number).collect();
    let expected_numbers: Vec<u64> = (0..index % 4).map(|k| index * 10 + k).collect();
    assert_eq!(numbers, expected_numbers, "descriptors of message {index}");
}

#[test]
fn messages_with_and_without_payload_arrive_whole_and_in_order_both_ways() {
    const TOTAL: u64 = 200;
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut lp = Loop::new(&mut [&mut a, &mut b]);
    // Everything pushed and asked for at once: the queues hold it, the loop
    // moves it as the sockets take it.
    for passer in [&mut a, &mut b] {
        for i in 0..TOTAL {
            passer.push_send_message(nth_message(i)).expect("push");
            passer.push_recv_message().expect("ask");
        }
    }
    let mut received = [0u64; 2];
    let mut acked = [None::<u64>; 2];
    lp.drive(&mut [&mut a, &mut b], |_, events| {
        for (index, event) in events {
            match event {
                Event::ReceivedMessage(token, message) => {
                    assert_eq!(token, RecvToken(received[index]), "served out of order");
                    assert_is_nth(message, received[index]);
                    received[index] += 1;
                }
                Event::Sent(token) => acked[index] = Some(token.0),
                other => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        received == [TOTAL; 2] && acked == [Some(TOTAL - 1); 2]
    });
    for passer in [&a, &b] {
        let stats = passer.stats();
        assert_eq!((stats.queued_sends, stats.outstanding_recvs), (0, 0));
        assert_eq!(stats.held_descriptors, 0, "nothing left behind: {stats:?}");
    }
}

#[test]
fn descriptor_and_message_requests_are_served_in_the_order_they_were_made() {
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut lp = Loop::new(&mut [&mut a, &mut b]);
    // Asked for before anything is sent, in this order.
    let asked = [
        b.push_recv().unwrap(),
        b.push_recv_message().unwrap(),
        b.push_recv().unwrap(),
        b.push_recv().unwrap(),
        b.push_recv_message().unwrap(),
        b.push_recv_message().unwrap(),
    ];
    a.push_send(numbered_pipe(0)).unwrap();
    a.push_send_message(Message::new(b"one".to_vec(), vec![numbered_pipe(1)]))
        .unwrap();
    // Two descriptors in one message: one descriptor request each.
    a.push_send_message(Message::from_fds(vec![numbered_pipe(2), numbered_pipe(3)]))
        .unwrap();
    a.push_send_message(Message::from_payload(b"four".to_vec()))
        .unwrap();
    // A message request takes a descriptor pushed alone as a message of one.
    a.push_send(numbered_pipe(5)).unwrap();

    let mut seen = Vec::new();
    lp.drive(&mut [&mut a, &mut b], |_, events| {
        for (index, event) in events {
            match (index, event) {
                (0, Event::Sent(_)) => {}
                (1, Event::Received(token, fd)) => {
                    seen.push((token, Vec::new(), vec![read_number(fd)]))
                }
                (1, Event::ReceivedMessage(token, message)) => seen.push((
                    token,
                    message.payload,
                    message.fds.into_iter().map(read_number).collect(),
                )),
                (index, other) => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        seen.len() == asked.len()
    });
    let expected: Vec<(RecvToken, Vec<u8>, Vec<u64>)> = vec![
        (asked[0], vec![], vec![0]),
        (asked[1], b"one".to_vec(), vec![1]),
        (asked[2], vec![], vec![2]),
        (asked[3], vec![], vec![3]),
        (asked[4], b"four".to_vec(), vec![]),
        (asked[5], vec![], vec![5]),
    ];
    assert_eq!(seen, expected);
}

#[test]
fn a_descriptor_request_meeting_a_payload_message_is_refused_and_the_message_then_arrives_whole() {
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut lp = Loop::new(&mut [&mut a, &mut b]);
    a.push_send_message(Message::new(
        b"with bytes".to_vec(),
        vec![numbered_pipe(7), numbered_pipe(8)],
    ))
    .unwrap();
    a.push_send(numbered_pipe(9)).unwrap();
    let refused = b.push_recv().unwrap();

    let mut refusal = None;
    lp.drive(&mut [&mut a, &mut b], |_, events| {
        for (index, event) in events {
            match (index, event) {
                (0, Event::Sent(_)) => {}
                (1, Event::RecvRefused(token, error)) => refusal = Some((token, error)),
                (index, other) => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        refusal.is_some()
    });
    let (token, error) = refusal.unwrap();
    assert_eq!(token, refused);
    assert!(
        matches!(
            error,
            Error::UnexpectedMessage {
                payload_len: 10,
                descriptors: 2
            }
        ),
        "{error:?}"
    );
    assert!(b.core().usable().is_ok(), "a refusal is not a failure");

    // The message waited, whole, for a message request; the descriptor
    // behind it goes to the descriptor request after it.
    let for_message = b.push_recv_message().unwrap();
    let for_descriptor = b.push_recv().unwrap();
    let mut message = None;
    let mut descriptor = None;
    lp.drive(&mut [&mut a, &mut b], |_, events| {
        for (index, event) in events {
            match (index, event) {
                (1, Event::ReceivedMessage(token, m)) => {
                    assert_eq!(token, for_message);
                    assert!(descriptor.is_none(), "the descriptor overtook the message");
                    message = Some(m);
                }
                (1, Event::Received(token, fd)) => {
                    assert_eq!(token, for_descriptor);
                    descriptor = Some(read_number(fd));
                }
                (index, other) => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        descriptor.is_some()
    });
    let message = message.expect("the message came first");
    assert_eq!(message.payload, b"with bytes");
    let numbers: Vec<u64> = message.fds.into_iter().map(read_number).collect();
    assert_eq!(numbers, [7, 8]);
    assert_eq!(descriptor, Some(9));
    assert_eq!(b.core().held_descriptors(), 0);
}

/// A sender that never asks to receive and a receiver that never sends,
/// each on its own `Poll`: the sender's message is larger than what may go
/// before the peer's hello, so it waits for the receiver's hello, which the
/// sender must read by itself; the receiver's hello must go out by itself.
/// `sender_first` says which end is created (and registered) first: the
/// other end's hello then arrives after, and only an edge tells of it.
fn only_sending_and_only_receiving_passers_complete_the_handshake(sender_first: bool) {
    let sender_config = Config::default().with_max_fds_per_message(32);
    let receiver_config = Config::default()
        .with_max_fds_per_message(8)
        .with_max_payload_len(16 * 1024);
    let (sender_socket, receiver_socket) = UnixStream::pair().unwrap();
    let make_sender = || Passer::from_std_with_config(sender_socket, sender_config).unwrap();
    let make_receiver = || Passer::from_std_with_config(receiver_socket, receiver_config).unwrap();
    // Each end on its own poll, as two processes would be. The first end is
    // registered and has polled before the second exists, so the second's
    // hello arrives later, told of by an edge only.
    let (mut sender, mut sender_loop, mut receiver, mut receiver_loop);
    if sender_first {
        sender = make_sender();
        sender_loop = Loop::new(&mut [&mut sender]);
        sender_loop.poll_once(&mut [&mut sender], Some(Duration::ZERO));
        assert_eq!(sender.peer_limits(), None);
        receiver = make_receiver();
        receiver_loop = Loop::new(&mut [&mut receiver]);
    } else {
        receiver = make_receiver();
        receiver_loop = Loop::new(&mut [&mut receiver]);
        receiver_loop.poll_once(&mut [&mut receiver], Some(Duration::ZERO));
        assert_eq!(receiver.peer_limits(), None);
        sender = make_sender();
        sender_loop = Loop::new(&mut [&mut sender]);
    }

    let fds: Vec<_> = (0..3).map(numbered_pipe).collect();
    let payload = vec![0x5a; 10_000];
    let pushed = sender
        .push_send_message(Message::new(payload.clone(), fds))
        .unwrap();
    if sender_first {
        // The receiver's hello is in the socket, but only the next edge
        // tells the sender: until then the message must wait.
        assert_eq!(sender.core().queued_sends(), 3, "sent before the hello");
    }
    let asked = receiver.push_recv_message().unwrap();
    let mut sent = false;
    let mut message = None;
    let deadline = std::time::Instant::now() + common::OVERALL;
    while !(sent && message.is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "not done: {sender:#?} {receiver:#?}"
        );
        while let Some(event) = sender.poll_event() {
            match event {
                Event::Sent(token) => {
                    assert_eq!(token, pushed);
                    sent = true;
                }
                other => panic!("sender: unexpected {other:?}"),
            }
        }
        while let Some(event) = receiver.poll_event() {
            match event {
                Event::ReceivedMessage(token, m) => {
                    assert_eq!(token, asked);
                    message = Some(m);
                }
                other => panic!("receiver: unexpected {other:?}"),
            }
        }
        let tick = Some(Duration::from_millis(100));
        sender_loop.poll_once(&mut [&mut sender], tick);
        receiver_loop.poll_once(&mut [&mut receiver], tick);
    }
    let message = message.unwrap();
    assert_eq!(message.payload, payload);
    let numbers: Vec<u64> = message.fds.into_iter().map(read_number).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(
        sender.peer_limits(),
        Some(PeerLimits {
            version: 1,
            max_fds_per_message: 8,
            max_payload_len: 16 * 1024
        })
    );
    assert_eq!(
        receiver.peer_limits(),
        Some(PeerLimits {
            version: 1,
            max_fds_per_message: 32,
            max_payload_len: Config::default().max_payload_len
        })
    );
}

#[test]
fn a_send_only_passer_created_first_reads_the_late_peers_hello_by_itself() {
    only_sending_and_only_receiving_passers_complete_the_handshake(true);
}

#[test]
fn a_receive_only_passer_created_first_gets_the_late_senders_large_message() {
    only_sending_and_only_receiving_passers_complete_the_handshake(false);
}

#[test]
fn a_message_beyond_the_peers_announced_limits_is_refused_and_handed_back() {
    let config = Config::default()
        .with_max_fds_per_message(2)
        .with_max_payload_len(4096);
    let (mut a, _b) = Passer::pair_with_config(config).unwrap();
    assert!(a.peer_limits().is_some(), "a pair reads both hellos");
    let too_long = Message::from_payload(vec![1; 4097]);
    match a.push_send_message(too_long) {
        Err(PushError::Refused(Error::MessageTooLarge { max_payload, .. }, message)) => {
            assert_eq!(max_payload, 4096);
            assert_eq!(message.payload.len(), 4097, "handed back whole");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let too_many = Message::from_fds((0..3).map(numbered_pipe).collect());
    match a.push_send_message(too_many) {
        Err(PushError::Refused(Error::MessageTooLarge { max_fds, .. }, message)) => {
            assert_eq!(max_fds, 2);
            let numbers: Vec<u64> = message.fds.into_iter().map(read_number).collect();
            assert_eq!(numbers, [0, 1, 2], "handed back open, in order");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(a.core().send_usable().is_ok(), "a refusal ends nothing");
    assert_eq!(a.core().queued_sends(), 0);
}

#[test]
fn messages_larger_than_the_pre_hello_limit_cross_a_listener_connection_both_ways() {
    let dir = std::env::temp_dir().join(format!("fdpass-mio-messages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let listener = fdpass_mio::Listener::bind(dir.join("sock")).unwrap();
    // The client pushes before the server even accepted: its message (too
    // large to go before the server's hello) waits for a hello not yet
    // written.
    let mut client = Passer::connect(listener.path()).unwrap();
    let big = || Message::new(vec![7; 20_000], (0..5).map(numbered_pipe).collect());
    client.push_send_message(big()).unwrap();
    assert_eq!(client.core().queued_sends(), 5);
    let mut server = listener.accept().unwrap().expect("the client waits");
    std::fs::remove_dir_all(&dir).unwrap();
    // The server read the client's hello when it was created: it sends at once.
    server.push_send_message(big()).unwrap();
    assert_eq!(server.core().queued_sends(), 0);
    client.push_recv_message().unwrap();
    server.push_recv_message().unwrap();

    let mut lp = Loop::new(&mut [&mut client, &mut server]);
    let mut received = [false; 2];
    lp.drive(&mut [&mut client, &mut server], |_, events| {
        for (index, event) in events {
            match event {
                Event::Sent(_) => {}
                Event::ReceivedMessage(_, message) => {
                    assert_eq!(message.payload, vec![7; 20_000]);
                    let numbers: Vec<u64> = message.fds.into_iter().map(read_number).collect();
                    assert_eq!(numbers, [0, 1, 2, 3, 4]);
                    received[index] = true;
                }
                other => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        received == [true; 2]
    });
}

#[test]
fn a_message_waiting_for_a_hello_that_never_comes_is_handed_back_when_the_peer_closes() {
    // A peer that reads our hello and exits without sending its own.
    let (socket, peer) = UnixStream::pair().unwrap();
    let mut a = Passer::from_std(socket).unwrap();
    let mut lp = Loop::new(&mut [&mut a]);
    // Too large for the limits every receiver takes: waits for the hello.
    let fds = (0..3).map(numbered_pipe).collect();
    a.push_send_message(Message::new(b"client 1".to_vec(), fds))
        .unwrap();
    let mut hello = [0u8; fdpass_core::frame::HELLO_LEN];
    std::io::Read::read_exact(&mut &peer, &mut hello).unwrap();
    drop(peer);

    let (mut closed, mut send_failed) = (false, None);
    lp.drive(&mut [&mut a], |_, events| {
        for (_, event) in events {
            match event {
                Event::Closed => closed = true,
                Event::SendFailed(error) => send_failed = Some(error),
                other => panic!("unexpected {other:?}"),
            }
        }
        closed && send_failed.is_some()
    });
    assert!(
        matches!(
            send_failed,
            Some(Error::MessageTooLarge { descriptors: 3, .. })
        ),
        "{send_failed:?}"
    );
    let unsent = a.take_unsent_messages();
    assert_eq!(unsent.len(), 1);
    let message = unsent.into_iter().next().unwrap();
    assert_eq!(message.payload, b"client 1");
    let numbers: Vec<u64> = message.fds.into_iter().map(read_number).collect();
    assert_eq!(numbers, [0, 1, 2], "handed back open, in order");
}
