//! Behaviour 7: when the peer dies, the survivor learns it promptly, as an
//! orderly close or a failure, and holds no descriptor it should have
//! closed. The survivor runs in a process of its own so that its descriptor
//! count is exact.

use std::time::{Duration, Instant};

use crate::{
    expect_fd, inherited_passer, numbered_pipe, ok, open_descriptors, read_number, Adapter, Config,
    Ctx, Wait,
};

/// How the victim dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// It exits (without closing its passer), having read everything.
    Exit,
    /// It is killed with `SIGKILL` while a descriptor waits unread for it.
    Kill,
}

const TICK: Duration = Duration::from_millis(5);
/// The victim dies on this tick of the survivor's pending receive.
const DEATH_AT: u64 = 3;
/// A generous bound on "promptly": the death is seen within milliseconds.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The peer exits: the survivor's pending receive sees an orderly close.
pub fn peer_exit_is_seen_without_leaks<A: Adapter>(ctx: &Ctx) {
    peer_death::<A>(ctx, Death::Exit);
}

/// The peer is killed: the survivor's pending receive sees a close or a
/// failure.
pub fn peer_kill_is_seen_without_leaks<A: Adapter>(ctx: &Ctx) {
    peer_death::<A>(ctx, Death::Kill);
}

fn peer_death<A: Adapter>(ctx: &Ctx, death: Death) {
    match ctx.role() {
        None => {
            let latency = ctx.spawn("survivor").finish().number("latency_us");
            eprintln!("the peer's death was seen after {latency} µs");
        }
        Some("survivor") => survivor::<A>(ctx, death),
        Some("victim") => victim::<A>(ctx),
        Some(_) => ctx.unknown_role(),
    }
}

/// Whatever an adapter creates once per process (a global reactor, say) is
/// created here, before the count that must come back to its value.
pub(crate) fn warm_up<A: Adapter>() {
    let (a, b) = fdpass_core::socket::pair().expect("socketpair");
    let mut a = ok(A::new(a, Config::default()), "wrap a");
    let mut b = ok(A::new(b, Config::default()), "wrap b");
    ok(a.send(numbered_pipe(0)), "send");
    assert_eq!(read_number(expect_fd(b.recv())), 0);
}

fn survivor<A: Adapter>(ctx: &Ctx, death: Death) {
    warm_up::<A>();
    let before = open_descriptors();
    {
        let (socket, mut victim) = ctx.spawn_connected("victim");
        let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
        ok(passer.send(numbered_pipe(1)), "send");
        assert_eq!(read_number(expect_fd(passer.recv())), 2);
        // The victim reads this one only if it is told to exit.
        ok(passer.send(numbered_pipe(3)), "send");

        let mut died_at = None;
        let ticked = passer.while_ticking(Wait::Recv, TICK, &mut |tick| {
            if tick == DEATH_AT {
                died_at = Some(Instant::now());
                match death {
                    Death::Exit => victim.signal(),
                    Death::Kill => victim.kill(),
                }
            }
        });
        let latency = died_at.expect("the victim was told to die").elapsed();
        match (death, ticked.received()) {
            (Death::Exit, Ok(None)) | (Death::Kill, Ok(None) | Err(_)) => {}
            (_, Ok(Some(_))) => panic!("a descriptor arrived from a dead peer"),
            (Death::Exit, Err(e)) => panic!("a peer's exit is an orderly close, got: {e}"),
        }
        assert!(latency < PROMPTLY, "the death was seen after {latency:?}");
        ctx.report("latency_us", latency.as_micros());

        // Nothing more arrives, and what we still send is refused and closed.
        assert!(
            !matches!(passer.recv(), Ok(Some(_))),
            "a descriptor arrived from a dead peer"
        );
        let sent = passer
            .push_send(numbered_pipe(4))
            .and_then(|()| passer.flush());
        assert!(sent.is_err(), "sending to a dead peer succeeded");
        drop(passer);

        let finished = victim.wait();
        match death {
            Death::Exit => assert!(finished.status.success(), "{finished}"),
            Death::Kill => assert_eq!(finished.killed_by(), Some(9), "{finished}"),
        }
    }
    let after = open_descriptors();
    assert_eq!(before, after, "descriptors open before and after: a leak");
}

fn victim<A: Adapter>(ctx: &Ctx) {
    let mut passer = inherited_passer::<A>(Config::default());
    assert_eq!(read_number(expect_fd(passer.recv())), 1);
    ok(passer.send(numbered_pipe(2)), "send");
    ctx.wait_signal();
    assert_eq!(read_number(expect_fd(passer.recv())), 3);
    // Exit with the passer open: the kernel, not the passer, closes the
    // socket.
    std::process::exit(0);
}
