//! A hostile peer scripted by the input, against a real passer over a real
//! socketpair (`SOCK_STREAM` or `SOCK_SEQPACKET`), on either wire (native,
//! or classic with any batch), with either reservation strategy and any
//! per-message limit.
//!
//! The peer sends any bytes with any descriptors (pipe ends, memfds, sockets
//! with descriptors queued in them, itself, the passer's own socket), or
//! native frames built from the input (a hello with any versions and
//! limits, message frames claiming any descriptors with any payload), reads
//! what the passer sent, shuts down and closes; the application's calls
//! (`fdpass_fuzz::app`) are interleaved, and the descriptor table may be
//! limited so that what arrives does not fit. Checked after every step:
//! everything `fdpass_fuzz::app` checks, and every descriptor received is
//! open and close-on-exec. At the end, with everything dropped, the
//! process's descriptor count is what it was before.

#![no_main]

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use fdpass_core::frame::{self, Hello};
use fdpass_core::{Config, Passer, Reservation, Want, Wire, SCM_MAX_FD};
use fdpass_fuzz::app::{App, Call, Descriptors};
use fdpass_fuzz::table;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::{fcntl_dupfd_cloexec, fcntl_getfd, Errno, FdFlags};
use rustix::net::{
    recvmsg, sendmsg, shutdown, socketpair, AddressFamily, RecvAncillaryBuffer, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketFlags, SocketType,
};

#[derive(Arbitrary, Debug)]
struct Case {
    sentinel: bool,
    seqpacket: bool,
    max_fds: u8,
    /// `None`: the native wire; `Some(batch)`: the classic wire with a
    /// batch of `1 + batch % max_fds`.
    classic: Option<u8>,
    /// After every step, also do what an event loop would: handle readiness
    /// the socket has and the passer waits for, and work it wants done now.
    event_loop: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Us(Call<Kind>),
    /// The peer sends these bytes with these descriptors in one `sendmsg`.
    PeerSend {
        bytes: Vec<u8>,
        fds: Vec<Kind>,
    },
    /// The peer sends a native hello with these fields (the limits as
    /// given, so out-of-range ones too), alone.
    PeerHello {
        min_version: u8,
        max_version: u8,
        max_fds: u16,
        max_payload: u32,
    },
    /// The peer sends native message frames in one `sendmsg`, with these
    /// descriptors attached.
    PeerFrames {
        frames: Vec<Frame>,
        fds: Vec<Kind>,
    },
    /// The peer reads (and closes) what the passer sent.
    PeerRead,
    PeerShutdown(How),
    PeerClose,
    /// Only so many more descriptors fit in the table (0 to 15), or as many
    /// as at the start.
    TableRoom(Option<u8>),
}

/// One native message frame: its header's fields and a payload of
/// `payload_len` bytes (cut to 5000); `length` (if given) is what the
/// header claims instead of the payload's true length.
#[derive(Arbitrary, Debug)]
struct Frame {
    fds: u8,
    batch_fds: u8,
    payload_len: u16,
    length: Option<u32>,
}

impl Frame {
    fn encode(&self, out: &mut Vec<u8>) {
        let payload: Vec<u8> = (0..self.payload_len % 5000).map(|i| i as u8).collect();
        let start = out.len();
        frame::encode_message(out, self.fds, self.batch_fds, &payload);
        if let Some(length) = self.length {
            out[start + 4..start + 8].copy_from_slice(&length.to_be_bytes());
        }
    }
}

/// A descriptor to pass.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    PipeRead,
    PipeWrite,
    Memfd,
    /// A socket with 0 to 3 pipe ends queued in it, and maybe itself.
    Carrier {
        fds: u8,
        itself: bool,
    },
    /// The peer's socket, the one joined to the passer.
    PeerEnd,
    /// The passer's own socket.
    PasserEnd,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum How {
    Read,
    Write,
    Both,
}

/// The limit the input chose: mostly small, sometimes any up to the kernel's.
fn max_fds(n: u8) -> usize {
    match n {
        0..=127 => 1 + usize::from(n % 8),
        _ => (usize::from(n - 127) * 2).min(SCM_MAX_FD),
    }
}

/// Makes the descriptors both sides send, and checks those received.
struct Maker {
    peer: Option<OwnedFd>,
    passer_socket: Arc<fdpass_core::SharedSocket>,
}

impl Descriptors<Kind> for Maker {
    fn make(&mut self, kind: Kind) -> Option<OwnedFd> {
        let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok();
        match kind {
            Kind::PipeRead => pipe().map(|(r, _)| r),
            Kind::PipeWrite => pipe().map(|(_, w)| w),
            Kind::Memfd => {
                rustix::fs::memfd_create("fdpass-fuzz", rustix::fs::MemfdFlags::CLOEXEC).ok()
            }
            Kind::Carrier { fds, itself } => {
                let (inside, outside) = pair(SocketType::STREAM)?;
                let mut queued: Vec<OwnedFd> = (0..fds % 4)
                    .filter_map(|_| pipe().map(|(r, _)| r))
                    .collect();
                if itself {
                    queued.push(fcntl_dupfd_cloexec(&inside, 0).ok()?);
                }
                let _ = send(outside.as_fd(), &[0], &queued);
                Some(inside)
            }
            Kind::PeerEnd => fcntl_dupfd_cloexec(self.peer.as_ref()?, 0).ok(),
            Kind::PasserEnd => fcntl_dupfd_cloexec(&*self.passer_socket, 0).ok(),
        }
    }

    fn received(&mut self, fd: OwnedFd) {
        let flags = fcntl_getfd(&fd).expect("a received descriptor is open");
        assert!(
            flags.contains(FdFlags::CLOEXEC),
            "received without close-on-exec"
        );
    }
}

fn pair(kind: SocketType) -> Option<(OwnedFd, OwnedFd)> {
    socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None).ok()
}

/// One non-blocking `sendmsg`, as any peer could make it.
fn send(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[OwnedFd]) -> Result<usize, Errno> {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(&borrowed));
    }
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    sendmsg(socket, &[IoSlice::new(bytes)], &mut control, flags)
}

/// The peer reads whatever is there (a bounded number of messages) and
/// closes the descriptors.
fn read_all(socket: BorrowedFd<'_>) {
    let mut bytes = [0u8; 4096];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(SCM_MAX_FD))];
    for _ in 0..64 {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let flags = RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC;
        let read = recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut bytes)],
            &mut control,
            flags,
        );
        drop(control.drain().collect::<Vec<_>>());
        if !matches!(read, Ok(msg) if msg.bytes > 0) {
            return;
        }
    }
}

/// What an event loop would call now: readiness of the socket (polled
/// without waiting) for a direction the passer waits on, or work it wants
/// done at once.
fn ready(passer: &Passer) -> Vec<Call<Kind>> {
    let interest = passer.interest();
    let mut flags = PollFlags::empty();
    if interest.read == Want::WhenReady {
        flags |= PollFlags::IN;
    }
    if interest.write == Want::WhenReady {
        flags |= PollFlags::OUT;
    }
    let mut fds = [PollFd::new(passer, flags)];
    let revents = match poll(&mut fds, Some(&Timespec::default())) {
        Ok(_) => fds[0].revents(),
        Err(_) => PollFlags::empty(),
    };
    let mut calls = Vec::new();
    if interest.read == Want::Now
        || revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
    {
        calls.push(Call::Readable);
    }
    if interest.write == Want::Now
        || revents.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR)
    {
        calls.push(Call::Writable);
    }
    calls
}

fn run(case: Case) {
    let kind = if case.seqpacket {
        SocketType::SEQPACKET
    } else {
        SocketType::STREAM
    };
    let Some((ours, peer)) = pair(kind) else {
        return;
    };
    let reservation = if case.sentinel {
        Reservation::Sentinel
    } else {
        Reservation::Peek
    };
    let max_fds = max_fds(case.max_fds);
    let wire = match case.classic {
        None => Wire::Native,
        Some(batch) => Wire::Classic {
            batch: 1 + usize::from(batch) % max_fds,
        },
    };
    let config = Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max_fds)
        .with_wire(wire);
    let mut passer = Passer::new(ours, config).expect("a passer over a new socketpair");
    let mut maker = Maker {
        peer: Some(peer),
        passer_socket: passer.shared_socket(),
    };
    let mut app = App::default();
    for step in case.steps {
        match step {
            Step::Us(call) => {
                app.call(&mut passer, call, &mut maker);
                // Handed back by `take_unsent`: the application closes them.
                drop(app.take_handed_back());
            }
            Step::PeerSend { bytes, fds } => {
                let fds: Vec<OwnedFd> = fds.into_iter().filter_map(|k| maker.make(k)).collect();
                if let Some(peer) = &maker.peer {
                    let _ = send(peer.as_fd(), &bytes, &fds);
                }
            }
            Step::PeerHello {
                min_version,
                max_version,
                max_fds,
                max_payload,
            } => {
                let hello = Hello {
                    min_version,
                    max_version,
                    max_fds,
                    max_payload,
                };
                if let Some(peer) = &maker.peer {
                    let _ = send(peer.as_fd(), &hello.encode(), &[]);
                }
            }
            Step::PeerFrames { frames, fds } => {
                let fds: Vec<OwnedFd> = fds.into_iter().filter_map(|k| maker.make(k)).collect();
                let mut bytes = Vec::new();
                for frame in &frames {
                    frame.encode(&mut bytes);
                }
                if let Some(peer) = &maker.peer {
                    let _ = send(peer.as_fd(), &bytes, &fds);
                }
            }
            Step::PeerRead => {
                if let Some(peer) = &maker.peer {
                    read_all(peer.as_fd());
                }
            }
            Step::PeerShutdown(how) => {
                if let Some(peer) = &maker.peer {
                    let how = match how {
                        How::Read => Shutdown::Read,
                        How::Write => Shutdown::Write,
                        How::Both => Shutdown::Both,
                    };
                    let _ = shutdown(peer, how);
                }
            }
            Step::PeerClose => maker.peer = None,
            Step::TableRoom(Some(room)) => table::limit_room(usize::from(room % 16)),
            Step::TableRoom(None) => table::restore_room(),
        }
        if case.event_loop {
            for call in ready(&passer) {
                app.call(&mut passer, call, &mut maker);
                drop(app.take_handed_back());
            }
        }
    }
    table::restore_room();
    app.drain(&mut passer, &mut maker);
}

fuzz_target!(|case: Case| {
    let before = table::open_count();
    run(case);
    assert_eq!(table::open_count(), before, "descriptors leaked");
});
