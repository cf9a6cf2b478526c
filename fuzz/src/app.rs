//! The application's side of a passer: the calls a fuzz input makes, and the
//! checks on what the passer answers, which hold whatever the peer or the
//! kernel did.
//!
//! Events are drained after every call, so the model below always knows
//! which receive requests are outstanding:
//! - `Received` serves the oldest outstanding request (FIFO), `try_recv` only
//!   when none is outstanding, and receive tokens only grow;
//! - `Sent` tokens grow and never name a descriptor not pushed yet, and the
//!   send queue holds exactly what was pushed and not reported sent;
//! - `cancel_recv` succeeds exactly for an outstanding request;
//! - at most one `Closed` and one `Failed`, and nothing after `Failed`: the
//!   passer stays failed, hands back exactly the sends the kernel never took
//!   (`take_unsent`), then holds nothing, wants nothing and sets no
//!   deadline;
//! - no handler leaves work it could do now (`Want::Now`), and
//!   `handle_timeout(now)` leaves no deadline at or before `now`: a driver
//!   following the passer never spins.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use fdpass_core::sys::Sys;
use fdpass_core::{Error, Event, Passer, RecvToken, SendToken, Want};
use libfuzzer_sys::arbitrary::{self, Arbitrary};

/// One call of the application. `K` chooses a descriptor to send; each
/// target has its own kinds.
#[derive(Arbitrary, Debug)]
pub enum Call<K> {
    /// `push_recv`, 1 to 8 times.
    PushRecv(u8),
    TryRecv,
    /// `cancel_recv` of the n-th request ever made (modulo their number),
    /// which may be fulfilled or cancelled already.
    CancelRecv(u8),
    /// One `push_send` per descriptor, or one `push_send_many` for them all.
    PushSend {
        fds: Vec<K>,
        many: bool,
    },
    Readable,
    Writable,
    /// The clock moves on this many milliseconds; then `handle_timeout`.
    Advance(u16),
    /// The clock moves to the next deadline, if any; then `handle_timeout`.
    ToDeadline,
    Close,
}

/// Where the descriptors to send come from, and where received ones go.
pub trait Descriptors<K> {
    /// A new descriptor of kind `kind`, or `None` if none can be made now
    /// (a full table, a peer socket already closed).
    fn make(&mut self, kind: K) -> Option<OwnedFd>;
    /// A descriptor the passer delivered: check it, then close it.
    fn received(&mut self, fd: OwnedFd);
}

/// The application's model of one passer; see the module docs.
#[derive(Debug)]
pub struct App {
    now: Instant,
    /// Every receive request made, for cancelling.
    asked: Vec<RecvToken>,
    /// Outstanding requests, oldest first.
    waiting: VecDeque<RecvToken>,
    last_recv_token: Option<RecvToken>,
    pushed_sends: u64,
    last_sent: Option<SendToken>,
    peer_closed: bool,
    failed: bool,
    /// `Event::SendFailed` was seen: sending ended, receiving goes on.
    send_failed: bool,
    /// Unsent descriptors `take_unsent` handed back, for the caller to
    /// account for and close.
    handed_back: Vec<OwnedFd>,
    closed: bool,
}

impl Default for App {
    fn default() -> Self {
        App {
            now: Instant::now(),
            asked: Vec::new(),
            waiting: VecDeque::new(),
            last_recv_token: None,
            pushed_sends: 0,
            last_sent: None,
            peer_closed: false,
            failed: false,
            send_failed: false,
            handed_back: Vec::new(),
            closed: false,
        }
    }
}

impl App {
    /// The synthetic clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Whether a `Failed` event was seen.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The unsent descriptors `take_unsent` handed back since the last call:
    /// the application's now, open, to close.
    pub fn take_handed_back(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.handed_back)
    }

    /// Makes one call, then drains and checks the events and the state.
    pub fn call<S: Sys, K>(
        &mut self,
        passer: &mut Passer<S>,
        call: Call<K>,
        fds: &mut impl Descriptors<K>,
    ) {
        match call {
            Call::PushRecv(n) => {
                for _ in 0..=n % 8 {
                    if let Ok(token) = passer.push_recv() {
                        self.new_recv_token(token);
                        self.asked.push(token);
                        self.waiting.push_back(token);
                    }
                }
            }
            Call::TryRecv => {
                if let Some((token, fd)) = passer.try_recv() {
                    assert!(
                        self.waiting.is_empty(),
                        "try_recv served {token:?} before the outstanding {:?}",
                        self.waiting
                    );
                    self.new_recv_token(token);
                    fds.received(fd);
                }
            }
            Call::CancelRecv(n) => {
                if !self.asked.is_empty() {
                    let token = self.asked[usize::from(n) % self.asked.len()];
                    let outstanding = self.waiting.iter().position(|t| *t == token);
                    let cancelled = passer.cancel_recv(token);
                    assert_eq!(
                        cancelled,
                        outstanding.is_some(),
                        "cancel_recv({token:?}) with {:?} outstanding",
                        self.waiting
                    );
                    if let Some(i) = outstanding {
                        self.waiting.remove(i);
                    }
                }
            }
            Call::PushSend { fds: kinds, many } => {
                // Every descriptor goes to the passer, which closes it on
                // failure.
                let made: Vec<OwnedFd> = kinds.into_iter().filter_map(|k| fds.make(k)).collect();
                if many {
                    let count = made.len() as u64;
                    match passer.push_send_many(made) {
                        Ok(_) => self.pushed_sends += count,
                        // Refused: handed back whole, the application's.
                        Err(refused) => self.handed_back.extend(refused.into_inner()),
                    }
                } else {
                    for fd in made {
                        match passer.push_send(fd) {
                            Ok(_) => self.pushed_sends += 1,
                            Err(refused) => self.handed_back.push(refused.into_inner()),
                        }
                    }
                }
            }
            Call::Readable => {
                passer.handle_readable(self.now);
                assert_ne!(
                    passer.interest().read,
                    Want::Now,
                    "readable left work undone"
                );
            }
            Call::Writable => {
                passer.handle_writable(self.now);
                assert_ne!(
                    passer.interest().write,
                    Want::Now,
                    "writable left work undone"
                );
            }
            Call::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.timeout(passer);
            }
            Call::ToDeadline => {
                if let Some(at) = passer.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.timeout(passer);
            }
            Call::Close => {
                // Outstanding requests end with the passer, without an event.
                passer.close();
                self.closed = true;
                self.waiting.clear();
            }
        }
        self.drain(passer, fds);
        self.check(passer);
    }

    fn timeout<S: Sys>(&mut self, passer: &mut Passer<S>) {
        passer.handle_timeout(self.now);
        if let Some(at) = passer.poll_timeout() {
            assert!(at > self.now, "a deadline already due after handle_timeout");
        }
    }

    fn new_recv_token(&mut self, token: RecvToken) {
        assert!(
            self.last_recv_token < Some(token),
            "receive token {token:?} after {:?}",
            self.last_recv_token
        );
        self.last_recv_token = Some(token);
    }

    /// Takes every event and checks it against the model.
    pub fn drain<S: Sys, K>(&mut self, passer: &mut Passer<S>, fds: &mut impl Descriptors<K>) {
        while let Some(event) = passer.poll_event() {
            assert!(!self.failed, "{event:?} after Failed");
            match event {
                Event::Received(token, fd) => {
                    let oldest = self.waiting.pop_front();
                    assert_eq!(
                        oldest,
                        Some(token),
                        "Received({token:?}) is not the oldest request"
                    );
                    fds.received(fd);
                }
                Event::Sent(token) => {
                    assert!(self.last_sent < Some(token), "Sent({token:?}) again");
                    assert!(token.0 < self.pushed_sends, "Sent({token:?}) never pushed");
                    self.last_sent = Some(token);
                }
                Event::Closed => {
                    assert!(!self.peer_closed, "Closed twice");
                    self.peer_closed = true;
                    self.waiting.clear();
                }
                Event::Failed(_) => {
                    self.failed = true;
                    self.waiting.clear();
                    // What the kernel never took is kept for the
                    // application: exactly the pushes not reported sent.
                    let sent = self.last_sent.map_or(0, |t| t.0 + 1);
                    let unsent = passer.take_unsent();
                    assert_eq!(
                        unsent.len() as u64,
                        self.pushed_sends - sent,
                        "unsent handed back"
                    );
                    self.handed_back.extend(unsent);
                }
                Event::SendFailed(_) => {
                    assert!(!self.send_failed, "SendFailed twice");
                    assert!(!self.failed, "SendFailed after Failed");
                    self.send_failed = true;
                    // As for a failure: exactly the pushes not reported
                    // sent come back, and receiving goes on.
                    let sent = self.last_sent.map_or(0, |t| t.0 + 1);
                    let unsent = passer.take_unsent();
                    assert_eq!(
                        unsent.len() as u64,
                        self.pushed_sends - sent,
                        "unsent handed back after sending failed"
                    );
                    self.handed_back.extend(unsent);
                    // Handed back: a later failure owes none of them.
                    self.pushed_sends = sent;
                }
                other => panic!("an event this harness does not know: {other:?}"),
            }
        }
    }

    fn check<S: Sys>(&self, passer: &Passer<S>) {
        assert_eq!(
            passer.outstanding_recvs(),
            self.waiting.len(),
            "outstanding requests"
        );
        if self.failed || self.closed {
            let usable = passer.usable();
            assert!(usable.is_err(), "usable after failing or closing");
            if self.failed {
                assert!(
                    !matches!(usable, Err(Error::Closed)),
                    "a failed passer reports a local close"
                );
            }
            assert_eq!(passer.held_descriptors(), 0, "holds descriptors when done");
            assert!(!passer.interest().read.is_wanted(), "reads when done");
            assert!(!passer.interest().write.is_wanted(), "writes when done");
            assert_eq!(passer.poll_timeout(), None, "a deadline when done");
        } else {
            let sent = self.last_sent.map_or(0, |t| t.0 + 1);
            assert_eq!(
                passer.queued_sends() as u64,
                self.pushed_sends - sent,
                "queued sends"
            );
        }
    }
}
