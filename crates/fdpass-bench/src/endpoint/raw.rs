//! The limit: rustix `sendmsg`/`recvmsg` on blocking sockets, nothing else.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::{closed, Endpoint, PAYLOAD};
use crate::case::Load;
use crate::BoxError;

static ZEROS: [u8; fdpass_core::SCM_MAX_FD] = [0; fdpass_core::SCM_MAX_FD];

pub struct Raw {
    socket: OwnedFd,
    /// Descriptors per message; in the message cases, messages per message.
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
    /// `batch` descriptors per message; with a message `load`, `batch`
    /// messages of that load per `sendmsg` (one payload each, back to back,
    /// and their descriptors in one control message).
    pub fn new(socket: OwnedFd, batch: usize, peek: bool, load: Load) -> Raw {
        let bytes = match load {
            Load::Fds => batch,
            _ => batch * load.payload_len(),
        };
        Raw {
            socket,
            batch,
            peek,
            control: vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(batch))],
            bytes: vec![0; bytes],
            outgoing: Vec::with_capacity(batch),
            borrowed: Vec::with_capacity(batch),
        }
    }

    /// Sends `self.outgoing` as one message with one zero byte each, then
    /// closes it.
    fn send_outgoing(&mut self) -> Result<(), BoxError> {
        self.send_outgoing_with(&ZEROS[..self.outgoing.len()])
    }

    /// Sends `bytes` with `self.outgoing` (if any) in one `sendmsg`, then
    /// closes the descriptors.
    fn send_outgoing_with(&mut self, bytes: &[u8]) -> Result<(), BoxError> {
        let mut borrowed = recycle(std::mem::take(&mut self.borrowed));
        borrowed.extend(self.outgoing.iter().map(|fd| fd.as_fd()));
        let mut control = SendAncillaryBuffer::new(&mut self.control);
        if !borrowed.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(&borrowed));
        }
        let n = bytes.len();
        let mut written = rustix::net::sendmsg(
            &self.socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        self.borrowed = recycle(borrowed);
        // A blocking stream socket can still take the bytes in parts; the
        // descriptors went with the first part.
        while written < n {
            written += rustix::net::send(&self.socket, &bytes[written..], SendFlags::NOSIGNAL)?;
        }
        self.outgoing.clear();
        Ok(())
    }

    /// One message: installs its descriptors, closes them, returns how many.
    fn recv_one(&mut self) -> Result<usize, BoxError> {
        Ok(self.recv_bytes_and_fds()?.1)
    }

    /// One `recvmsg` (after a peek, if peeking): the bytes it read and the
    /// descriptors it installed, which wait in `self.outgoing`.
    fn recv_bytes_and_fds(&mut self) -> Result<(usize, usize), BoxError> {
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
        Ok((msg.bytes, count))
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

    fn send_messages(&mut self, load: Load, n: usize, fds: Vec<OwnedFd>) -> Result<(), BoxError> {
        let len = load.payload_len();
        let mut fds = fds.into_iter();
        let mut left = n;
        while left > 0 {
            let k = left.min(self.batch);
            left -= k;
            self.outgoing.extend(fds.by_ref().take(k * load.fds()));
            self.send_outgoing_with(&PAYLOAD[..k * len])?;
        }
        Ok(())
    }

    /// Reads until `n` messages' bytes and descriptors have arrived: the
    /// stream keeps no boundaries, so the count is of bytes.
    fn recv_messages(&mut self, load: Load, n: usize) -> Result<(), BoxError> {
        let (want_bytes, want_fds) = (n * load.payload_len(), n * load.fds());
        let (mut bytes, mut fds) = (0, 0);
        while bytes < want_bytes || fds < want_fds {
            let (b, f) = self.recv_bytes_and_fds()?;
            self.outgoing.clear();
            bytes += b;
            fds += f;
        }
        if (bytes, fds) != (want_bytes, want_fds) {
            return Err(format!(
                "expected {want_bytes} bytes and {want_fds} descriptors, got {bytes} and {fds}"
            )
            .into());
        }
        Ok(())
    }
}
