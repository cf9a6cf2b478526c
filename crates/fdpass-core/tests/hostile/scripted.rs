//! A `Sys` that answers every call from a script, for fuzzing the passer with
//! any sequence of system-call results.
//!
//! Each call takes the next scripted answer for its kind; with none left it
//! gets a benign default (`EAGAIN` for `sendmsg` and `recvmsg`, consuming
//! exactly what was asked for the read that consumes a peeked message,
//! success for the others), so every handler ends. Every descriptor it hands out is a real
//! memfd made through a [`Tag`], recorded by number with what it is: closing
//! is real, a descriptor never closed stays visible in `/proc/self/fd`, and a
//! descriptor closed behind the fake's back shows up when the kernel reuses
//! its number. The fake never panics inside a call (a panic there could
//! happen while a failing case unwinds through the passer's `Drop`, and abort
//! the whole run); it records violations for the test to assert on.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use fdpass_core::sys::{Received, RecvMode, Sys};
use fdpass_core::SCM_MAX_FD;
use rustix::io::Errno;

use super::Tag;

/// A real kernel may install a few more descriptors than asked for: control
/// space is rounded up to 8 bytes, which leaves room for one more 4-byte
/// descriptor after an odd count. The fake goes a little further.
pub const EXTRA_ROOM: usize = 3;

/// More calls than this within one input means a handler does not stop.
pub const CALLS_PER_INPUT: u64 = 100_000;

/// What a descriptor the fake knows about is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The passer's socket (a stand-in: the fake never uses it).
    Socket,
    /// Made by the test and pushed to be sent; the number is the push order.
    Pushed(u64),
    /// Installed by a `recvmsg`; numbered in installation order.
    Installed(u64),
    /// Made by `dup` (sentinel slots, peek probes).
    Dup(u64),
    /// Made by `pipe` (the sentinel's origin and the write end it closes).
    Pipe(u64),
}

/// The scripted answer to one `recvmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvAnswer {
    Fail(Errno),
    /// Clamped to what a kernel could do: at most the buffer's length in
    /// bytes and [`EXTRA_ROOM`] more descriptors than the room asked for.
    Msg(Msg),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Msg {
    pub bytes: usize,
    pub fds: usize,
    pub truncated_data: bool,
    pub truncated_control: bool,
    pub foreign_control: bool,
}

/// One `recvmsg` that reads a message (`Peek` or `Take`), as answered.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub result: Result<Received, Errno>,
    /// Descriptors installed, numbered from `first` on.
    pub installed: usize,
    pub first: u64,
}

/// One `sendmsg`, as answered.
#[derive(Debug, Clone, Copy)]
pub struct Send {
    pub fds: usize,
    pub result: Result<usize, Errno>,
}

/// The scripted answer to one `sendmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAnswer {
    Fail(Errno),
    /// Takes every descriptor and the first `n` bytes (at most all of them;
    /// 0 is a zero-length write).
    Write(usize),
}

#[derive(Default)]
struct World {
    tag: Option<Tag>,
    live: HashMap<RawFd, Kind>,
    /// For `Peek` and `Take` reads.
    recv: VecDeque<RecvAnswer>,
    /// For the `Discard` read that consumes a peeked message.
    discard: VecDeque<RecvAnswer>,
    send: VecDeque<SendAnswer>,
    /// `Ok` lets a `dup` succeed: failures can be planted after successes.
    dup: VecDeque<Result<(), Errno>>,
    pipe: VecDeque<Errno>,
    shutdown: VecDeque<Errno>,
    set_nonblocking: VecDeque<Errno>,
    next_pushed: u64,
    next_installed: u64,
    next_dup: u64,
    next_pipe: u64,
    /// Pushed numbers in the order the kernel took them.
    taken: Vec<u64>,
    calls: u64,
    calls_this_input: u64,
    violations: Vec<String>,
    /// The passer's `max_fds_per_message`, once the test says it.
    max_fds: Option<usize>,
    /// A read installed more descriptors than the room it asked for.
    oversized: bool,
    /// A consuming read returned something other than the peeked message.
    bad_discard: bool,
    /// Descriptors the last peek installed: the consuming read of the same
    /// bytes drops the kernel's references for want of a control buffer
    /// and says so (`MSG_CTRUNC`), as Linux does.
    peeked_fds: usize,
    reads: Vec<Read>,
    sends: Vec<Send>,
    /// Installed descriptors closed through `Sys::close`, in order.
    closed_installed: Vec<u64>,
}

impl World {
    fn tag(&self) -> &Tag {
        self.tag.as_ref().expect("a tag")
    }

    fn make(&mut self, kind: Kind) -> OwnedFd {
        let label = match kind {
            Kind::Socket => "socket".to_owned(),
            Kind::Pushed(n) => format!("s{n}"),
            Kind::Installed(n) => format!("r{n}"),
            Kind::Dup(n) => format!("d{n}"),
            Kind::Pipe(n) => format!("p{n}"),
        };
        let fd = self.tag().memfd(&label);
        if let Some(old) = self.live.insert(fd.as_raw_fd(), kind) {
            self.violations.push(format!(
                "descriptor {} reused for {kind:?} while {old:?} was still recorded open: \
                 {old:?} was closed without Sys::close",
                fd.as_raw_fd()
            ));
        }
        fd
    }

    fn forget(&mut self, fd: RawFd, who: &str) -> Option<Kind> {
        let kind = self.live.remove(&fd);
        if kind.is_none() {
            self.violations.push(format!(
                "{who} closed descriptor {fd}, which the fake never handed out or saw closed already"
            ));
        }
        kind
    }

    /// Counts one call; false once a single input has made too many.
    fn count_call(&mut self) -> bool {
        self.calls += 1;
        self.calls_this_input += 1;
        if self.calls_this_input == CALLS_PER_INPUT {
            self.violations.push(format!(
                "more than {CALLS_PER_INPUT} system calls for one input: a handler does not stop"
            ));
        }
        self.calls_this_input < CALLS_PER_INPUT
    }
}

/// The test's handle: scripts, the record of descriptors, violations.
#[derive(Clone)]
pub struct Scripted(Rc<RefCell<World>>);

/// The `Sys` a passer owns; it shares the [`Scripted`] state.
pub struct ScriptedSys(Rc<RefCell<World>>);

impl fmt::Debug for ScriptedSys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScriptedSys")
    }
}

/// Live descriptors by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub socket: usize,
    pub pushed: usize,
    pub installed: usize,
    pub dup: usize,
    pub pipe: usize,
}

impl Scripted {
    pub fn new(tag: Tag) -> Scripted {
        Scripted(Rc::new(RefCell::new(World {
            tag: Some(tag),
            ..World::default()
        })))
    }

    /// Batches larger than `max` become violations.
    pub fn set_max_fds(&self, max: usize) {
        self.0.borrow_mut().max_fds = Some(max);
    }

    pub fn sys(&self) -> ScriptedSys {
        ScriptedSys(Rc::clone(&self.0))
    }

    pub fn tag(&self) -> Tag {
        self.0.borrow().tag().clone()
    }

    /// A stand-in for the passer's socket.
    pub fn socket(&self) -> OwnedFd {
        self.0.borrow_mut().make(Kind::Socket)
    }

    /// A new descriptor to push; its number is the push order.
    pub fn pushed(&self) -> (OwnedFd, u64) {
        let mut world = self.0.borrow_mut();
        let n = world.next_pushed;
        world.next_pushed += 1;
        (world.make(Kind::Pushed(n)), n)
    }

    /// What `fd` is, if the fake made it and it is recorded open.
    pub fn kind_of(&self, fd: RawFd) -> Option<Kind> {
        self.0.borrow().live.get(&fd).copied()
    }

    /// The application closes a descriptor it got from the passer.
    pub fn app_close(&self, fd: OwnedFd) -> Option<Kind> {
        let kind = self
            .0
            .borrow_mut()
            .forget(fd.as_raw_fd(), "the application");
        drop(fd);
        kind
    }

    /// A descriptor the fake made was closed outside `Sys::close`, as
    /// expected (the socket, dropped with the passer).
    pub fn closed_elsewhere(&self, fd: RawFd) {
        self.0.borrow_mut().forget(fd, "the passer's drop");
    }

    pub fn census(&self) -> Census {
        let mut census = Census::default();
        for kind in self.0.borrow().live.values() {
            match kind {
                Kind::Socket => census.socket += 1,
                Kind::Pushed(_) => census.pushed += 1,
                Kind::Installed(_) => census.installed += 1,
                Kind::Dup(_) => census.dup += 1,
                Kind::Pipe(_) => census.pipe += 1,
            }
        }
        census
    }

    /// Installed descriptors recorded open, by number.
    pub fn installed_open(&self) -> Vec<u64> {
        let mut open: Vec<u64> = self
            .0
            .borrow()
            .live
            .values()
            .filter_map(|k| match k {
                Kind::Installed(n) => Some(*n),
                _ => None,
            })
            .collect();
        open.sort_unstable();
        open
    }

    /// Whether any read installed more descriptors than it had room for.
    pub fn oversized(&self) -> bool {
        self.0.borrow().oversized
    }

    /// Whether a consuming read returned other than the peeked message.
    pub fn bad_discard(&self) -> bool {
        self.0.borrow().bad_discard
    }

    /// Installed descriptors the passer closed, from the `from`-th on.
    pub fn closed_installed_from(&self, from: usize) -> Vec<u64> {
        self.0.borrow().closed_installed[from..].to_vec()
    }

    /// Message reads (`Peek` and `Take`) from the `from`-th on.
    pub fn reads_from(&self, from: usize) -> Vec<Read> {
        self.0.borrow().reads[from..].to_vec()
    }

    /// The last message read, if any.
    pub fn last_read(&self) -> Option<Read> {
        self.0.borrow().reads.last().copied()
    }

    /// The last two `sendmsg`s, older first.
    pub fn last_sends(&self) -> (Option<Send>, Option<Send>) {
        let world = self.0.borrow();
        let n = world.sends.len();
        let at = |i: usize| world.sends.get(i).copied();
        (n.checked_sub(2).and_then(at), n.checked_sub(1).and_then(at))
    }

    pub fn live(&self) -> usize {
        self.0.borrow().live.len()
    }

    pub fn taken(&self) -> Vec<u64> {
        self.0.borrow().taken.clone()
    }

    pub fn calls(&self) -> u64 {
        self.0.borrow().calls
    }

    /// A new input to the passer begins: the per-input call budget restarts.
    pub fn begin_input(&self) {
        self.0.borrow_mut().calls_this_input = 0;
    }

    pub fn violations(&self) -> Vec<String> {
        self.0.borrow().violations.clone()
    }

    pub fn on_recv(&self, answer: RecvAnswer) {
        self.0.borrow_mut().recv.push_back(answer);
    }

    /// The answer to a later consuming read of a peeked message, instead of
    /// consuming exactly what the passer asks for.
    pub fn on_discard(&self, answer: RecvAnswer) {
        self.0.borrow_mut().discard.push_back(answer);
    }

    pub fn on_send(&self, answer: SendAnswer) {
        self.0.borrow_mut().send.push_back(answer);
    }

    pub fn on_dup(&self, answer: Result<(), Errno>) {
        self.0.borrow_mut().dup.push_back(answer);
    }

    pub fn on_pipe(&self, errno: Errno) {
        self.0.borrow_mut().pipe.push_back(errno);
    }

    pub fn on_shutdown(&self, errno: Errno) {
        self.0.borrow_mut().shutdown.push_back(errno);
    }

    pub fn on_set_nonblocking(&self, errno: Errno) {
        self.0.borrow_mut().set_nonblocking.push_back(errno);
    }
}

impl Sys for ScriptedSys {
    fn sendmsg(
        &mut self,
        _socket: BorrowedFd<'_>,
        bytes: &[u8],
        fds: &[OwnedFd],
    ) -> Result<usize, Errno> {
        let mut guard = self.0.borrow_mut();
        let world = &mut *guard;
        if !world.count_call() {
            return Err(Errno::AGAIN);
        }
        // The wire format: one zero byte per descriptor, or owed zero bytes
        // alone; never an empty write, never more than SCM_MAX_FD.
        if bytes.is_empty() || bytes.len() > SCM_MAX_FD || bytes.iter().any(|b| *b != 0) {
            let why = format!("sendmsg of {} byte(s) {:?}", bytes.len(), bytes);
            world.violations.push(why);
        }
        if world.max_fds.is_some_and(|max| fds.len() > max) {
            let why = format!("a batch of {} descriptors", fds.len());
            world.violations.push(why);
        }
        if !fds.is_empty() && fds.len() != bytes.len() {
            let why = format!(
                "{} descriptor(s) sent with {} byte(s)",
                fds.len(),
                bytes.len()
            );
            world.violations.push(why);
        }
        let mut numbers = Vec::with_capacity(fds.len());
        for fd in fds {
            match world.live.get(&fd.as_raw_fd()) {
                Some(Kind::Pushed(n)) => numbers.push(*n),
                other => {
                    let why = format!("sendmsg of a descriptor that was not pushed: {other:?}");
                    world.violations.push(why);
                }
            }
        }
        let answer = world.send.pop_front();
        let result = match answer.unwrap_or(SendAnswer::Fail(Errno::AGAIN)) {
            SendAnswer::Fail(errno) => Err(errno),
            SendAnswer::Write(n) => {
                let n = n.min(bytes.len());
                if n > 0 {
                    for number in numbers {
                        if number != world.taken.len() as u64 {
                            let why = format!(
                                "pushed descriptor {number} sent after {} others: out of order",
                                world.taken.len()
                            );
                            world.violations.push(why);
                        }
                        world.taken.push(number);
                    }
                }
                Ok(n)
            }
        };
        world.sends.push(Send {
            fds: fds.len(),
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
        let mut world = self.0.borrow_mut();
        if !world.count_call() {
            return Err(Errno::AGAIN);
        }
        if mode == RecvMode::Discard && max_fds != 0 {
            let why = format!("a discarding recvmsg offered room for {max_fds} descriptor(s)");
            world.violations.push(why);
        }
        let queue = match mode {
            RecvMode::Discard => &mut world.discard,
            RecvMode::Peek | RecvMode::Take => &mut world.recv,
        };
        let answer = match queue.pop_front() {
            // A consuming read finds the peeked message still there.
            None if mode == RecvMode::Discard => RecvAnswer::Msg(Msg {
                bytes: buf.len(),
                ..Msg::default()
            }),
            None => RecvAnswer::Fail(Errno::AGAIN),
            Some(answer) => answer,
        };
        let msg = match answer {
            RecvAnswer::Fail(errno) => {
                if mode != RecvMode::Discard {
                    let first = world.next_installed;
                    world.reads.push(Read {
                        result: Err(errno),
                        installed: 0,
                        first,
                    });
                }
                return Err(errno);
            }
            RecvAnswer::Msg(msg) => msg,
        };
        let bytes = msg.bytes.min(buf.len());
        buf[..bytes].fill(0);
        let installed = msg.fds.min(max_fds + EXTRA_ROOM);
        let first = world.next_installed;
        world.oversized |= installed > max_fds;
        // Anything but exactly the peeked bytes, and no descriptors.
        world.bad_discard |= mode == RecvMode::Discard && (bytes != buf.len() || installed > 0);
        for _ in 0..installed {
            let n = world.next_installed;
            world.next_installed += 1;
            fds.push(world.make(Kind::Installed(n)));
        }
        let truncated_control = match mode {
            RecvMode::Discard => world.peeked_fds > 0,
            RecvMode::Peek | RecvMode::Take => msg.truncated_control,
        };
        world.peeked_fds = if mode == RecvMode::Peek { installed } else { 0 };
        let received = Received {
            bytes,
            truncated_data: msg.truncated_data,
            truncated_control,
            foreign_control: msg.foreign_control,
        };
        if mode != RecvMode::Discard {
            world.reads.push(Read {
                result: Ok(received),
                installed,
                first,
            });
        }
        Ok(received)
    }

    /// Looks at the next scripted read: a failure is its answer too (and
    /// used up, recorded as that read), a message waits (its bytes, not used
    /// up), and with none queued nothing waits (`EAGAIN`, recorded).
    fn peek_bytes(
        &mut self,
        _socket: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Option<Result<usize, Errno>> {
        let mut world = self.0.borrow_mut();
        if !world.count_call() {
            return Some(Err(Errno::AGAIN));
        }
        let failure = match world.recv.front() {
            Some(RecvAnswer::Msg(msg)) => return Some(Ok(msg.bytes.min(buf.len()))),
            Some(RecvAnswer::Fail(errno)) => *errno,
            None => Errno::AGAIN,
        };
        world.recv.pop_front();
        let first = world.next_installed;
        world.reads.push(Read {
            result: Err(failure),
            installed: 0,
            first,
        });
        Some(Err(failure))
    }

    fn dup(&mut self, _fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        let mut world = self.0.borrow_mut();
        if !world.count_call() {
            return Err(Errno::MFILE);
        }
        if let Some(Err(errno)) = world.dup.pop_front() {
            return Err(errno);
        }
        let n = world.next_dup;
        world.next_dup += 1;
        Ok(world.make(Kind::Dup(n)))
    }

    fn close(&mut self, fd: OwnedFd) {
        let mut world = self.0.borrow_mut();
        world.calls += 1;
        if let Some(Kind::Installed(n)) = world.forget(fd.as_raw_fd(), "Sys::close") {
            world.closed_installed.push(n);
        }
        drop(fd);
    }

    fn set_nonblocking(&mut self, _fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let mut world = self.0.borrow_mut();
        world.count_call();
        world.set_nonblocking.pop_front().map_or(Ok(()), Err)
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        let mut world = self.0.borrow_mut();
        world.count_call();
        if let Some(errno) = world.pipe.pop_front() {
            return Err(errno);
        }
        let n = world.next_pipe;
        world.next_pipe += 2;
        let read_end = world.make(Kind::Pipe(n));
        let write_end = world.make(Kind::Pipe(n + 1));
        Ok((read_end, write_end))
    }

    fn shutdown(&mut self, _fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let mut world = self.0.borrow_mut();
        world.count_call();
        world.shutdown.pop_front().map_or(Ok(()), Err)
    }
}
