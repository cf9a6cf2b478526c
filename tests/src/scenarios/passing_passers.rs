//! Behaviour 5: a socket received through a passer becomes a passer itself,
//! and passes descriptors, sockets included, like the first.

use crate::{
    expect_closed, expect_fd, inherited_passer, numbered_pipe, ok, read_number, Adapter, Config,
    Ctx,
};

fn socketpair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    fdpass_core::socket::pair().expect("socketpair")
}

/// The parent sends the child one end of a new socketpair over the first
/// passer; a pipe crosses the second connection each way; the child then
/// sends the parent one end of another socketpair over the second, and a
/// pipe crosses that third connection each way. The first passer still works
/// afterwards, and each connection closes in an orderly way.
pub fn passing_passers<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("relay");
            let mut first = ok(A::new(socket, Config::default()), "wrap our end");
            let (ours, theirs) = socketpair();
            ok(first.send(theirs), "send a socket");
            let mut second = ok(A::new(ours, Config::default()), "wrap the second socket");
            ok(second.send(numbered_pipe(1)), "send over the second passer");
            assert_eq!(read_number(expect_fd(second.recv())), 2);

            let received = expect_fd(second.recv());
            let mut third = ok(
                A::new(received, Config::default()),
                "wrap a received socket",
            );
            ok(third.send(numbered_pipe(3)), "send over the third passer");
            assert_eq!(read_number(expect_fd(third.recv())), 4);

            ok(first.send(numbered_pipe(5)), "send over the first passer");
            assert_eq!(read_number(expect_fd(first.recv())), 6);
            for mut passer in [third, second, first] {
                passer.close();
            }
            child.finish();
        }
        Some("relay") => {
            let mut first = inherited_passer::<A>(Config::default());
            let received = expect_fd(first.recv());
            let mut second = ok(
                A::new(received, Config::default()),
                "wrap a received socket",
            );
            assert_eq!(read_number(expect_fd(second.recv())), 1);
            ok(second.send(numbered_pipe(2)), "send over the second passer");

            let (ours, theirs) = socketpair();
            ok(second.send(theirs), "send a socket");
            let mut third = ok(A::new(ours, Config::default()), "wrap the third socket");
            assert_eq!(read_number(expect_fd(third.recv())), 3);
            ok(third.send(numbered_pipe(4)), "send over the third passer");

            assert_eq!(read_number(expect_fd(first.recv())), 5);
            ok(first.send(numbered_pipe(6)), "send over the first passer");
            for mut passer in [third, second, first] {
                expect_closed(passer.recv());
            }
        }
        Some(_) => ctx.unknown_role(),
    }
}
