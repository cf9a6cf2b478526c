//! Named descriptor sets: a set travels whole in one native message and is
//! received by name; every malformed payload is a typed error that closes
//! every descriptor that came with it.

mod common;

use std::os::fd::{AsFd, OwnedFd};

use fdpass_core::handover::{decode_payload, encode_payload, EntryHeader, NamedFds, NamedFdsError};
use fdpass_core::{Config, Event, Message, Passer};
use proptest::prelude::*;

use common::{drive, numbered_pipe, read_number};

/// Sends `message` from one passer of a fresh pair and returns what the other
/// received.
fn send_through_pair(message: Message) -> Message {
    let (mut sender, mut receiver) = Passer::pair(Config::default()).expect("pair");
    sender.push_send_message(message).expect("push the set");
    receiver.push_recv_message().expect("ask for a message");
    let mut received = None;
    drive(&mut [&mut sender, &mut receiver], |_, events| {
        for (who, event) in events {
            match event {
                Event::ReceivedMessage(_, message) => received = Some(message),
                Event::Failed(e) => panic!("passer {who} failed: {e}"),
                _ => {}
            }
        }
        received.is_some()
    });
    received.expect("received")
}

#[test]
fn a_named_set_arrives_whole_in_one_message_and_is_taken_by_name() {
    let mut set = NamedFds::new();
    for (i, name) in ["http", "https", "log", "admin socket"]
        .into_iter()
        .enumerate()
    {
        set.insert_with_meta(name, numbered_pipe(i as u64), format!("meta {i}"))
            .expect("valid entry");
    }
    let received = send_through_pair(set.into_message().expect("encode"));
    assert_eq!(received.fds.len(), 4, "all four in the one message");
    let mut received = NamedFds::from_message(received).expect("a valid set");
    assert_eq!(
        received.names().collect::<Vec<_>>(),
        ["admin socket", "http", "https", "log"]
    );
    for (i, name) in ["http", "https", "log", "admin socket"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(received.meta(name), Some(format!("meta {i}").as_bytes()));
        let fd = received.take(name).expect("present");
        assert_eq!(
            read_number(fd),
            i as u64,
            "{name} is the descriptor sent under that name"
        );
    }
    assert!(received.is_empty());
}

#[test]
fn a_received_set_with_a_bad_payload_closes_every_descriptor_it_carried() {
    if common::role().is_none() {
        let output = common::self_command(
            "a_received_set_with_a_bad_payload_closes_every_descriptor_it_carried",
            "child",
        )
        .output()
        .expect("run the child");
        common::results(&output);
        return;
    }
    let before = common::open_descriptors();
    let bad_payloads: [&[u8]; 5] = [
        &[],                                         // Empty
        &[9, 0, 0, 2],                               // UnsupportedVersion
        &[1, 0, 0, 3],                               // CountMismatch (3 announced, 2 sent)
        &[1, 0, 0, 2, 1, b'a', 0, 0],                // CutShort (second entry missing)
        &[1, 0, 0, 2, 1, b'a', 0, 0, 1, b'a', 0, 0], // DuplicateName
    ];
    for payload in bad_payloads {
        let message = send_through_pair(Message::new(
            payload.to_vec(),
            vec![numbered_pipe(1), numbered_pipe(2)],
        ));
        assert_eq!(message.fds.len(), 2);
        assert!(NamedFds::from_message(message).is_err());
    }
    let after = common::open_descriptors();
    assert_eq!(before, after, "descriptors leaked by refused sets");
    println!("RESULT leaked={}", after - before);
}

#[test]
fn each_fault_of_a_payload_is_its_own_typed_error() {
    assert_eq!(decode_payload(&[], 0), Err(NamedFdsError::Empty));
    assert_eq!(
        decode_payload(&[2, 0, 0, 0], 0),
        Err(NamedFdsError::UnsupportedVersion { version: 2 })
    );
    assert_eq!(
        decode_payload(&[1, 7, 0, 0], 0),
        Err(NamedFdsError::ReservedNotZero { value: 7 })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0], 0),
        Err(NamedFdsError::CutShort { offset: 1 })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0, 1], 0),
        Err(NamedFdsError::CountMismatch {
            announced: 1,
            descriptors: 0
        })
    );
    assert_eq!(
        decode_payload(&[1, 0, 1, 0], 256),
        Err(NamedFdsError::TooManyEntries { count: 256 })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0, 1, 0, 0, 0], 1),
        Err(NamedFdsError::BadName {
            index: 0,
            name: String::new()
        })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0, 1, 3, b'a', b':', b'b', 0, 0], 1),
        Err(NamedFdsError::BadName {
            index: 0,
            name: "a:b".into()
        })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0, 1, 1, 0xff, 0, 0], 1),
        Err(NamedFdsError::BadName {
            index: 0,
            name: "\u{fffd}".into()
        })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0, 1, 1, b'a', 0, 2, 9], 1),
        Err(NamedFdsError::CutShort { offset: 8 })
    );
    assert_eq!(
        decode_payload(&[1, 0, 0, 0, 0], 0),
        Err(NamedFdsError::TrailingBytes { offset: 4 })
    );
    let (a, b) = (numbered_pipe(0), numbered_pipe(1));
    let mut set = NamedFds::new();
    assert!(matches!(
        set.insert("", a),
        Err(NamedFdsError::BadName { .. })
    ));
    assert!(matches!(
        set.insert_with_meta("x", b, vec![0; 65536]),
        Err(NamedFdsError::MetaTooLong { len: 65536 })
    ));
}

#[test]
fn a_set_of_the_most_descriptors_one_message_carries_round_trips() {
    let mut set = NamedFds::new();
    for i in 0..fdpass_core::handover::MAX_ENTRIES {
        set.insert(&format!("fd{i:03}"), numbered_pipe(i as u64))
            .expect("valid");
    }
    let (extra, _w) = std::io::pipe().expect("pipe");
    assert!(matches!(
        set.insert("one too many", extra.into()),
        Err(NamedFdsError::TooManyEntries { count: 254 })
    ));
    let config = Config::default().with_max_fds_per_message(253);
    let (mut sender, mut receiver) = Passer::pair(config).expect("pair");
    sender
        .push_send_message(set.into_message().expect("encode"))
        .expect("push");
    receiver.push_recv_message().expect("ask");
    let mut received = None;
    drive(&mut [&mut sender, &mut receiver], |_, events| {
        for (_, event) in events {
            match event {
                Event::ReceivedMessage(_, m) => received = Some(m),
                Event::Failed(e) => panic!("failed: {e}"),
                _ => {}
            }
        }
        received.is_some()
    });
    let mut set = NamedFds::from_message(received.expect("received")).expect("valid");
    for i in 0..fdpass_core::handover::MAX_ENTRIES {
        let fd = set.take(&format!("fd{i:03}")).expect("present");
        assert_eq!(read_number(fd), i as u64);
    }
}

#[test]
fn a_clone_of_a_set_names_the_same_open_files() {
    let mut set = NamedFds::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    set.insert("http", OwnedFd::from(listener)).expect("valid");
    let mut copy = set.try_clone().expect("dup");
    let copied = std::net::TcpListener::from(copy.take("http").expect("copied"));
    assert_eq!(copied.local_addr().expect("address"), address);
    assert!(set
        .get("http")
        .is_some_and(|fd| fd.as_fd().try_clone_to_owned().is_ok()));
}

fn name_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -9;-~]{1,40}").expect("regex")
}

proptest! {
    #[test]
    fn the_decoder_never_panics_and_accepts_only_what_it_can_explain(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        descriptors in 0usize..300,
    ) {
        if let Ok(entries) = decode_payload(&payload, descriptors) {
            prop_assert_eq!(entries.len(), descriptors);
            prop_assert_eq!(encode_payload(&entries).expect("re-encode"), payload);
        }
    }

    #[test]
    fn every_encoded_set_decodes_to_itself_and_every_cut_is_refused(
        names in proptest::collection::btree_set(name_strategy(), 0..8),
        meta in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let entries: Vec<EntryHeader> = names
            .into_iter()
            .map(|name| EntryHeader { name, meta: meta.clone() })
            .collect();
        let payload = encode_payload(&entries).expect("valid entries");
        prop_assert_eq!(decode_payload(&payload, entries.len()).expect("decodes"), entries.clone());
        for cut in 0..payload.len() {
            prop_assert!(decode_payload(&payload[..cut], entries.len()).is_err());
        }
    }
}
