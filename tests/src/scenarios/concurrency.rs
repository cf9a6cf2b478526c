//! Beyond the original: the peek reservation stays lossless while other
//! tasks (threads of a multi-thread runtime) open and close descriptors in a
//! nearly full table, competing with the passer for every free slot.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::{
    expect_closed, expect_fd, fill_table, inherited, limit_descriptors, numbered_pipe, ok,
    open_dev_null, read_number, Adapter, Config, Ctx, Reservation,
};

const LIMIT: u64 = 64;
/// Slots left free once the table is filled: no more than the workers can
/// take at once.
const FREE: usize = 6;
const WORKERS: usize = 3;
/// Together the workers can take every free slot.
const HELD_PER_WORKER: usize = 2;
/// At most this many descriptors per message (no more than `FREE`), so that
/// one message always fits once the workers let go.
const PER_MESSAGE: usize = 4;
const PIPES: u64 = 3_000;
/// The parent queues this many before waiting for the kernel to take them.
const WINDOW: u64 = 100;

fn config() -> Config {
    Config::default()
        .with_reservation(Reservation::Peek)
        .with_max_fds_per_message(PER_MESSAGE)
}

/// The child fills its table but for `FREE` slots, starts `WORKERS` workers
/// that each open `/dev/null` `HELD_PER_WORKER` times and close those on
/// their next turn, over and over, and receives `PIPES` numbered pipes
/// meanwhile: all arrive, in order. This needs the peek reservation (the
/// sentinel's known hole is exactly these concurrent opens); where it is not
/// lossless, it is refused instead.
pub fn nearly_full_table_with_concurrent_opens<A: Adapter>(ctx: &Ctx) {
    if crate::peek_refused_here::<A>(config()) {
        return;
    }
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("contended");
            let mut passer = ok(A::new(socket, config()), "wrap our end");
            for window in (0..PIPES).step_by(WINDOW as usize) {
                for n in window..window + WINDOW {
                    ok(passer.push_send(numbered_pipe(n)), "push_send");
                }
                ok(passer.flush(), "flush");
            }
            passer.close();
            let results = child.finish();
            let opens = results.number("worker_opens");
            eprintln!(
                "{PIPES} descriptors in order while workers opened /dev/null {opens} times ({} refused: table full)",
                results.number("worker_refusals")
            );
            assert!(opens > 0, "the workers never ran");
        }
        Some("contended") => contended::<A>(ctx),
        Some(_) => ctx.unknown_role(),
    }
}

fn contended<A: Adapter>(ctx: &Ctx) {
    let mut passer = ok(
        A::new_multi_thread(inherited(), config()),
        "wrap the inherited socket",
    );
    limit_descriptors(LIMIT);
    let mut filler = fill_table();
    assert!(filler.len() > FREE, "the table had too little room to fill");
    filler.truncate(filler.len() - FREE);

    let stop = Arc::new(AtomicBool::new(false));
    let opens = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (stop, opens, refusals) = (stop.clone(), opens.clone(), refusals.clone());
            let mut held: Vec<OwnedFd> = Vec::with_capacity(HELD_PER_WORKER);
            passer.spawn_worker(Box::new(move || {
                // Alternate: open on one turn, close on the next, so each
                // worker holds its slots half of the time.
                if held.is_empty() {
                    for _ in 0..HELD_PER_WORKER {
                        match open_dev_null() {
                            Ok(fd) => {
                                held.push(fd);
                                opens.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(rustix::io::Errno::MFILE) => {
                                refusals.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("open /dev/null failed: {e}"),
                        }
                    }
                } else {
                    held.clear();
                }
                !stop.load(Ordering::Relaxed)
            }))
        })
        .collect();

    for n in 0..PIPES {
        assert_eq!(read_number(expect_fd(passer.recv())), n, "out of order");
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join();
    }
    expect_closed(passer.recv());
    ctx.report("worker_opens", opens.load(Ordering::Relaxed));
    ctx.report("worker_refusals", refusals.load(Ordering::Relaxed));
}
