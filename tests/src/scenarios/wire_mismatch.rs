//! Two ends that speak different wires learn it by name, with the fix in
//! the message, on the side that can see it: never a hang, never a
//! descriptor handed out across the mismatch, never one left open.
//!
//! Each receiving end runs in a child process of its own, which counts its
//! open descriptors before and after.

use std::time::{Duration, Instant};

use crate::adapters::core::Core;
use crate::{
    inherited_passer, numbered_pipe, ok, open_descriptors, peer_ended, python_peer, Adapter,
    Config, Ctx, Error, ProtocolError, Wire, CLASSIC_PEER, NATIVE_PEER,
};

/// How long a mismatch may take to be reported. Without the hello, a native
/// receiver facing a classic sender saw a stream it could misread, and a
/// wrong guess waits for ever; a generous bound, far below that.
const PROMPT: Duration = Duration::from_secs(10);

/// Receives once, requires `expected` within [`PROMPT`] and no descriptor,
/// and that the error says how to fix it (`fix`); then a second receive must
/// fail the same way: the passer is done.
fn expect_mismatch<A: Adapter>(passer: &mut A, expected: fn(&Error) -> bool, fix: &str) {
    let start = Instant::now();
    let outcome = passer.recv();
    let took = start.elapsed();
    match outcome {
        Err(e) if expected(&e) => {
            let text = e.to_string();
            assert!(
                text.contains(fix),
                "the error names the fix {fix:?}: {text}"
            );
        }
        Err(e) => panic!("the wrong error for a wire mismatch: {e:?}"),
        Ok(Some(_)) => panic!("a descriptor was handed out across a wire mismatch"),
        Ok(None) => panic!("a wire mismatch read as an orderly close"),
    }
    assert!(took < PROMPT, "the mismatch took {took:?} to be reported");
    assert!(
        matches!(passer.recv(), Err(ref e) if expected(e)),
        "a passer that met the other wire stays failed"
    );
}

/// Builds and drops a passer, so that what an adapter creates once per
/// process (smol's reactor) exists before a count of open descriptors.
fn warm_up<A: Adapter>() {
    let (ours, _theirs) = fdpass_core::socket::pair().expect("socketpair");
    drop(ok(A::new(ours, Config::default()), "a first passer"));
}

/// A native passer (the default) facing Python's `send_fds`: its receive
/// fails with `ProtocolError::ClassicPeer`, naming `Wire::Classic`; the
/// descriptors `send_fds` sent are closed, not delivered.
pub fn a_native_receiver_facing_send_fds_names_the_classic_wire<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            ctx.spawn("native receiver").finish();
        }
        Some("native receiver") => {
            warm_up::<A>();
            let before = open_descriptors();
            let (ours, theirs) = fdpass_core::socket::pair().expect("socketpair");
            let peer = python_peer(CLASSIC_PEER, theirs, &["send", "--count", "3"]);
            let mut passer = ok(A::new(ours, Config::default()), "wrap our end");
            expect_mismatch(
                &mut passer,
                |e| matches!(e, Error::Protocol(ProtocolError::ClassicPeer)),
                "Wire::Classic",
            );
            drop(passer);
            // The peer may find the connection gone mid-way: only its end
            // matters here.
            peer_ended(peer);
            assert_eq!(open_descriptors(), before, "every descriptor closed");
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// A classic fdpass passer facing a native fdpass passer (the default) that
/// sends it descriptors: its receive fails with `ProtocolError::NativePeer`,
/// naming `Wire::Native`; nothing the native end sent is delivered or left
/// open.
pub fn a_classic_receiver_facing_a_native_sender_names_the_native_wire<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("classic receiver");
            let mut sender = ok(Core::new(socket, Config::default()), "wrap our end");
            for n in 0..3 {
                ok(sender.push_send(numbered_pipe(n)), "push_send");
            }
            // Whether the kernel takes them before the receiver fails and
            // goes does not matter: the receiver's outcome does.
            let _ = sender.flush();
            child.finish();
        }
        Some("classic receiver") => {
            let config = Config::default().with_wire(Wire::CLASSIC);
            let mut passer = inherited_passer::<A>(config);
            // The passer's own sentinel reservation, where it has one, is
            // let go of with the failure: the rest must be as it was.
            let reservation = if fdpass_core::Reservation::lossless_here()
                == fdpass_core::Reservation::Sentinel
            {
                config.max_fds_per_message + 1
            } else {
                0
            };
            let before = open_descriptors() - reservation;
            expect_mismatch(
                &mut passer,
                |e| matches!(e, Error::Protocol(ProtocolError::NativePeer)),
                "Wire::Native",
            );
            assert_eq!(open_descriptors(), before, "every descriptor closed");
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// A native passer facing a native peer whose versions do not overlap with
/// its own (the Python peer announcing versions 2 to 2): its receive fails
/// with `ProtocolError::UnsupportedVersion`, naming both ranges.
pub fn a_native_peer_of_another_version_is_refused_by_name<A: Adapter>(_ctx: &Ctx) {
    let (ours, theirs) = fdpass_core::socket::pair().expect("socketpair");
    let peer = python_peer(
        NATIVE_PEER,
        theirs,
        &["--min-version", "2", "--max-version", "2", "hello"],
    );
    let mut passer = ok(A::new(ours, Config::default()), "wrap our end");
    expect_mismatch(
        &mut passer,
        |e| {
            matches!(
                e,
                Error::Protocol(ProtocolError::UnsupportedVersion {
                    ours: (1, 1),
                    theirs: (2, 2)
                })
            )
        },
        "2..=2",
    );
    // A failed passer keeps its socket until dropped: the peer sees the end
    // then.
    drop(passer);
    peer_ended(peer);
}
