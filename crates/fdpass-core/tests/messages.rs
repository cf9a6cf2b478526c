//! Messages on real sockets, through the core state machine: payload and
//! descriptors together, the hello's limits, and what each end does when a
//! message does not fit or is not what a receive asked for.

mod common;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::{drive, numbered_pipe, read_number};
use fdpass_core::{
    Config, Error, Event, Message, Passer, ProtocolError, PushError, Reservation, Wire,
};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::empty(),
        None,
    )
    .unwrap()
}

/// Each end writes its hello and reads the other's.
fn exchange_hellos(a: &mut Passer, b: &mut Passer) {
    let now = Instant::now();
    a.handle_writable(now);
    b.handle_writable(now);
    a.handle_readable(now);
    b.handle_readable(now);
    assert!(a.peer_limits().is_some() && b.peer_limits().is_some());
}

/// Drives `b` until it has received `n` messages for message requests.
fn receive_messages(a: &mut Passer, b: &mut Passer, n: usize) -> Vec<Message> {
    let mut got = Vec::new();
    for _ in 0..n {
        b.push_recv_message().unwrap();
    }
    drive(&mut [a, b], |_, events| {
        for (i, event) in events {
            match (i, event) {
                (1, Event::ReceivedMessage(_, message)) => got.push(message),
                (0, Event::Sent(_)) => {}
                (_, other) => panic!("unexpected: {other:?}"),
            }
        }
        got.len() == n
    });
    got
}

fn numbers(fds: Vec<OwnedFd>) -> Vec<u64> {
    fds.into_iter().map(read_number).collect()
}

#[test]
fn messages_arrive_whole_and_in_order_on_stream_and_seqpacket_with_both_reservations() {
    for reservation in BOTH {
        for seqpacket in [false, true] {
            let (x, y) = if seqpacket {
                seqpacket_pair()
            } else {
                fdpass_core::socket::pair().unwrap()
            };
            let config = Config::default().with_reservation(reservation);
            let (mut a, mut b) = (
                Passer::new(x, config).unwrap(),
                Passer::new(y, config).unwrap(),
            );
            let mut sent = Vec::new();
            for i in 0..40u64 {
                let payload = vec![i as u8; (i as usize * 37) % 5000];
                let fds: Vec<OwnedFd> = (0..i % 4).map(|k| numbered_pipe(i * 10 + k)).collect();
                sent.push((
                    payload.clone(),
                    (0..i % 4).map(|k| i * 10 + k).collect::<Vec<_>>(),
                ));
                a.push_send_message(Message::new(payload, fds)).unwrap();
            }
            let got = receive_messages(&mut a, &mut b, sent.len());
            let got: Vec<(Vec<u8>, Vec<u64>)> = got
                .into_iter()
                .map(|m| (m.payload, numbers(m.fds)))
                .collect();
            assert_eq!(got, sent, "{reservation:?}, seqpacket {seqpacket}");
        }
    }
}

#[test]
fn before_the_peer_hello_only_what_every_receiver_takes_is_sent() {
    let (mut a, mut b) = Passer::pair(Config::default()).unwrap();
    let now = Instant::now();
    let two = Message::from_fds(vec![numbered_pipe(1), numbered_pipe(2)]);
    a.push_send_message(Message::from_fds(vec![numbered_pipe(0)]))
        .unwrap();
    a.push_send_message(two).unwrap();
    a.handle_writable(now); // hello, then the one-descriptor message
    assert_eq!(
        a.queued_sends(),
        2,
        "two descriptors in one message wait for the hello"
    );
    assert_eq!(a.interest().write, fdpass_core::Want::Idle);
    // The peer's hello (sent at its creation) arrives; no request needed.
    b.handle_writable(now);
    a.handle_readable(now);
    assert!(a.peer_limits().is_some());
    assert_eq!(a.interest().write, fdpass_core::Want::Now);
    let got = receive_messages(&mut a, &mut b, 2);
    let got: Vec<Vec<u64>> = got.into_iter().map(|m| numbers(m.fds)).collect();
    assert_eq!(got, [vec![0], vec![1, 2]]);
}

#[test]
fn a_message_beyond_the_peer_announced_limits_is_refused_when_pushed() {
    let small = Config::default()
        .with_max_fds_per_message(2)
        .with_max_payload_len(4096);
    let (mut a, _) = Passer::pair(Config::default()).unwrap();
    drop(a);
    let (x, y) = fdpass_core::socket::pair().unwrap();
    a = Passer::new(x, Config::default()).unwrap();
    let mut b = Passer::new(y, small).unwrap();
    exchange_hellos(&mut a, &mut b);
    let three = Message::from_fds((0..3).map(numbered_pipe).collect());
    match a.push_send_message(three) {
        Err(PushError::Refused(
            Error::MessageTooLarge {
                descriptors: 3,
                max_fds: 2,
                ..
            },
            back,
        )) => {
            assert_eq!(numbers(back.fds), [0, 1, 2], "handed back, open, in order")
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let long = Message::from_payload(vec![0; 4097]);
    assert!(matches!(
        a.push_send_message(long),
        Err(PushError::Refused(
            Error::MessageTooLarge {
                max_payload: 4096,
                ..
            },
            _
        ))
    ));
    assert!(
        a.usable().is_ok() && a.send_usable().is_ok(),
        "nothing failed"
    );
}

#[test]
fn a_message_queued_before_the_hello_that_exceeds_it_ends_sending_and_comes_back_whole() {
    let (x, y) = fdpass_core::socket::pair().unwrap();
    let mut a = Passer::new(x, Config::default()).unwrap();
    let mut b = Passer::new(y, Config::default().with_max_fds_per_message(2)).unwrap();
    let now = Instant::now();
    a.push_send_message(Message::new(
        b"three".to_vec(),
        (0..3).map(numbered_pipe).collect(),
    ))
    .unwrap();
    a.handle_writable(now);
    b.handle_writable(now);
    a.handle_readable(now); // the hello: at most 2 per message
    a.handle_writable(now);
    let events: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(
        matches!(
            events[..],
            [Event::SendFailed(Error::MessageTooLarge {
                descriptors: 3,
                max_fds: 2,
                ..
            })]
        ),
        "{events:?}"
    );
    let unsent = a.take_unsent_messages();
    assert_eq!(unsent.len(), 1);
    assert_eq!(unsent[0].payload, b"three");
    assert_eq!(numbers(unsent.into_iter().next().unwrap().fds), [0, 1, 2]);
}

#[test]
fn a_peer_gone_before_its_hello_settles_the_limits_to_the_least_instead_of_a_silent_wait() {
    let (x, y) = fdpass_core::socket::pair().unwrap();
    let mut a = Passer::new(x, Config::default()).unwrap();
    a.watch_hangup(true);
    // It will never send a hello: it shut down its sending half (and still
    // reads, so nothing but the limits stands in the way).
    rustix::net::shutdown(&y, rustix::net::Shutdown::Write).unwrap();
    a.push_send_message(Message::from_fds((0..2).map(numbered_pipe).collect()))
        .unwrap();
    let mut seen = Vec::new();
    drive(&mut [&mut a], |_, events| {
        seen.extend(events.into_iter().map(|(_, e)| e));
        seen.iter().any(|e| matches!(e, Event::SendFailed(_)))
    });
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::SendFailed(Error::MessageTooLarge { .. }))),
        "{seen:?}"
    );
    drop(y);
}

#[test]
fn a_descriptor_receive_meeting_a_payload_is_refused_and_the_message_waits_whole() {
    let (mut a, mut b) = Passer::pair(Config::default()).unwrap();
    exchange_hellos(&mut a, &mut b);
    a.push_send_message(Message::new(b"addr".to_vec(), vec![numbered_pipe(7)]))
        .unwrap();
    a.push_send(numbered_pipe(8)).unwrap();
    let now = Instant::now();
    a.handle_writable(now);
    let refused = b.push_recv().unwrap();
    b.handle_readable(now);
    match b.poll_event() {
        Some(Event::RecvRefused(
            token,
            Error::UnexpectedMessage {
                payload_len: 4,
                descriptors: 1,
            },
        )) => {
            assert_eq!(token, refused)
        }
        other => panic!("expected RecvRefused, got {other:?}"),
    }
    assert!(b.usable().is_ok());
    let (_, message) = b.try_recv_message().expect("still there, whole");
    assert_eq!(
        (message.payload.as_slice(), numbers(message.fds)),
        (&b"addr"[..], vec![7])
    );
    // The descriptor pushed alone is descriptors only: a descriptor receive takes it.
    let (_, fd) = b.try_recv().expect("read with the message");
    assert_eq!(read_number(fd), 8);
}

#[test]
fn requests_of_both_kinds_are_served_in_the_order_they_were_made() {
    let (mut a, mut b) = Passer::pair(Config::default()).unwrap();
    exchange_hellos(&mut a, &mut b);
    let first = b.push_recv().unwrap();
    let second = b.push_recv_message().unwrap();
    let third = b.push_recv().unwrap();
    a.push_send_message(Message::from_fds((0..3).map(numbered_pipe).collect()))
        .unwrap();
    a.push_send(numbered_pipe(3)).unwrap();
    let now = Instant::now();
    a.handle_writable(now);
    b.handle_readable(now);
    let events: Vec<Event> = std::iter::from_fn(|| b.poll_event()).collect();
    match &events[..] {
        [Event::Received(t1, _), Event::ReceivedMessage(t2, rest), Event::Received(t3, _)] => {
            assert_eq!((*t1, *t2, *t3), (first, second, third));
            assert_eq!(
                rest.fds.len(),
                2,
                "the message request gets what was left of it"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn queued_payload_bytes_have_a_high_water_mark() {
    let config = Config::default().with_max_queued_bytes(Some(100));
    let (mut a, _b) = Passer::pair(config).unwrap();
    a.push_send_message(Message::from_payload(vec![1; 60]))
        .unwrap();
    assert!(matches!(
        a.push_send_message(Message::from_payload(vec![2; 41])),
        Err(PushError::Full(back)) if back.payload.len() == 41
    ));
    a.push_send_message(Message::from_payload(vec![3; 40]))
        .unwrap();
}

#[test]
fn the_classic_wire_carries_no_payload_and_splits_messages_into_descriptors() {
    let classic = Config::default().with_wire(Wire::CLASSIC);
    let (mut a, mut b) = Passer::pair(classic).unwrap();
    assert!(matches!(
        a.push_send_message(Message::new(b"x".to_vec(), vec![numbered_pipe(0)])),
        Err(PushError::Refused(
            Error::MessageTooLarge { max_payload: 0, .. },
            _
        ))
    ));
    assert!(matches!(
        a.push_send_message(Message::default()),
        Err(PushError::Refused(..))
    ));
    a.push_send_message(Message::from_fds((0..3).map(numbered_pipe).collect()))
        .unwrap();
    let got = receive_messages(&mut a, &mut b, 3);
    let got: Vec<Vec<u64>> = got.into_iter().map(|m| numbers(m.fds)).collect();
    assert_eq!(got, [vec![0], vec![1], vec![2]]);
}

#[test]
fn a_graceful_shutdown_still_reads_the_hello_its_queue_waits_for() {
    let (mut a, mut b) = Passer::pair(Config::default()).unwrap();
    a.push_send_message(Message::from_fds((0..2).map(numbered_pipe).collect()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    a.shutdown(deadline);
    drive(&mut [&mut a, &mut b], |passers, _| {
        passers[0].shutdown_outcome().is_some()
    });
    assert!(matches!(a.shutdown_outcome(), Some(Ok(()))));
    b.push_recv_message().unwrap();
    let mut got = None;
    drive(&mut [&mut b], |_, events| {
        for (_, event) in events {
            if let Event::ReceivedMessage(_, m) = event {
                got = Some(m);
            }
        }
        got.is_some()
    });
    assert_eq!(numbers(got.unwrap().fds), [0, 1]);
}

#[test]
fn a_peer_hello_of_versions_we_do_not_speak_is_a_typed_error_naming_both() {
    use std::io::Write;
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut passer = Passer::new(ours.into(), Config::default()).unwrap();
    let mut hello = fdpass_core::frame::Hello::announcing(128, 65536);
    hello.min_version = 2;
    hello.max_version = 3;
    theirs.write_all(&hello.encode()).unwrap();
    passer.handle_readable(Instant::now());
    assert!(matches!(
        passer.poll_event(),
        Some(Event::Failed(Error::Protocol(
            ProtocolError::UnsupportedVersion {
                ours: (1, 1),
                theirs: (2, 3)
            }
        )))
    ));
}

#[test]
fn a_peek_that_ends_where_a_buffer_ends_never_takes_the_next_buffer_descriptors() {
    // With a 4096-byte payload limit a read takes at most 4104 bytes: a
    // frame of exactly that size, sent alone without descriptors, ends the
    // peek exactly where its buffer ends. Linux's peek then moves on to the
    // next buffer with no byte left to copy and still copies that buffer's
    // descriptors; they must not be taken for descriptors that arrived.
    let config = Config::default()
        .with_reservation(Reservation::Peek)
        .with_max_payload_len(4096);
    let (mut a, mut b) = Passer::pair(config).unwrap();
    exchange_hellos(&mut a, &mut b);
    for round in 0..3u64 {
        a.push_send_message(Message::from_payload(vec![round as u8; 4096]))
            .unwrap();
        a.push_send_message(Message::from_fds(vec![numbered_pipe(round)]))
            .unwrap();
    }
    let got = receive_messages(&mut a, &mut b, 6);
    let mut numbers_seen = Vec::new();
    for (i, message) in got.into_iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!((message.payload.len(), message.fds.len()), (4096, 0));
        } else {
            numbers_seen.extend(numbers(message.fds));
        }
    }
    assert_eq!(numbers_seen, [0, 1, 2]);
    assert_eq!(b.held_descriptors(), 0, "no stale copy left unclaimed");
    drop(a);
    b.push_recv_message().unwrap();
    let mut end = None;
    drive(&mut [&mut b], |_, events| {
        end = events.into_iter().map(|(_, e)| e).next();
        end.is_some()
    });
    assert!(matches!(end, Some(Event::Closed)), "{end:?}");
}

#[test]
fn sent_comes_only_once_a_partly_written_message_is_wholly_written() {
    let (x, y) = fdpass_core::socket::pair().unwrap();
    // A small send buffer: the kernel takes a large message in parts.
    rustix::net::sockopt::set_socket_send_buffer_size(&x, 4096).unwrap();
    let config = Config::default().with_max_payload_len(1 << 20);
    let mut a = Passer::new(x, config).unwrap();
    let mut b = Passer::new(y, config).unwrap();
    exchange_hellos(&mut a, &mut b);
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    a.push_send_message(Message::new(payload.clone(), vec![numbered_pipe(5)]))
        .unwrap();
    a.handle_writable(Instant::now());
    assert!(
        a.poll_event().is_none(),
        "part of the message is still owed: not sent yet"
    );
    // The receiver reads; the sender writes the rest and then, at its Sent,
    // goes away at once: the peer still gets the whole message.
    b.push_recv_message().unwrap();
    let mut got = None;
    let mut sender = Some(a);
    let mut closed = false;
    let mut b_only = [&mut b];
    drive(&mut b_only, |passers, events| {
        if let Some(a) = sender.as_mut() {
            a.handle_writable(Instant::now());
            if let Some(event) = a.poll_event() {
                assert!(matches!(event, Event::Sent(_)), "{event:?}");
                sender = None; // dropped right after Sent
            }
        }
        for (_, event) in events {
            match event {
                Event::ReceivedMessage(_, m) => {
                    got = Some(m);
                    passers[0].push_recv_message().unwrap();
                }
                Event::Closed => closed = true,
                other => panic!("{other:?}"),
            }
        }
        closed
    });
    let got = got.expect("the message, whole");
    assert_eq!(got.payload, payload);
    assert_eq!(numbers(got.fds), [5]);
}

#[test]
fn a_peer_that_exits_without_reading_our_hello_has_closed_not_failed() {
    // Linux reports ECONNRESET to the survivor of a socket closed with
    // unread data; before the application sent anything, that data is only
    // our hello, and the peer's exit is its orderly close.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut passer = Passer::new(ours.into(), Config::default()).unwrap();
    passer.handle_writable(Instant::now()); // the hello, never read
    drop(theirs);
    passer.push_recv().unwrap();
    passer.handle_readable(Instant::now());
    assert!(matches!(passer.poll_event(), Some(Event::Closed)));
    assert!(passer.usable().is_ok());
}

#[test]
fn a_peer_that_exits_leaving_our_messages_unread_has_failed() {
    use std::io::Read;
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut passer = Passer::new(ours.into(), Config::default()).unwrap();
    passer
        .push_send_message(Message::from_payload(b"unread".to_vec()))
        .unwrap();
    passer.handle_writable(Instant::now());
    assert!(matches!(passer.poll_event(), Some(Event::Sent(_))));
    let mut some = [0u8; 4];
    theirs.read_exact(&mut some).unwrap(); // part of the hello; the rest stays
    drop(theirs);
    passer.push_recv().unwrap();
    passer.handle_readable(Instant::now());
    assert!(matches!(
        passer.poll_event(),
        Some(Event::Failed(Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionReset
    ));
}
