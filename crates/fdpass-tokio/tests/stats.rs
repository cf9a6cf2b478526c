//! `Passer::stats` reflects the traffic of a tokio passer, on every clone.

use std::os::fd::OwnedFd;
use std::time::Duration;

use fdpass_tokio::{Message, Passer};

fn pipe_read_end() -> OwnedFd {
    let (read_end, _write_end) = std::io::pipe().expect("pipe");
    read_end.into()
}

#[tokio::test(flavor = "current_thread")]
async fn stats_reflect_traffic_both_ways_and_the_peers_close() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (a, b) = Passer::pair().unwrap();
        // a → b: three descriptors in one message; b → a: one.
        let three = Message::from_fds((0..3).map(|_| pipe_read_end()).collect());
        a.push_send_message(three).unwrap();
        a.flush().await.unwrap();
        for _ in 0..3 {
            b.recv().await.unwrap().expect("a descriptor");
        }
        b.send(pipe_read_end()).await.unwrap();
        a.recv().await.unwrap().expect("a descriptor");

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
        assert_eq!(a.clone().stats(), sa, "a clone reads the same connection");

        drop(a);
        b.closed().await.unwrap();
        let after = b.stats();
        assert_eq!((after.peer_closes, after.failures), (1, 0), "{after:?}");
    })
    .await
    .expect("finished within 20 s");
}
