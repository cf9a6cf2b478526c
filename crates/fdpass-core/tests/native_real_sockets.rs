//! Two native passers over a real `SOCK_STREAM` socketpair, where the
//! kernel decides how sends are cut into reads: every message arrives with
//! its own descriptors, whichever reservation reads them.
//!
//! Linux's stream `MSG_PEEK` does not stop where its buffer fills: when the
//! buffer runs out inside bytes that carry no descriptors, it goes on to the
//! next send that carries some and returns copies of those, although the
//! consuming read of the same length does not take them
//! (`unix_stream_read_generic` in `net/unix/af_unix.c`). A peek whose read
//! ends inside a payload-only message therefore returns the descriptors of a
//! later message; these tests make reads end there.
// Linux and Android only: the behaviour of Linux's stream peek is what is tested against.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::os::fd::OwnedFd;

use common::{drive, open_descriptors};
use fdpass_core::{Config, Event, Message, Passer, Reservation};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

/// What one message was: its payload and the identity of its descriptors'
/// files (a pipe's inode; a duplicate of a descriptor names the same file).
#[derive(Debug, PartialEq, Eq)]
struct Got {
    payload_len: usize,
    payload_first: Option<u8>,
    files: Vec<u64>,
}

fn file_of(fd: &OwnedFd) -> u64 {
    rustix::fs::fstat(fd).expect("fstat").st_ino
}

/// Sends `messages` (payloads, and that many new pipes each) from one
/// native passer to another over a socketpair, the receiver asking for every
/// message at once; returns what was sent and what arrived, in order, once
/// the sender's close was read.
fn exchange(
    reservation: Reservation,
    messages: &[(Vec<u8>, usize)],
) -> (Vec<Got>, Vec<Got>, Option<Event>) {
    let config = Config::default().with_reservation(reservation);
    let (mut sender, mut receiver) = Passer::pair(config).unwrap();
    let mut expected = Vec::new();
    for (payload, pipes) in messages {
        let fds: Vec<OwnedFd> = (0..*pipes)
            .map(|_| rustix::pipe::pipe().expect("pipe").0)
            .collect();
        expected.push(Got {
            payload_len: payload.len(),
            payload_first: payload.first().copied(),
            files: fds.iter().map(file_of).collect(),
        });
        sender
            .push_send_message(Message::new(payload.clone(), fds))
            .unwrap();
    }
    for _ in 0..messages.len() {
        receiver.push_recv_message().unwrap();
    }
    let mut got = Vec::new();
    let mut sent = 0;
    let mut failure = None;
    drive(&mut [&mut sender, &mut receiver], |_, events| {
        for (who, event) in events {
            match (who, event) {
                (0, Event::Sent(token)) => sent = token.0 + 1,
                (1, Event::ReceivedMessage(_, message)) => got.push(Got {
                    payload_len: message.payload.len(),
                    payload_first: message.payload.first().copied(),
                    files: message.fds.iter().map(file_of).collect(),
                }),
                (_, Event::Failed(e)) => failure = Some(e),
                (who, other) => panic!("passer {who}: unexpected {other:?}"),
            }
        }
        failure.is_some() || got.len() == messages.len()
    });
    assert!(
        failure.is_none(),
        "{reservation:?}: failed with {failure:?}"
    );
    assert_eq!(sent, messages.len() as u64);
    // The sender goes; the receiver must read the end, not descriptors left
    // over that no frame claims.
    drop(sender);
    receiver.push_recv_message().unwrap();
    let mut end = None;
    drive(&mut [&mut receiver], |_, events| {
        for (_, event) in events {
            end = Some(event);
        }
        end.is_some()
    });
    (expected, got, end)
}

/// Payload-only messages of the largest size make every read end inside
/// bytes that carry no descriptor, with a message carrying some behind them.
#[test]
fn each_message_gets_its_own_descriptors_after_payloads_larger_than_a_read() {
    let large = |byte: u8| vec![byte; 65536];
    let messages = vec![
        (large(b'a'), 0),
        (b"first".to_vec(), 1),
        (large(b'b'), 0),
        (b"second".to_vec(), 1),
        (large(b'c'), 0),
        (b"third".to_vec(), 2),
    ];
    for reservation in BOTH {
        let before = open_descriptors();
        let (expected, got, end) = exchange(reservation, &messages);
        assert_eq!(
            got, expected,
            "{reservation:?}: descriptors went to the wrong messages"
        );
        assert!(
            matches!(end, Some(Event::Closed)),
            "{reservation:?}: after the last message the receiver read {end:?}, not the end"
        );
        assert_eq!(open_descriptors(), before, "{reservation:?}: leaked");
    }
}
