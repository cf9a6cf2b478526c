//! fdpass-tokio on a current-thread or a multi-thread runtime.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::time::Instant;

use fdpass_tokio::{Config, Passer};
use tokio::runtime::{Builder, Runtime};

use super::{closed, Endpoint, Idiom};
use crate::BoxError;

pub struct TokioEndpoint {
    // Declared first so it is dropped before the runtime it is registered in.
    passer: Passer,
    runtime: Runtime,
    /// Run each operation as a task on the runtime's workers.
    multi_thread: bool,
    idiom: Idiom,
    /// The bulk receiver's vector, kept across repetitions.
    buf: Vec<OwnedFd>,
}

impl TokioEndpoint {
    pub fn new(
        socket: OwnedFd,
        config: Config,
        multi_thread: bool,
        idiom: Idiom,
    ) -> Result<Self, BoxError> {
        let runtime = if multi_thread {
            Builder::new_multi_thread().enable_all().build()?
        } else {
            Builder::new_current_thread().enable_all().build()?
        };
        let passer = {
            let _context = runtime.enter();
            Passer::with_config(socket, config)?
        };
        Ok(TokioEndpoint {
            passer,
            runtime,
            multi_thread,
            idiom,
            buf: Vec::new(),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        task: impl Future<Output = Result<T, BoxError>> + Send + 'static,
    ) -> Result<T, BoxError> {
        if self.multi_thread {
            self.runtime.block_on(self.runtime.spawn(task))?
        } else {
            self.runtime.block_on(task)
        }
    }
}

impl Endpoint for TokioEndpoint {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let passer = self.passer.clone();
        match self.idiom {
            Idiom::Bulk => self.run(async move {
                passer.push_send_many(fds)?;
                passer.flush().await?;
                Ok(())
            }),
            Idiom::OneByOne => self.run(async move {
                for fd in fds {
                    passer.push_send(fd)?;
                }
                passer.flush().await?;
                Ok(())
            }),
            Idiom::SendsQueued => self.run(async move {
                let sends: Vec<_> = fds.into_iter().map(|fd| passer.send(fd)).collect();
                for send in sends {
                    send.await?;
                }
                Ok(())
            }),
        }
    }

    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        let passer = self.passer.clone();
        if self.idiom == Idiom::OneByOne {
            return self.run(async move {
                for _ in 0..n {
                    drop(passer.recv().await?.ok_or_else(closed)?);
                }
                Ok(())
            });
        }
        // The task must own its vector: lend it and take it back, so that
        // repetitions reuse its storage.
        let mut buf = std::mem::take(&mut self.buf);
        let buf = self.run(async move {
            let mut got = 0;
            while got < n {
                let moved = passer.recv_many(&mut buf, n - got).await?;
                if moved == 0 {
                    return Err(closed());
                }
                got += moved;
                buf.clear(); // closes them
            }
            Ok(buf)
        })?;
        self.buf = buf;
        Ok(())
    }

    fn ping(
        &mut self,
        fd: OwnedFd,
        rounds: usize,
        stamps: &mut Vec<Instant>,
    ) -> Result<OwnedFd, BoxError> {
        let passer = self.passer.clone();
        // The task must own what it uses: lend it the vector and take it back.
        let mut taken = std::mem::take(stamps);
        let (fd, taken) = self.run(async move {
            let mut fd = fd;
            taken.push(Instant::now());
            for _ in 0..rounds {
                passer.send(fd).await?;
                fd = passer.recv().await?.ok_or_else(closed)?;
                taken.push(Instant::now());
            }
            Ok((fd, taken))
        })?;
        *stamps = taken;
        Ok(fd)
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        let passer = self.passer.clone();
        self.run(async move {
            for _ in 0..rounds {
                let fd = passer.recv().await?.ok_or_else(closed)?;
                passer.send(fd).await?;
            }
            Ok(())
        })
    }
}
