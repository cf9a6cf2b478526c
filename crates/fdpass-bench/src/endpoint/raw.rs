//! The limit: rustix `sendmsg`/`recvmsg` on blocking sockets, nothing else.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::{closed, Endpoint};
use crate::BoxError;

static ZEROS: [u8; fdpass_core::SCM_MAX_FD] = [0; fdpass_core::SCM_MAX_FD];

pub struct Raw {
    socket: OwnedFd,
    batch: usize,
    /// Receive with `MSG_PEEK` first, then consume without a control buffer.
    peek: bool,
    control: Vec<MaybeUninit<u8>>,
    bytes: Vec<u8>,
    /// Reused for the descriptors of one outgoing message.
    outgoing: Vec<OwnedFd>,
    borrowed: Vec<BorrowedFd<'static>>,
}

/// Empties `v` and changes its lifetime, keeping the allocation (an in-place
/// collection of an empty iterator reuses it).
fn recycle<'a, 'b>(mut v: Vec<BorrowedFd<'a>>) -> Vec<BorrowedFd<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was cleared"))
        .collect()
}

impl Raw {
    pub fn new(socket: OwnedFd, batch: usize, peek: bool) -> Raw {
        Raw {
            socket,
            batch,
            peek,
            control: vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(batch))],
            bytes: vec![0; batch],
            outgoing: Vec::with_capacity(batch),
            borrowed: Vec::with_capacity(batch),
        }
    }

    /// Sends `self.outgoing` as one message, then closes it.
    fn send_outgoing(&mut self) -> Result<(), BoxError> {
        let mut borrowed = recycle(std::mem::take(&mut self.borrowed));
        borrowed.extend(self.outgoing.iter().map(|fd| fd.as_fd()));
        let mut control = SendAncillaryBuffer::new(&mut self.control);
        control.push(SendAncillaryMessage::ScmRights(&borrowed));
        let n = self.outgoing.len();
        let mut written = rustix::net::sendmsg(
            &self.socket,
            &[IoSlice::new(&ZEROS[..n])],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        self.borrowed = recycle(borrowed);
        // A blocking stream socket can still take the bytes in parts; the
        // descriptors went with the first part.
        while written < n {
            written += rustix::net::send(&self.socket, &ZEROS[written..n], SendFlags::NOSIGNAL)?;
        }
        self.outgoing.clear();
        Ok(())
    }

    /// One message: installs its descriptors, closes them, returns how many.
    fn recv_one(&mut self) -> Result<usize, BoxError> {
        let flags = if self.peek {
            RecvFlags::CMSG_CLOEXEC | RecvFlags::PEEK
        } else {
            RecvFlags::CMSG_CLOEXEC
        };
        let mut control = RecvAncillaryBuffer::new(&mut self.control);
        let msg = rustix::net::recvmsg(
            &self.socket,
            &mut [IoSliceMut::new(&mut self.bytes)],
            &mut control,
            flags,
        )?;
        if msg.bytes == 0 {
            return Err(closed());
        }
        let mut count = 0;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                for fd in fds {
                    // Closed here, after the consuming read below for peek,
                    // as fdpass does.
                    count += 1;
                    self.outgoing.push(fd);
                }
            }
        }
        if self.peek {
            let consumed = rustix::net::recvmsg(
                &self.socket,
                &mut [IoSliceMut::new(&mut self.bytes[..msg.bytes])],
                &mut RecvAncillaryBuffer::default(),
                RecvFlags::empty(),
            )?;
            if consumed.bytes != msg.bytes {
                return Err("the consuming read differed from the peek".into());
            }
        }
        Ok(count)
    }
}

impl Endpoint for Raw {
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
            if self.recv_one()? != 1 {
                return Err("expected one descriptor back".into());
            }
            fd = self.outgoing.pop().ok_or("no descriptor came back")?;
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
