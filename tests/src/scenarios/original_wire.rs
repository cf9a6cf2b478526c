//! Beyond the original: fdpass talks to a peer that speaks
//! AnyEvent::FDpasser's wire format, written with nothing but `sendmsg` and
//! `recvmsg`: each descriptor travels as one zero byte with one
//! `SCM_RIGHTS` descriptor, and is read as one byte with room for one.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{sendmsg, sockopt, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::{
    expect_fd, inherited, numbered_pipe, ok, read_number, recv_raw, Adapter, Config, Ctx, Wire,
    OVERALL,
};

const EACH_WAY: u64 = 20;
const PEER_BASE: u64 = 100;

/// An fdpass passer on the classic wire with its default batch (one
/// descriptor per message) exchanges `EACH_WAY` numbered pipes each way with
/// the original-format peer.
pub fn original_wire_peer<A: Adapter>(ctx: &Ctx) {
    match ctx.role() {
        None => {
            let (socket, child) = ctx.spawn_connected("original");
            // The classic wire's default is what the original speaks; the
            // receive limit of 1 checks the original never sends more.
            let config = Config::default()
                .with_wire(Wire::CLASSIC)
                .with_max_fds_per_message(1);
            let mut passer = ok(A::new(socket, config), "wrap our end");
            for n in 0..EACH_WAY {
                ok(passer.push_send(numbered_pipe(n)), "push_send");
            }
            ok(passer.flush(), "flush");
            for n in 0..EACH_WAY {
                assert_eq!(read_number(expect_fd(passer.recv())), PEER_BASE + n);
            }
            passer.close();
            child.finish();
        }
        Some("original") => original_peer(),
        Some(_) => ctx.unknown_role(),
    }
}

fn original_peer() {
    // A plain blocking socket, as the original's peer would use; the timeout
    // only turns a hang into a failure.
    let socket = inherited();
    sockopt::set_socket_timeout(&socket, sockopt::Timeout::Recv, Some(OVERALL))
        .expect("set a receive timeout");
    for n in 0..EACH_WAY {
        let fd = receive_one(&socket).expect("a descriptor, not end of stream");
        assert_eq!(read_number(fd), n);
    }
    for n in 0..EACH_WAY {
        send_one(&socket, numbered_pipe(PEER_BASE + n));
    }
    assert!(
        receive_one(&socket).is_none(),
        "end of stream once the passer closed"
    );
}

/// One `sendmsg`: one zero byte, one descriptor.
fn send_one(socket: impl AsFd, fd: OwnedFd) {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let sent = sendmsg(
        socket,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .expect("sendmsg");
    assert_eq!(sent, 1, "one byte per descriptor");
}

/// One `recvmsg` of one byte with room for one descriptor; `None` at end of
/// stream.
fn receive_one(socket: impl AsFd) -> Option<OwnedFd> {
    let mut fds = recv_raw(socket, 1)?;
    assert_eq!(fds.len(), 1, "one descriptor with each byte");
    fds.pop()
}
