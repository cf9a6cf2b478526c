//! `Passer::stats` reflects the traffic of mio passers driven by a real
//! `Poll`.

mod common;

use common::{numbered_pipe, read_number, Loop};
use fdpass_mio::{Config, Event, Message, Passer};

#[test]
fn stats_reflect_traffic_both_ways_and_the_peers_close() {
    let (mut a, mut b) = Passer::pair_with_config(Config::default()).unwrap();
    // a → b: three descriptors in one message; b → a: one.
    let three = Message::from_fds((0..3).map(numbered_pipe).collect());
    a.push_send_message(three).unwrap();
    b.push_send(numbered_pipe(3)).unwrap();
    for _ in 0..3 {
        b.push_recv().unwrap();
    }
    a.push_recv().unwrap();
    let (mut at_a, mut at_b) = (0, 0);
    let mut lp = Loop::new(&mut [&mut a, &mut b]);
    lp.drive(&mut [&mut a, &mut b], |_, events| {
        for (index, event) in events {
            match event {
                Event::Received(_, fd) => {
                    read_number(fd);
                    if index == 0 {
                        at_a += 1
                    } else {
                        at_b += 1
                    }
                }
                Event::Sent(_) => {}
                other => panic!("passer {index}: unexpected {other:?}"),
            }
        }
        at_a == 1 && at_b == 3
    });

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (
            sa.messages_sent,
            sa.descriptors_sent,
            sa.messages_received,
            sa.descriptors_received
        ),
        (1, 3, 1, 1),
        "{sa:?}"
    );
    assert_eq!(
        (
            sb.messages_sent,
            sb.descriptors_sent,
            sb.messages_received,
            sb.descriptors_received
        ),
        (1, 1, 1, 3),
        "{sb:?}"
    );
    for s in [sa, sb] {
        assert_eq!((s.queued_sends, s.outstanding_recvs), (0, 0), "{s:?}");
        assert_eq!((s.failures, s.protocol_errors), (0, 0));
        assert!(!s.is_stalled());
    }

    // The peer's orderly close: end of stream for b.
    a.close();
    b.push_recv().unwrap();
    let mut closed = false;
    lp.drive(&mut [&mut a, &mut b], |_, events| {
        for (index, event) in events {
            assert!(index == 1 && matches!(event, Event::Closed), "{event:?}");
            closed = true;
        }
        closed
    });
    let after = b.stats();
    assert_eq!((after.peer_closes, after.failures), (1, 0), "{after:?}");
}
