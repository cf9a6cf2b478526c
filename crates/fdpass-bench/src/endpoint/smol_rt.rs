//! fdpass-smol under `async_io::block_on` (what `smol::block_on` is).

use std::os::fd::OwnedFd;
use std::time::Instant;

use fdpass_smol::{Config, Passer};

use super::{closed, Endpoint, Sending};
use crate::BoxError;

pub struct SmolEndpoint {
    passer: Passer,
    sending: Sending,
}

impl SmolEndpoint {
    pub fn new(socket: OwnedFd, config: Config, sending: Sending) -> Result<Self, BoxError> {
        Ok(SmolEndpoint {
            passer: Passer::with_config(socket, config)?,
            sending,
        })
    }
}

impl Endpoint for SmolEndpoint {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let passer = &self.passer;
        async_io::block_on(async {
            match self.sending {
                Sending::Many => passer.push_send_many(fds)?,
                Sending::Each => {
                    for fd in fds {
                        passer.push_send(fd)?;
                    }
                }
                Sending::Queued => {
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
        async_io::block_on(async {
            for _ in 0..n {
                drop(passer.recv().await?.ok_or_else(closed)?);
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
