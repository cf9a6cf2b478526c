//! Behaviour 1: one passer sends and receives at the same time, over a
//! socketpair handed to a child and over a connection made at a filesystem
//! path.

use crate::{
    expect_closed, expect_fd, inherited_passer, numbered_pipe, ok, read_number, Adapter,
    ChildProcess, Config, Ctx, TempDir,
};

const TO_CHILD: [u64; 3] = [1, 2, 3];
const TO_PARENT: [u64; 3] = [101, 102, 103];

/// The child's environment variable naming the path to connect to.
const PATH_VAR: &str = "FDPASS_CONFORMANCE_PATH";

/// Descriptors travel both ways over one passer on a socketpair whose other
/// end a child inherited.
pub fn bidirectional_socketpair<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("peer");
            exchange_as_parent(ok(A::new(socket, Config::default()), "wrap our end"));
            child.finish();
        }
        Some("peer") => exchange_as_child(inherited_passer::<A>(Config::default())),
        Some(_) => ctx.unknown_role(),
    }
}

/// Descriptors travel both ways over one passer accepted at a filesystem
/// path, to which a child connected.
pub fn bidirectional_path<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let dir = TempDir::new("path");
            let path = dir.path().join("passer.sock");
            let mut child = None;
            let passer = ok(
                A::accept(&path, &mut || {
                    let mut command = ctx.command("connector");
                    command.env(PATH_VAR, &path);
                    child = Some(ChildProcess::start("connector", command));
                }),
                "accept",
            );
            exchange_as_parent(passer);
            child.expect("the connector was started").finish();
        }
        Some("connector") => {
            let path = std::env::var_os(PATH_VAR).expect("the path to connect to");
            exchange_as_child(ok(A::connect(path.as_ref()), "connect"));
        }
        Some(_) => ctx.unknown_role(),
    }
}

fn exchange_as_parent<A: Adapter>(mut passer: A) {
    // Ours are queued before theirs are taken: both directions are in flight
    // at once.
    for n in TO_CHILD {
        ok(passer.push_send(numbered_pipe(n)), "push_send");
    }
    for n in TO_PARENT {
        assert_eq!(read_number(expect_fd(passer.recv())), n);
    }
    ok(passer.flush(), "flush");
    passer.close();
}

fn exchange_as_child<A: Adapter>(mut passer: A) {
    for n in TO_PARENT {
        ok(passer.push_send(numbered_pipe(n)), "push_send");
    }
    for n in TO_CHILD {
        assert_eq!(read_number(expect_fd(passer.recv())), n);
    }
    ok(passer.flush(), "flush");
    expect_closed(passer.recv());
}
