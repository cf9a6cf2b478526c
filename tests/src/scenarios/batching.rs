//! Beyond the original: a batch handed over in one call leaves in messages as
//! full as the settings allow, in order, and a refused batch leaks nothing; a
//! receiver takes descriptors in bulk, in order, up to its limit.
//!
//! The parent reads the socket itself with plain `recvmsg`, so it sees each
//! message's size, which no passer API shows.

use std::os::fd::OwnedFd;

use rustix::net::sockopt;

use crate::{
    inherited_passer, numbered_pipe, ok, open_pipe_ends, read_number, recv_raw, set_nonblocking,
    Adapter, Config, Ctx, Error, Wire, OVERALL,
};

/// Descriptors in the batch: full messages of the default size and a short
/// one.
const BATCH: u64 = 200;
/// The largest message a passer may send.
const SCM_MAX_FD: usize = fdpass_core::SCM_MAX_FD;

/// The child, on the classic wire with a batch of the default limit, pushes
/// `BATCH` descriptors in one `push_send_many` on a socket with room for all;
/// the parent sees full messages and then the rest (128 and 72 at the
/// default limit), in order.
/// Then the child closes its passer, and a batch pushed after that is refused
/// with every descriptor closed.
pub fn batched_push_fills_messages<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("batcher");
            set_nonblocking(&socket, false);
            // Only turns a hang into a failure.
            sockopt::set_socket_timeout(&socket, sockopt::Timeout::Recv, Some(OVERALL))
                .expect("set a receive timeout");
            let mut sizes = Vec::new();
            let mut next = 0;
            while let Some(fds) = recv_raw(&socket, SCM_MAX_FD) {
                sizes.push(fds.len());
                for fd in fds {
                    assert_eq!(read_number(fd), next, "in order");
                    next += 1;
                }
            }
            assert_eq!(next, BATCH, "every descriptor arrived");
            let max = Config::default().max_fds_per_message;
            let mut expected = vec![max; BATCH as usize / max];
            expected.push(BATCH as usize % max);
            assert_eq!(sizes, expected, "descriptors per message");
            child.finish();
        }
        Some("batcher") => {
            // The parent reads the classic wire's messages, raised on purpose
            // to a batch as large as a default receiver takes.
            let max = Config::default().max_fds_per_message;
            let config = Config::default().with_wire(Wire::Classic { batch: max });
            let mut passer = inherited_passer::<A>(config);
            let batch = (0..BATCH).map(numbered_pipe).collect();
            ok(passer.push_send_many(batch), "push_send_many");
            ok(passer.push_send_many(Vec::new()), "an empty batch");
            ok(passer.flush(), "flush");
            passer.close();

            let refused: Vec<OwnedFd> = (0..10).map(numbered_pipe).collect();
            let inodes: Vec<u64> = refused
                .iter()
                .map(|fd| rustix::fs::fstat(fd).expect("fstat").st_ino)
                .collect();
            assert!(matches!(passer.push_send_many(refused), Err(Error::Closed)));
            // Counted by the pipes' own inodes: the runtime's threads may
            // open and close descriptors of their own meanwhile.
            assert_eq!(open_pipe_ends(&inodes), 0, "a refused batch is closed");
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// Descriptors a bulk receiver takes at most per call.
const BULK: usize = 50;

/// The parent sends `BATCH` descriptors in one batch and closes; the child
/// takes them with `recv_many` of at most `BULK`: every call moves 1 to
/// `BULK`, all arrive in order, and the orderly close then reads as 0.
pub fn batched_receive_in_order<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("bulk");
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            let batch = (0..BATCH).map(numbered_pipe).collect();
            ok(passer.push_send_many(batch), "push_send_many");
            ok(passer.flush(), "flush");
            passer.close();
            child.finish();
        }
        Some("bulk") => {
            let mut passer = inherited_passer::<A>(Config::default());
            let mut buf = Vec::with_capacity(BATCH as usize);
            assert_eq!(ok(passer.recv_many(&mut buf, 0), "limit 0"), 0);
            assert!(buf.is_empty(), "a limit of 0 moves nothing");
            while buf.len() < BATCH as usize {
                let before = buf.len();
                let moved = ok(passer.recv_many(&mut buf, BULK), "recv_many");
                assert!((1..=BULK).contains(&moved), "moved {moved}");
                assert_eq!(buf.len(), before + moved, "the count is what was moved");
            }
            assert_eq!(ok(passer.recv_many(&mut buf, BULK), "at the end"), 0);
            for (n, fd) in buf.into_iter().enumerate() {
                assert_eq!(read_number(fd), n as u64, "in order");
            }
        }
        Some(_) => ctx.unknown_role(),
    }
}
