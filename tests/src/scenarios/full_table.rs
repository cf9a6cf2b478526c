//! Behaviour 6: a full descriptor table delays delivery and loses nothing.
//! As in the original's test, a child with `RLIMIT_NOFILE` = 20 receives 30
//! numbered pipes. Before each receive it fills every free slot of its table
//! with `/dev/null`; while a receive waits for room, each tick of its timer
//! frees one slot (the oldest pipe it holds, else a filler); it holds what
//! it receives and closes it periodically.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::{
    expect_closed, expect_fd, fill_table, inherited_passer, limit_descriptors, numbered_pipe, ok,
    peek_number, Adapter, Config, Ctx, Reservation, Wait,
};

const LIMIT: u64 = 20;
const PIPES: u64 = 30;
/// Received pipes are held open, and closed together once this many are.
const CLOSE_EVERY: usize = 4;
const TICK: Duration = Duration::from_millis(1);

/// With the close-dup reservation, one descriptor per message, as in the
/// original.
pub fn full_table_sentinel<A: Adapter>(ctx: &Ctx) {
    let config = Config::default()
        .with_max_fds_per_message(1)
        .with_reservation(Reservation::Sentinel);
    full_table::<A>(ctx, config);
}

/// With the peek reservation and otherwise default settings.
/// Where the peek reservation is not lossless, it is refused instead.
pub fn full_table_peek<A: Adapter>(ctx: &Ctx) {
    let config = Config::default().with_reservation(Reservation::Peek);
    if crate::peek_refused_here::<A>(config) {
        return;
    }
    full_table::<A>(ctx, config);
}

fn full_table<A: Adapter>(ctx: &Ctx, config: Config) {
    match ctx.role() {
        None => {
            let (socket, mut child) = ctx.spawn_connected("crowded");
            let mut passer = ok(A::new(socket, config), "wrap our end");
            // One at a time, as in the original: one descriptor per message,
            // so each receive is one message that needs room.
            for n in 0..PIPES {
                ok(passer.send(numbered_pipe(n)), "send");
            }
            // Everything is in the child's socket before its table fills, so
            // every wait it sees is for room, not for us.
            child.signal();
            passer.close();
            // With peek every receive waits for room. A sentinel reservation
            // that got its slot back takes the next descriptor without
            // waiting, but its slot is then gone, so the receive after it
            // waits: at least every other one.
            let stalls = child.finish().number("stalls");
            assert!(
                stalls >= PIPES / 2,
                "only {stalls} of {PIPES} receives waited for room: the table was not full"
            );
        }
        Some("crowded") => crowded::<A>(ctx, config),
        Some(_) => ctx.unknown_role(),
    }
}

fn crowded<A: Adapter>(ctx: &Ctx, config: Config) {
    // The passer and its event loop exist before the table fills, as in a
    // program that runs out of descriptors later.
    let mut passer = inherited_passer::<A>(config);
    ctx.wait_signal();
    limit_descriptors(LIMIT);
    let mut spare = fill_table();
    assert!(!spare.is_empty(), "the table had no room to fill");
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut stalls = 0;
    for n in 0..PIPES {
        // Whatever the last wait freed is taken again: every descriptor
        // arrives at a full table.
        spare.extend(fill_table());
        let ticked = passer.while_ticking(Wait::Recv, TICK, &mut |_| {
            // Make room for one: the oldest pipe held, else a filler.
            if held.is_empty() {
                spare.pop();
            } else {
                held.remove(0);
            }
        });
        if ticked.ticks > 0 {
            stalls += 1;
        }
        let fd = expect_fd(ticked.received());
        assert_eq!(peek_number(&fd), n, "out of order");
        held.push(fd);
        if held.len() == CLOSE_EVERY {
            held.clear();
        }
    }
    // A reservation short of slots reads nothing, not even the end of the
    // stream, until the table has room again.
    drop((spare, held));
    expect_closed(passer.recv());
    ctx.report("stalls", stalls);
}
