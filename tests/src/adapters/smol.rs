//! fdpass-smol behind the [`Adapter`] facade: every call is an
//! `async_io::block_on` on the calling thread, which also drives async-io's
//! reactor while it waits. The multi-threaded variant adds an executor run
//! by threads of its own, so that [`Adapter::spawn_worker`] work runs as its
//! tasks, in parallel with the passer.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use fdpass_smol::{Listener, Passer};
use smol::channel::{Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::{block_on, Executor, Timer};

use crate::{
    timed_out, Adapter, Config, Done, Error, Message, MessageAdapter, PeerLimits, PushError,
    Ticked, Wait, Worker, OVERALL,
};

/// Threads of the multi-threaded variant's executor.
const THREADS: usize = 2;

/// A waker for a poll whose wake-up nobody waits for: a pending future is
/// polled again inside `block_on`, with its waker.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// An executor and the threads that run it; they stop when it is dropped.
struct Pool {
    executor: Arc<Executor<'static>>,
    /// Closed on drop, which ends every thread's `run`.
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new() -> Result<Pool, Error> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped): (Sender<()>, Receiver<()>) = smol::channel::bounded(1);
        let threads = (0..THREADS)
            .map(|n| {
                let (executor, stopped) = (executor.clone(), stopped.clone());
                std::thread::Builder::new()
                    .name(format!("smol-worker-{n}"))
                    .spawn(move || {
                        // Ends with an error once the sender is dropped.
                        let _ = block_on(executor.run(stopped.recv()));
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Pool {
            executor,
            stop: Some(stop),
            threads,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            // A task's panic reaches whoever joins its worker, not this.
            let _ = thread.join();
        }
    }
}

/// A smol passer, with an executor of its own in the multi-threaded variant.
pub struct Smol {
    // Declared first so it is dropped before the executor's threads stop.
    passer: Passer,
    pool: Option<Pool>,
}

impl Smol {
    /// Runs `future` to completion on this thread; fails after [`OVERALL`].
    fn block<T>(what: &str, future: impl Future<Output = T>) -> T {
        let mut future = pin!(future);
        // Many operations complete at once (the descriptor is already
        // waiting); only one that has to wait needs the timer that bounds it.
        let waker = Waker::from(Arc::new(NoWake));
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        block_on(future.or(async {
            Timer::after(OVERALL).await;
            timed_out(what)
        }))
    }
}

impl Adapter for Smol {
    const NAME: &'static str = "smol";

    fn new(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Ok(Smol {
            passer: Passer::with_config(socket, config)?,
            pool: None,
        })
    }

    fn new_multi_thread(socket: OwnedFd, config: Config) -> Result<Self, Error> {
        Ok(Smol {
            passer: Passer::with_config(socket, config)?,
            pool: Some(Pool::new()?),
        })
    }

    fn accept(path: &Path, before_accept: &mut dyn FnMut()) -> Result<Self, Error> {
        let listener = Listener::bind(path)?;
        before_accept();
        let passer = Smol::block("accept", listener.accept())?;
        Ok(Smol { passer, pool: None })
    }

    fn connect(path: &Path) -> Result<Self, Error> {
        let passer = Smol::block("connect", Passer::connect(path))?;
        Ok(Smol { passer, pool: None })
    }

    fn send(&mut self, fd: OwnedFd) -> Result<(), Error> {
        Smol::block("send", self.passer.send(fd))
    }

    fn try_push_send(&mut self, fd: OwnedFd) -> Result<(), PushError<OwnedFd>> {
        self.passer.push_send(fd)
    }

    fn push_send_many(&mut self, fds: Vec<OwnedFd>) -> Result<(), Error> {
        Ok(self.passer.push_send_many(fds)?)
    }

    fn recv(&mut self) -> Result<Option<OwnedFd>, Error> {
        Smol::block("recv", self.passer.recv())
    }

    fn recv_many(&mut self, buf: &mut Vec<OwnedFd>, limit: usize) -> Result<usize, Error> {
        Smol::block("recv_many", self.passer.recv_many(buf, limit))
    }

    fn flush(&mut self) -> Result<(), Error> {
        Smol::block("flush", self.passer.flush())
    }

    fn while_ticking(
        &mut self,
        wait: Wait,
        period: Duration,
        on_tick: &mut dyn FnMut(u64),
    ) -> Ticked {
        let passer = &self.passer;
        let mut operation: Pin<Box<dyn Future<Output = Result<Done, Error>> + '_>> = match wait {
            Wait::Recv => Box::pin(async { passer.recv().await.map(Done::Received) }),
            Wait::Flush => Box::pin(async { passer.flush().await.map(|()| Done::Flushed) }),
        };
        let mut ticker = Timer::after(period);
        let mut give_up = Timer::after(OVERALL);
        let mut ticks = 0;
        block_on(future::poll_fn(|cx| loop {
            // The operation first, as a biased select would: a tick that is
            // due when it completes does not count.
            if let Poll::Ready(result) = operation.as_mut().poll(cx) {
                return Poll::Ready(Ticked { result, ticks });
            }
            if Pin::new(&mut give_up).poll(cx).is_ready() {
                timed_out("an operation with a ticking timer");
            }
            match Pin::new(&mut ticker).poll(cx) {
                Poll::Ready(_) => {
                    ticks += 1;
                    on_tick(ticks);
                    // Missed ticks are not made up: a loop that was held up
                    // fires once, then waits a whole period again. The
                    // operation is polled again before the next tick.
                    ticker.set_after(period);
                }
                Poll::Pending => return Poll::Pending,
            }
        }))
    }

    fn close(&mut self) {
        self.passer.close();
    }

    fn shutdown(&mut self, deadline: std::time::Instant) -> Result<(), Error> {
        Smol::block("shutdown", self.passer.shutdown(deadline))
    }

    fn take_unsent(&mut self) -> Vec<OwnedFd> {
        self.passer.take_unsent()
    }

    fn spawn_worker(&mut self, mut step: Box<dyn FnMut() -> bool + Send>) -> Worker {
        let Some(pool) = &self.pool else {
            // Without an executor of its own, nothing but `block_on` runs
            // tasks: a thread is the concurrent worker there.
            return Worker::thread(step);
        };
        let task = pool.executor.spawn(async move {
            while step() {
                future::yield_now().await;
            }
        });
        // The executor re-raises a task's panic in whoever awaits it.
        Worker::new(move || block_on(task))
    }
}

impl MessageAdapter for Smol {
    fn send_message(&mut self, message: Message) -> Result<(), Error> {
        Smol::block("send_message", self.passer.send_message(message))
    }

    fn push_send_message(&mut self, message: Message) -> Result<(), PushError<Message>> {
        self.passer.push_send_message(message)
    }

    fn recv_message(&mut self) -> Result<Option<Message>, Error> {
        Smol::block("recv_message", self.passer.recv_message())
    }

    fn peer_limits(&self) -> Option<PeerLimits> {
        self.passer.peer_limits()
    }

    fn take_unsent_messages(&mut self) -> Vec<Message> {
        self.passer.take_unsent_messages()
    }
}
