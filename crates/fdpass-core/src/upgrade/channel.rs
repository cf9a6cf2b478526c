//! A blocking exchange of whole messages with a deadline: the upgrade's
//! control connection carries two messages in its whole life (the named set
//! one way, "ready" the other), on a thread that may block, so a `poll(2)`
//! loop around a [`Passer`] is all it needs and works under any runtime.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::{Config, Error, Event, Message, Passer, PushError, Want};

/// How an exchange ended without its message.
#[derive(Debug)]
pub(crate) enum ChannelError {
    /// The deadline passed first.
    TimedOut,
    /// The peer closed the connection (it exited, or gave up) first.
    Closed,
    /// The passer failed (the peer sent bad input, or the socket failed).
    Failed(Error),
}

pub(crate) struct Channel {
    passer: Passer,
}

impl Channel {
    pub(crate) fn new(socket: OwnedFd) -> Result<Channel, Error> {
        Ok(Channel {
            passer: Passer::new(socket, Config::default())?,
        })
    }

    /// Sends `message` and waits until the kernel has taken all of it.
    pub(crate) fn send(&mut self, message: Message, deadline: Instant) -> Result<(), ChannelError> {
        let token = match self.passer.push_send_message(message) {
            Ok(token) => token,
            Err(PushError::Refused(e, _)) | Err(PushError::Unusable(e, _)) => {
                return Err(ChannelError::Failed(e))
            }
            // The channel's config sets no high-water mark, and it sends one
            // message at a time.
            Err(PushError::Full(_)) => {
                return Err(ChannelError::Failed(Error::from(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "the control connection's send queue is full",
                ))))
            }
        };
        let mut sent = false;
        self.drive(deadline, |event| match event {
            Event::Sent(done) if done >= token => {
                sent = true;
                Ok(true)
            }
            _ => Ok(false),
        })?;
        debug_assert!(sent);
        Ok(())
    }

    /// Waits for the next message.
    pub(crate) fn recv(&mut self, deadline: Instant) -> Result<Message, ChannelError> {
        if let Some((_, message)) = self.passer.try_recv_message() {
            return Ok(message);
        }
        self.passer
            .push_recv_message()
            .map_err(ChannelError::Failed)?;
        let mut received = None;
        self.drive(deadline, |event| match event {
            Event::ReceivedMessage(_, message) => {
                received = Some(message);
                Ok(true)
            }
            Event::RecvRefused(_, e) => Err(ChannelError::Failed(e)),
            _ => Ok(false),
        })?;
        received.ok_or(ChannelError::Closed)
    }

    /// Drives the passer until `done` says so, the peer closes, the passer
    /// fails, or `deadline` passes.
    fn drive(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(Event) -> Result<bool, ChannelError>,
    ) -> Result<(), ChannelError> {
        loop {
            while let Some(event) = self.passer.poll_event() {
                match event {
                    Event::Closed => return Err(ChannelError::Closed),
                    Event::Failed(e) | Event::SendFailed(e) if peer_gone(&e) => {
                        return Err(ChannelError::Closed)
                    }
                    Event::Failed(e) | Event::SendFailed(e) => return Err(ChannelError::Failed(e)),
                    event => {
                        if done(event)? {
                            return Ok(());
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ChannelError::TimedOut);
            }
            self.passer.handle_timeout(now);
            let interest = self.passer.interest();
            let mut flags = PollFlags::empty();
            if interest.read == Want::WhenReady {
                flags |= PollFlags::IN;
            }
            if interest.write == Want::WhenReady {
                flags |= PollFlags::OUT;
            }
            let must_act = interest.read == Want::Now || interest.write == Want::Now;
            let mut wait = deadline.saturating_duration_since(now);
            if let Some(at) = self.passer.poll_timeout() {
                wait = wait.min(at.saturating_duration_since(now));
            }
            if must_act {
                wait = Duration::ZERO;
            }
            let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let mut ready = PollFlags::empty();
            if flags.is_empty() {
                // Nothing to wait for on the socket (a hung-up socket would
                // report HUP at once even with an empty mask): wait for the
                // next deadline only.
                if !must_act {
                    let _ = poll(&mut [], Some(&timeout));
                }
            } else {
                let mut fds = [PollFd::from_borrowed_fd(self.passer.as_fd(), flags)];
                match poll(&mut fds, Some(&timeout)) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => {
                        return Err(ChannelError::Failed(Error::from(std::io::Error::from(e))))
                    }
                }
                ready = fds[0].revents();
            }
            let now = Instant::now();
            if interest.read == Want::Now
                || ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
            {
                self.passer.handle_readable(now);
            }
            if interest.write == Want::Now
                || ready.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR)
            {
                self.passer.handle_writable(now);
            }
        }
    }
}

/// Whether `e` says the peer went away (its end closed while we sent, or
/// with data unread): for the upgrade the same as its orderly close.
fn peer_gone(e: &Error) -> bool {
    match e {
        Error::PeerClosed => true,
        Error::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        _ => false,
    }
}
