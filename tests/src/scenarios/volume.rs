//! Beyond the original: 100,000 descriptors through one passer, in order,
//! fast. Each is a fresh pipe whose write end got its sequence number.

use std::time::{Duration, Instant};

use crate::{
    expect_closed, expect_fd, inherited_passer, numbered_pipe, ok, read_number, Adapter, Config,
    Ctx,
};

const TOTAL: u64 = 100_000;
/// Queued at once before waiting for the kernel to take them: keeps the
/// sender's table small while letting the passer batch.
const WINDOW: u64 = 1_000;
/// Far more than it takes; one adapter's whole suite must stay well under
/// three minutes on two cores in a debug build.
const BUDGET: Duration = Duration::from_secs(30);

/// The parent queues 100,000 numbered pipes in windows of `WINDOW`; the
/// child checks every number in order.
pub fn hundred_thousand_in_order<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("sink");
            let started = Instant::now();
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            for window in (0..TOTAL).step_by(WINDOW as usize) {
                for n in window..window + WINDOW {
                    ok(passer.push_send(numbered_pipe(n)), "push_send");
                }
                ok(passer.flush(), "flush");
            }
            passer.close();
            let results = child.finish();
            let elapsed = started.elapsed();
            eprintln!(
                "{TOTAL} descriptors in {elapsed:?} (the receiver took {} ms)",
                results.number("receive_ms")
            );
            assert!(elapsed < BUDGET, "{TOTAL} descriptors took {elapsed:?}");
        }
        Some("sink") => {
            let mut passer = inherited_passer::<A>(Config::default());
            let started = Instant::now();
            for n in 0..TOTAL {
                assert_eq!(read_number(expect_fd(passer.recv())), n, "out of order");
            }
            expect_closed(passer.recv());
            ctx.report("receive_ms", started.elapsed().as_millis());
        }
        Some(_) => ctx.unknown_role(),
    }
}
