//! A fake [`Sys`] for fault injection and simulation.
//!
//! Every descriptor the fake hands out is a real memfd named
//! `fdpass-fake-<tag>-<label>`, so closing is real: an `OwnedFd` cannot be
//! closed twice, one that is never closed stays visible in `/proc/self/fd`,
//! and a test tells which descriptor arrived from its name alone. The tag is
//! unique per [`Fake`], so leak checks work while other tests run in parallel
//! threads of the same process.
//!
//! Each call is answered by the first of:
//! 1. a fault planted at the n-th call ([`Fake::plant_fault`]), used to sweep
//!    every fault over every step of a scenario;
//! 2. a scripted step queued for that side and call kind ([`Fake::on_send`],
//!    [`Fake::on_recv`], ...);
//! 3. a simulated kernel shared by both sides, which joins two passers into a
//!    connected pair: two byte streams that carry descriptors the way Linux
//!    `AF_UNIX` stream sockets do (or, after [`Fake::set_seqpacket`], two
//!    queues of records as `SOCK_SEQPACKET` sockets do), a receive capacity,
//!    and a descriptor table per side with an optional limit. The bytes
//!    written are the bytes read, so the native wire's frames travel whole;
//!    a scripted answer reads as zeros.
//!
//! The table of a side counts every descriptor the fake installed there (by
//! `dup`, `pipe` or `recvmsg`, plus the numbered descriptors a test creates to
//! send) until it is closed through [`Sys::close`] or handed back with
//! [`Fake::app_close`]. A descriptor that disappears any other way stays in the
//! table and fails [`Fake::finish`].

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use fdpass_core::sys::{Received, RecvMode, Sys};
use fdpass_core::{Config, Error, Passer};
use rustix::fs::{memfd_create, MemfdFlags};
use rustix::io::Errno;

/// A passer over the fake.
pub type FakePasser = Passer<FakeSys>;

/// One end of the simulated connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    pub fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// What a descriptor is, read from its memfd name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// A numbered descriptor: created to be sent, or installed by a script.
    Seq(u64),
    /// One of the fake's own: a socket stand-in or a pipe end.
    Named(String),
    /// Not created by this fake.
    Foreign(String),
}

impl Label {
    pub fn seq(&self) -> Option<u64> {
        match self {
            Label::Seq(n) => Some(*n),
            _ => None,
        }
    }
}

/// A scripted answer to the next `sendmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStep {
    /// The call fails; nothing is taken.
    Fail(Errno),
    /// The kernel takes every descriptor with only the first `k` bytes (a
    /// partial write), whatever room the stream has.
    Take(usize),
}

/// A scripted answer to the next `recvmsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvStep {
    Fail(Errno),
    /// Installs fresh numbered descriptors and reports the given flags; the
    /// simulated stream is not touched. After an untruncated peek answered
    /// this way, the passer's consuming read of the same length succeeds
    /// unless another step is queued for it.
    Answer(Msg),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Msg {
    pub bytes: usize,
    /// Sequence numbers of the descriptors installed, in order.
    pub installed: Vec<u64>,
    pub truncated_control: bool,
    pub truncated_data: bool,
    pub foreign_control: bool,
}

impl RecvStep {
    /// A well-formed message: one byte per descriptor, all installed.
    pub fn message(seqs: &[u64]) -> RecvStep {
        RecvStep::Answer(Msg {
            bytes: seqs.len(),
            installed: seqs.to_vec(),
            ..Msg::default()
        })
    }

    /// `MSG_CTRUNC`: `bytes` arrived, and only `installed` of the descriptors.
    pub fn truncated(bytes: usize, installed: &[u64]) -> RecvStep {
        RecvStep::Answer(Msg {
            bytes,
            installed: installed.to_vec(),
            truncated_control: true,
            ..Msg::default()
        })
    }

    pub fn eof() -> RecvStep {
        RecvStep::Answer(Msg::default())
    }
}

/// Which system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Sendmsg,
    Recvmsg(RecvMode),
    /// `recv(MSG_PEEK)` with no control buffer ([`Sys::peek_bytes`]).
    PeekBytes,
    Dup,
    Close,
    SetNonblocking,
    Pipe,
    Shutdown,
}

/// One recorded call and what the fake answered.
#[derive(Debug, Clone)]
pub enum Call {
    Sendmsg {
        side: Side,
        bytes: usize,
        fds: Vec<Label>,
        result: Result<usize, Errno>,
    },
    Recvmsg {
        side: Side,
        mode: RecvMode,
        buf: usize,
        max_fds: usize,
        result: Result<Received, Errno>,
        installed: Vec<Label>,
    },
    PeekBytes {
        side: Side,
        buf: usize,
        result: Result<usize, Errno>,
    },
    Dup {
        side: Side,
        of: Label,
        result: Result<(), Errno>,
    },
    Close {
        side: Side,
        label: Label,
        /// Through `Sys::dispose` (a close that may block, which the real
        /// seam makes off the caller's thread) rather than `Sys::close`.
        disposed: bool,
    },
    SetNonblocking {
        side: Side,
        result: Result<(), Errno>,
    },
    Pipe {
        side: Side,
        result: Result<(), Errno>,
    },
    Shutdown {
        side: Side,
        result: Result<(), Errno>,
    },
}

impl Call {
    pub fn side(&self) -> Side {
        match self {
            Call::Sendmsg { side, .. }
            | Call::Recvmsg { side, .. }
            | Call::PeekBytes { side, .. }
            | Call::Dup { side, .. }
            | Call::Close { side, .. }
            | Call::SetNonblocking { side, .. }
            | Call::Pipe { side, .. }
            | Call::Shutdown { side, .. } => *side,
        }
    }

    pub fn kind(&self) -> CallKind {
        match self {
            Call::Sendmsg { .. } => CallKind::Sendmsg,
            Call::Recvmsg { mode, .. } => CallKind::Recvmsg(*mode),
            Call::PeekBytes { .. } => CallKind::PeekBytes,
            Call::Dup { .. } => CallKind::Dup,
            Call::Close { .. } => CallKind::Close,
            Call::SetNonblocking { .. } => CallKind::SetNonblocking,
            Call::Pipe { .. } => CallKind::Pipe,
            Call::Shutdown { .. } => CallKind::Shutdown,
        }
    }
}

#[derive(Debug, Default)]
struct Script {
    send: VecDeque<SendStep>,
    /// For `Peek` and `Take` reads.
    recv: VecDeque<RecvStep>,
    /// For the `Discard` read that consumes a peeked message.
    discard: VecDeque<RecvStep>,
    /// For the look before a read ([`Sys::peek_bytes`]).
    peek_bytes: VecDeque<Result<usize, Errno>>,
    dup: VecDeque<Errno>,
    set_nonblocking: VecDeque<Errno>,
    pipe: VecDeque<Errno>,
    shutdown: VecDeque<Errno>,
}

#[derive(Debug, Default)]
struct SideState {
    /// Descriptors installed on this side and not closed yet, by number.
    table: BTreeMap<RawFd, Label>,
    /// The most descriptors `table` may hold; `None` is unlimited.
    limit: Option<usize>,
    script: Script,
    /// The last peek was answered by the script, so the consuming read that
    /// follows belongs to the script too.
    scripted_peek: bool,
    /// And that peek carried descriptors.
    scripted_peek_fds: bool,
}

/// One `sendmsg`'s worth of the stream: bytes, and the descriptors riding on
/// them (the kernel's own references).
#[derive(Debug)]
struct Segment {
    /// The bytes not read yet.
    data: Vec<u8>,
    fds: Vec<(OwnedFd, Label)>,
}

/// Bytes travelling to one side.
#[derive(Debug)]
struct Stream {
    segments: VecDeque<Segment>,
    queued: usize,
    capacity: usize,
    /// The writing end shut down or closed: the reader sees end-of-stream once
    /// the queue is empty.
    writer_gone: bool,
    /// The reading end shut down or closed: writes fail with `EPIPE`.
    reader_gone: bool,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            segments: VecDeque::new(),
            queued: 0,
            capacity: 1 << 20,
            writer_gone: false,
            reader_gone: false,
        }
    }
}

#[derive(Debug)]
struct World {
    prefix: String,
    next_seq: u64,
    calls: Vec<Call>,
    /// Calls other than `close` so far; planted faults count these.
    steps: usize,
    /// Records (`SOCK_SEQPACKET`) instead of byte streams.
    seqpacket: bool,
    /// Bytes each side's consuming reads took, ever.
    consumed: [usize; 2],
    planted: Option<(usize, Errno)>,
    sides: [SideState; 2],
    /// `streams[i]` carries what side `i` reads.
    streams: [Stream; 2],
}

/// The test's handle on the fake: scripts, the simulated kernel, the call log.
pub struct Fake(Rc<RefCell<World>>);

/// The `Sys` one passer owns; all of them share the [`Fake`]'s state.
pub struct FakeSys {
    world: Rc<RefCell<World>>,
    side: Side,
}

impl fmt::Debug for FakeSys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakeSys({:?})", self.side)
    }
}

fn memfd(name: &str) -> OwnedFd {
    memfd_create(name, MemfdFlags::CLOEXEC).expect("memfd_create")
}

fn link_of(raw: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{raw}"))
        .ok()
        .map(|path| path.to_string_lossy().into_owned())
}

/// The memfd name inside a `/proc/self/fd` link target.
fn memfd_name(link: &str) -> Option<&str> {
    let name = link.strip_prefix("/memfd:")?;
    Some(name.strip_suffix(" (deleted)").unwrap_or(name))
}

fn label_from_link(prefix: &str, link: Option<String>) -> Label {
    let Some(link) = link else {
        return Label::Foreign("<closed>".to_owned());
    };
    match memfd_name(&link).and_then(|name| name.strip_prefix(prefix)) {
        Some(rest) => match rest.parse() {
            Ok(n) => Label::Seq(n),
            Err(_) => Label::Named(rest.to_owned()),
        },
        None => Label::Foreign(link),
    }
}

/// Link targets of every open descriptor of this process whose memfd name
/// starts with `prefix`.
pub fn open_with_prefix(prefix: &str) -> Vec<String> {
    // Descriptors fdpass let go of are closed by a background thread, soon:
    // wait for those before counting.
    assert!(
        fdpass_core::disposal::flush(std::time::Duration::from_secs(30)),
        "pending disposals did not finish"
    );
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd") {
        let Ok(entry) = entry else { continue };
        // Entries of other threads' descriptors may vanish while we look.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if memfd_name(&target).is_some_and(|name| name.starts_with(prefix)) {
            found.push(target);
        }
    }
    found
}

impl World {
    fn side(&mut self, side: Side) -> &mut SideState {
        &mut self.sides[side.index()]
    }

    fn record(&mut self, call: Call) {
        self.calls.push(call);
    }

    /// Counts one call and returns the fault planted at it, if any.
    fn planted_fault(&mut self) -> Option<Errno> {
        let step = self.steps;
        self.steps += 1;
        match self.planted {
            Some((at, errno)) if at == step => Some(errno),
            _ => None,
        }
    }

    fn label_of(&self, side: Side, fd: BorrowedFd<'_>) -> Label {
        let raw = fd.as_raw_fd();
        if let Some(label) = self.sides[side.index()].table.get(&raw) {
            return label.clone();
        }
        label_from_link(&self.prefix, link_of(raw))
    }

    fn room(&self, side: Side, n: usize) -> bool {
        let state = &self.sides[side.index()];
        match state.limit {
            Some(limit) => state.table.len() + n <= limit,
            None => true,
        }
    }

    fn install(&mut self, side: Side, fd: OwnedFd, label: Label) -> OwnedFd {
        let raw = fd.as_raw_fd();
        if let Some(old) = self.side(side).table.insert(raw, label.clone()) {
            panic!(
                "{side:?}: descriptor {raw} ({label:?}) opened while the table still holds {old:?} \
                 under that number, so {old:?} was closed without Sys::close"
            );
        }
        fd
    }

    fn create(&mut self, side: Side, suffix: &str, label: Label) -> OwnedFd {
        let fd = memfd(&format!("{}{suffix}", self.prefix));
        self.install(side, fd, label)
    }

    fn new_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The kernel's side of `sendmsg` from `from`: queue `n` bytes with the
    /// descriptors on them.
    fn sim_send(
        &mut self,
        from: Side,
        bytes: &[u8],
        fds: &[OwnedFd],
        labels: &[Label],
        forced: Option<usize>,
    ) -> Result<usize, Errno> {
        let seqpacket = self.seqpacket;
        let stream = &mut self.streams[from.peer().index()];
        if stream.reader_gone {
            return Err(Errno::PIPE);
        }
        let room = stream.capacity.saturating_sub(stream.queued);
        let take = match forced {
            // A record is taken whole or not at all: whole whenever the
            // stream is writable (a record may overshoot the capacity, as
            // a socket's send buffer may), never when it is longer than
            // the whole capacity.
            _ if seqpacket && bytes.len() > stream.capacity => return Err(Errno::MSGSIZE),
            _ if seqpacket && room == 0 => 0,
            _ if seqpacket => bytes.len(),
            Some(k) => {
                assert!(k >= 1, "a partial write takes at least one byte");
                k.min(bytes.len())
            }
            None => bytes.len().min(room),
        };
        if take == 0 {
            return Err(Errno::AGAIN);
        }
        let fds = fds
            .iter()
            .zip(labels)
            .map(|(fd, label)| {
                let reference = fd.try_clone().expect("the kernel's reference");
                (reference, label.clone())
            })
            .collect();
        stream.segments.push_back(Segment {
            data: bytes[..take].to_vec(),
            fds,
        });
        stream.queued += take;
        Ok(take)
    }

    /// The kernel's side of `recvmsg` on `side`, following Linux's
    /// `unix_stream_read_generic`: bytes of consecutive segments are joined,
    /// a read stops after the first segment that carries descriptors (a
    /// peek whose buffer fills before one goes on to it, and returns copies
    /// of its descriptors without its bytes, as Linux 6.x does), a
    /// consuming read that ends inside a segment leaves its rest (without the
    /// descriptors, which went with the first byte) for the next read, and
    /// descriptors are installed one by one until the control buffer or the
    /// table is full.
    fn sim_recv(
        &mut self,
        side: Side,
        out_bytes: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        out: &mut Vec<OwnedFd>,
        installed: &mut Vec<Label>,
    ) -> Result<Received, Errno> {
        let buf = out_bytes.len();
        let seqpacket = self.seqpacket;
        let stream = &mut self.streams[side.index()];
        if stream.segments.is_empty() {
            return if stream.writer_gone {
                Ok(Received::default())
            } else {
                Err(Errno::AGAIN)
            };
        }
        let mut copied = 0;
        let mut carried: Vec<(OwnedFd, Label)> = Vec::new();
        let mut truncated_data = false;
        if seqpacket {
            // One record per read; what does not fit the buffer is cut off
            // (MSG_TRUNC) and, by a consuming read, lost.
            let segment = stream.segments.front().expect("not empty");
            copied = segment.data.len().min(buf);
            out_bytes[..copied].copy_from_slice(&segment.data[..copied]);
            truncated_data = segment.data.len() > buf;
            if mode == RecvMode::Peek {
                carried = segment
                    .fds
                    .iter()
                    .map(|(fd, label)| (fd.try_clone().expect("peeked copy"), label.clone()))
                    .collect();
            } else {
                let segment = stream.segments.pop_front().expect("not empty");
                stream.queued -= segment.data.len();
                carried = segment.fds;
            }
        } else if mode == RecvMode::Peek {
            for segment in &stream.segments {
                let chunk = segment.data.len().min(buf - copied);
                out_bytes[copied..copied + chunk].copy_from_slice(&segment.data[..chunk]);
                copied += chunk;
                if !segment.fds.is_empty() {
                    carried = segment
                        .fds
                        .iter()
                        .map(|(fd, label)| (fd.try_clone().expect("peeked copy"), label.clone()))
                        .collect();
                    break;
                }
                // A full buffer does not end a peek: Linux goes on to the
                // next segment that carries descriptors and returns copies
                // of them, with none of its bytes.
            }
        } else {
            while let Some(segment) = stream.segments.front_mut() {
                let chunk = segment.data.len().min(buf - copied);
                out_bytes[copied..copied + chunk].copy_from_slice(&segment.data[..chunk]);
                segment.data.drain(..chunk);
                copied += chunk;
                stream.queued -= chunk;
                carried.append(&mut segment.fds);
                if !segment.data.is_empty() {
                    break;
                }
                stream.segments.pop_front();
                if !carried.is_empty() || copied == buf {
                    break;
                }
            }
        }
        let mut got = Received {
            bytes: copied,
            truncated_data,
            ..Received::default()
        };
        if carried.is_empty() {
            return Ok(got);
        }
        if mode == RecvMode::Discard {
            // No control buffer: the kernel drops its references.
            got.truncated_control = true;
            return Ok(got);
        }
        let total = carried.len();
        for (fd, label) in carried {
            if installed.len() == max_fds || !self.room(side, 1) {
                // This and the rest are dropped: copies on a peek, the
                // descriptors themselves (lost) on a consuming read.
                break;
            }
            installed.push(label.clone());
            out.push(self.install(side, fd, label));
        }
        got.truncated_control = installed.len() < total;
        Ok(got)
    }

    /// The kernel's side of a `MSG_PEEK` with no control buffer: the bytes
    /// the next read would return, up to `buf` (joined up to and including
    /// the first segment with descriptors, as `sim_recv` reads); nothing is
    /// installed or consumed.
    fn sim_peek_bytes(&self, side: Side, out_bytes: &mut [u8]) -> Result<usize, Errno> {
        let buf = out_bytes.len();
        let stream = &self.streams[side.index()];
        if stream.segments.is_empty() {
            return if stream.writer_gone {
                Ok(0)
            } else {
                Err(Errno::AGAIN)
            };
        }
        let mut copied = 0;
        for segment in &stream.segments {
            let chunk = segment.data.len().min(buf - copied);
            out_bytes[copied..copied + chunk].copy_from_slice(&segment.data[..chunk]);
            copied += chunk;
            if self.seqpacket || !segment.fds.is_empty() || copied == buf {
                break;
            }
        }
        Ok(copied)
    }

    fn hang_up(&mut self, side: Side, purge: bool) {
        self.streams[side.peer().index()].writer_gone = true;
        let incoming = &mut self.streams[side.index()];
        incoming.reader_gone = true;
        if purge {
            incoming.segments.clear();
            incoming.queued = 0;
        }
    }
}

impl Sys for FakeSys {
    fn sendmsg(
        &mut self,
        _socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let labels: Vec<Label> = fds.iter().map(|fd| w.label_of(side, fd.as_fd())).collect();
        let result = match w.planted_fault() {
            Some(errno) => Err(errno),
            None => match w.side(side).script.send.pop_front() {
                Some(SendStep::Fail(errno)) => Err(errno),
                Some(SendStep::Take(k)) => w.sim_send(side, bytes, fds, &labels, Some(k)),
                None => w.sim_send(side, bytes, fds, &labels, None),
            },
        };
        w.record(Call::Sendmsg {
            side,
            bytes: bytes.len(),
            fds: labels,
            result,
        });
        result
    }

    fn recvmsg(
        &mut self,
        _socket: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let mut installed = Vec::new();
        let scripted_peek = std::mem::take(&mut w.side(side).scripted_peek);
        let planted = w.planted_fault();
        let step = match (planted, mode) {
            (Some(_), _) => None,
            (None, RecvMode::Discard) => w.side(side).script.discard.pop_front(),
            (None, _) => w.side(side).script.recv.pop_front(),
        };
        let mut scripted = true;
        let result = match (planted, step) {
            (Some(errno), _) => Err(errno),
            (None, Some(RecvStep::Fail(errno))) => Err(errno),
            (None, Some(RecvStep::Answer(msg))) => {
                let room = if mode == RecvMode::Discard {
                    0
                } else {
                    max_fds
                };
                assert!(
                    msg.bytes <= buf.len(),
                    "scripted message longer than the buffer"
                );
                assert!(
                    msg.installed.len() <= room,
                    "script installs more descriptors than the control buffer holds"
                );
                for &seq in &msg.installed {
                    let fd = w.create(side, &seq.to_string(), Label::Seq(seq));
                    installed.push(Label::Seq(seq));
                    fds.push(fd);
                }
                w.side(side).scripted_peek = mode == RecvMode::Peek && !msg.truncated_control;
                // A consuming read of bytes that carried descriptors drops
                // them for want of a control buffer, and says so (MSG_CTRUNC).
                w.side(side).scripted_peek_fds = !msg.installed.is_empty();
                Ok(Received {
                    bytes: msg.bytes,
                    truncated_data: msg.truncated_data,
                    truncated_control: msg.truncated_control,
                    foreign_control: msg.foreign_control,
                })
            }
            (None, None) if mode == RecvMode::Discard && scripted_peek => Ok(Received {
                bytes: buf.len(),
                truncated_control: w.side(side).scripted_peek_fds,
                ..Received::default()
            }),
            (None, None) => {
                scripted = false;
                w.sim_recv(side, buf, max_fds, mode, fds, &mut installed)
            }
        };
        if let (Ok(got), true) = (result, scripted) {
            buf[..got.bytes].fill(0);
        }
        if let (Ok(got), false) = (result, mode == RecvMode::Peek) {
            w.consumed[side.index()] += got.bytes;
        }
        w.record(Call::Recvmsg {
            side,
            mode,
            buf: buf.len(),
            max_fds,
            result,
            installed,
        });
        result
    }

    /// A scripted answer for the look comes first; then a scripted failure
    /// queued for the next read is the answer to the look as well (and used
    /// up by it); a scripted message is looked at, not used up; otherwise the
    /// simulated stream answers.
    /// The simulated socket's kind: records after
    /// [`Fake::set_seqpacket`], a stream otherwise.
    fn keeps_boundaries(&mut self, _socket: BorrowedFd<'_>) -> bool {
        self.world.borrow().seqpacket
    }

    fn peek_bytes(
        &mut self,
        _socket: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Option<Result<usize, Errno>> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let result = match w.planted_fault() {
            Some(errno) => Err(errno),
            None if !w.side(side).script.peek_bytes.is_empty() => {
                let answer = w.side(side).script.peek_bytes.pop_front();
                answer.expect("not empty").map(|n| n.min(buf.len()))
            }
            None => match w.side(side).script.recv.front() {
                Some(RecvStep::Fail(errno)) => {
                    let errno = *errno;
                    w.side(side).script.recv.pop_front();
                    Err(errno)
                }
                Some(RecvStep::Answer(msg)) => Ok(msg.bytes.min(buf.len())),
                None => w.sim_peek_bytes(side, buf),
            },
        };
        w.record(Call::PeekBytes {
            side,
            buf: buf.len(),
            result,
        });
        Some(result)
    }

    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let of = w.label_of(side, fd);
        let result = match w.planted_fault() {
            Some(errno) => Err(errno),
            None => match w.side(side).script.dup.pop_front() {
                Some(errno) => Err(errno),
                None if !w.room(side, 1) => Err(Errno::MFILE),
                None => {
                    let new = rustix::io::fcntl_dupfd_cloexec(fd, 0).expect("dup");
                    Ok(w.install(side, new, of.clone()))
                }
            },
        };
        w.record(Call::Dup {
            side,
            of,
            result: result.as_ref().map(|_| ()).map_err(|e| *e),
        });
        result
    }

    fn close(&mut self, fd: OwnedFd) {
        self.record_close(fd, false);
    }

    fn dispose(&mut self, fd: OwnedFd) {
        self.record_close(fd, true);
    }

    fn set_nonblocking(&mut self, _fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let result = match w.planted_fault() {
            Some(errno) => Err(errno),
            None => w
                .side(side)
                .script
                .set_nonblocking
                .pop_front()
                .map_or(Ok(()), Err),
        };
        w.record(Call::SetNonblocking { side, result });
        result
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let result = match w.planted_fault() {
            Some(errno) => Err(errno),
            None => match w.side(side).script.pipe.pop_front() {
                Some(errno) => Err(errno),
                None if !w.room(side, 2) => Err(Errno::MFILE),
                None => {
                    let read = format!("pipe-read-{}", side.name());
                    let write = format!("pipe-write-{}", side.name());
                    let r = w.create(side, &read, Label::Named(read.clone()));
                    let wr = w.create(side, &write, Label::Named(write.clone()));
                    Ok((r, wr))
                }
            },
        };
        w.record(Call::Pipe {
            side,
            result: result.as_ref().map(|_| ()).map_err(|e| *e),
        });
        result
    }

    fn shutdown(&mut self, _fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let result = match w.planted_fault() {
            Some(errno) => Err(errno),
            None => w.side(side).script.shutdown.pop_front().map_or(Ok(()), Err),
        };
        if result.is_ok() {
            w.hang_up(side, false);
        }
        w.record(Call::Shutdown { side, result });
        result
    }
}

impl FakeSys {
    /// Closes `fd` at once (the fake's closes never block) and records it.
    fn record_close(&mut self, fd: OwnedFd, disposed: bool) {
        let side = self.side;
        let mut w = self.world.borrow_mut();
        let raw = fd.as_raw_fd();
        let label = match w.side(side).table.remove(&raw) {
            Some(label) => label,
            None => w.label_of(side, fd.as_fd()),
        };
        drop(fd);
        w.record(Call::Close {
            side,
            label,
            disposed,
        });
    }
}

impl Drop for FakeSys {
    /// The passer is gone and with it its socket: the peer sees end-of-stream,
    /// and what was queued for this side is released by the kernel.
    fn drop(&mut self) {
        self.world.borrow_mut().hang_up(self.side, true);
    }
}

static NEXT_FAKE: AtomicU64 = AtomicU64::new(0);

impl Fake {
    /// A fresh fake whose descriptors carry a tag unique in this process.
    pub fn new(test: &str) -> Fake {
        let n = NEXT_FAKE.fetch_add(1, Ordering::Relaxed);
        let test: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Fake(Rc::new(RefCell::new(World {
            prefix: format!("fdpass-fake-{test}.{n}-"),
            next_seq: 0,
            calls: Vec::new(),
            steps: 0,
            seqpacket: false,
            consumed: [0; 2],
            planted: None,
            sides: Default::default(),
            streams: Default::default(),
        })))
    }

    pub fn prefix(&self) -> String {
        self.0.borrow().prefix.clone()
    }

    pub fn sys(&self, side: Side) -> FakeSys {
        FakeSys {
            world: Rc::clone(&self.0),
            side,
        }
    }

    /// A stand-in for the socket (a tagged memfd, so it is covered by the
    /// leak check too). It is not in the side's table: the passer drops it
    /// rather than closing it through `Sys`.
    pub fn socket(&self, side: Side) -> OwnedFd {
        memfd(&format!("{}socket-{}", self.prefix(), side.name()))
    }

    pub fn passer(&self, side: Side, config: Config) -> Result<FakePasser, Error> {
        Passer::with_sys(self.sys(side), self.socket(side), config)
    }

    /// A new numbered descriptor in `side`'s table (regardless of its limit),
    /// for `side` to send.
    pub fn numbered(&self, side: Side) -> OwnedFd {
        let mut w = self.0.borrow_mut();
        let seq = w.new_seq();
        w.create(side, &seq.to_string(), Label::Seq(seq))
    }

    /// Like [`numbered`](Self::numbered), unless `side`'s table is full.
    pub fn try_numbered(&self, side: Side) -> Option<OwnedFd> {
        if !self.0.borrow().room(side, 1) {
            return None;
        }
        Some(self.numbered(side))
    }

    /// The label of a tagged descriptor, read from `/proc/self/fd`.
    pub fn label(&self, fd: BorrowedFd<'_>) -> Label {
        label_from_link(&self.prefix(), link_of(fd.as_raw_fd()))
    }

    /// The sequence number of a numbered descriptor, read from `/proc/self/fd`.
    pub fn seq(&self, fd: BorrowedFd<'_>) -> u64 {
        match self.label(fd) {
            Label::Seq(n) => n,
            other => panic!("not a numbered descriptor: {other:?}"),
        }
    }

    /// The application closes a descriptor it got from `side`'s passer (or
    /// one it created and never pushed). Returns its label.
    pub fn app_close(&self, side: Side, fd: OwnedFd) -> Label {
        let label = self.label(fd.as_fd());
        let removed = self.0.borrow_mut().side(side).table.remove(&fd.as_raw_fd());
        assert!(
            removed.is_some(),
            "{side:?} closes {label:?}, which is not in its table"
        );
        drop(fd);
        label
    }

    pub fn set_limit(&self, side: Side, limit: Option<usize>) {
        self.0.borrow_mut().side(side).limit = limit;
    }

    pub fn limit(&self, side: Side) -> Option<usize> {
        self.0.borrow().sides[side.index()].limit
    }

    /// Descriptors open in `side`'s table.
    pub fn table_len(&self, side: Side) -> usize {
        self.0.borrow().sides[side.index()].table.len()
    }

    /// Numbered descriptors open in `side`'s table.
    pub fn numbered_open(&self, side: Side) -> usize {
        self.0.borrow().sides[side.index()]
            .table
            .values()
            .filter(|label| matches!(label, Label::Seq(_)))
            .count()
    }

    pub fn table(&self, side: Side) -> Vec<Label> {
        self.0.borrow().sides[side.index()]
            .table
            .values()
            .cloned()
            .collect()
    }

    /// How many bytes the stream to `to` holds before writes block.
    pub fn set_capacity(&self, to: Side, bytes: usize) {
        self.0.borrow_mut().streams[to.index()].capacity = bytes;
    }

    /// Bytes queued for `to` to read.
    pub fn queued_bytes(&self, to: Side) -> usize {
        self.0.borrow().streams[to.index()].queued
    }

    /// Whether a read by `side` would not block.
    pub fn readable(&self, side: Side) -> bool {
        let w = self.0.borrow();
        let stream = &w.streams[side.index()];
        !stream.segments.is_empty() || stream.writer_gone
    }

    /// Whether a write by `side` would not block.
    pub fn writable(&self, side: Side) -> bool {
        let w = self.0.borrow();
        let stream = &w.streams[side.peer().index()];
        stream.reader_gone || stream.queued < stream.capacity
    }

    /// A foreign peer writes `bytes` bytes carrying descriptors numbered
    /// `seqs` into the stream to `to`, bypassing any passer.
    pub fn peer_write(&self, to: Side, bytes: usize, seqs: &[u64]) {
        let mut w = self.0.borrow_mut();
        let prefix = w.prefix.clone();
        let fds = seqs
            .iter()
            .map(|&seq| (memfd(&format!("{prefix}{seq}")), Label::Seq(seq)))
            .collect();
        let stream = &mut w.streams[to.index()];
        stream.segments.push_back(Segment {
            data: vec![0; bytes],
            fds,
        });
        stream.queued += bytes;
    }

    /// A foreign peer writes exactly `bytes` carrying descriptors numbered
    /// `seqs` into the stream to `to` (one record on `SOCK_SEQPACKET`),
    /// bypassing any passer.
    pub fn peer_write_bytes(&self, to: Side, bytes: &[u8], seqs: &[u64]) {
        self.peer_write(to, bytes.len(), seqs);
        let mut w = self.0.borrow_mut();
        let segment = w.streams[to.index()]
            .segments
            .back_mut()
            .expect("just written");
        segment.data.copy_from_slice(bytes);
    }

    /// Bytes `side`'s consuming reads took so far (peeks not counted).
    pub fn consumed_bytes(&self, side: Side) -> usize {
        self.0.borrow().consumed[side.index()]
    }

    /// Makes both directions queues of records, as `SOCK_SEQPACKET` sockets
    /// are: a send is taken whole while the stream is writable, not at all
    /// otherwise (`EMSGSIZE` if it is longer than the capacity), a read
    /// returns one record and cuts off what does not fit its buffer
    /// (`MSG_TRUNC`).
    pub fn set_seqpacket(&self, on: bool) {
        self.0.borrow_mut().seqpacket = on;
    }

    /// The peer of `to` shuts down its writing half: `to` reads
    /// end-of-stream once the queue is empty.
    pub fn peer_shutdown(&self, to: Side) {
        self.0.borrow_mut().streams[to.index()].writer_gone = true;
    }

    pub fn on_send(&self, side: Side, step: SendStep) {
        self.0.borrow_mut().side(side).script.send.push_back(step);
    }

    pub fn on_recv(&self, side: Side, step: RecvStep) {
        self.0.borrow_mut().side(side).script.recv.push_back(step);
    }

    /// The answer to the next look before a read ([`Sys::peek_bytes`]),
    /// whatever the stream holds.
    pub fn on_peek_bytes(&self, side: Side, answer: Result<usize, Errno>) {
        self.0
            .borrow_mut()
            .side(side)
            .script
            .peek_bytes
            .push_back(answer);
    }

    pub fn on_discard(&self, side: Side, step: RecvStep) {
        self.0
            .borrow_mut()
            .side(side)
            .script
            .discard
            .push_back(step);
    }

    pub fn on_dup(&self, side: Side, errno: Errno) {
        self.0.borrow_mut().side(side).script.dup.push_back(errno);
    }

    pub fn on_set_nonblocking(&self, side: Side, errno: Errno) {
        self.0
            .borrow_mut()
            .side(side)
            .script
            .set_nonblocking
            .push_back(errno);
    }

    pub fn on_pipe(&self, side: Side, errno: Errno) {
        self.0.borrow_mut().side(side).script.pipe.push_back(errno);
    }

    pub fn on_shutdown(&self, side: Side, errno: Errno) {
        self.0
            .borrow_mut()
            .side(side)
            .script
            .shutdown
            .push_back(errno);
    }

    /// Scripted steps not consumed yet, on both sides.
    pub fn pending_script(&self) -> usize {
        let w = self.0.borrow();
        w.sides
            .iter()
            .map(|s| {
                let s = &s.script;
                s.send.len()
                    + s.recv.len()
                    + s.discard.len()
                    + s.peek_bytes.len()
                    + s.dup.len()
                    + s.set_nonblocking.len()
                    + s.pipe.len()
                    + s.shutdown.len()
            })
            .sum()
    }

    /// Forgets every scripted step and planted fault.
    pub fn clear_script(&self) {
        let mut w = self.0.borrow_mut();
        w.planted = None;
        for side in &mut w.sides {
            side.script = Script::default();
        }
    }

    /// The `step`-th call other than `close` (counting both sides from the
    /// creation of the fake) fails with `errno`.
    pub fn plant_fault(&self, step: usize, errno: Errno) {
        self.0.borrow_mut().planted = Some((step, errno));
    }

    /// Calls other than `close` made so far.
    pub fn steps(&self) -> usize {
        self.0.borrow().steps
    }

    pub fn calls(&self) -> Vec<Call> {
        self.0.borrow().calls.clone()
    }

    pub fn call_count(&self) -> usize {
        self.0.borrow().calls.len()
    }

    pub fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.0.borrow().calls.iter().filter(|c| pred(c)).count()
    }

    /// Labels of the descriptors `side` closed through `Sys::close` or
    /// `Sys::dispose`.
    pub fn closed_by(&self, side: Side) -> Vec<Label> {
        self.0
            .borrow()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Close { side: s, label, .. } if *s == side => Some(label.clone()),
                _ => None,
            })
            .collect()
    }

    /// Tagged descriptors open in this process right now.
    pub fn open_tagged(&self) -> Vec<String> {
        open_with_prefix(&self.prefix())
    }

    /// Labels of the descriptors `side` let go of through `Sys::dispose`.
    pub fn disposed_by(&self, side: Side) -> Vec<Label> {
        self.0
            .borrow()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Close {
                    side: s,
                    label,
                    disposed: true,
                } if *s == side => Some(label.clone()),
                _ => None,
            })
            .collect()
    }

    /// The final leak check: every passer must be gone, every descriptor the
    /// fake installed must have been closed through `Sys::close` (or handed
    /// back with [`app_close`](Self::app_close)), and once the simulated
    /// kernel lets go of what is still in flight, no descriptor with this
    /// fake's tag may be open.
    #[track_caller]
    pub fn finish(self) {
        let prefix = self.prefix();
        assert_eq!(
            Rc::strong_count(&self.0),
            1,
            "a passer over this fake is still alive"
        );
        for side in Side::BOTH {
            let left = self.table(side);
            assert!(
                left.is_empty(),
                "{side:?} never closed {left:?} through Sys::close"
            );
        }
        drop(self);
        let open = open_with_prefix(&prefix);
        assert!(open.is_empty(), "descriptors leaked: {open:?}");
    }
}
