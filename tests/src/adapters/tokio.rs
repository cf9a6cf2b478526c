//! fdpass-tokio behind the [`Adapter`] facade: each passer owns a tokio
//! runtime (current-thread, or multi-thread for
//! [`Adapter::new_multi_thread`]) and every call is a `block_on` on it.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ::tokio::runtime::{Builder, Runtime, RuntimeFlavor};
use ::tokio::time::{interval_at, sleep, timeout, Instant, MissedTickBehavior};
use fdpass_tokio::{Listener, Passer};

use crate::{
    timed_out, Adapter, Config, Done, Error, Message, MessageAdapter, PeerLimits, PushError,
    Ticked, Wait, Worker, OVERALL,
};

/// A waker for a poll whose wake-up nobody waits for: a pending future is
/// polled again inside `block_on`, with the runtime's waker.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A tokio passer and the runtime that drives it.
pub struct Tokio {
    // Declared first so it is dropped first, while its runtime still runs.
    passer: Passer,
    runtime: Runtime,
}

impl Tokio {
    fn current_thread() -> Result<Runtime, Error> {
        // I/O and time only: the signal driver would keep process-wide
        // descriptors open, which the leak counts would see.
        Ok(Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?)
    }

    fn on(runtime: Runtime, socket: OwnedFd, config: Config) -> Result<Tokio, Error> {
        let passer = {
            let _context = runtime.enter();
            Passer::with_config(socket, config)?
        };
        Ok(Tokio { passer, runtime })
    }

    /// Runs `future` to completion on the passer's runtime; fails after
    /// [`OVERALL`].
    fn block<T>(&self, what: &str, future: impl Future<Output = T>) -> T {
        let mut future = pin!(future);
        // Many operations complete at once (the descriptor is already
        // waiting); only one that has to wait needs the timer that bounds it,
        // which costs more than the operation itself in long runs.
        {
            let _context = self.runtime.enter();
            let waker = Waker::from(Arc::new(NoWake));
            if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
                return output;
            }
        }
        self.runtime.block_on(async {
            timeout(OVERALL, future)
                .await
                .unwrap_or_else(|_| timed_out(what))
        })
    }
}

impl Adapter for Tokio {
    const NAME: &'static str = "tokio";

    fn new(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Tokio::on(Tokio::current_thread()?, socket, config)
    }

    fn new_multi_thread(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io()
            .enable_time()
            .build()?;
        Tokio::on(runtime, socket, config)
    }

    fn accept(path: &Path, before_accept: &mut dyn FnMut()) -> Result<Self, Error> {
        let runtime = Tokio::current_thread()?;
        let listener = {
            let _context = runtime.enter();
            Listener::bind(path)?
        };
        before_accept();
        let passer = runtime.block_on(async {
            timeout(OVERALL, listener.accept())
                .await
                .unwrap_or_else(|_| timed_out("accept"))
        })?;
        drop(listener);
        Ok(Tokio { passer, runtime })
    }

    fn connect(path: &Path) -> Result<Self, Error> {
        let runtime = Tokio::current_thread()?;
        let passer = runtime.block_on(async {
            timeout(OVERALL, Passer::connect(path))
                .await
                .unwrap_or_else(|_| timed_out("connect"))
        })?;
        Ok(Tokio { passer, runtime })
    }

    fn send(&mut self, fd: OwnedFd) -> Result<(), Error> {
        self.block("send", self.passer.send(fd))
    }

    fn try_push_send(&mut self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>> {
        // Inside the runtime: a send retry arms a tokio timer.
        let _context = self.runtime.enter();
        self.passer.push_send(fd)
    }

    fn push_send_many(&mut self, fds: Vec<OwnedFd>) -> Result<(), Error> {
        let _context = self.runtime.enter();
        Ok(self.passer.push_send_many(fds)?)
    }

    fn recv(&mut self) -> Result<Option<OwnedFd>, Error> {
        self.block("recv", self.passer.recv())
    }

    fn recv_many(&mut self, buf: &mut Vec<OwnedFd>, limit: usize) -> Result<usize, Error> {
        self.block("recv_many", self.passer.recv_many(buf, limit))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.block("flush", self.passer.flush())
    }

    fn while_ticking(
        &mut self,
        wait: Wait,
        period: Duration,
        on_tick: &mut dyn FnMut(u64),
    ) -> Ticked {
        let passer = &self.passer;
        self.runtime.block_on(async {
            let mut operation: Pin<Box<dyn Future<Output = Result<Done, Error>> + '_>> = match wait
            {
                Wait::Recv => Box::pin(async { passer.recv().await.map(Done::Received) }),
                Wait::Flush => Box::pin(async { passer.flush().await.map(|()| Done::Flushed) }),
            };
            let mut ticker = interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let give_up = sleep(OVERALL);
            ::tokio::pin!(give_up);
            let mut ticks = 0;
            loop {
                ::tokio::select! {
                    biased;
                    result = &mut operation => return Ticked { result, ticks },
                    _ = ticker.tick() => {
                        ticks += 1;
                        on_tick(ticks);
                    }
                    () = &mut give_up => timed_out("an operation with a ticking timer"),
                }
            }
        })
    }

    fn close(&mut self) {
        self.passer.close();
    }

    fn shutdown(&mut self, deadline: std::time::Instant) -> Result<(), Error> {
        self.block("shutdown", self.passer.shutdown(deadline))
    }

    fn take_unsent(&mut self) -> Vec<OwnedFd> {
        self.passer.take_unsent()
    }

    fn spawn_worker(&mut self, mut step: Box<dyn FnMut() -> bool + Send>) -> Worker {
        if self.runtime.handle().runtime_flavor() != RuntimeFlavor::MultiThread {
            // A current-thread runtime runs tasks only inside `block_on`: a
            // thread is the concurrent worker there.
            return Worker::thread(step);
        }
        let task = self.runtime.spawn(async move {
            while step() {
                ::tokio::task::yield_now().await;
            }
        });
        let handle = self.runtime.handle().clone();
        Worker::new(move || match handle.block_on(task) {
            Ok(()) => {}
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("worker task ended abnormally: {e}"),
            },
        })
    }
}

impl MessageAdapter for Tokio {
    fn send_message(&mut self, message: Message) -> Result<(), Error> {
        self.block("send_message", self.passer.send_message(message))
    }

    fn push_send_message(&mut self, message: Message) -> Result<(), PushError<Message>> {
        let _context = self.runtime.enter();
        self.passer.push_send_message(message)
    }

    fn recv_message(&mut self) -> Result<Option<Message>, Error> {
        self.block("recv_message", self.passer.recv_message())
    }

    fn peer_limits(&self) -> Option<PeerLimits> {
        self.passer.peer_limits()
    }

    fn take_unsent_messages(&mut self) -> Vec<Message> {
        self.passer.take_unsent_messages()
    }
}
