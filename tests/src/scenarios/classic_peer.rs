//! The classic wire with its default settings is what Python's own
//! `socket.send_fds(sock, [b"\0"], [fd])` and `socket.recv_fds(sock, 1, 1)`
//! speak (`tests/peers/classic_peer.py`): thousands of descriptors each way,
//! in order, none lost, none truncated.

use crate::{
    expect_closed, ok, peer_finished, python_peer, read_number, Adapter, Config, Ctx, Wire,
    CLASSIC_PEER,
};

/// Descriptors each way.
const COUNT: u64 = 3000;
/// At most this many per `recv_many`.
const BULK: usize = 100;
const PEER_BASE: u64 = 7_000_000;
const OUR_BASE: u64 = 9_000_000;

/// A passer with `Wire::CLASSIC` and nothing else changed receives `COUNT`
/// descriptors from `send_fds`, in order; then sends `COUNT` in one batch,
/// which `recv_fds` with room for one descriptor per message takes without
/// truncation (the classic default sends one per message); each end sees
/// the other's orderly close.
pub fn python_send_fds_and_recv_fds_speak_the_default_classic_wire<A: Adapter>(_ctx: &Ctx) {
    let config = Config::default().with_wire(Wire::CLASSIC);
    let count = COUNT.to_string();

    let (ours, theirs) = fdpass_core::socket::pair().expect("socketpair");
    let base = PEER_BASE.to_string();
    let sender = python_peer(
        CLASSIC_PEER,
        theirs,
        &["send", "--count", &count, "--base", &base],
    );
    let mut passer = ok(A::new(ours, config), "wrap our end");
    let mut received = Vec::with_capacity(COUNT as usize);
    while received.len() < COUNT as usize {
        let moved = ok(passer.recv_many(&mut received, BULK), "recv_many");
        assert!(
            moved > 0,
            "the peer closed after {} descriptors",
            received.len()
        );
    }
    for (k, fd) in received.into_iter().enumerate() {
        assert_eq!(read_number(fd), PEER_BASE + k as u64, "descriptor {k}");
    }
    expect_closed(passer.recv());
    passer.close();
    let results = peer_finished(sender);
    assert_eq!(results.number("sent"), COUNT);
    assert_eq!(
        results.number("bytes_without_descriptors"),
        0,
        "a classic passer sends nothing unasked"
    );

    let (ours, theirs) = fdpass_core::socket::pair().expect("socketpair");
    let base = OUR_BASE.to_string();
    let receiver = python_peer(
        CLASSIC_PEER,
        theirs,
        &["recv", "--count", &count, "--base", &base],
    );
    let mut passer = ok(A::new(ours, config), "wrap our end");
    let batch = (0..COUNT)
        .map(|k| crate::numbered_pipe(OUR_BASE + k))
        .collect();
    ok(passer.push_send_many(batch), "push_send_many");
    ok(passer.flush(), "flush");
    passer.close();
    let results = peer_finished(receiver);
    assert_eq!(results.number("received"), COUNT);
}
