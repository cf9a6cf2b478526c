//! The decoding of what `recvmsg` returned, through a `Sys` whose every
//! answer the input chooses: byte counts, descriptor counts (real pipe ends,
//! up to a few beyond the control buffer's room, as alignment lets the
//! kernel install), `MSG_TRUNC`, `MSG_CTRUNC` and foreign control data, and
//! any errno from any call; `sendmsg` takes any part of what it is offered.
//!
//! Checked, besides everything `fdpass_fuzz::app` checks:
//! - every descriptor the fake handed out (received, slot, pipe end, or
//!   created to be sent) is closed through `Sys::close` or delivered, once;
//! - a delivered descriptor came from a read the wire rules accept: never
//!   from a truncated read, one with foreign control data, or one that
//!   installed more than the limit;
//! - a truncated read or foreign control data ends in a retry (another read
//!   at once, or a deadline) or a failure, never silently;
//! - at the end, with everything dropped, nothing is left open.

#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use fdpass_core::sys::{Received, RecvMode, Sys};
use fdpass_core::{Config, Passer, Reservation, SCM_MAX_FD};
use fdpass_fuzz::app::{App, Call, Descriptors};
use fdpass_fuzz::table;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rustix::io::Errno;

/// How many descriptors beyond the asked-for room the kernel may install:
/// control space is rounded up for alignment.
const EXTRA_ROOM: usize = 3;

#[derive(Arbitrary, Debug)]
struct Case {
    sentinel: bool,
    max_fds: u8,
    set_nonblocking: bool,
    nofile_limit: Option<u16>,
    /// After every step, also do what an event loop would: handle any
    /// direction the passer wants.
    event_loop: bool,
    /// Answers queued before the passer is made (its construction uses some).
    setup: Vec<Answer>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    App(Call<()>),
    Answer(Answer),
}

/// The answer to a later call of one kind. Calls with no answer queued
/// succeed (`dup`, `pipe`, `shutdown`, `set_nonblocking`) or would block
/// (`recvmsg`, `sendmsg`).
#[derive(Arbitrary, Debug)]
enum Answer {
    /// A `MSG_PEEK` or consuming read.
    Recv(Result<Msg, Fail>),
    /// The read that consumes a peeked message without a control buffer.
    Discard(Result<Msg, Fail>),
    /// `Ok(n)`: the kernel takes up to `n` bytes (and every descriptor).
    Send(Result<u8, Fail>),
    Dup(Fail),
    Pipe(Fail),
    Shutdown(Fail),
    SetNonblocking(Fail),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Msg {
    bytes: u8,
    fds: u8,
    truncated_data: bool,
    truncated_control: bool,
    foreign_control: bool,
}

/// An errno: one the passer treats specially, or any other.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Fail(u8);

impl Fail {
    const SPECIAL: [Errno; 8] = [
        Errno::AGAIN,
        Errno::INTR,
        Errno::MFILE,
        Errno::NFILE,
        Errno::TOOMANYREFS,
        Errno::NOBUFS,
        Errno::NOMEM,
        Errno::MSGSIZE,
    ];

    fn errno(self) -> Errno {
        let n = usize::from(self.0);
        match Self::SPECIAL.get(n) {
            Some(errno) => *errno,
            None => Errno::from_raw_os_error(1 + (n - Self::SPECIAL.len()) as i32 % 133),
        }
    }
}

/// What a descriptor the fake handed out is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Installed by a read; `rejected` if the wire rules reject that read.
    Read {
        rejected: bool,
    },
    Dup,
    Pipe,
    /// Created for the application to send.
    ToSend,
}

#[derive(Debug, Default)]
struct World {
    answers: HashMap<&'static str, VecDeque<Answer>>,
    /// Every descriptor handed out and not closed yet, by number.
    open: HashMap<RawFd, Origin>,
    nofile_limit: Option<u64>,
    /// A truncated read or one with foreign control data was answered, and
    /// the passer has not read again since.
    unjudged: bool,
}

impl World {
    fn answer(&mut self, call: &'static str) -> Option<Answer> {
        self.answers.get_mut(call)?.pop_front()
    }

    fn queue(&mut self, answer: Answer) {
        let call = match answer {
            Answer::Recv(_) => "recv",
            Answer::Discard(_) => "discard",
            Answer::Send(_) => "send",
            Answer::Dup(_) => "dup",
            Answer::Pipe(_) => "pipe",
            Answer::Shutdown(_) => "shutdown",
            Answer::SetNonblocking(_) => "set_nonblocking",
        };
        self.answers.entry(call).or_default().push_back(answer);
    }

    fn hand_out(&mut self, fd: OwnedFd, origin: Origin) -> OwnedFd {
        let old = self.open.insert(fd.as_raw_fd(), origin);
        assert!(
            old.is_none(),
            "descriptor {} reused while {old:?} was never closed through Sys::close",
            fd.as_raw_fd()
        );
        fd
    }

    fn take_back(&mut self, fd: &OwnedFd) -> Origin {
        self.open
            .remove(&fd.as_raw_fd())
            .unwrap_or_else(|| panic!("descriptor {} was never handed out", fd.as_raw_fd()))
    }
}

#[derive(Debug)]
struct FuzzSys(Rc<RefCell<World>>);

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

fn fails(answer: Option<Answer>, pick: fn(Answer) -> Option<Fail>) -> Result<(), Errno> {
    match answer.and_then(pick) {
        Some(fail) => Err(fail.errno()),
        None => Ok(()),
    }
}

impl Sys for FuzzSys {
    fn sendmsg(&mut self, _: BorrowedFd<'_>, bytes: &[u8], _: &[OwnedFd]) -> Result<usize, Errno> {
        match self.0.borrow_mut().answer("send") {
            Some(Answer::Send(Ok(n))) => Ok(usize::from(n) % (bytes.len() + 1)),
            Some(Answer::Send(Err(fail))) => Err(fail.errno()),
            _ => Err(Errno::AGAIN),
        }
    }

    fn recvmsg(
        &mut self,
        _: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno> {
        let mut world = self.0.borrow_mut();
        let (answer, room) = if mode == RecvMode::Discard {
            (world.answer("discard"), 0)
        } else {
            world.unjudged = false;
            (world.answer("recv"), max_fds + EXTRA_ROOM)
        };
        let msg = match answer {
            Some(Answer::Recv(result) | Answer::Discard(result)) => result.map_err(Fail::errno)?,
            _ => return Err(Errno::AGAIN),
        };
        // Counts modulo what is possible, so that every possible count is as
        // likely as any other.
        let installed = usize::from(msg.fds) % (room + 1);
        let flagged = msg.truncated_data || msg.truncated_control || msg.foreign_control;
        let rejected = flagged || installed > max_fds;
        for _ in 0..installed {
            let (read_end, _) = pipe();
            fds.push(world.hand_out(read_end, Origin::Read { rejected }));
        }
        // The consuming read of a peeked message has no control buffer, so
        // the kernel reports MSG_CTRUNC for its descriptors: only the peek
        // or a consuming read with a control buffer is judged.
        world.unjudged = flagged && mode != RecvMode::Discard;
        Ok(Received {
            bytes: usize::from(msg.bytes) % (buf.len() + 1),
            truncated_data: msg.truncated_data,
            truncated_control: msg.truncated_control,
            foreign_control: msg.foreign_control,
        })
    }

    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        let mut world = self.0.borrow_mut();
        let answer = world.answer("dup");
        fails(answer, |a| match a {
            Answer::Dup(fail) => Some(fail),
            _ => None,
        })?;
        let copy = rustix::io::fcntl_dupfd_cloexec(fd, 0).expect("dup");
        Ok(world.hand_out(copy, Origin::Dup))
    }

    fn close(&mut self, fd: OwnedFd) {
        self.0.borrow_mut().take_back(&fd);
    }

    fn set_nonblocking(&mut self, _: BorrowedFd<'_>) -> Result<(), Errno> {
        let answer = self.0.borrow_mut().answer("set_nonblocking");
        fails(answer, |a| match a {
            Answer::SetNonblocking(fail) => Some(fail),
            _ => None,
        })
    }

    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        let mut world = self.0.borrow_mut();
        let answer = world.answer("pipe");
        fails(answer, |a| match a {
            Answer::Pipe(fail) => Some(fail),
            _ => None,
        })?;
        let (r, w) = pipe();
        Ok((
            world.hand_out(r, Origin::Pipe),
            world.hand_out(w, Origin::Pipe),
        ))
    }

    fn shutdown(&mut self, _: BorrowedFd<'_>) -> Result<(), Errno> {
        let answer = self.0.borrow_mut().answer("shutdown");
        fails(answer, |a| match a {
            Answer::Shutdown(fail) => Some(fail),
            _ => None,
        })
    }

    fn nofile_limit(&mut self) -> Option<u64> {
        self.0.borrow().nofile_limit
    }
}

impl Descriptors<()> for FuzzSys {
    fn make(&mut self, (): ()) -> Option<OwnedFd> {
        let (read_end, _) = pipe();
        Some(self.0.borrow_mut().hand_out(read_end, Origin::ToSend))
    }

    fn received(&mut self, fd: OwnedFd) {
        let origin = self.0.borrow_mut().take_back(&fd);
        assert_eq!(
            origin,
            Origin::Read { rejected: false },
            "delivered a descriptor the wire rules reject, or not received at all"
        );
    }
}

fn max_fds(n: u8) -> usize {
    match n {
        0..=127 => 1 + usize::from(n % 8),
        _ => (usize::from(n - 127) * 2).min(SCM_MAX_FD),
    }
}

fn run(case: Case) {
    let world = Rc::new(RefCell::new(World {
        nofile_limit: case.nofile_limit.map(u64::from),
        ..World::default()
    }));
    for answer in case.setup {
        world.borrow_mut().queue(answer);
    }
    let reservation = if case.sentinel {
        Reservation::Sentinel
    } else {
        Reservation::Peek
    };
    let config = Config::default()
        .with_reservation(reservation)
        .with_max_fds_per_message(max_fds(case.max_fds))
        .with_set_nonblocking(case.set_nonblocking);
    // The fake never touches the socket: any descriptor will do.
    let (socket, _) = pipe();
    let Ok(mut passer) = Passer::with_sys(FuzzSys(Rc::clone(&world)), socket, config) else {
        assert!(
            world.borrow().open.is_empty(),
            "a failed construction leaked"
        );
        return;
    };
    let mut app = App::default();
    let mut fds = FuzzSys(Rc::clone(&world));
    let mut call = |passer: &mut Passer<FuzzSys>, call: Call<()>| {
        let readable = matches!(call, Call::Readable);
        app.call(passer, call, &mut fds);
        // Handed back by `take_unsent`: the application closes them.
        for fd in app.take_handed_back() {
            world.borrow_mut().take_back(&fd);
        }
        if readable && std::mem::take(&mut world.borrow_mut().unjudged) {
            let retrying = !passer.is_peer_closed()
                && passer.poll_timeout().is_some()
                && !passer.interest().read.is_wanted();
            assert!(
                app.failed() || retrying,
                "a truncated read or foreign control data neither failed nor retried"
            );
        }
    };
    for step in case.steps {
        match step {
            Step::Answer(answer) => world.borrow_mut().queue(answer),
            Step::App(app_call) => call(&mut passer, app_call),
        }
        if case.event_loop {
            // The socket is always ready: a fake with no answer queued says
            // `EAGAIN`.
            if passer.interest().read.is_wanted() {
                call(&mut passer, Call::Readable);
            }
            if passer.interest().write.is_wanted() {
                call(&mut passer, Call::Writable);
            }
        }
    }
    drop(passer);
    let left = &world.borrow().open;
    assert!(left.is_empty(), "never closed through Sys::close: {left:?}");
}

fuzz_target!(|case: Case| {
    let before = table::open_count();
    run(case);
    assert_eq!(table::open_count(), before, "descriptors leaked");
});
