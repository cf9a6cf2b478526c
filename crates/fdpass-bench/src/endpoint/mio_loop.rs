//! fdpass-mio in its own mio loop.

use std::os::fd::OwnedFd;
use std::time::Instant;

use fdpass_mio::{Config, Event, Passer};
use mio::{Events, Interest, Poll, Token};

use super::{closed, take_message, Endpoint, Idiom, RECV_WINDOW};
use crate::BoxError;

const TOKEN: Token = Token(0);

pub struct MioLoop {
    poll: Poll,
    events: Events,
    passer: Passer,
    idiom: Idiom,
}

impl MioLoop {
    pub fn new(socket: OwnedFd, config: Config, idiom: Idiom) -> Result<MioLoop, BoxError> {
        let poll = Poll::new()?;
        let mut passer = Passer::with_config(socket, config)?;
        poll.registry()
            .register(&mut passer, TOKEN, Interest::READABLE | Interest::WRITABLE)?;
        Ok(MioLoop {
            poll,
            events: Events::with_capacity(64),
            passer,
            idiom,
        })
    }

    /// The loop of the crate docs: drain events, poll, hand over what the poll
    /// saw and the time.
    fn run(
        &mut self,
        mut on_event: impl FnMut(&mut Passer, Event) -> Result<bool, BoxError>,
    ) -> Result<(), BoxError> {
        loop {
            while let Some(event) = self.passer.poll_event() {
                if let Event::Failed(e) = event {
                    return Err(e.into());
                }
                if on_event(&mut self.passer, event)? {
                    return Ok(());
                }
            }
            self.poll
                .poll(&mut self.events, self.passer.poll_duration(Instant::now()))?;
            for event in self.events.iter() {
                if event.token() == TOKEN {
                    self.passer.handle_event(event);
                }
            }
            self.passer.handle_timeout(Instant::now());
        }
    }

    fn recv_one(&mut self) -> Result<OwnedFd, BoxError> {
        self.passer.push_recv()?;
        let mut got = None;
        self.run(|_, event| match event {
            Event::Received(_, fd) => {
                got = Some(fd);
                Ok(true)
            }
            Event::Closed => Err(closed()),
            _ => Ok(false),
        })?;
        got.ok_or_else(closed)
    }

    /// One request at a time; after each `Received`, the rest of that
    /// message with `try_recv`.
    fn recv_bulk(&mut self, n: usize) -> Result<(), BoxError> {
        if n == 0 {
            return Ok(());
        }
        self.passer.push_recv()?;
        let mut got = 0;
        self.run(|passer, event| match event {
            Event::Received(_, fd) => {
                let done = take_message(&mut got, n, fd, || passer.try_recv().map(|(_, fd)| fd));
                if !done {
                    passer.push_recv()?;
                }
                Ok(done)
            }
            Event::Closed => Err(closed()),
            _ => Ok(false),
        })
    }

    fn send_one(&mut self, fd: OwnedFd) -> Result<(), BoxError> {
        let token = self.passer.push_send(fd)?;
        self.run(|_, event| Ok(matches!(event, Event::Sent(t) if t >= token)))
    }
}

impl Endpoint for MioLoop {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let last = match self.idiom {
            Idiom::OneByOne => {
                let mut last = None;
                for fd in fds {
                    last = Some(self.passer.push_send(fd)?);
                }
                last
            }
            _ => self.passer.push_send_many(fds)?,
        };
        let Some(last) = last else { return Ok(()) };
        self.run(|_, event| Ok(matches!(event, Event::Sent(t) if t >= last)))
    }

    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        if self.idiom != Idiom::OneByOne {
            return self.recv_bulk(n);
        }
        let mut asked = 0;
        while asked < n.min(RECV_WINDOW) {
            self.passer.push_recv()?;
            asked += 1;
        }
        let mut got = 0;
        self.run(|passer, event| match event {
            Event::Received(_, fd) => {
                drop(fd);
                got += 1;
                if asked < n {
                    passer.push_recv()?;
                    asked += 1;
                }
                Ok(got == n)
            }
            Event::Closed => Err(closed()),
            _ => Ok(false),
        })
    }

    fn ping(
        &mut self,
        fd: OwnedFd,
        rounds: usize,
        stamps: &mut Vec<Instant>,
    ) -> Result<OwnedFd, BoxError> {
        let mut fd = fd;
        stamps.push(Instant::now());
        for _ in 0..rounds {
            self.send_one(fd)?;
            fd = self.recv_one()?;
            stamps.push(Instant::now());
        }
        Ok(fd)
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        for _ in 0..rounds {
            let fd = self.recv_one()?;
            self.send_one(fd)?;
        }
        Ok(())
    }
}
