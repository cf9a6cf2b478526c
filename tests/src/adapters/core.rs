//! fdpass-core's sans-IO [`Passer`] behind the [`Adapter`] facade, driven by
//! the plain `poll(2)` loop the crate documents: handle the timeout, wait for
//! what [`Passer::interest`] asks (not at all for [`Want::Now`]), hand the
//! readiness over, drain the events. It is the reference every runtime's
//! adapter is compared with, and the first to carry messages.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_core::{Event, Passer, RecvToken, SendToken, Want};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::{
    timed_out, Adapter, Config, Done, Error, Message, MessageAdapter, PeerLimits, PushError,
    Ticked, Wait, OVERALL,
};

/// A core passer and what its events said.
pub struct Core {
    passer: Passer,
    /// Descriptors that arrived and were not yet returned, oldest first.
    received: VecDeque<OwnedFd>,
    /// Messages that arrived and were not yet returned, oldest first.
    messages: VecDeque<Message>,
    /// Receive requests the passer refused, with why.
    refused: VecDeque<(RecvToken, Error)>,
    /// Every push up to and including this token was sent.
    sent_through: Option<SendToken>,
    /// The last push: what a flush waits for.
    last_pushed: Option<SendToken>,
}

/// What a pending operation waits for.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Recv(RecvToken),
    RecvMessage(RecvToken),
    Sent(SendToken),
}

/// What a completed [`Pending`] brought.
enum Outcome {
    Descriptor(Option<OwnedFd>),
    Message(Option<Message>),
    Sent,
}

impl Core {
    /// The passer's limits as its peer's hello announced them, once the
    /// loop has read it (it is read without any request). Fails after
    /// [`OVERALL`], or with the passer's error.
    pub fn wait_for_peer_limits(&mut self) -> Result<PeerLimits, Error> {
        let give_up = Instant::now() + OVERALL;
        loop {
            if let Some(limits) = self.passer.peer_limits() {
                return Ok(limits);
            }
            self.passer.usable()?;
            if self.passer.is_peer_closed() {
                return Err(Error::PeerClosed);
            }
            if Instant::now() >= give_up {
                timed_out("the peer's hello");
            }
            self.turn(give_up);
        }
    }

    /// Moves the passer's events into our state; whether there were any.
    /// Called before every check: a push or a request may complete work at
    /// once (a request served from what was read ahead).
    fn absorb(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.passer.poll_event() {
            any = true;
            match event {
                Event::Sent(token) => self.sent_through = Some(token),
                Event::Received(_, fd) => self.received.push_back(fd),
                Event::ReceivedMessage(_, message) => self.messages.push_back(message),
                Event::RecvRefused(token, error) => self.refused.push_back((token, error)),
                // States of the core, which the checks read.
                Event::Closed | Event::Failed(_) | Event::SendFailed(_) => {}
                other => panic!("an event this adapter does not know: {other:?}"),
            }
        }
        any
    }

    /// One turn of the loop: waits for what the passer asks, at most until
    /// `until`, and hands it what happened.
    fn turn(&mut self, until: Instant) {
        let now = Instant::now();
        self.passer.handle_timeout(now);
        if self.absorb() {
            // Something to check before any wait.
            return;
        }
        let interest = self.passer.interest();
        let mut flags = PollFlags::empty();
        if interest.read == Want::WhenReady {
            flags |= PollFlags::IN;
        }
        if interest.write == Want::WhenReady {
            flags |= PollFlags::OUT;
        }
        let must_act = interest.read == Want::Now || interest.write == Want::Now;
        let wait = if must_act {
            Duration::ZERO
        } else {
            let mut wait = until.saturating_duration_since(now);
            if let Some(due) = self.passer.poll_timeout() {
                wait = wait.min(due.saturating_duration_since(now));
            }
            wait
        };
        let timeout = Timespec::try_from(wait).expect("a representable timeout");
        let mut fds = [PollFd::new(&self.passer, flags)];
        // With nothing to wait for on the socket, leave it out: a hung-up
        // socket reports HUP even with an empty mask.
        let watched = if flags.is_empty() {
            &mut fds[..0]
        } else {
            &mut fds[..]
        };
        match poll(watched, Some(&timeout)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => panic!("poll failed: {e}"),
        }
        let ready = fds[0].revents();
        let now = Instant::now();
        let woke = PollFlags::HUP | PollFlags::ERR;
        if interest.read == Want::Now || ready.intersects(PollFlags::IN | woke) {
            self.passer.handle_readable(now);
        }
        if interest.write == Want::Now || ready.intersects(PollFlags::OUT | woke) {
            self.passer.handle_writable(now);
        }
        self.absorb();
    }

    /// The outcome of `pending`, if it has one.
    fn check(&mut self, pending: Pending) -> Option<Result<Outcome, Error>> {
        let token = match pending {
            Pending::Sent(token) => {
                if self.sent_through >= Some(token) {
                    return Some(Ok(Outcome::Sent));
                }
                return self.passer.send_usable().err().map(Err);
            }
            Pending::Recv(token) | Pending::RecvMessage(token) => token,
        };
        if self.refused.front().is_some_and(|(t, _)| *t == token) {
            let (_, error) = self.refused.pop_front().expect("just seen");
            return Some(Err(error));
        }
        match pending {
            Pending::Recv(_) => {
                if let Some(fd) = self.received.pop_front() {
                    return Some(Ok(Outcome::Descriptor(Some(fd))));
                }
            }
            _ => {
                if let Some(message) = self.messages.pop_front() {
                    return Some(Ok(Outcome::Message(Some(message))));
                }
            }
        }
        if self.passer.is_peer_closed() {
            // Not to be fulfilled; withdrawn so it takes nothing read later.
            self.passer.cancel_recv(token);
            return Some(Ok(match pending {
                Pending::Recv(_) => Outcome::Descriptor(None),
                _ => Outcome::Message(None),
            }));
        }
        self.passer.usable().err().map(Err)
    }

    /// Runs the loop until `pending` completes; fails after [`OVERALL`].
    fn wait(&mut self, what: &str, pending: Pending) -> Result<Outcome, Error> {
        let give_up = Instant::now() + OVERALL;
        loop {
            self.absorb();
            if let Some(done) = self.check(pending) {
                return done;
            }
            if Instant::now() >= give_up {
                timed_out(what);
            }
            self.turn(give_up);
        }
    }

    /// Starts a descriptor receive: `Err` with its outcome when it completes
    /// at once.
    fn begin_recv(&mut self) -> Result<Pending, Result<Option<OwnedFd>, Error>> {
        if let Some(fd) = self.received.pop_front() {
            return Err(Ok(Some(fd)));
        }
        match self.passer.push_recv() {
            Ok(token) => Ok(Pending::Recv(token)),
            Err(Error::PeerClosed) => Err(Ok(None)),
            Err(e) => Err(Err(e)),
        }
    }

    /// Starts a flush: `Err` with its outcome when nothing is left to wait
    /// for.
    fn begin_flush(&mut self) -> Result<Pending, Result<(), Error>> {
        match self.last_pushed {
            Some(token) if Some(token) > self.sent_through => Ok(Pending::Sent(token)),
            _ => Err(self.passer.send_usable()),
        }
    }

    /// Pushes with `push`, running the loop while the send queue is full.
    fn push_waiting<T>(
        &mut self,
        mut item: T,
        push: fn(&mut Passer, T) -> Result<SendToken, PushError<T>>,
    ) -> Result<SendToken, PushError<T>> {
        let give_up = Instant::now() + OVERALL;
        loop {
            match push(&mut self.passer, item) {
                Ok(token) => {
                    self.last_pushed = Some(token);
                    return Ok(token);
                }
                Err(PushError::Full(back)) => item = back,
                Err(e) => return Err(e),
            }
            if Instant::now() >= give_up {
                timed_out("room in the send queue");
            }
            self.turn(give_up);
        }
    }
}

impl Adapter for Core {
    const NAME: &'static str = "core";

    fn new(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Ok(Core {
            passer: Passer::new(socket, config)?,
            received: VecDeque::new(),
            messages: VecDeque::new(),
            refused: VecDeque::new(),
            sent_through: None,
            last_pushed: None,
        })
    }

    fn send(&mut self, fd: OwnedFd) -> Result<(), Error> {
        let token = self.push_waiting(fd, Passer::push_send)?;
        self.wait("send", Pending::Sent(token)).map(drop)
    }

    fn try_push_send(&mut self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>> {
        self.last_pushed = Some(self.passer.push_send(fd)?);
        Ok(())
    }

    fn push_send_many(&mut self, fds: Vec<OwnedFd>) -> Result<(), Error> {
        if let Some(token) = self.passer.push_send_many(fds)? {
            self.last_pushed = Some(token);
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Option<OwnedFd>, Error> {
        let pending = match self.begin_recv() {
            Ok(pending) => pending,
            Err(done) => return done,
        };
        match self.wait("recv", pending)? {
            Outcome::Descriptor(fd) => Ok(fd),
            _ => unreachable!("a descriptor receive completed otherwise"),
        }
    }

    fn recv_many(&mut self, buf: &mut Vec<OwnedFd>, limit: usize) -> Result<usize, Error> {
        if limit == 0 {
            return Ok(0);
        }
        let Some(first) = self.recv()? else {
            return Ok(0);
        };
        buf.push(first);
        let mut moved = 1;
        // What the loop absorbed is older than the passer's read-ahead.
        while moved < limit {
            let fd = match self.received.pop_front() {
                Some(fd) => fd,
                None => match self.passer.try_recv() {
                    Some((_token, fd)) => fd,
                    None => break,
                },
            };
            buf.push(fd);
            moved += 1;
        }
        Ok(moved)
    }

    fn flush(&mut self) -> Result<(), Error> {
        match self.begin_flush() {
            Ok(pending) => self.wait("flush", pending).map(drop),
            Err(done) => done,
        }
    }

    fn while_ticking(
        &mut self,
        wait: Wait,
        period: Duration,
        on_tick: &mut dyn FnMut(u64),
    ) -> Ticked {
        let pending = match wait {
            Wait::Recv => self.begin_recv().map_err(|r| r.map(Done::Received)),
            Wait::Flush => self.begin_flush().map_err(|r| r.map(|()| Done::Flushed)),
        };
        let pending = match pending {
            Ok(pending) => pending,
            Err(result) => return Ticked { result, ticks: 0 },
        };
        let give_up = Instant::now() + OVERALL;
        let mut next_tick = Instant::now() + period;
        let mut ticks = 0;
        loop {
            // The operation first: a tick due when it completes does not
            // count.
            self.absorb();
            if let Some(result) = self.check(pending) {
                let result = result.map(|outcome| match outcome {
                    Outcome::Descriptor(fd) => Done::Received(fd),
                    Outcome::Sent => Done::Flushed,
                    Outcome::Message(_) => unreachable!("no message receive ticks"),
                });
                return Ticked { result, ticks };
            }
            let now = Instant::now();
            if now >= give_up {
                timed_out("an operation with a ticking timer");
            }
            if now >= next_tick {
                ticks += 1;
                on_tick(ticks);
                next_tick = Instant::now() + period;
                continue;
            }
            self.turn(next_tick.min(give_up));
        }
    }

    fn close(&mut self) {
        self.passer.close();
        self.received.clear();
        self.messages.clear();
        // Whatever was reported is over.
        while self.passer.poll_event().is_some() {}
    }

    fn shutdown(&mut self, deadline: Instant) -> Result<(), Error> {
        self.passer.shutdown(deadline);
        self.received.clear();
        self.messages.clear();
        let give_up = Instant::now() + OVERALL;
        loop {
            if let Some(outcome) = self.passer.shutdown_outcome() {
                return outcome;
            }
            if Instant::now() >= give_up {
                timed_out("shutdown");
            }
            self.turn(give_up);
        }
    }

    fn take_unsent(&mut self) -> Vec<OwnedFd> {
        self.passer.take_unsent()
    }
}

impl MessageAdapter for Core {
    fn send_message(&mut self, message: Message) -> Result<(), Error> {
        let token = self.push_waiting(message, Passer::push_send_message)?;
        self.wait("send_message", Pending::Sent(token)).map(drop)
    }

    fn push_send_message(&mut self, message: Message) -> Result<(), PushError<Message>> {
        self.last_pushed = Some(self.passer.push_send_message(message)?);
        Ok(())
    }

    fn recv_message(&mut self) -> Result<Option<Message>, Error> {
        if let Some(message) = self.messages.pop_front() {
            return Ok(Some(message));
        }
        let token = match self.passer.push_recv_message() {
            Ok(token) => token,
            Err(Error::PeerClosed) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.wait("recv_message", Pending::RecvMessage(token))? {
            Outcome::Message(message) => Ok(message),
            _ => unreachable!("a message receive completed otherwise"),
        }
    }

    fn peer_limits(&self) -> Option<PeerLimits> {
        self.passer.peer_limits()
    }

    fn take_unsent_messages(&mut self) -> Vec<Message> {
        self.passer.take_unsent_messages()
    }
}
