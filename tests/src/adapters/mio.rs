//! fdpass-mio behind the [`Adapter`] facade: each passer owns a mio `Poll`,
//! and every blocking call runs the loop the crate documents (drain the
//! passer's events, poll with its timeout, hand over what the poll saw and
//! the time) until the operation is done. mio has no runtime, so there is no
//! multi-threaded variant and workers are threads.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use fdpass_core::{RecvToken, SendToken};
use fdpass_mio::{Event, Listener, Passer};
use mio::{Events, Interest, Poll, Token};

use crate::{
    timed_out, Adapter, Config, Done, Error, Message, MessageAdapter, PeerLimits, PushError,
    Ticked, Wait, OVERALL,
};

/// The passer's token in its poll.
const PASSER: Token = Token(0);
/// The listener's token while [`Adapter::accept`] waits.
const LISTENER: Token = Token(1);

/// A mio passer, the poll it is registered in, and what its events said.
pub struct Mio {
    passer: Passer,
    poll: Poll,
    events: Events,
    /// Descriptors that arrived and were not yet returned, oldest first.
    received: VecDeque<OwnedFd>,
    /// Messages that arrived and were not yet returned, oldest first.
    messages: VecDeque<Message>,
    /// Receive requests the passer refused, with why.
    refused: VecDeque<(RecvToken, Error)>,
    /// Every descriptor pushed up to and including this token was sent.
    sent_through: Option<SendToken>,
    /// The last descriptor pushed: what a flush waits for.
    last_pushed: Option<SendToken>,
}

/// What a pending operation waits for.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Recv(RecvToken),
    RecvMessage(RecvToken),
    Sent(SendToken),
}

impl Mio {
    fn with_poll(mut passer: Passer, poll: Poll) -> Result<Mio, Error> {
        poll.registry()
            .register(&mut passer, PASSER, Interest::READABLE | Interest::WRITABLE)?;
        let mut mio = Mio {
            passer,
            poll,
            events: Events::with_capacity(64),
            received: VecDeque::new(),
            messages: VecDeque::new(),
            refused: VecDeque::new(),
            sent_through: None,
            last_pushed: None,
        };
        // Creating the passer may already have done I/O.
        mio.absorb();
        Ok(mio)
    }

    /// Moves the passer's events into our state. Called after every call into
    /// the passer: a push, an event or the clock may complete work.
    fn absorb(&mut self) {
        while let Some(event) = self.passer.poll_event() {
            match event {
                Event::Sent(token) => self.sent_through = Some(token),
                Event::Received(_, fd) => self.received.push_back(fd),
                Event::ReceivedMessage(_, message) => self.messages.push_back(message),
                Event::RecvRefused(token, error) => self.refused.push_back((token, error)),
                // Both are states of the core, which the checks read.
                Event::Closed | Event::Failed(_) | Event::SendFailed(_) => {}
                other => panic!("an event this adapter does not know: {other:?}"),
            }
        }
    }

    /// Waits once for events or the passer's deadline, at most until
    /// `until`, and hands both to the passer.
    fn turn(&mut self, until: Instant) {
        let now = Instant::now();
        let mut timeout = until.saturating_duration_since(now);
        if let Some(due) = self.passer.poll_duration(now) {
            timeout = timeout.min(due);
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("mio poll failed: {e}"),
        }
        for event in self.events.iter() {
            if event.token() == PASSER {
                self.passer.handle_event(event);
            }
        }
        self.passer.handle_timeout(Instant::now());
        self.absorb();
    }

    /// Starts a receive: `Err` with its outcome when it completes at once.
    fn begin_recv(&mut self) -> Result<Pending, Result<Option<OwnedFd>, Error>> {
        if let Some(fd) = self.received.pop_front() {
            return Err(Ok(Some(fd)));
        }
        let token = match self.passer.push_recv() {
            Ok(token) => token,
            Err(Error::PeerClosed) => return Err(Ok(None)),
            Err(e) => return Err(Err(e)),
        };
        self.absorb();
        Ok(Pending::Recv(token))
    }

    /// Starts a flush: `Err` with its outcome when nothing is left to wait
    /// for.
    fn begin_flush(&mut self) -> Result<Pending, Result<(), Error>> {
        match self.last_pushed {
            Some(token) if Some(token) > self.sent_through => Ok(Pending::Sent(token)),
            _ => Err(self.passer.core().send_usable()),
        }
    }

    /// The outcome of `pending`, if it has one.
    fn check(&mut self, pending: Pending) -> Option<Result<Done, Error>> {
        match pending {
            Pending::Recv(token) => {
                if let Some(error) = self.refusal(token) {
                    return Some(Err(error));
                }
                if let Some(fd) = self.received.pop_front() {
                    return Some(Ok(Done::Received(Some(fd))));
                }
                if self.passer.core().is_peer_closed() {
                    // The request will not be fulfilled; withdraw it so it
                    // does not take a descriptor read ahead later.
                    self.passer.cancel_recv(token);
                    return Some(Ok(Done::Received(None)));
                }
                self.passer.core().usable().err().map(Err)
            }
            Pending::RecvMessage(token) => {
                if let Some(error) = self.refusal(token) {
                    return Some(Err(error));
                }
                if let Some(message) = self.messages.pop_front() {
                    return Some(Ok(Done::Message(Some(message))));
                }
                if self.passer.core().is_peer_closed() {
                    self.passer.cancel_recv(token);
                    return Some(Ok(Done::Message(None)));
                }
                self.passer.core().usable().err().map(Err)
            }
            Pending::Sent(token) => {
                if self.sent_through >= Some(token) {
                    return Some(Ok(Done::Flushed));
                }
                self.passer.core().send_usable().err().map(Err)
            }
        }
    }

    /// Why the passer refused request `token`, if it did.
    fn refusal(&mut self, token: RecvToken) -> Option<Error> {
        if self.refused.front().is_some_and(|(t, _)| *t == token) {
            return self.refused.pop_front().map(|(_, error)| error);
        }
        None
    }

    /// Runs the loop until `pending` completes; fails after [`OVERALL`].
    fn wait(&mut self, what: &str, pending: Pending) -> Result<Done, Error> {
        let give_up = Instant::now() + OVERALL;
        loop {
            if let Some(done) = self.check(pending) {
                return done;
            }
            if Instant::now() >= give_up {
                timed_out(what);
            }
            self.turn(give_up);
        }
    }
}

impl Drop for Mio {
    fn drop(&mut self) {
        // The registration ends with the poll anyway; leaving it explicitly
        // is what the crate asks of a passer's owner.
        let _ = self.poll.registry().deregister(&mut self.passer);
    }
}

impl Adapter for Mio {
    const NAME: &'static str = "mio";

    fn new(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Mio::with_poll(Passer::with_config(socket, config)?, Poll::new()?)
    }

    fn accept(path: &Path, before_accept: &mut dyn FnMut()) -> Result<Self, Error> {
        let mut listener = Listener::bind(path)?;
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        before_accept();
        let give_up = Instant::now() + OVERALL;
        let mut events = Events::with_capacity(8);
        // Accept before every wait: mio is edge-triggered, and a connection
        // that is already waiting brings no new event.
        let passer = loop {
            if let Some(passer) = listener.accept()? {
                break passer;
            }
            let now = Instant::now();
            if now >= give_up {
                timed_out("accept");
            }
            match poll.poll(&mut events, Some(give_up - now)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        poll.registry().deregister(&mut listener)?;
        drop(listener);
        Mio::with_poll(passer, poll)
    }

    fn connect(path: &Path) -> Result<Self, Error> {
        Mio::with_poll(Passer::connect(path)?, Poll::new()?)
    }

    fn send(&mut self, fd: OwnedFd) -> Result<(), Error> {
        // At the high-water mark the loop runs until the queue has room: a
        // blocking send waits, as the async adapters' `send` does.
        let give_up = Instant::now() + OVERALL;
        let mut fd = fd;
        loop {
            match self.try_push_send(fd) {
                Ok(()) => break,
                Err(PushError::Full(back)) => fd = back,
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= give_up {
                timed_out("send (room in the send queue)");
            }
            self.turn(give_up);
        }
        let token = self.last_pushed.expect("a descriptor was just pushed");
        self.wait("send", Pending::Sent(token)).map(|_| ())
    }

    fn try_push_send(&mut self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>> {
        let token = self.passer.push_send(fd)?;
        self.last_pushed = Some(token);
        self.absorb();
        Ok(())
    }

    fn push_send_many(&mut self, fds: Vec<OwnedFd>) -> Result<(), Error> {
        if let Some(token) = self.passer.push_send_many(fds)? {
            self.last_pushed = Some(token);
        }
        self.absorb();
        Ok(())
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
        // What the loop absorbed already is older than the passer's
        // read-ahead, which `try_recv` hands out without an event.
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

    fn recv(&mut self) -> Result<Option<OwnedFd>, Error> {
        let pending = match self.begin_recv() {
            Ok(pending) => pending,
            Err(done) => return done,
        };
        match self.wait("recv", pending)? {
            Done::Received(fd) => Ok(fd),
            _ => unreachable!("a descriptor receive completed otherwise"),
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        match self.begin_flush() {
            Ok(pending) => self.wait("flush", pending).map(|_| ()),
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
            // The operation first, as a biased select would: a tick that is
            // due when it completes does not count.
            if let Some(result) = self.check(pending) {
                return Ticked { result, ticks };
            }
            let now = Instant::now();
            if now >= give_up {
                timed_out("an operation with a ticking timer");
            }
            if now >= next_tick {
                ticks += 1;
                on_tick(ticks);
                // Missed ticks are not made up: a loop that was held up
                // fires once, then waits a whole period again.
                next_tick = Instant::now() + period;
                continue;
            }
            // The tick is this loop's own timer: the poll sleeps until it,
            // the passer's deadline or an event, whichever comes first.
            self.turn(next_tick.min(give_up));
        }
    }

    fn close(&mut self) {
        self.passer.close();
        self.received.clear();
        self.absorb();
    }

    fn shutdown(&mut self, deadline: Instant) -> Result<(), Error> {
        self.passer.shutdown(deadline);
        self.received.clear();
        self.absorb();
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

impl MessageAdapter for Mio {
    fn send_message(&mut self, message: Message) -> Result<(), Error> {
        // At the high-water mark the loop runs until the queue has room.
        let give_up = Instant::now() + OVERALL;
        let mut message = message;
        loop {
            match self.push_send_message(message) {
                Ok(()) => break,
                Err(PushError::Full(back)) => message = back,
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= give_up {
                timed_out("send_message (room in the send queue)");
            }
            self.turn(give_up);
        }
        let token = self.last_pushed.expect("a message was just pushed");
        self.wait("send_message", Pending::Sent(token)).map(|_| ())
    }

    fn push_send_message(&mut self, message: Message) -> Result<(), PushError<Message>> {
        let token = self.passer.push_send_message(message)?;
        self.last_pushed = Some(token);
        self.absorb();
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
        self.absorb();
        match self.wait("recv_message", Pending::RecvMessage(token))? {
            Done::Message(message) => Ok(message),
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
