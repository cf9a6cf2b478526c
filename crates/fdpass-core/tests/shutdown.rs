//! The state machine's closing paths over real socketpairs: a graceful
//! shutdown sends everything queued, its deadline bounds it, and a failure
//! keeps what the kernel never took for `take_unsent`.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_core::{Config, Error, Event, Passer, PushError};

/// A pipe's read end that holds `number`; reading it back proves which
/// descriptor it is and that it is open.
fn numbered(number: u32) -> OwnedFd {
    let (read_end, mut write_end) = std::io::pipe().unwrap();
    write_end.write_all(&number.to_le_bytes()).unwrap();
    read_end.into()
}

fn number_of(fd: OwnedFd) -> u32 {
    let mut bytes = [0u8; 4];
    std::fs::File::from(fd).read_exact(&mut bytes).unwrap();
    u32::from_le_bytes(bytes)
}

/// One descriptor per message and the smallest send buffer: the kernel
/// takes only a few, the rest stays queued in the passer.
fn narrow_pair() -> (Passer, Passer) {
    let (a, b) = fdpass_core::socket::pair().unwrap();
    rustix::net::sockopt::set_socket_send_buffer_size(&a, 1).unwrap();
    let config = Config::default().with_max_fds_per_message(1);
    (
        Passer::new(a, config).unwrap(),
        Passer::new(b, config).unwrap(),
    )
}

#[test]
fn shutdown_sends_everything_queued_then_ends_the_stream() {
    const QUEUED: u32 = 300;
    let (mut a, mut b) = narrow_pair();
    for n in 0..QUEUED {
        a.push_send(numbered(n)).unwrap();
    }
    let now = Instant::now();
    a.shutdown(now + Duration::from_secs(60));
    assert!(a.shutdown_outcome().is_none(), "everything fit at once");
    assert!(matches!(
        a.push_send(numbered(999)),
        Err(PushError::Unusable(Error::Closed, _))
    ));
    let mut received = Vec::new();
    let mut ended = false;
    let give_up = Instant::now() + Duration::from_secs(30);
    while !ended {
        assert!(Instant::now() < give_up, "stuck after {}", received.len());
        a.handle_writable(Instant::now());
        while a.poll_event().is_some() {}
        b.push_recv().unwrap();
        b.handle_readable(Instant::now());
        while let Some(event) = b.poll_event() {
            match event {
                Event::Received(_, fd) => received.push(number_of(fd)),
                Event::Closed => ended = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(received.iter().copied().eq(0..QUEUED), "{received:?}");
    assert!(matches!(a.shutdown_outcome(), Some(Ok(()))));
    assert_eq!(a.held_descriptors(), 0);
}

#[test]
fn a_shutdown_past_its_deadline_fails_and_keeps_the_unsent() {
    const QUEUED: u32 = 100;
    let (mut a, b) = narrow_pair();
    for n in 0..QUEUED {
        a.push_send(numbered(n)).unwrap();
    }
    let now = Instant::now();
    let deadline = now + Duration::from_millis(50);
    a.shutdown(deadline);
    a.handle_writable(now);
    // The deadline is the passer's timeout: every driver's timer bounds it.
    assert_eq!(a.poll_timeout(), Some(deadline));
    a.handle_timeout(deadline - Duration::from_millis(1));
    assert!(a.is_shutting_down());
    a.handle_timeout(deadline);
    let mut sent = 0;
    let mut failure = None;
    while let Some(event) = a.poll_event() {
        match event {
            Event::Sent(token) => sent = token.0 as u32 + 1,
            Event::Failed(e) => failure = Some(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    let Some(Error::ShutdownTimedOut { unsent }) = failure else {
        panic!("ended with {failure:?}");
    };
    assert_eq!(unsent as u32, QUEUED - sent);
    assert!(matches!(
        a.shutdown_outcome(),
        Some(Err(Error::ShutdownTimedOut { .. }))
    ));
    assert_eq!(a.poll_timeout(), None);
    let back: Vec<u32> = a.take_unsent().into_iter().map(number_of).collect();
    assert!(back.iter().copied().eq(sent..QUEUED), "{back:?}");
    assert_eq!(a.held_descriptors(), 0);
    drop(b);
}

#[test]
fn a_failure_keeps_the_unsent_until_taken_or_closed() {
    let (mut a, b) = narrow_pair();
    drop(b);
    for n in 0..5 {
        a.push_send(numbered(n)).unwrap();
    }
    a.handle_writable(Instant::now());
    // EPIPE ends sending (receiving could go on).
    assert!(matches!(a.send_usable(), Err(Error::Io(_))));
    let kept = a.queued_sends();
    assert!(kept > 0);
    assert_eq!(
        a.held_descriptors(),
        kept,
        "the failure closed nothing queued"
    );
    // An explicit close says they are not wanted: let go of.
    a.close();
    assert_eq!(a.held_descriptors(), 0);
    assert!(a.take_unsent().is_empty());
    // Our own close is what is reported from now on.
    assert!(matches!(a.usable(), Err(Error::Closed)));
}
