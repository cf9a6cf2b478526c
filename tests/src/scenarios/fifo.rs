//! Behaviour 3: descriptors arrive in the order they were sent, whether
//! queued all at once (and so batched) or sent one by one after pauses.

use std::time::Duration;

use crate::{
    expect_closed, expect_fd, inherited_passer, numbered_pipe, ok, read_number, Adapter, Config,
    Ctx,
};

/// Queued in one go.
const AT_ONCE: u64 = 200;
/// Then sent one at a time, each after a pause.
const DELAYED: u64 = 20;
/// The pause: the peer's receive is then usually already waiting. Order must
/// not depend on it, and nothing waits for it to be long enough.
const PAUSE: Duration = Duration::from_millis(1);
/// The numbers the child sends start here.
const CHILD_BASE: u64 = 1_000_000;

/// Both ways in turn: each side sends `AT_ONCE` queued at once, then
/// `DELAYED` one at a time; the other side checks every number in order.
pub fn fifo_at_once_and_after_delays<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("mirror");
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            send_in_two_waves(&mut passer, 0);
            receive_in_order(&mut passer, CHILD_BASE);
            passer.close();
            child.finish();
        }
        Some("mirror") => {
            let mut passer = inherited_passer::<A>(Config::default());
            receive_in_order(&mut passer, 0);
            send_in_two_waves(&mut passer, CHILD_BASE);
            expect_closed(passer.recv());
        }
        Some(_) => ctx.unknown_role(),
    }
}

fn send_in_two_waves<A: Adapter>(passer: &mut A, base: u64) {
    for n in 0..AT_ONCE {
        ok(passer.push_send(numbered_pipe(base + n)), "push_send");
    }
    ok(passer.flush(), "flush");
    for n in AT_ONCE..AT_ONCE + DELAYED {
        std::thread::sleep(PAUSE);
        ok(passer.send(numbered_pipe(base + n)), "send");
    }
}

fn receive_in_order<A: Adapter>(passer: &mut A, base: u64) {
    for n in 0..AT_ONCE + DELAYED {
        assert_eq!(read_number(expect_fd(passer.recv())), base + n);
    }
}
