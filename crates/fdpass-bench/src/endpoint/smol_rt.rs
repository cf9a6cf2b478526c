//! fdpass-smol under `async_io::block_on` (what `smol::block_on` is).

use std::os::fd::OwnedFd;
use std::time::Instant;

use fdpass_smol::{Config, Passer};

use super::{closed, Endpoint, Idiom};
use crate::BoxError;

pub struct SmolEndpoint {
    passer: Passer,
    idiom: Idiom,
    /// The bulk receiver's vector, kept across repetitions.
    buf: Vec<OwnedFd>,
}

impl SmolEndpoint {
    pub fn new(socket: OwnedFd, config: Config, idiom: Idiom) -> Result<Self, BoxError> {
        Ok(SmolEndpoint {
            passer: Passer::with_config(socket, config)?,
            idiom,
            buf: Vec::new(),
        })
    }
}

impl Endpoint for SmolEndpoint {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let passer = &self.passer;
        async_io::block_on(async {
            match self.idiom {
                Idiom::Bulk => passer.push_send_many(fds)?,
                Idiom::OneByOne => {
                    for fd in fds {
                        passer.push_send(fd)?;
                    }
                }
                Idiom::SendsQueued => {
                    let sends: Vec<_> = fds.into_iter().map(|fd| passer.send(fd)).collect();
                    for send in sends {
                        send.await?;
                    }
                }
            }
            passer.flush().await?;
            Ok(())
        })
    }

    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        let passer = &self.passer;
        if self.idiom == Idiom::OneByOne {
            return async_io::block_on(async {
                for _ in 0..n {
                    drop(passer.recv().await?.ok_or_else(closed)?);
                }
                Ok(())
            });
        }
        let buf = &mut self.buf;
        async_io::block_on(async {
            let mut got = 0;
            while got < n {
                let moved = passer.recv_many(buf, n - got).await?;
                if moved == 0 {
                    return Err(closed());
                }
                got += moved;
                buf.clear(); // closes them
            }
            Ok(())
        })
    }

    fn ping(
        &mut self,
        fd: OwnedFd,
        rounds: usize,
        stamps: &mut Vec<Instant>,
    ) -> Result<OwnedFd, BoxError> {
        let passer = &self.passer;
        async_io::block_on(async {
            let mut fd = fd;
            stamps.push(Instant::now());
            for _ in 0..rounds {
                passer.send(fd).await?;
                fd = passer.recv().await?.ok_or_else(closed)?;
                stamps.push(Instant::now());
            }
            Ok(fd)
        })
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        let passer = &self.passer;
        async_io::block_on(async {
            for _ in 0..rounds {
                let fd = passer.recv().await?.ok_or_else(closed)?;
                passer.send(fd).await?;
            }
            Ok(())
        })
    }
}
