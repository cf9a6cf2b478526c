//! # fdpass-conformance
//!
//! The cross-process conformance suite. Every behaviour AnyEvent::FDpasser's
//! tests checked, and what it could not promise, is written once here as a
//! scenario generic over [`Adapter`], and every fdpass adapter runs all of
//! them between real processes.
//!
//! ## Plugging in an adapter
//! 1. Add the adapter crate to `[dependencies]` in this package's
//!    `Cargo.toml`.
//! 2. Implement [`Adapter`] for a type in `src/adapters/<name>.rs` and declare
//!    the module in `src/adapters/mod.rs`. The trait is a blocking facade: each
//!    call runs the adapter's own event loop until the operation completes, and
//!    panics if that takes longer than [`OVERALL`]. `src/adapters/tokio.rs`
//!    is the model for an async adapter, `src/adapters/mio.rs` for one whose
//!    user owns the event loop.
//!    `src/adapters/core.rs` drives the sans-IO core passer itself with a
//!    plain `poll(2)` loop: the reference the others are compared with.
//! 3. If the adapter carries messages, implement [`MessageAdapter`] too.
//! 4. Add one line to `tests/conformance.rs`:
//!    `fdpass_conformance::conformance_suite!(<name>, fdpass_conformance::adapters::<name>::<Type>, messages);`
//!    (without `, messages` for an adapter of descriptors only).
//!
//! That generates one `#[test]` per scenario, named `<name>::<scenario>`, so
//! `cargo test -p fdpass-conformance <name>::` runs one adapter's suite.
//!
//! ## Peers in another language
//! `tests/peers/native_peer.py` speaks the native wire, written from
//! `docs/wire.md` alone; `tests/peers/classic_peer.py` speaks the classic
//! wire with nothing but Python's `socket.send_fds`/`recv_fds`. Both use the
//! standard library only; the suite needs `python3` on the `PATH`.
//!
//! ## Child processes
//! A scenario that needs another process re-runs the test binary for the same
//! test (`--exact <adapter>::<scenario>`) with environment variables naming
//! the role the child plays (see [`Ctx`]). The child usually inherits one end
//! of a socketpair through [`fdpass_core::child::Handoff`], and its standard
//! input is a pipe the parent writes to when the child may go on
//! ([`ChildProcess::signal`]), so no step depends on timing. Anything that
//! changes process-wide state (resource limits, a full descriptor table,
//! descriptor counts) happens only in a child, because the test harness runs
//! tests as threads of one process.

pub mod adapters;
mod fds;
mod peers;
mod process;
pub mod scenarios;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

pub use fdpass_core::{
    Config, Error, Message, PeerLimits, ProtocolError, PushError, Reservation, Wire,
};

pub use crate::fds::{
    expect_closed, expect_fd, fill_table, inherited, inherited_passer, is_nonblocking,
    limit_descriptors, numbered_pipe, numbered_pipe_with, ok, open_descriptors, open_dev_null,
    open_pipe_ends, peek_number, read_number, recv_raw, set_nonblocking, wait_readable, TempDir,
};
pub use crate::peers::{
    peer_ended, peer_error, peer_finished, python_peer, CLASSIC_PEER, NATIVE_PEER,
};
pub use crate::process::{ChildProcess, Ctx, Finished, Results};

/// The longest any single operation of a scenario may take. Reaching it is a
/// failure: nothing ever waits for it to pass.
pub const OVERALL: Duration = Duration::from_secs(60);

/// Where the system calls this build runs on cannot honour the peek
/// reservation (the portable paths, or a kernel that does not keep a peeked
/// message's descriptors queued), asking `A` for it must be refused when the
/// passer is built, with [`Error::InvalidConfig`]: checks that and returns
/// `true`, and a peek scenario has nothing more to run. Returns `false` where
/// the peek reservation is available.
pub fn peek_refused_here<A: Adapter>(config: Config) -> bool {
    use fdpass_core::sys::{Sys, SystemCalls};
    if SystemCalls::default().peek_is_lossless() {
        return false;
    }
    let (ours, _theirs) = fdpass_core::socket::pair().expect("socketpair");
    match A::new(ours, config) {
        Err(Error::InvalidConfig(_)) => true,
        Err(e) => panic!("peek where it is not lossless: {e}, not an InvalidConfig"),
        Ok(_) => panic!("a passer was built with the peek reservation where it is not lossless"),
    }
}

/// An fdpass adapter seen from outside its event loop: every call blocks the
/// calling thread until the operation is done, driving the adapter's own
/// runtime or loop meanwhile.
///
/// Every blocking call must panic (see [`timed_out`]) when it has not
/// completed within [`OVERALL`]: a stuck passer then fails its test instead
/// of hanging the suite.
pub trait Adapter: Sized + 'static {
    /// Short lower-case name: the test module of this adapter's suite, and
    /// what a child process checks it was started for.
    const NAME: &'static str;

    /// Wraps a connected `AF_UNIX` socket, on a single-threaded event loop.
    fn new(socket: OwnedFd, config: Config) -> Result<Self, Error>;

    /// Like [`new`](Self::new), on the adapter's multi-threaded runtime if it
    /// has one, so that [`spawn_worker`](Self::spawn_worker) work runs in
    /// parallel with the passer. Adapters without one keep the default.
    fn new_multi_thread(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Self::new(socket, config)
    }

    /// Binds a listener at `path` (default [`Config`]), calls `before_accept`
    /// (which starts whoever will connect) and accepts one connection.
    ///
    /// The default uses [`fdpass_core::socket::Listener`]; an adapter with
    /// its own listener should use that instead.
    fn accept(path: &Path, before_accept: &mut dyn FnMut()) -> Result<Self, Error> {
        let listener = fdpass_core::socket::Listener::bind(path)?;
        before_accept();
        wait_readable(&listener, "a connection to accept");
        Self::new(listener.accept()?, Config::default())
    }

    /// Connects to a listener at `path` (default [`Config`]).
    ///
    /// The default uses [`fdpass_core::socket::connect`]; an adapter with its
    /// own `connect` should use that instead.
    fn connect(path: &Path) -> Result<Self, Error> {
        Self::new(fdpass_core::socket::connect(path)?, Config::default())
    }

    /// Sends `fd` and returns once the kernel took it.
    fn send(&mut self, fd: OwnedFd) -> Result<(), Error>;

    /// Queues `fd` and returns at once; a refused `fd` is let go of.
    fn push_send(&mut self, fd: OwnedFd) -> Result<(), Error> {
        self.try_push_send(fd).map_err(Error::from)
    }

    /// Queues `fd` and returns at once, or hands it back, still open:
    /// [`PushError::Full`] at the send queue's high-water mark
    /// ([`Config::max_queued_sends`]).
    fn try_push_send(&mut self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>>;

    /// Queues every descriptor of `fds`, in order, and returns at once.
    fn push_send_many(&mut self, fds: Vec<OwnedFd>) -> Result<(), Error>;

    /// The next descriptor; `Ok(None)` at the peer's orderly close.
    fn recv(&mut self) -> Result<Option<OwnedFd>, Error>;

    /// Waits for the next descriptor, then moves it and up to `limit - 1`
    /// more that already arrived into `buf`; how many it moved, 0 at the
    /// peer's orderly close (or when `limit` is 0).
    fn recv_many(&mut self, buf: &mut Vec<OwnedFd>, limit: usize) -> Result<usize, Error>;

    /// Returns once the kernel took everything queued.
    fn flush(&mut self) -> Result<(), Error>;

    /// Waits for `wait` while a timer of this event loop fires every
    /// `period`, calling `on_tick` with the tick's number (1, 2, ...) each
    /// time. Only an event loop that never blocks in the operation keeps the
    /// timer firing, which is what scenarios count.
    fn while_ticking(
        &mut self,
        wait: Wait,
        period: Duration,
        on_tick: &mut dyn FnMut(u64),
    ) -> Ticked;

    /// Closes the connection from this side, abortively (the peer sees end
    /// of stream; what is queued is dropped).
    fn close(&mut self);

    /// Shuts the connection down gracefully: sends everything queued, then
    /// ends the stream. Returns once that is done, or with the error that
    /// ended it ([`Error::ShutdownTimedOut`] at `deadline`).
    fn shutdown(&mut self, deadline: Instant) -> Result<(), Error>;

    /// The queued descriptors the kernel never took, in push order, once
    /// the passer failed.
    fn take_unsent(&mut self) -> Vec<OwnedFd>;

    /// Runs `step` over and over, concurrently with this passer, until it
    /// returns false: as a task of the adapter's runtime where that runs in
    /// parallel ([`new_multi_thread`](Self::new_multi_thread)), otherwise on
    /// a thread of its own (the default).
    fn spawn_worker(&mut self, step: Box<dyn FnMut() -> bool + Send>) -> Worker {
        Worker::thread(step)
    }
}

/// An adapter that carries messages (payload bytes and descriptors
/// together) as well: the message calls every adapter offers, behind the
/// same blocking facade as [`Adapter`]'s.
pub trait MessageAdapter: Adapter {
    /// Sends `message` and returns once the kernel took it (waiting for room
    /// in the send queue first, like [`Adapter::send`]).
    fn send_message(&mut self, message: Message) -> Result<(), Error>;

    /// Queues `message` and returns at once, or hands it back whole.
    fn push_send_message(&mut self, message: Message) -> Result<(), PushError<Message>>;

    /// The next message; `Ok(None)` at the peer's orderly close.
    fn recv_message(&mut self) -> Result<Option<Message>, Error>;

    /// What the peer's hello announced, once it arrived (native wire).
    fn peer_limits(&self) -> Option<PeerLimits>;

    /// The queued messages the kernel never took, whole and in push order,
    /// once sending failed.
    fn take_unsent_messages(&mut self) -> Vec<Message>;
}

/// What [`Adapter::while_ticking`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The next descriptor ([`Adapter::recv`]).
    Recv,
    /// Everything queued taken by the kernel ([`Adapter::flush`]).
    Flush,
}

/// What a [`Wait`] ended with.
#[derive(Debug)]
pub enum Done {
    /// [`Wait::Recv`]: the descriptor, or `None` at the peer's orderly close.
    Received(Option<OwnedFd>),
    /// [`Wait::Flush`] completed.
    Flushed,
    /// A message receive ([`MessageAdapter::recv_message`]), for adapters
    /// that wait for it as for the others: the message, or `None` at the
    /// peer's orderly close.
    Message(Option<Message>),
}

/// The outcome of [`Adapter::while_ticking`].
#[derive(Debug)]
pub struct Ticked {
    /// How the operation ended.
    pub result: Result<Done, Error>,
    /// How many times the timer fired while it was pending.
    pub ticks: u64,
}

impl Ticked {
    /// The outcome of a [`Wait::Recv`], as [`Adapter::recv`] returns it.
    pub fn received(self) -> Result<Option<OwnedFd>, Error> {
        match self.result? {
            Done::Received(fd) => Ok(fd),
            Done::Flushed | Done::Message(_) => panic!("a receive completed otherwise"),
        }
    }

    /// The outcome of a [`Wait::Flush`].
    pub fn flushed(self) -> Result<(), Error> {
        match self.result? {
            Done::Flushed => Ok(()),
            Done::Received(_) | Done::Message(_) => panic!("a flush completed otherwise"),
        }
    }
}

/// Work started by [`Adapter::spawn_worker`].
pub struct Worker(Box<dyn FnOnce() + Send>);

impl Worker {
    /// A worker whose `join` runs `join`, which must wait for the work to end
    /// and re-raise its panic if it had one.
    pub fn new(join: impl FnOnce() + Send + 'static) -> Worker {
        Worker(Box::new(join))
    }

    /// Runs `step` on a new thread until it returns false.
    pub fn thread(mut step: Box<dyn FnMut() -> bool + Send>) -> Worker {
        let thread = std::thread::spawn(move || while step() {});
        Worker::new(move || {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        })
    }

    /// Waits for the work to end (its step returned false); re-raises its
    /// panic.
    pub fn join(self) {
        (self.0)()
    }
}

/// Fails the current operation for taking longer than [`OVERALL`].
pub fn timed_out(what: &str) -> ! {
    panic!("{what} did not complete within {OVERALL:?}")
}

/// Runs `scenario` as the process's role: the parent when the test harness
/// started this test, a child's role when a scenario re-ran the binary.
/// `test_path` is `module_path!()::<test name>` of the generated test.
pub fn run<A: Adapter>(test_path: &str, scenario: fn(&Ctx)) {
    let ctx = Ctx::new(A::NAME, test_path);
    scenario(&ctx);
    ctx.done();
}

/// Generates one `#[test]` per scenario for an adapter, in a module named
/// after it: `conformance_suite!(tokio, fdpass_conformance::adapters::tokio::Tokio);`
/// gives `tokio::bidirectional_socketpair` and so on. With `messages` after
/// the adapter (which must then implement [`MessageAdapter`]), the message
/// scenarios join them in the same module.
///
/// The lists below are the registry of every scenario; a new scenario is one
/// function in `src/scenarios/` plus one line here.
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $adapter:ty) => {
        mod $name {
            $crate::__descriptor_scenarios!($adapter);
        }
    };
    ($name:ident, $adapter:ty, messages) => {
        mod $name {
            $crate::__descriptor_scenarios!($adapter);
            $crate::__scenario_tests!($adapter;
                // Messages between passers.
                messages_of_every_shape_arrive_whole_and_in_order,
                // The native wire as docs/wire.md specifies it, with messages.
                native_peer_from_the_spec_exchanges_messages_both_ways,
                native_peer_echoes_every_message_whole_and_in_order,
                // A message that can never fit, through a message receive.
                a_message_receive_reports_a_message_that_can_never_fit,
            );
        }
    };
}

/// The scenarios every adapter runs, through its descriptor calls.
#[doc(hidden)]
#[macro_export]
macro_rules! __descriptor_scenarios {
    ($adapter:ty) => {
        $crate::__scenario_tests!($adapter;
            // 1. Bidirectional, over a socketpair and over a path.
            bidirectional_socketpair,
            bidirectional_path,
            // 2. Non-blocking in both directions.
            recv_before_send_does_not_block,
            send_before_recv_does_not_block,
            // 3. FIFO.
            fifo_at_once_and_after_delays,
            // 4. Blocking status.
            nonblocking_flag_survives_passing,
            socket_mode_survives_spawn,
            // 5. Passing passers.
            passing_passers,
            // 6. Full descriptor table.
            full_table_sentinel,
            full_table_peek,
            // 7. Peer death.
            peer_exit_is_seen_without_leaks,
            peer_kill_is_seen_without_leaks,
            // Beyond the original.
            hundred_thousand_in_order,
            nearly_full_table_with_concurrent_opens,
            original_wire_peer,
            batched_push_fills_messages,
            batched_receive_in_order,
            // Closing, failure and back-pressure.
            graceful_shutdown_delivers_everything_queued,
            shutdown_past_its_deadline_keeps_the_unsent,
            a_failed_passer_hands_back_what_it_never_sent,
            pushes_past_the_high_water_mark_come_back_full,
            // The wires: a peer in another language, written from the spec.
            native_peer_from_the_spec_passes_descriptors_both_ways,
            python_send_fds_and_recv_fds_speak_the_default_classic_wire,
            // The wires told apart.
            a_native_receiver_facing_send_fds_names_the_classic_wire,
            a_classic_receiver_facing_a_native_sender_names_the_native_wire,
            a_native_peer_of_another_version_is_refused_by_name,
            // A message that can never fit is an error, not a wait.
            a_message_the_table_can_never_hold_is_an_error_not_a_wait,
            a_reservation_the_table_can_never_hold_is_an_error_not_a_wait,
            a_batch_the_table_can_never_hold_is_an_error_not_a_wait,
            a_batch_that_comes_with_the_hello_and_can_never_fit_is_an_error_not_a_wait,
            a_receiver_that_announces_what_its_table_holds_gets_the_whole_batch,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __scenario_tests {
    ($adapter:ty; $($scenario:ident),* $(,)?) => {$(
        #[test]
        fn $scenario() {
            $crate::run::<$adapter>(
                concat!(module_path!(), "::", stringify!($scenario)),
                $crate::scenarios::$scenario::<$adapter>,
            );
        }
    )*};
}
