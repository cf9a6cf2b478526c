//! Every decoder of native-wire input: `frame::Header::decode` and
//! `frame::Hello::decode` on any bytes, and the passer's native decoder fed,
//! through a `Sys` that simulates the peer's side of the socket, any bytes in
//! any sends with any number of descriptors attached, read back in any
//! splits (short reads), as a stream or as records, with the table full or
//! not, with either reservation strategy and any limits.
//!
//! Checked:
//! - the codecs never panic, and what they accept encodes back to the same
//!   bytes;
//! - besides everything `fdpass_fuzz::app` checks: the payloads delivered
//!   are, in order, those a decoder written from `docs/wire.md` finds in the
//!   bytes the passer read (a prefix of them: the passer may stop at an
//!   error or wait for a request), and descriptors are delivered in the
//!   order the peer attached them, each at most once;
//! - at the end, with everything dropped, nothing is left open.

#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use fdpass_core::frame::{self, Header, Hello, Kind};
use fdpass_core::sys::{Received, RecvMode, Sys};
use fdpass_core::{Config, Passer, Reservation, MIN_PAYLOAD_LIMIT, SCM_MAX_FD};
use fdpass_fuzz::app::{App, Call, Descriptors};
use fdpass_fuzz::table;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rustix::fs::{memfd_create, MemfdFlags};
use rustix::io::{fcntl_dupfd_cloexec, fcntl_getfd, Errno, FdFlags};

/// How many descriptors beyond the asked-for room the kernel may install:
/// control space is rounded up for alignment.
const EXTRA_ROOM: usize = 3;

#[derive(Arbitrary, Debug)]
struct Case {
    header: [u8; frame::HEADER_LEN],
    hello: [u8; frame::HELLO_LEN],
    sentinel: bool,
    seqpacket: bool,
    max_fds: u8,
    /// Payload limit: 4096 plus this.
    max_payload: u16,
    /// The peer's first send is a valid hello with these limits (else the
    /// input's bytes are all there is).
    hello_first: Option<(u8, u16)>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    App(Call<()>),
    /// The peer sends these bytes with this many descriptors attached.
    PeerSend {
        bytes: Vec<u8>,
        fds: u8,
    },
    /// The peer sends well-formed frames (header fields from the input) in
    /// one send, with `fds` descriptors attached.
    PeerFrames {
        frames: Vec<(u8, u8, u16)>,
        fds: u8,
    },
    /// The peer closes its end: reads find the end of the stream once
    /// everything sent was read.
    PeerClose,
    /// The next read returns at most this many bytes (at least one).
    ShortRead(u8),
    /// The next `recvmsg` or look fails with this errno.
    Fail(u8),
    /// The table is full (no descriptor can be installed or duplicated), or
    /// not.
    TableFull(bool),
}

fn errno(n: u8) -> Errno {
    const SPECIAL: [Errno; 6] = [
        Errno::AGAIN,
        Errno::INTR,
        Errno::NOBUFS,
        Errno::NOMEM,
        Errno::CONNRESET,
        Errno::MFILE,
    ];
    SPECIAL[usize::from(n) % SPECIAL.len()]
}

/// One send of the peer: bytes, and the descriptors the kernel attached to
/// its first byte (the kernel's own references, each a memfd named after
/// its place in the peer's order).
#[derive(Debug)]
struct Chunk {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

#[derive(Debug, Default)]
struct Kernel {
    seqpacket: bool,
    chunks: VecDeque<Chunk>,
    peer_closed: bool,
    table_full: bool,
    short_read: Option<usize>,
    fail: Option<Errno>,
    /// Descriptors the peer attached so far.
    attached: u64,
    /// The bytes the passer consumed, in order.
    consumed: Vec<u8>,
}

fn named(seq: u64) -> OwnedFd {
    memfd_create(format!("fdpass-frames-{seq}"), MemfdFlags::CLOEXEC).expect("memfd")
}

/// The peer's order of a descriptor this target made.
fn seq_of(fd: BorrowedFd<'_>) -> Option<u64> {
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        rustix::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .ok()?;
    let link = link.to_string_lossy();
    let name = link.strip_prefix("/memfd:fdpass-frames-")?;
    name.strip_suffix(" (deleted)").unwrap_or(name).parse().ok()
}

impl Kernel {
    fn send(&mut self, bytes: Vec<u8>, fds: u8) {
        if self.peer_closed || (bytes.is_empty() && (self.seqpacket || fds == 0)) {
            return;
        }
        let bytes = if bytes.is_empty() { vec![0] } else { bytes };
        let fds = (0..usize::from(fds) % (SCM_MAX_FD + 1))
            .map(|_| {
                self.attached += 1;
                named(self.attached - 1)
            })
            .collect();
        self.chunks.push_back(Chunk { bytes, fds });
    }

    /// What a read into a buffer of `buf` bytes returns (at most `limit` of
    /// them on a stream): the bytes, the descriptors that come with them
    /// (those of one send at most), and whether a record was cut. Consumes
    /// them unless `peek`.
    fn read(&mut self, buf: usize, limit: usize, peek: bool) -> (Vec<u8>, Vec<OwnedFd>, bool) {
        let mut out = Vec::new();
        let mut fds = Vec::new();
        if self.seqpacket {
            let Some(chunk) = self.chunks.front() else {
                return (out, fds, false);
            };
            let cut = chunk.bytes.len() > buf;
            out.extend_from_slice(&chunk.bytes[..chunk.bytes.len().min(buf)]);
            let chunk = if peek {
                fds = chunk
                    .fds
                    .iter()
                    .map(|fd| fd.try_clone().expect("dup"))
                    .collect();
                return (out, fds, cut);
            } else {
                self.chunks.pop_front().expect("front")
            };
            return (out, chunk.fds, cut);
        }
        // As Linux's `unix_stream_read_generic`: bytes of consecutive sends
        // are joined, and a read stops after the first send that carries
        // descriptors. A peek does not stop where its buffer fills: it goes
        // on to the next send that carries descriptors and returns copies of
        // them, with none of its bytes.
        let mut i = 0;
        while let Some(chunk) = self.chunks.get_mut(i) {
            let carries = !chunk.fds.is_empty();
            if out.len() == limit {
                if !peek {
                    break;
                }
                if carries {
                    fds.extend(chunk.fds.iter().map(|fd| fd.try_clone().expect("dup")));
                    break;
                }
                i += 1;
                continue;
            }
            let take = chunk.bytes.len().min(limit - out.len());
            out.extend_from_slice(&chunk.bytes[..take]);
            if peek {
                fds.extend(chunk.fds.iter().map(|fd| fd.try_clone().expect("dup")));
                i += 1;
            } else {
                fds.append(&mut chunk.fds);
                chunk.bytes.drain(..take);
                if chunk.bytes.is_empty() {
                    self.chunks.pop_front();
                }
            }
            if carries {
                break;
            }
        }
        (out, fds, false)
    }
}

#[derive(Debug)]
struct FramesSys(Rc<RefCell<Kernel>>);

impl Sys for FramesSys {
    fn sendmsg(&mut self, _: BorrowedFd<'_>, bytes: &[u8], _: &[OwnedFd]) -> Result<usize, Errno> {
        Ok(bytes.len())
    }

    fn recvmsg(
        &mut self,
        _: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno> {
        let mut k = self.0.borrow_mut();
        if let Some(errno) = k.fail.take() {
            return Err(errno);
        }
        if k.chunks.is_empty() {
            return if k.peer_closed {
                Ok(Received::default())
            } else {
                Err(Errno::AGAIN)
            };
        }
        let limit = match mode {
            // The read that consumes a peeked message takes what was peeked.
            RecvMode::Discard => buf.len(),
            _ => k
                .short_read
                .take()
                .map_or(buf.len(), |n| n.clamp(1, buf.len().max(1))),
        };
        let (bytes, carried, cut) = k.read(buf.len(), limit, mode == RecvMode::Peek);
        buf[..bytes.len()].copy_from_slice(&bytes);
        if mode != RecvMode::Peek {
            k.consumed.extend_from_slice(&bytes);
        }
        let room = match mode {
            // No control buffer: nothing can be installed.
            RecvMode::Discard => 0,
            _ if max_fds == 0 || k.table_full => 0,
            _ => max_fds + EXTRA_ROOM,
        };
        let total = carried.len();
        for fd in carried.into_iter().take(room) {
            fds.push(fcntl_dupfd_cloexec(&fd, 0).expect("install"));
        }
        Ok(Received {
            bytes: bytes.len(),
            truncated_data: cut,
            truncated_control: fds.len() < total || total > max_fds + EXTRA_ROOM,
            foreign_control: false,
        })
    }

    fn peek_bytes(&mut self, _: BorrowedFd<'_>, buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        let mut k = self.0.borrow_mut();
        if let Some(errno) = k.fail.take() {
            return Some(Err(errno));
        }
        Some(match k.chunks.front() {
            Some(chunk) => Ok(chunk.bytes.len().min(buf.len())),
            None if k.peer_closed => Ok(0),
            None => Err(Errno::AGAIN),
        })
    }

    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        if self.0.borrow().table_full {
            return Err(Errno::MFILE);
        }
        fcntl_dupfd_cloexec(fd, 0)
    }

    fn close(&mut self, fd: OwnedFd) {
        drop(fd);
    }

    fn set_nonblocking(&mut self, _: BorrowedFd<'_>) -> Result<(), Errno> {
        Ok(())
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
    }

    fn shutdown(&mut self, _: BorrowedFd<'_>) -> Result<(), Errno> {
        Ok(())
    }

    fn peek_is_lossless(&mut self) -> bool {
        true
    }
}

/// Makes descriptors to send, and checks those received: in the peer's
/// order, each once.
struct Checker {
    last: Option<u64>,
}

impl Descriptors<()> for Checker {
    fn make(&mut self, (): ()) -> Option<OwnedFd> {
        memfd_create("fdpass-frames-ours", MemfdFlags::CLOEXEC).ok()
    }

    fn received(&mut self, fd: OwnedFd) {
        let flags = fcntl_getfd(&fd).expect("a received descriptor is open");
        assert!(
            flags.contains(FdFlags::CLOEXEC),
            "received without close-on-exec"
        );
        let seq = seq_of(fd.as_fd()).expect("received a descriptor the peer never sent");
        assert!(
            self.last < Some(seq),
            "descriptor {seq} delivered after {:?}: out of order or twice",
            self.last
        );
        self.last = Some(seq);
    }
}

/// The payloads `docs/wire.md`'s rules find in `bytes`, with the limits a
/// passer announced: after the 24-byte hello, frames of an 8-byte header
/// and `length` bytes. Stops at the first thing that is not a whole,
/// acceptable message frame.
fn reference_payloads(bytes: &[u8], max_fds: usize, max_payload: usize) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    let Some(hello) = bytes.get(..frame::HELLO_LEN) else {
        return payloads;
    };
    if hello[0] != b'H' || hello[8..16] != *b"fdpass\r\n" {
        return payloads;
    }
    let mut at = frame::HELLO_LEN;
    while let Some(header) = bytes.get(at..at + 8) {
        let fds = usize::from(header[1]);
        let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if header[0] != b'M' || header[3] != 0 || fds > max_fds || length > max_payload {
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + length) else {
            break;
        };
        if !payload.is_empty() {
            payloads.push(payload.to_vec());
        }
        at += 8 + length;
    }
    payloads
}

fn codecs(case: &Case) {
    if let Ok(header) = Header::decode(&case.header) {
        if header.kind == Kind::Message {
            let mut out = Vec::new();
            frame::encode_message(&mut out, header.fds, header.batch_fds, &[]);
            out[4..8].copy_from_slice(&header.length.to_be_bytes());
            assert_eq!(out, case.header, "a decoded header encodes back the same");
        }
    }
    if let Ok(hello) = Hello::decode(&case.hello) {
        assert_eq!(
            hello.encode(),
            case.hello,
            "a decoded hello encodes back the same"
        );
        let ours = Hello::announcing(128, 65536);
        let _ = ours.version_with(&hello);
    }
}

fn run(case: Case) {
    codecs(&case);
    let max_fds = 1 + usize::from(case.max_fds) % SCM_MAX_FD;
    let max_payload = MIN_PAYLOAD_LIMIT + usize::from(case.max_payload);
    let kernel = Rc::new(RefCell::new(Kernel {
        seqpacket: case.seqpacket,
        ..Kernel::default()
    }));
    if let Some((fds, extra)) = case.hello_first {
        let hello = Hello::announcing(
            1 + usize::from(fds) % SCM_MAX_FD,
            MIN_PAYLOAD_LIMIT + usize::from(extra),
        );
        kernel.borrow_mut().send(hello.encode().to_vec(), 0);
    }
    let reservation = if case.sentinel {
        Reservation::Sentinel
    } else {
        Reservation::Peek
    };
    let config = Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max_fds)
        .with_max_payload_len(max_payload);
    // The socket is a stand-in: the simulated kernel never touches it.
    let socket = memfd_create("fdpass-frames-socket", MemfdFlags::CLOEXEC).expect("memfd");
    let Ok(mut passer) = Passer::with_sys(FramesSys(Rc::clone(&kernel)), socket, config) else {
        return;
    };
    let mut checker = Checker { last: None };
    let mut app = App::default();
    for step in case.steps {
        match step {
            Step::App(call) => {
                app.call(&mut passer, call, &mut checker);
                drop(app.take_handed_back());
            }
            Step::PeerSend { bytes, fds } => kernel.borrow_mut().send(bytes, fds),
            Step::PeerFrames { frames, fds } => {
                let mut bytes = Vec::new();
                for (i, &(fds, batch_fds, len)) in frames.iter().enumerate() {
                    let payload: Vec<u8> = (0..len % 5000).map(|j| (i as u8) ^ (j as u8)).collect();
                    frame::encode_message(&mut bytes, fds, batch_fds, &payload);
                }
                kernel.borrow_mut().send(bytes, fds);
            }
            Step::PeerClose => kernel.borrow_mut().peer_closed = true,
            Step::ShortRead(n) => kernel.borrow_mut().short_read = Some(usize::from(n)),
            Step::Fail(n) => kernel.borrow_mut().fail = Some(errno(n)),
            Step::TableFull(full) => kernel.borrow_mut().table_full = full,
        }
        let consumed = kernel.borrow().consumed.clone();
        let expected = reference_payloads(&consumed, max_fds, max_payload);
        let got = app.payloads();
        assert!(
            got.len() <= expected.len() && got == &expected[..got.len()],
            "delivered payloads {got:?} are not the first of {expected:?}"
        );
    }
    kernel.borrow_mut().table_full = false;
    app.drain(&mut passer, &mut checker);
    drop(passer);
    kernel.borrow_mut().chunks.clear();
}

fuzz_target!(|case: Case| {
    let before = table::open_count();
    run(case);
    assert_eq!(table::open_count(), before, "descriptors leaked");
});
