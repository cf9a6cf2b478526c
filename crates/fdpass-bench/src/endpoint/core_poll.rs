//! fdpass-core driven by a plain `poll(2)` loop, as the crate docs show.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use fdpass_core::{Config, Event, Message, Passer, Want};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::{closed, take_message, Endpoint, PAYLOAD};
use crate::case::Load;
use crate::BoxError;

/// Messages the sender of a message case queues before it waits for the
/// kernel to take them: a deep queue, without holding a whole repetition's
/// payload at once.
const MESSAGE_WINDOW: usize = 1024;

pub struct CorePoll {
    passer: Passer,
}

impl CorePoll {
    pub fn new(socket: OwnedFd, config: Config) -> Result<CorePoll, BoxError> {
        Ok(CorePoll {
            passer: Passer::new(socket, config)?,
        })
    }
}

/// Drives `passer` until `on_event` says it is done: I/O the passer wants
/// now is done at once; otherwise `poll(2)` waits for readiness or the next
/// retry deadline.
fn run(
    passer: &mut Passer,
    mut on_event: impl FnMut(&mut Passer, Event) -> Result<bool, BoxError>,
) -> Result<(), BoxError> {
    loop {
        while let Some(event) = passer.poll_event() {
            if let Event::Failed(e) = event {
                return Err(e.into());
            }
            if on_event(passer, event)? {
                return Ok(());
            }
        }
        let now = Instant::now();
        passer.handle_timeout(now);
        let interest = passer.interest();
        if interest.write == Want::Now {
            passer.handle_writable(now);
            continue;
        }
        if interest.read == Want::Now {
            passer.handle_readable(now);
            continue;
        }
        let mut flags = PollFlags::empty();
        if interest.read == Want::WhenReady {
            flags |= PollFlags::IN;
        }
        if interest.write == Want::WhenReady {
            flags |= PollFlags::OUT;
        }
        let deadline = passer.poll_timeout();
        if flags.is_empty() && deadline.is_none() {
            return Err("the passer has nothing to wait for".into());
        }
        let wait = deadline.map_or(Duration::from_secs(10), |at| {
            at.saturating_duration_since(now)
        });
        let timeout = Timespec::try_from(wait)?;
        let mut fds = [PollFd::from_borrowed_fd(passer.as_fd(), flags)];
        poll(&mut fds, Some(&timeout))?;
        let ready = fds[0].revents();
        let now = Instant::now();
        if ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            passer.handle_readable(now);
        }
        if ready.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR) {
            passer.handle_writable(now);
        }
    }
}

/// Drives `passer` until it has nothing left to write. After the last
/// `Sent` event bytes of the last `sendmsg` may still be owed: the kernel
/// took its descriptors with the first part of its bytes, and reports them
/// sent, but the peer needs the rest to complete the frames (a 4 KiB
/// message's, or a long batch's, when the socket buffer was nearly full).
fn finish_writing(passer: &mut Passer) -> Result<(), BoxError> {
    loop {
        while let Some(event) = passer.poll_event() {
            if let Event::Failed(e) = event {
                return Err(e.into());
            }
        }
        let now = Instant::now();
        passer.handle_timeout(now);
        let deadline = passer.poll_timeout();
        match passer.interest().write {
            Want::Now => passer.handle_writable(now),
            Want::WhenReady => {
                let mut fds = [PollFd::from_borrowed_fd(passer.as_fd(), PollFlags::OUT)];
                let timeout = Timespec::try_from(Duration::from_secs(10))?;
                poll(&mut fds, Some(&timeout))?;
                passer.handle_writable(Instant::now());
            }
            // A send back-off: wait for its retry.
            _ if deadline.is_some() => {
                let wait = deadline.map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
                std::thread::sleep(wait);
            }
            _ => return Ok(()),
        }
    }
}

/// Waits for the `Received` event of the one outstanding request.
fn recv_one(passer: &mut Passer) -> Result<OwnedFd, BoxError> {
    passer.push_recv()?;
    let mut got = None;
    run(passer, |_, event| match event {
        Event::Received(_, fd) => {
            got = Some(fd);
            Ok(true)
        }
        Event::Closed => Err(closed()),
        _ => Ok(false),
    })?;
    got.ok_or_else(closed)
}

/// Pushes `fd` and waits for its `Sent` event.
fn send_one(passer: &mut Passer, fd: OwnedFd) -> Result<(), BoxError> {
    let token = passer.push_send(fd)?;
    run(passer, |_, event| {
        Ok(matches!(event, Event::Sent(t) if t >= token))
    })?;
    finish_writing(passer)
}

impl Endpoint for CorePoll {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let Some(last) = self.passer.push_send_many(fds)? else {
            return Ok(());
        };
        run(&mut self.passer, |_, event| {
            Ok(matches!(event, Event::Sent(t) if t >= last))
        })?;
        finish_writing(&mut self.passer)
    }

    /// One request at a time; after each `Received`, the rest of that
    /// message with `try_recv`.
    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        if n == 0 {
            return Ok(());
        }
        self.passer.push_recv()?;
        let mut got = 0;
        run(&mut self.passer, |passer, event| match event {
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

    fn ping(
        &mut self,
        fd: OwnedFd,
        rounds: usize,
        stamps: &mut Vec<Instant>,
    ) -> Result<OwnedFd, BoxError> {
        let mut fd = fd;
        stamps.push(Instant::now());
        for _ in 0..rounds {
            send_one(&mut self.passer, fd)?;
            fd = recv_one(&mut self.passer)?;
            stamps.push(Instant::now());
        }
        Ok(fd)
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        for _ in 0..rounds {
            let fd = recv_one(&mut self.passer)?;
            send_one(&mut self.passer, fd)?;
        }
        Ok(())
    }

    /// `push_send_message` for up to [`MESSAGE_WINDOW`] messages, then the
    /// loop until the kernel took the last of them, again until all are sent.
    fn send_messages(&mut self, load: Load, n: usize, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let payload = &PAYLOAD[..load.payload_len()];
        let mut fds = fds.into_iter();
        let mut left = n;
        while left > 0 {
            let k = left.min(MESSAGE_WINDOW);
            left -= k;
            let mut last = None;
            for _ in 0..k {
                let message =
                    Message::new(payload.to_vec(), fds.by_ref().take(load.fds()).collect());
                last = Some(
                    self.passer
                        .push_send_message(message)
                        .map_err(|e| e.to_string())?,
                );
            }
            let Some(last) = last else { break };
            run(&mut self.passer, |_, event| {
                Ok(matches!(event, Event::Sent(t) if t >= last))
            })?;
        }
        finish_writing(&mut self.passer)
    }

    /// One message request at a time; after each `ReceivedMessage`, the
    /// rest already read with `try_recv_message`.
    fn recv_messages(&mut self, load: Load, n: usize) -> Result<(), BoxError> {
        if n == 0 {
            return Ok(());
        }
        let check = |message: Message| -> Result<(), BoxError> {
            if message.payload.len() != load.payload_len() || message.fds.len() != load.fds() {
                return Err(format!(
                    "expected {} bytes and {} descriptors, got {} and {}",
                    load.payload_len(),
                    load.fds(),
                    message.payload.len(),
                    message.fds.len()
                )
                .into());
            }
            Ok(())
        };
        self.passer.push_recv_message()?;
        let mut got = 0;
        run(&mut self.passer, |passer, event| match event {
            Event::ReceivedMessage(_, message) => {
                check(message)?;
                got += 1;
                while got < n {
                    let Some((_, message)) = passer.try_recv_message() else {
                        break;
                    };
                    check(message)?;
                    got += 1;
                }
                if got < n {
                    passer.push_recv_message()?;
                }
                Ok(got == n)
            }
            Event::RecvRefused(_, e) => Err(e.into()),
            Event::Closed => Err(closed()),
            _ => Ok(false),
        })
    }
}
