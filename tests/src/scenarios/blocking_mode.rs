//! Behaviour 4: passing leaves a descriptor's `O_NONBLOCK` as it was, and a
//! passer's socket keeps its mode across the spawn of the peer process.

use fdpass_core::child::{ENV_VAR, ID_VAR};
use rustix::pipe::PipeFlags;

use crate::{
    expect_closed, expect_fd, inherited, inherited_passer, is_nonblocking, numbered_pipe,
    numbered_pipe_with, ok, read_number, set_nonblocking, Adapter, ChildProcess, Config, Ctx,
};

/// A non-blocking and a blocking pipe go to the child, which finds each mode
/// as it was sent, and sends back a blocking and a non-blocking one, which
/// the parent finds as they were sent.
pub fn nonblocking_flag_survives_passing<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("checker");
            let mut passer = ok(A::new(socket, Config::default()), "wrap our end");
            ok(
                passer.push_send(numbered_pipe_with(1, PipeFlags::NONBLOCK)),
                "push_send",
            );
            ok(passer.push_send(numbered_pipe(2)), "push_send");
            let blocking = expect_fd(passer.recv());
            let nonblocking = expect_fd(passer.recv());
            assert!(
                !is_nonblocking(&blocking),
                "a blocking pipe arrived non-blocking"
            );
            assert!(
                is_nonblocking(&nonblocking),
                "a non-blocking pipe arrived blocking"
            );
            assert_eq!(read_number(blocking), 3);
            assert_eq!(read_number(nonblocking), 4);
            passer.close();
            child.finish();
        }
        Some("checker") => {
            let mut passer = inherited_passer::<A>(Config::default());
            let nonblocking = expect_fd(passer.recv());
            let blocking = expect_fd(passer.recv());
            assert!(
                is_nonblocking(&nonblocking),
                "a non-blocking pipe arrived blocking"
            );
            assert!(
                !is_nonblocking(&blocking),
                "a blocking pipe arrived non-blocking"
            );
            assert_eq!(read_number(nonblocking), 1);
            assert_eq!(read_number(blocking), 2);
            ok(passer.push_send(numbered_pipe(3)), "push_send");
            ok(
                passer.push_send(numbered_pipe_with(4, PipeFlags::NONBLOCK)),
                "push_send",
            );
            ok(passer.flush(), "flush");
            expect_closed(passer.recv());
        }
        Some(_) => ctx.unknown_role(),
    }
}

/// Our passer's socket is non-blocking and stays so while a child is spawned
/// with the other end; that end, made non-blocking before the spawn, is
/// non-blocking in the child too, so the child's passer can skip setting it
/// (`set_nonblocking(false)`), and both passers work.
pub fn socket_mode_survives_spawn<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (ours, theirs) = fdpass_core::socket::pair().expect("socketpair");
            // A duplicate shares the socket's open file description, and so
            // its mode: it lets us look at the socket the passer owns.
            let probe = ours.try_clone().expect("dup");
            let mut passer = ok(A::new(ours, Config::default()), "wrap our end");
            assert!(
                is_nonblocking(&probe),
                "the passer left its socket blocking"
            );

            set_nonblocking(&theirs, true);
            // The child's end becomes its standard input; it adopts it as the
            // inherited socket.
            let mut command = ctx.command("prepared");
            command.env(ENV_VAR, "0");
            // What Handoff::configure would put there: the socket's identity.
            let stat = rustix::fs::fstat(&theirs).expect("fstat");
            command.env(ID_VAR, format!("{}:{}", stat.st_dev, stat.st_ino));
            let child = ChildProcess::start_with_stdin("prepared", command, theirs);
            assert!(
                is_nonblocking(&probe),
                "spawning the child changed our socket's mode"
            );

            ok(passer.send(numbered_pipe(1)), "send");
            assert_eq!(read_number(expect_fd(passer.recv())), 2);
            assert!(is_nonblocking(&probe), "passing changed our socket's mode");
            drop(probe);
            passer.close();
            child.finish();
        }
        Some("prepared") => {
            let socket = inherited();
            assert!(
                is_nonblocking(&socket),
                "the mode set before the spawn did not reach the child"
            );
            let config = Config::default().with_set_nonblocking(false);
            let mut passer = ok(A::new(socket, config), "wrap the inherited socket");
            assert_eq!(read_number(expect_fd(passer.recv())), 1);
            ok(passer.send(numbered_pipe(2)), "send");
            expect_closed(passer.recv());
        }
        Some(_) => ctx.unknown_role(),
    }
}
