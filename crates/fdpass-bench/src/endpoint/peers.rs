//! Other crates that pass descriptors, used the way their docs show.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use async_send_fd::{AsyncRecvFd, AsyncSendFd as _};
use passfd::FdPassingExt;
use sendfd::{RecvWithFd, SendWithFd};

use super::{closed, Endpoint};
use crate::BoxError;

static ZEROS: [u8; fdpass_core::SCM_MAX_FD] = [0; fdpass_core::SCM_MAX_FD];

/// Takes ownership of descriptors a crate handed out as raw numbers.
fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: the crate just installed `fd` for us (received over the socket)
    // and gives up ownership of it; nothing else knows the number.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `sendfd`: any number of descriptors per call, blocking.
pub struct Sendfd {
    socket: UnixStream,
    batch: usize,
    raw: Vec<RawFd>,
    outgoing: Vec<OwnedFd>,
    bytes: Vec<u8>,
}

impl Sendfd {
    pub fn new(socket: OwnedFd, batch: usize) -> Sendfd {
        Sendfd {
            socket: socket.into(),
            batch,
            raw: vec![-1; batch],
            outgoing: Vec::with_capacity(batch),
            bytes: vec![0; batch],
        }
    }

    fn send_outgoing(&mut self) -> Result<(), BoxError> {
        self.raw.clear();
        self.raw
            .extend(self.outgoing.iter().map(|fd| fd.as_raw_fd()));
        let n = self.raw.len();
        let mut written = self.socket.send_with_fd(&ZEROS[..n], &self.raw)?;
        while written < n {
            written += self.socket.send_with_fd(&ZEROS[written..n], &[])?;
        }
        self.outgoing.clear();
        Ok(())
    }

    fn recv_one(&mut self) -> Result<usize, BoxError> {
        self.raw.resize(self.batch, -1);
        let (bytes, count) = self.socket.recv_with_fd(&mut self.bytes, &mut self.raw)?;
        if bytes == 0 {
            return Err(closed());
        }
        self.outgoing
            .extend(self.raw[..count].iter().map(|&fd| adopt(fd)));
        Ok(count)
    }
}

impl Endpoint for Sendfd {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let mut fds = fds.into_iter();
        loop {
            self.outgoing.extend(fds.by_ref().take(self.batch));
            if self.outgoing.is_empty() {
                return Ok(());
            }
            self.send_outgoing()?;
        }
    }

    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        let mut got = 0;
        while got < n {
            got += self.recv_one()?;
            self.outgoing.clear();
        }
        Ok(())
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
            self.outgoing.push(fd);
            self.send_outgoing()?;
            self.recv_one()?;
            fd = self.outgoing.pop().ok_or("no descriptor came back")?;
            self.outgoing.clear();
            stamps.push(Instant::now());
        }
        Ok(fd)
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        for _ in 0..rounds {
            if self.recv_one()? != 1 {
                return Err("expected one descriptor".into());
            }
            self.send_outgoing()?;
        }
        Ok(())
    }
}

/// `passfd`: one descriptor per call, blocking.
pub struct Passfd {
    socket: UnixStream,
}

impl Passfd {
    pub fn new(socket: OwnedFd) -> Passfd {
        Passfd {
            socket: socket.into(),
        }
    }

    fn send(&self, fd: OwnedFd) -> Result<(), BoxError> {
        self.socket.send_fd(fd.as_raw_fd())?;
        // `passfd` leaves our copy open: close it as every other case does.
        drop(fd);
        Ok(())
    }

    fn recv(&self) -> Result<OwnedFd, BoxError> {
        Ok(adopt(self.socket.recv_fd()?))
    }
}

impl Endpoint for Passfd {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        for fd in fds {
            self.send(fd)?;
        }
        Ok(())
    }

    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        for _ in 0..n {
            drop(self.recv()?);
        }
        Ok(())
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
            self.send(fd)?;
            fd = self.recv()?;
            stamps.push(Instant::now());
        }
        Ok(fd)
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        for _ in 0..rounds {
            let fd = self.recv()?;
            self.send(fd)?;
        }
        Ok(())
    }
}

/// `async-send-fd` on a current-thread tokio runtime.
pub struct AsyncSendFd {
    // Declared first so it is dropped before the runtime it is registered in.
    socket: tokio::net::UnixStream,
    runtime: tokio::runtime::Runtime,
    /// Whether `send_fd` closes our copy. It does when the socket's peer
    /// credentials name another process; a socketpair's name its creator, so
    /// in the process that made the pair we close the copy ourselves.
    closes_sent: bool,
}

impl AsyncSendFd {
    pub fn new(socket: OwnedFd) -> Result<AsyncSendFd, BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let std_socket = UnixStream::from(socket);
        // The crate's docs: a tokio stream made from a raw socket must be
        // made non-blocking first.
        std_socket.set_nonblocking(true)?;
        let socket = {
            let _context = runtime.enter();
            tokio::net::UnixStream::from_std(std_socket)?
        };
        let peer = socket.peer_cred()?.pid();
        let closes_sent = peer != Some(std::process::id() as i32);
        Ok(AsyncSendFd {
            socket,
            runtime,
            closes_sent,
        })
    }
}

/// Sends `fd` and makes sure our copy is closed exactly once.
async fn send_async(
    socket: &tokio::net::UnixStream,
    fd: OwnedFd,
    closes_sent: bool,
) -> Result<(), BoxError> {
    if closes_sent {
        socket.send_fd(fd.into_raw_fd()).await?;
    } else {
        socket.send_fd(fd.as_raw_fd()).await?;
        drop(fd);
    }
    Ok(())
}

async fn recv_async(socket: &tokio::net::UnixStream) -> Result<OwnedFd, BoxError> {
    Ok(adopt(socket.recv_fd().await?))
}

impl Endpoint for AsyncSendFd {
    fn send_all(&mut self, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let (socket, closes_sent) = (&self.socket, self.closes_sent);
        self.runtime.block_on(async {
            for fd in fds {
                send_async(socket, fd, closes_sent).await?;
            }
            Ok(())
        })
    }

    fn recv_n(&mut self, n: usize) -> Result<(), BoxError> {
        let socket = &self.socket;
        self.runtime.block_on(async {
            for _ in 0..n {
                drop(recv_async(socket).await?);
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
        let (socket, closes_sent) = (&self.socket, self.closes_sent);
        self.runtime.block_on(async {
            let mut fd = fd;
            stamps.push(Instant::now());
            for _ in 0..rounds {
                send_async(socket, fd, closes_sent).await?;
                fd = recv_async(socket).await?;
                stamps.push(Instant::now());
            }
            Ok(fd)
        })
    }

    fn echo(&mut self, rounds: usize) -> Result<(), BoxError> {
        let (socket, closes_sent) = (&self.socket, self.closes_sent);
        self.runtime.block_on(async {
            for _ in 0..rounds {
                let fd = recv_async(socket).await?;
                send_async(socket, fd, closes_sent).await?;
            }
            Ok(())
        })
    }
}
