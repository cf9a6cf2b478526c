//! Behaviour 2: waiting for the peer never blocks the event loop. A receive
//! requested long before anything is sent, and a burst sent long before the
//! peer asks for it, both leave this side's own timer firing; the peer acts
//! only when told to, after a number of ticks.

use std::time::Duration;

use crate::{
    expect_closed, expect_fd, inherited_passer, numbered_pipe, ok, read_number, Adapter, Config,
    Ctx, Wait,
};

const TICK: Duration = Duration::from_millis(5);
/// The peer is told to act on this tick.
const SIGNAL_AT: u64 = 5;

/// A receive pending while nothing is sent keeps the timer firing; the peer
/// sends only after `SIGNAL_AT` ticks.
pub fn recv_before_send_does_not_block<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, mut child) = ctx.spawn_connected("late-sender");
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            let ticked = passer.while_ticking(Wait::Recv, TICK, &mut |tick| {
                if tick == SIGNAL_AT {
                    child.signal();
                }
            });
            let ticks = ticked.ticks;
            assert_eq!(read_number(expect_fd(ticked.received())), 7);
            assert!(ticks >= SIGNAL_AT, "received after only {ticks} ticks");
            passer.close();
            child.finish();
        }
        Some("late-sender") => {
            let mut passer = inherited_passer::<A>(Config::default());
            ctx.wait_signal();
            ok(passer.send(numbered_pipe(7)), "send");
            expect_closed(passer.recv());
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// One descriptor per message, so the burst is many messages.
fn one_per_message() -> Config {
    Config::default().with_max_fds_per_message(1)
}

/// More than a minimal socket send buffer holds.
const BURST: u64 = 64;

/// `send` returns once the kernel took the descriptor, though the peer has not
/// asked; a burst that does not fit in the socket is queued without blocking,
/// and waiting for it to drain keeps the timer firing until the peer, told to
/// after `SIGNAL_AT` ticks, reads it.
pub fn send_before_recv_does_not_block<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, mut child) = ctx.spawn_connected("late-receiver");
            // The smallest send buffer the kernel allows: the burst cannot fit.
            rustix::net::sockopt::set_socket_send_buffer_size(&socket, 1)
                .expect("shrink the send buffer");
            let mut passer = ok(A::new(socket, one_per_message()), "wrap our end");
            ok(passer.send(numbered_pipe(0)), "send before the peer asks");
            for n in 1..=BURST {
                ok(passer.push_send(numbered_pipe(n)), "push_send");
            }
            let ticked = passer.while_ticking(Wait::Flush, TICK, &mut |tick| {
                if tick == SIGNAL_AT {
                    child.signal();
                }
            });
            let ticks = ticked.ticks;
            ok(ticked.flushed(), "flush");
            assert!(
                ticks >= SIGNAL_AT,
                "the burst drained after {ticks} ticks, before the peer was told to read: the send buffer did not fill"
            );
            passer.close();
            child.finish();
        }
        Some("late-receiver") => {
            let mut passer = inherited_passer::<A>(one_per_message());
            ctx.wait_signal();
            for n in 0..=BURST {
                assert_eq!(read_number(expect_fd(passer.recv())), n);
            }
            expect_closed(passer.recv());
        }
        Some(_) => ctx.unknown_role(),
    }
}
