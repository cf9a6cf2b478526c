//! Every error's message says what happened and what to do, in words that
//! match what happened: a refusal reads as a refusal, a dead peer as a dead
//! peer, never as a generic "descriptor passing failed".

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdpass_core::child::InheritError;
use fdpass_core::socket::{admit, pair, PeerCheck};
use fdpass_core::{Config, Error, Event, Passer, ProtocolError};

/// The advice part of a message: it tells the reader what to do.
fn says_what_to_do(message: &str) -> bool {
    [
        "reconnect",
        "connect again",
        "configure",
        "create a new one",
        "fix the",
        "close descriptors",
        "widen the check",
        "stop receiving",
        "turn SO_PASSCRED off",
        "check who",
        "check the",
        "try again",
        "make sure",
        "give the passer",
        "a passer wraps only",
        "start it with",
        "keep the first",
        "remove both",
        "the parent must",
    ]
    .iter()
    .any(|advice| message.contains(advice))
}

#[test]
fn a_refusal_by_the_peer_check_reads_as_a_refusal() {
    let (ours, _theirs) = pair().expect("socketpair");
    let nobody: PeerCheck = Arc::new(|_peer| false);
    let refused = admit(ours, &nobody).expect_err("the check refuses everyone");
    let message = Error::from(refused).to_string();
    assert!(
        message.starts_with("the peer check refused a connection from pid"),
        "{message}"
    );
    assert!(!message.contains("descriptor passing failed"), "{message}");
    assert!(says_what_to_do(&message), "{message}");
}

#[test]
fn a_peer_that_vanished_mid_stream_is_named_as_such() {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut passer = Passer::new(ours.into(), Config::default()).expect("passer");
    drop(theirs);
    let deadline = Instant::now() + Duration::from_secs(10);
    let failure = loop {
        assert!(Instant::now() < deadline, "no failure reported");
        let (read_end, _write_end) = rustix::pipe::pipe().expect("pipe");
        if let Err(refused) = passer.push_send(read_end) {
            break refused.error();
        }
        passer.handle_writable(Instant::now());
        if let Some(Event::Failed(e)) = passer.poll_event() {
            break e;
        }
    };
    let message = failure.to_string();
    assert!(matches!(failure, Error::Io(_)), "{failure:?}");
    assert!(message.contains("the peer went away"), "{message}");
    assert!(says_what_to_do(&message), "{message}");
}

#[test]
fn every_error_says_what_happened_and_what_to_do() {
    let errno = |e: rustix::io::Errno| Error::from(std::io::Error::from(e));
    let errors = [
        Error::Protocol(ProtocolError::BytesWithoutDescriptors {
            bytes: 1,
            descriptors: 0,
        }),
        Error::Protocol(ProtocolError::TooManyDescriptors { limit: 4 }),
        Error::Protocol(ProtocolError::MessageTooLong { limit: 4 }),
        Error::Protocol(ProtocolError::DescriptorsRefused),
        Error::Protocol(ProtocolError::ForeignControlMessage),
        Error::PeerClosed,
        Error::Closed,
        Error::SendQueueFull,
        Error::ShutdownTimedOut { unsent: 3 },
        Error::InvalidConfig("max_fds_per_message must be between 1 and 253 (SCM_MAX_FD)"),
        Error::Inherit(InheritError::NotHandedOff),
        Error::Inherit(InheritError::NotForThisProcess { fd: 3 }),
        Error::Inherit(InheritError::AlreadyAdopted),
        Error::Inherit(InheritError::Malformed {
            variable: fdpass_core::child::ID_VAR,
            value: None,
        }),
        errno(rustix::io::Errno::PIPE),
        errno(rustix::io::Errno::CONNRESET),
        errno(rustix::io::Errno::MFILE),
        errno(rustix::io::Errno::NFILE),
        errno(rustix::io::Errno::NOBUFS),
        errno(rustix::io::Errno::ACCESS),
        errno(rustix::io::Errno::NOTSOCK),
        errno(rustix::io::Errno::NOTCONN),
        errno(rustix::io::Errno::BADF),
    ];
    for error in errors {
        let message = error.to_string();
        assert!(!message.contains("descriptor passing failed"), "{message}");
        assert!(says_what_to_do(&message), "no advice in: {message}");
    }
    // A connect that finds nobody names the path and the remedy.
    let dir = std::env::temp_dir().join(format!("fdpass-error-messages-{}", std::process::id()));
    let path = dir.join("nobody");
    let raw = fdpass_core::socket::connect(&path).unwrap_err();
    let err = Error::from(fdpass_core::socket::connect_error(&path, raw));
    let message = err.to_string();
    assert!(message.contains("nobody"), "{message}");
    assert!(message.contains("start the listener"), "{message}");
}
