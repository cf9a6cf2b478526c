//! What the sentinel reservation costs per read on each wire, counted at
//! the system-call seam: on the native wire the frame header says how many
//! descriptors the next read brings, so only that many slots are freed and
//! taken again; the classic wire cannot know and frees them all.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use fdpass_core::sys::{Received, RecvMode, Sys, SystemCalls};
use fdpass_core::{Config, Event, Message, Passer, Reservation, Wire};
use rustix::io::Errno;

/// The real calls, counting the slot duplicates.
#[derive(Default)]
struct Counting {
    real: SystemCalls,
    dups: usize,
}

impl Sys for Counting {
    fn sendmsg(&mut self, s: BorrowedFd<'_>, b: &[u8], f: &[OwnedFd]) -> Result<usize, Errno> {
        self.real.sendmsg(s, b, f)
    }
    fn recvmsg(
        &mut self,
        s: BorrowedFd<'_>,
        buf: &mut [u8],
        max_fds: usize,
        mode: RecvMode,
        fds: &mut Vec<OwnedFd>,
    ) -> Result<Received, Errno> {
        self.real.recvmsg(s, buf, max_fds, mode, fds)
    }
    fn dup(&mut self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        self.dups += 1;
        self.real.dup(fd)
    }
    fn close(&mut self, fd: OwnedFd) {
        self.real.close(fd)
    }
    fn set_nonblocking(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.real.set_nonblocking(fd)
    }
    fn pipe(&mut self) -> Result<(OwnedFd, OwnedFd), Errno> {
        self.real.pipe()
    }
    fn shutdown(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.real.shutdown(fd)
    }
    fn nofile_limit(&mut self) -> Option<u64> {
        self.real.nofile_limit()
    }
    fn peek_bytes(&mut self, s: BorrowedFd<'_>, buf: &mut [u8]) -> Option<Result<usize, Errno>> {
        self.real.peek_bytes(s, buf)
    }
    fn keeps_boundaries(&mut self, s: BorrowedFd<'_>) -> bool {
        self.real.keeps_boundaries(s)
    }
}

/// Sends `messages` from a default passer to a sentinel receiver on
/// `wire`, one read per message, and returns the receiver's slot dups
/// after its reservation was taken.
fn dups_per_read(wire: Wire, messages: Vec<Message>) -> Vec<usize> {
    let (a, b) = fdpass_core::socket::pair().unwrap();
    let config = Config::default()
        .with_wire(wire)
        .with_reservation(Reservation::Sentinel);
    let mut sender = Passer::new(a, config).unwrap();
    let mut receiver = Passer::with_sys(Counting::default(), b, config).unwrap();
    let now = Instant::now();
    // Hellos both ways first (the native receiver reads the sender's unasked).
    receiver.handle_writable(now);
    sender.handle_readable(now);
    sender.handle_writable(now);
    receiver.handle_readable(now);
    let mut counts = Vec::new();
    for message in messages {
        sender.push_send_message(message).unwrap();
        sender.handle_writable(now);
        receiver.push_recv_message().unwrap();
        let before = receiver.sys().dups;
        receiver.handle_readable(now);
        counts.push(receiver.sys().dups - before);
        assert!(
            matches!(receiver.poll_event(), Some(Event::ReceivedMessage(..))),
            "one message per read"
        );
    }
    counts
}

fn pipes(n: usize) -> Vec<OwnedFd> {
    (0..n).map(|_| rustix::pipe::pipe().unwrap().0).collect()
}

#[test]
fn the_native_sentinel_takes_back_only_the_slots_a_message_used() {
    let messages = vec![
        Message::from_fds(pipes(1)),
        Message::new(b"with a payload".to_vec(), pipes(3)),
        Message::from_payload(vec![7; 4096]),
    ];
    assert_eq!(dups_per_read(Wire::Native, messages), [1, 3, 0]);
}

#[test]
fn the_classic_sentinel_takes_back_every_slot_at_every_read() {
    let messages = vec![Message::from_fds(pipes(1)), Message::from_fds(pipes(1))];
    let max = Config::default().max_fds_per_message;
    assert_eq!(
        dups_per_read(Wire::Classic { batch: max }, messages),
        [max, max]
    );
}
