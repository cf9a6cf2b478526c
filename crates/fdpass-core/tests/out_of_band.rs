//! Whatever the peer writes, with any flag `send` accepts, ends in progress
//! or a typed error, never in an event loop that wakes without progress.
//!
//! Linux (5.15 and later) accepts `MSG_OOB` on `AF_UNIX` stream sockets and
//! keeps that byte apart (`manage_oob` in `net/unix/af_unix.c`): a peek skips
//! it and reports `EAGAIN`, while `poll` keeps reporting the socket readable
//! (and `POLLPRI`); a consuming read drops it silently, with any descriptors
//! attached. The passer asks for `SO_OOBINLINE`, so the byte stays in the
//! stream and is judged like any other.
//!
//! The loop here is the level-triggered `poll(2)` loop of the crate docs,
//! with a bound on how often it may wake.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use fdpass_core::{Config, Error, Event, Passer, ProtocolError, Reservation, Want};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

const BOTH: [Reservation; 2] = [Reservation::Peek, Reservation::Sentinel];

/// A loop that makes progress needs a handful of wake-ups per event.
const MAX_WAKEUPS: usize = 20;

/// Sends one byte, with `fds` attached, under `flags`. `None` if the kernel
/// does not accept out-of-band data on this socket.
fn send(peer: &OwnedFd, fds: Vec<OwnedFd>, flags: SendFlags) -> Option<()> {
    let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
    let mut storage = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut storage);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    }
    match rustix::net::sendmsg(
        peer,
        &[IoSlice::new(&[0])],
        &mut control,
        flags | SendFlags::DONTWAIT,
    ) {
        Ok(1) => Some(()),
        // Before Linux 5.15, or built without CONFIG_AF_UNIX_OOB.
        Err(Errno::OPNOTSUPP) => None,
        other => panic!("sendmsg: {other:?}"),
    }
}

fn numbered_pipe() -> OwnedFd {
    rustix::pipe::pipe().unwrap().0
}

/// The crate docs' `poll(2)` loop, until `want` events came, the passer
/// wakes [`MAX_WAKEUPS`] times, or 3 s pass. Returns the events and the
/// wake-ups.
fn poll_loop(passer: &mut Passer, want: usize) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut wakeups = 0;
    let give_up = Instant::now() + Duration::from_secs(3);
    while events.len() < want && wakeups < MAX_WAKEUPS && Instant::now() < give_up {
        let now = Instant::now();
        passer.handle_timeout(now);
        let interest = passer.interest();
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
            passer
                .poll_timeout()
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(now)
                })
        };
        let mut fds = [PollFd::from_borrowed_fd(passer.as_fd(), flags)];
        let watched = if flags.is_empty() {
            &mut fds[..0]
        } else {
            &mut fds[..]
        };
        let woke = poll(watched, Some(&Timespec::try_from(wait).unwrap())).unwrap();
        let ready = fds[0].revents();
        if woke > 0 || must_act {
            wakeups += 1;
        }
        let now = Instant::now();
        if interest.read == Want::Now
            || ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
        {
            passer.handle_readable(now);
        }
        if interest.write == Want::Now
            || ready.intersects(PollFlags::OUT | PollFlags::HUP | PollFlags::ERR)
        {
            passer.handle_writable(now);
        }
        while let Some(event) = passer.poll_event() {
            events.push(event);
        }
    }
    (events, wakeups)
}

#[test]
fn out_of_band_byte_never_spins_a_level_triggered_loop() {
    for reservation in BOTH {
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = Passer::new(ours, classic().with_reservation(reservation)).unwrap();
        if send(&peer, Vec::new(), SendFlags::OOB).is_none() {
            eprintln!("this kernel refuses MSG_OOB on AF_UNIX: nothing to test");
            return;
        }
        passer.push_recv().unwrap();
        let (events, wakeups) = poll_loop(&mut passer, 1);
        assert!(
            matches!(
                events.as_slice(),
                [Event::Failed(Error::Protocol(
                    ProtocolError::BytesWithoutDescriptors {
                        bytes: 1,
                        descriptors: 0
                    }
                ))]
            ),
            "{reservation:?}: {events:?} after {wakeups} wake-ups"
        );
    }
}

#[test]
fn out_of_band_descriptors_arrive_in_order_like_any_other() {
    for reservation in BOTH {
        let (peer, ours) = fdpass_core::socket::pair().unwrap();
        let mut passer = Passer::new(ours, classic().with_reservation(reservation)).unwrap();
        let sent: Vec<OwnedFd> = (0..3).map(|_| numbered_pipe()).collect();
        let ids: Vec<_> = sent
            .iter()
            .map(|fd| rustix::fs::fstat(fd).unwrap().st_ino)
            .collect();
        let mut sent = sent.into_iter();
        send(&peer, vec![sent.next().unwrap()], SendFlags::empty()).unwrap();
        if send(&peer, vec![sent.next().unwrap()], SendFlags::OOB).is_none() {
            eprintln!("this kernel refuses MSG_OOB on AF_UNIX: nothing to test");
            return;
        }
        send(&peer, vec![sent.next().unwrap()], SendFlags::empty()).unwrap();
        for _ in 0..3 {
            passer.push_recv().unwrap();
        }
        let (events, wakeups) = poll_loop(&mut passer, 3);
        let got: Vec<_> = events
            .iter()
            .map(|event| match event {
                Event::Received(_, fd) => rustix::fs::fstat(fd).unwrap().st_ino,
                other => panic!("{reservation:?}: {other:?} after {wakeups} wake-ups"),
            })
            .collect();
        assert_eq!(got, ids, "{reservation:?}");
    }
}

/// The peer here writes the classic wire by hand.
fn classic() -> Config {
    Config::default().with_wire(fdpass_core::Wire::Classic { batch: 128 })
}
