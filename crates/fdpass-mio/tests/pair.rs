//! Passers over a socketpair (or a listener's connection), driven by a real
//! mio `Poll` in this thread.

mod common;

use std::time::Duration;

use common::{numbered_pipe, read_number, Loop};
use fdpass_core::Want;
use fdpass_mio::{Config, Error, Event, Listener, Passer};
use mio::{Events, Interest, Poll, Token};

/// One stream of numbered pipes from one passer to another.
struct Flow {
    from: usize,
    to: usize,
    total: u64,
    /// Most descriptors pushed and not yet reported sent.
    send_window: u64,
    /// Most receive requests outstanding.
    recv_window: u64,
    pushed: u64,
    acked: u64,
    requested: u64,
    received: u64,
}

impl Flow {
    fn new(from: usize, to: usize, total: u64, send_window: u64, recv_window: u64) -> Flow {
        Flow {
            from,
            to,
            total,
            send_window,
            recv_window,
            pushed: 0,
            acked: 0,
            requested: 0,
            received: 0,
        }
    }
}

/// Runs `flows` (at most one sending and one receiving flow per passer, so
/// tokens identify flows) over `passers` and checks every descriptor arrives
/// once, in order.
fn run(passers: &mut [&mut Passer], flows: &mut [Flow]) {
    let mut lp = Loop::new(passers);
    lp.drive(passers, |passers, events| {
        for (index, event) in events {
            match event {
                Event::Sent(token) => {
                    let flow = flows.iter_mut().find(|f| f.from == index).unwrap();
                    assert!(token.0 < flow.pushed, "acknowledged {token:?} never pushed");
                    flow.acked = token.0 + 1;
                }
                Event::Received(token, fd) => {
                    let flow = flows.iter_mut().find(|f| f.to == index).unwrap();
                    assert_eq!(token.0, flow.received, "requests fulfilled out of order");
                    assert_eq!(read_number(fd), flow.received, "descriptors out of order");
                    flow.received += 1;
                }
                other => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        for flow in flows.iter_mut() {
            while flow.pushed < flow.total && flow.pushed - flow.acked < flow.send_window {
                passers[flow.from]
                    .push_send(numbered_pipe(flow.pushed))
                    .expect("push_send");
                flow.pushed += 1;
            }
            while flow.requested < flow.total && flow.requested - flow.received < flow.recv_window {
                passers[flow.to].push_recv().expect("push_recv");
                flow.requested += 1;
            }
        }
        flows
            .iter()
            .all(|f| f.received == f.total && f.acked == f.total)
    });
    for passer in passers.iter() {
        assert_eq!(passer.core().held_descriptors(), 0, "{passer:#?}");
        assert_eq!(passer.poll_timeout(), None);
    }
}

#[test]
fn both_directions_at_once() {
    let (mut a, mut b) = Passer::pair().unwrap();
    run(
        &mut [&mut a, &mut b],
        &mut [
            Flow::new(0, 1, 2_000, 300, 300),
            Flow::new(1, 0, 2_000, 300, 300),
        ],
    );
}

#[test]
fn fifo_of_10000_batched() {
    // Up to 64 descriptors per message; pushes and requests in bursts.
    let config = Config::default().with_max_fds_per_message(64);
    let (mut a, mut b) = Passer::pair_with_config(config).unwrap();
    run(
        &mut [&mut a, &mut b],
        &mut [Flow::new(0, 1, 10_000, 500, 500)],
    );
}

#[test]
fn fifo_of_10000_unbatched() {
    // AnyEvent::FDpasser's wire format, one descriptor per message, and one
    // push or request at a time.
    let config = Config::default().with_max_fds_per_message(1);
    let (mut a, mut b) = Passer::pair_with_config(config).unwrap();
    run(&mut [&mut a, &mut b], &mut [Flow::new(0, 1, 10_000, 1, 1)]);
}

/// The number of the pipe an event brought.
fn received_number(event: Option<Event>) -> u64 {
    match event {
        Some(Event::Received(_, fd)) => read_number(fd),
        other => panic!("expected a descriptor, got {other:?}"),
    }
}

/// Polls until an event for `token` arrives, hands every event to `passer`,
/// and returns how many there were for it.
fn poll_for(poll: &mut Poll, passer: &mut Passer, token: Token) -> usize {
    let mut events = Events::with_capacity(16);
    let deadline = std::time::Instant::now() + common::OVERALL;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no event for {token:?}"
        );
        poll.poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        let mut ours = 0;
        for event in events.iter().filter(|e| e.token() == token) {
            passer.handle_event(event);
            ours += 1;
        }
        if ours > 0 {
            return ours;
        }
    }
}

/// No new edge comes for a socket that stays readable: asserts the poll is
/// quiet for `token` right now.
fn assert_no_edge(poll: &mut Poll, token: Token) {
    let mut events = Events::with_capacity(16);
    poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(
        events.iter().all(|e| e.token() != token),
        "expected no further edge"
    );
}

#[test]
fn readable_edge_while_nothing_requested_is_not_needed_later() {
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut poll = Poll::new().unwrap();
    let token = Token(1);
    poll.registry()
        .register(&mut b, token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    // The registration's initial writable edge, handled while idle.
    poll_for(&mut poll, &mut b, token);
    assert!(b.poll_event().is_none());

    a.push_send(numbered_pipe(7)).unwrap();
    // The readable edge arrives while no receive is requested: nothing to do.
    poll_for(&mut poll, &mut b, token);
    assert!(b.poll_event().is_none());
    assert_no_edge(&mut poll, token);

    // The request is served at once, without waiting for an edge that will
    // never come.
    let asked = b.push_recv().unwrap();
    match b.poll_event() {
        Some(Event::Received(t, fd)) => {
            assert_eq!(t, asked);
            assert_eq!(read_number(fd), 7);
        }
        other => panic!("expected the descriptor at once, got {other:?}"),
    }
}

#[test]
fn readable_edge_after_a_cancelled_request_is_not_needed_later() {
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut poll = Poll::new().unwrap();
    let token = Token(1);
    poll.registry()
        .register(&mut b, token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    poll_for(&mut poll, &mut b, token);

    // The read direction has seen "would block"...
    let first = b.push_recv().unwrap();
    assert_eq!(b.core().interest().read, Want::WhenReady);
    // ...then nobody wants to read any more when data arrives.
    assert!(b.cancel_recv(first));
    a.push_send(numbered_pipe(1)).unwrap();
    poll_for(&mut poll, &mut b, token);
    assert!(b.poll_event().is_none());
    assert_no_edge(&mut poll, token);

    let second = b.push_recv().unwrap();
    match b.poll_event() {
        Some(Event::Received(t, fd)) => {
            assert_eq!(t, second);
            assert_eq!(read_number(fd), 1);
        }
        other => panic!("expected the descriptor at once, got {other:?}"),
    }
}

#[test]
fn writable_edge_while_nothing_queued_is_not_needed_later() {
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut poll = Poll::new().unwrap();
    let token = Token(0);
    poll.registry()
        .register(&mut a, token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    poll_for(&mut poll, &mut a, token);
    assert_no_edge(&mut poll, token);

    let sent = a.push_send(numbered_pipe(3)).unwrap();
    assert!(matches!(a.poll_event(), Some(Event::Sent(t)) if t == sent));
    b.push_recv().unwrap();
    assert_eq!(received_number(b.poll_event()), 3);
}

#[test]
fn writer_blocked_on_a_full_socket_resumes_on_its_edge() {
    let (mut a, mut b) =
        Passer::pair_with_config(Config::default().with_max_fds_per_message(1)).unwrap();
    // Fill the socket until the writer says "would block"; no poll needed
    // for that, pushes write at once.
    let mut pushed = 0u64;
    while a.core().interest().write != Want::WhenReady {
        a.push_send(numbered_pipe(pushed)).unwrap();
        pushed += 1;
        assert!(pushed < 100_000, "the socket never filled");
    }
    while a.poll_event().is_some() {}
    assert!(a.core().queued_sends() > 0);

    // The reader drains one request at a time; only writable edges can get
    // the writer's queue out.
    let mut lp = Loop::new(&mut [&mut a, &mut b]);
    let mut received = 0u64;
    lp.drive(&mut [&mut a, &mut b], |passers, events| {
        for (_, event) in events {
            match event {
                Event::Received(_, fd) => {
                    assert_eq!(read_number(fd), received);
                    received += 1;
                }
                Event::Sent(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if received < pushed && passers[1].core().outstanding_recvs() == 0 {
            passers[1].push_recv().unwrap();
        }
        received == pushed
    });
    assert_eq!(a.core().queued_sends(), 0);
}

#[test]
fn peer_drop_with_a_request_pending_reports_closed() {
    let (a, mut b) = Passer::pair().unwrap();
    let mut lp = Loop::new(&mut [&mut b]);
    b.push_recv().unwrap();
    drop(a);
    let mut closed = false;
    lp.drive(&mut [&mut b], |_, events| {
        for (_, event) in events {
            assert!(matches!(event, Event::Closed), "unexpected {event:?}");
            closed = true;
        }
        closed
    });
    assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
}

#[test]
fn peer_drop_while_idle_is_reported_after_what_was_sent() {
    let (mut a, mut b) = Passer::pair().unwrap();
    let mut poll = Poll::new().unwrap();
    let token = Token(1);
    poll.registry()
        .register(&mut b, token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    poll_for(&mut poll, &mut b, token);
    for n in 0..3 {
        a.push_send(numbered_pipe(n)).unwrap();
    }
    drop(a);
    // The hang-up edge comes while nothing is requested.
    poll_for(&mut poll, &mut b, token);
    assert!(b.poll_event().is_none());

    // What was sent before the drop still arrives, in order, then the close:
    // watched for while nothing is requested, it is reported right after the
    // last descriptor, without another request.
    for n in 0..3 {
        b.push_recv().unwrap();
        assert_eq!(received_number(b.poll_event()), n);
    }
    assert!(matches!(b.poll_event(), Some(Event::Closed)));
    assert!(matches!(b.push_recv(), Err(Error::PeerClosed)));
}

#[test]
fn listener_connections_pass_descriptors_both_ways() {
    let dir = std::env::temp_dir().join(format!("fdpass-mio-test-listener-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut listener = Listener::bind(dir.join("sock")).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut listener, Token(9), Interest::READABLE)
        .unwrap();
    let mut client = Passer::connect(listener.path()).unwrap();

    let mut events = Events::with_capacity(8);
    let mut server = None;
    let deadline = std::time::Instant::now() + common::OVERALL;
    while server.is_none() {
        assert!(std::time::Instant::now() < deadline);
        poll.poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        if let Some(accepted) = listener.accept().unwrap() {
            server = Some(accepted);
        }
    }
    let mut server = server.unwrap();
    assert!(listener.accept().unwrap().is_none());
    std::fs::remove_dir_all(&dir).unwrap();

    run(
        &mut [&mut client, &mut server],
        &mut [Flow::new(0, 1, 50, 10, 10), Flow::new(1, 0, 50, 10, 10)],
    );
}

#[test]
fn a_send_only_passer_is_told_of_the_peers_hangup_by_its_events() {
    let (mut a, b) = Passer::pair().unwrap();
    let mut poll = Poll::new().unwrap();
    let token = Token(3);
    poll.registry()
        .register(&mut a, token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    a.push_send(numbered_pipe(1)).unwrap();
    assert!(matches!(a.poll_event(), Some(Event::Sent(_))));
    // The peer takes what was sent, then hangs up; `a` asked for nothing.
    let mut b = b;
    b.push_recv().unwrap();
    assert_eq!(received_number(b.poll_event()), 1);
    drop(b);
    let deadline = std::time::Instant::now() + common::OVERALL;
    let closed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the hang-up was never reported"
        );
        poll_for(&mut poll, &mut a, token);
        match a.poll_event() {
            Some(event) => break event,
            None => continue,
        }
    };
    assert!(matches!(closed, Event::Closed), "{closed:?}");
    // Nothing more is reported after the end, whatever events still come.
    assert!(a.poll_event().is_none());
}

#[test]
fn no_event_follows_a_failure() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut a = Passer::from_std(ours).unwrap();
    let mut poll = Poll::new().unwrap();
    let token = Token(4);
    poll.registry()
        .register(&mut a, token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    a.push_recv().unwrap();
    std::io::Write::write_all(&mut &theirs, b"xy").unwrap(); // bytes, no descriptor
    poll_for(&mut poll, &mut a, token);
    assert!(matches!(a.poll_event(), Some(Event::Failed(_))));
    drop(theirs); // a hang-up edge after the failure
    poll_for(&mut poll, &mut a, token);
    assert!(
        a.poll_event().is_none(),
        "a failed passer reports nothing more"
    );
    assert!(a.push_recv().is_err());
}
